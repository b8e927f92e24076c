package objstore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand"
	"time"
)

// RetryPolicy bounds retries of retriable errors.
type RetryPolicy struct {
	Attempts int           // total tries, at least 1
	Base     time.Duration // first backoff
	Max      time.Duration // backoff ceiling
	Timeout  time.Duration // per operation attempt; 0 = none
}

// DefaultRetryPolicy suits a cloud store: 8 tries, 50 ms doubling to 5 s
// with full jitter, 30 s per attempt.
var DefaultRetryPolicy = RetryPolicy{Attempts: 8, Base: 50 * time.Millisecond, Max: 5 * time.Second, Timeout: 30 * time.Second}

// WithRetries wraps b so retriable errors are retried with exponential
// backoff and jitter, and never anything else. Conditional Puts whose
// outcome is ambiguous (a retriable error: the write may have happened)
// are resolved by reading the object back, never by writing twice.
func WithRetries(b Bucket, p RetryPolicy) Bucket { return &retrying{Bucket: b, p: p} }

type retrying struct {
	Bucket
	p RetryPolicy
}

func (r *retrying) do(ctx context.Context, f func(context.Context) error) error {
	var err error
	for attempt := 0; attempt < max(r.p.Attempts, 1); attempt++ {
		if attempt > 0 {
			backoff := min(r.p.Base<<(attempt-1), r.p.Max)
			select {
			case <-time.After(time.Duration(rand.Int63n(int64(backoff) + 1))):
			case <-ctx.Done():
				return err
			}
		}
		actx, cancel := ctx, context.CancelFunc(func() {})
		if r.p.Timeout > 0 {
			actx, cancel = context.WithTimeout(ctx, r.p.Timeout)
		}
		err = f(actx)
		cancel()
		if err == nil || !errors.Is(err, ErrRetriable) || ctx.Err() != nil {
			return err
		}
	}
	return err
}

func (r *retrying) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, Attrs, error) {
	var rc io.ReadCloser
	var attrs Attrs
	err := r.do(ctx, func(c context.Context) error {
		var err error
		rc, attrs, err = r.Bucket.Get(ctx, key, offset, length) // the stream outlives the attempt's context
		return err
	})
	if err != nil {
		return nil, attrs, err
	}
	return &resumingReader{r: r, ctx: ctx, key: key, rc: rc, next: offset, remaining: length, version: attrs.Version}, attrs, nil
}

// resumingReader continues a stream that broke part way by asking for the
// rest, as long as the object is still the version first read; a changed
// object is ErrPrecondition rather than a splice of two versions.
type resumingReader struct {
	r         *retrying
	ctx       context.Context
	key       string
	rc        io.ReadCloser
	next      int64 // offset of the next byte
	remaining int64 // bytes left, -1 = to the end
	version   string
	resumes   int
}

func (s *resumingReader) Read(p []byte) (int, error) {
	if s.remaining == 0 {
		return 0, io.EOF
	}
	if s.remaining > 0 && int64(len(p)) > s.remaining {
		p = p[:s.remaining]
	}
	n, err := s.rc.Read(p)
	s.next += int64(n)
	if s.remaining > 0 {
		s.remaining -= int64(n)
	}
	if err == nil || err == io.EOF || errors.Is(err, ErrCorrupt) || !errors.Is(err, ErrRetriable) && !isTransport(err) {
		return n, err
	}
	if s.resumes >= max(s.r.p.Attempts, 1) || s.ctx.Err() != nil {
		return n, err
	}
	s.resumes++
	s.rc.Close()
	var attrs Attrs
	rerr := s.r.do(s.ctx, func(c context.Context) error {
		var gerr error
		s.rc, attrs, gerr = s.r.Bucket.Get(s.ctx, s.key, s.next, s.remaining)
		return gerr
	})
	if rerr != nil {
		s.rc = io.NopCloser(bytes.NewReader(nil))
		return n, rerr
	}
	if attrs.Version != s.version {
		s.rc.Close()
		s.rc = io.NopCloser(bytes.NewReader(nil))
		return n, Errorf(ErrPrecondition, "get", s.r.Name(), s.key, errors.New("the object changed while it was being read"))
	}
	if n > 0 {
		return n, nil
	}
	return s.Read(p)
}

func (s *resumingReader) Close() error { return s.rc.Close() }

// isTransport reports errors a broken connection gives mid-stream.
func isTransport(err error) bool {
	return errors.Is(err, io.ErrUnexpectedEOF)
}

func (r *retrying) Head(ctx context.Context, key string) (Attrs, error) {
	var attrs Attrs
	err := r.do(ctx, func(c context.Context) error {
		var err error
		attrs, err = r.Bucket.Head(c, key)
		return err
	})
	return attrs, err
}

func (r *retrying) Delete(ctx context.Context, key string) error {
	return r.do(ctx, func(c context.Context) error { return r.Bucket.Delete(c, key) })
}

func (r *retrying) List(ctx context.Context, prefix string, opts ListOptions, fn func(ObjectInfo) error) error {
	// A listing that fails part way restarts after the last key delivered.
	last := opts.StartAfter
	return r.do(ctx, func(c context.Context) error {
		o := opts
		o.StartAfter = last
		return r.Bucket.List(c, prefix, o, func(info ObjectInfo) error {
			if err := fn(info); err != nil {
				return err
			}
			last = info.Key
			return nil
		})
	})
}

func (r *retrying) Put(ctx context.Context, key string, body io.Reader, opts PutOptions) (Attrs, error) {
	// A retry must resend the body, and an ambiguous conditional write is
	// judged by comparing it with what is stored: a seekable body is
	// rewound for both; anything else is buffered once.
	rs, seekable := body.(io.ReadSeeker)
	var start int64
	if seekable {
		var err error
		if start, err = rs.Seek(0, io.SeekCurrent); err != nil {
			seekable = false
		}
	}
	if !seekable {
		data, err := io.ReadAll(body)
		if err != nil {
			return Attrs{}, Errorf(ErrPermanent, "put", r.Name(), key, err)
		}
		rs, start = bytes.NewReader(data), 0
	}
	rewind := func() error {
		_, err := rs.Seek(start, io.SeekStart)
		return err
	}
	conditional := opts.IfNotExists || opts.IfVersion != ""
	ambiguous := false
	var attrs Attrs
	err := r.do(ctx, func(c context.Context) error {
		if err := rewind(); err != nil {
			return Errorf(ErrPermanent, "put", r.Name(), key, err)
		}
		var err error
		attrs, err = r.Bucket.Put(c, key, rs, opts)
		if errors.Is(err, ErrRetriable) && conditional {
			ambiguous = true
		}
		if errors.Is(err, ErrPrecondition) && ambiguous {
			// An earlier attempt may have won: if the stored object is
			// ours, the write happened exactly once.
			stored, sattrs, rerr := ReadAll(c, r.Bucket, key)
			if rerr == nil && rewind() == nil {
				if ours, _ := io.ReadAll(rs); bytes.Equal(stored, ours) {
					attrs = sattrs
					return nil
				}
			}
		}
		return err
	})
	return attrs, err
}

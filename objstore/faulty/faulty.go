// Package faulty wraps a Bucket and injects failures deterministically from
// a seed: errors of each class, latency, throttling, reads cut short, and
// the worst case for conditional writes — the write succeeds but its
// response is lost, so the caller sees a retriable error.
package faulty

import (
	"context"
	"errors"
	"io"
	"math/rand"
	"sync"
	"time"

	"github.com/tiercel/tiercel/objstore"
)

// Faults are per-operation probabilities in [0, 1].
type Faults struct {
	Retriable    float64       // fail before doing anything, ErrRetriable (a 503 or a reset)
	Permanent    float64       // fail before doing anything, ErrPermanent
	LostResponse float64       // Put: do the write, then report ErrRetriable
	CutRead      float64       // Get: the stream ends early with an error
	Latency      time.Duration // added to every operation
}

// Bucket injects Faults into an inner Bucket.
type Bucket struct {
	inner objstore.Bucket
	mu    sync.Mutex
	rng   *rand.Rand
	f     Faults
	// Counts of injected faults, for tests to assert that faults happened.
	Injected map[string]int
}

// Wrap returns inner with faults drawn from seed.
func Wrap(inner objstore.Bucket, seed int64, f Faults) *Bucket {
	return &Bucket{inner: inner, rng: rand.New(rand.NewSource(seed)), f: f, Injected: map[string]int{}}
}

// Set changes the faults (e.g. to end an outage).
func (b *Bucket) Set(f Faults) {
	b.mu.Lock()
	b.f = f
	b.mu.Unlock()
}

// Count returns how many faults of a kind were injected.
func (b *Bucket) Count(kind string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Injected[kind]
}

func (b *Bucket) roll(p float64, kind string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if p > 0 && b.rng.Float64() < p {
		b.Injected[kind]++
		return true
	}
	return false
}

var errInjected = errors.New("injected fault")

func (b *Bucket) before(ctx context.Context, op, key string) error {
	b.mu.Lock()
	f := b.f
	b.mu.Unlock()
	if f.Latency > 0 {
		select {
		case <-time.After(f.Latency):
		case <-ctx.Done():
			return objstore.Errorf(objstore.ErrRetriable, op, b.inner.Name(), key, ctx.Err())
		}
	}
	if b.roll(f.Retriable, "retriable") {
		return objstore.Errorf(objstore.ErrRetriable, op, b.inner.Name(), key, errInjected)
	}
	if b.roll(f.Permanent, "permanent") {
		return objstore.Errorf(objstore.ErrPermanent, op, b.inner.Name(), key, errInjected)
	}
	return nil
}

func (b *Bucket) Name() string { return b.inner.Name() }
func (b *Bucket) Close() error { return b.inner.Close() }

func (b *Bucket) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, objstore.Attrs, error) {
	if err := b.before(ctx, "get", key); err != nil {
		return nil, objstore.Attrs{}, err
	}
	rc, attrs, err := b.inner.Get(ctx, key, offset, length)
	if err != nil {
		return rc, attrs, err
	}
	b.mu.Lock()
	p := b.f.CutRead
	b.mu.Unlock()
	if b.roll(p, "cut") {
		b.mu.Lock()
		n := 1 + b.rng.Int63n(64)
		b.mu.Unlock()
		return &cutReader{ReadCloser: rc, n: n}, attrs, nil
	}
	return rc, attrs, nil
}

// cutReader delivers n bytes, then an error, as a reset connection would.
type cutReader struct {
	io.ReadCloser
	n int64
}

func (c *cutReader) Read(p []byte) (int, error) {
	if c.n <= 0 {
		return 0, objstore.Errorf(objstore.ErrRetriable, "get", "", "", errors.New("injected: connection reset"))
	}
	if int64(len(p)) > c.n {
		p = p[:c.n]
	}
	n, err := c.ReadCloser.Read(p)
	c.n -= int64(n)
	return n, err
}

func (b *Bucket) Head(ctx context.Context, key string) (objstore.Attrs, error) {
	if err := b.before(ctx, "head", key); err != nil {
		return objstore.Attrs{}, err
	}
	return b.inner.Head(ctx, key)
}

func (b *Bucket) Put(ctx context.Context, key string, r io.Reader, opts objstore.PutOptions) (objstore.Attrs, error) {
	if err := b.before(ctx, "put", key); err != nil {
		return objstore.Attrs{}, err
	}
	attrs, err := b.inner.Put(ctx, key, r, opts)
	b.mu.Lock()
	p := b.f.LostResponse
	b.mu.Unlock()
	if err == nil && b.roll(p, "lost") {
		return objstore.Attrs{}, objstore.Errorf(objstore.ErrRetriable, "put", b.inner.Name(), key, errors.New("injected: the write succeeded but its response was lost"))
	}
	return attrs, err
}

func (b *Bucket) Delete(ctx context.Context, key string) error {
	if err := b.before(ctx, "delete", key); err != nil {
		return err
	}
	return b.inner.Delete(ctx, key)
}

func (b *Bucket) List(ctx context.Context, prefix string, opts objstore.ListOptions, fn func(objstore.ObjectInfo) error) error {
	if err := b.before(ctx, "list", prefix); err != nil {
		return err
	}
	return b.inner.List(ctx, prefix, opts, fn)
}

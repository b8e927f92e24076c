// Package gcs is the objstore backend for Google Cloud Storage (and
// fake-gcs-server through STORAGE_EMULATOR_HOST): create-only is
// ifGenerationMatch=0, compare-and-swap is ifGenerationMatch=<generation>,
// and the version is the object's generation.
package gcs

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"cloud.google.com/go/storage"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"

	"github.com/tiercel/tiercel/objstore"
)

// Bucket is a GCS bucket with an optional key prefix.
type Bucket struct {
	client *storage.Client
	name   string
	prefix string
}

// New opens bucket name; credentials come from Application Default
// Credentials, or none when STORAGE_EMULATOR_HOST points at an emulator.
func New(ctx context.Context, name, prefix string, opts ...option.ClientOption) (*Bucket, error) {
	c, err := storage.NewClient(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("objstore: gcs client: %w", err)
	}
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	return &Bucket{client: c, name: name, prefix: prefix}, nil
}

func (b *Bucket) Name() string { return "gs://" + b.name + "/" + b.prefix }
func (b *Bucket) Close() error { return b.client.Close() }

func (b *Bucket) obj(key string) *storage.ObjectHandle {
	return b.client.Bucket(b.name).Object(b.prefix + key)
}

func (b *Bucket) classify(op, key string, err error) error {
	if err == nil {
		return nil
	}
	class := objstore.ErrPermanent
	var ge *googleapi.Error
	switch {
	case errors.Is(err, storage.ErrObjectNotExist):
		class = objstore.ErrNotFound
	case errors.As(err, &ge) && ge.Code == http.StatusPreconditionFailed:
		class = objstore.ErrPrecondition
	case errors.As(err, &ge) && (ge.Code == http.StatusTooManyRequests || ge.Code >= 500):
		class = objstore.ErrRetriable
	case errors.As(err, &ge) && ge.Code == http.StatusNotFound:
		class = objstore.ErrNotFound
		if strings.Contains(strings.ToLower(ge.Message), "bucket") {
			class = objstore.ErrPermanent
		}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		class = objstore.ErrRetriable
	case !errors.As(err, &ge) && !errors.Is(err, storage.ErrBucketNotExist):
		class = objstore.ErrRetriable // transport failures
	}
	return objstore.Errorf(class, op, b.name, key, err)
}

func gen(g int64) string { return strconv.FormatInt(g, 10) }

func (b *Bucket) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, objstore.Attrs, error) {
	if length == 0 {
		attrs, err := b.Head(ctx, key)
		return io.NopCloser(strings.NewReader("")), attrs, err
	}
	r, err := b.obj(key).NewRangeReader(ctx, max(offset, 0), length)
	var ge *googleapi.Error
	if errors.As(err, &ge) && ge.Code == http.StatusRequestedRangeNotSatisfiable {
		// A range starting at or past the end is empty, not an error.
		attrs, herr := b.Head(ctx, key)
		return io.NopCloser(strings.NewReader("")), attrs, herr
	}
	if err != nil {
		return nil, objstore.Attrs{}, b.classify("get", key, err)
	}
	// The reader's attributes describe the generation it reads.
	return r, objstore.Attrs{Size: r.Attrs.Size, Version: gen(r.Attrs.Generation)}, nil
}

func (b *Bucket) Head(ctx context.Context, key string) (objstore.Attrs, error) {
	a, err := b.obj(key).Attrs(ctx)
	if err != nil {
		return objstore.Attrs{}, b.classify("head", key, err)
	}
	return objstore.Attrs{Size: a.Size, Version: gen(a.Generation)}, nil
}

func (b *Bucket) Put(ctx context.Context, key string, r io.Reader, opts objstore.PutOptions) (objstore.Attrs, error) {
	o := b.obj(key)
	switch {
	case opts.IfNotExists:
		o = o.If(storage.Conditions{DoesNotExist: true})
	case opts.IfVersion != "":
		g, err := strconv.ParseInt(opts.IfVersion, 10, 64)
		if err != nil || g <= 0 {
			return objstore.Attrs{}, objstore.Errorf(objstore.ErrPrecondition, "put", b.name, key, fmt.Errorf("version %q is not a generation", opts.IfVersion))
		}
		o = o.If(storage.Conditions{GenerationMatch: g})
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // an abandoned writer is cancelled, never committed
	w := o.NewWriter(ctx)
	w.ChunkSize = 16 << 20
	if opts.CRC32C != nil {
		w.CRC32C, w.SendCRC32C = *opts.CRC32C, true
	} else if rs, ok := r.(io.ReadSeeker); ok {
		// GCS checks the CRC32C of what it received and refuses a mismatch.
		start, err := rs.Seek(0, io.SeekCurrent)
		if err == nil {
			h := crc32.New(crc32.MakeTable(crc32.Castagnoli))
			if _, err = io.Copy(h, rs); err == nil {
				_, err = rs.Seek(start, io.SeekStart)
			}
			if err != nil {
				return objstore.Attrs{}, objstore.Errorf(objstore.ErrPermanent, "put", b.name, key, err)
			}
			w.CRC32C, w.SendCRC32C = h.Sum32(), true
		}
	}
	if _, err := io.Copy(w, r); err != nil {
		return objstore.Attrs{}, b.classify("put", key, err)
	}
	if err := w.Close(); err != nil {
		return objstore.Attrs{}, b.classify("put", key, err)
	}
	a := w.Attrs()
	return objstore.Attrs{Size: a.Size, Version: gen(a.Generation)}, nil
}

func (b *Bucket) Delete(ctx context.Context, key string) error {
	err := b.obj(key).Delete(ctx)
	if err != nil && !errors.Is(b.classify("delete", key, err), objstore.ErrNotFound) {
		return b.classify("delete", key, err)
	}
	return nil
}

func (b *Bucket) List(ctx context.Context, prefix string, opts objstore.ListOptions, fn func(objstore.ObjectInfo) error) error {
	q := &storage.Query{Prefix: b.prefix + prefix}
	if opts.StartAfter != "" {
		q.StartOffset = b.prefix + opts.StartAfter + "\x00" // StartOffset is inclusive
	}
	_ = q.SetAttrSelection([]string{"Name", "Size"})
	it := b.client.Bucket(b.name).Objects(ctx, q)
	if opts.PageSize > 0 {
		it.PageInfo().MaxSize = opts.PageSize
	}
	for {
		a, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return nil
		}
		if err != nil {
			return b.classify("list", prefix, err)
		}
		if err := fn(objstore.ObjectInfo{Key: strings.TrimPrefix(a.Name, b.prefix), Size: a.Size}); err != nil {
			return err
		}
	}
}

func init() {
	objstore.Register("gs", func(ctx context.Context, u *url.URL) (objstore.Bucket, error) {
		if u.Host == "" {
			return nil, fmt.Errorf("objstore: gs URL %q has no bucket", u.String())
		}
		return New(ctx, u.Host, strings.TrimPrefix(u.Path, "/"))
	})
}

// CreateBucket makes the bucket (tests and first-time setup).
func (b *Bucket) CreateBucket(ctx context.Context, project string) error {
	return b.classify("create-bucket", "", b.client.Bucket(b.name).Create(ctx, project, nil))
}

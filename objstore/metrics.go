package objstore

import (
	"context"
	"errors"
	"io"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// WithMetrics wraps b so every operation is counted and timed under the
// backend's name: tiercel.objstore.requests{backend,op,class},
// tiercel.objstore.duration{backend,op}, tiercel.objstore.bytes{backend,op}.
func WithMetrics(b Bucket, m metric.Meter, backend string) (Bucket, error) {
	w := &metered{Bucket: b, backend: backend}
	var err error
	if w.requests, err = m.Int64Counter("tiercel.objstore.requests", metric.WithDescription("object store requests by backend, operation and outcome class")); err != nil {
		return nil, err
	}
	if w.duration, err = m.Float64Histogram("tiercel.objstore.duration", metric.WithUnit("s"), metric.WithDescription("object store request latency"),
		metric.WithExplicitBucketBoundaries(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)); err != nil {
		return nil, err
	}
	if w.bytes, err = m.Int64Counter("tiercel.objstore.bytes", metric.WithUnit("By"), metric.WithDescription("bytes written by Put and read by Get")); err != nil {
		return nil, err
	}
	return w, nil
}

type metered struct {
	Bucket
	backend  string
	requests metric.Int64Counter
	duration metric.Float64Histogram
	bytes    metric.Int64Counter
}

func classOf(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, ErrNotFound):
		return "not_found"
	case errors.Is(err, ErrPrecondition):
		return "precondition"
	case errors.Is(err, ErrRetriable):
		return "retriable"
	}
	return "permanent"
}

func (w *metered) record(op string, start time.Time, err error) {
	ctx := context.Background()
	w.requests.Add(ctx, 1, metric.WithAttributes(attribute.String("backend", w.backend), attribute.String("op", op), attribute.String("class", classOf(err))))
	w.duration.Record(ctx, time.Since(start).Seconds(), metric.WithAttributes(attribute.String("backend", w.backend), attribute.String("op", op)))
}

func (w *metered) addBytes(op string, n int64) {
	if n > 0 {
		w.bytes.Add(context.Background(), n, metric.WithAttributes(attribute.String("backend", w.backend), attribute.String("op", op)))
	}
}

func (w *metered) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, Attrs, error) {
	start := time.Now()
	rc, attrs, err := w.Bucket.Get(ctx, key, offset, length)
	w.record("get", start, err)
	if err != nil {
		return rc, attrs, err
	}
	return &countedReader{ReadCloser: rc, done: func(n int64) { w.addBytes("get", n) }}, attrs, nil
}

type countedReader struct {
	io.ReadCloser
	n    int64
	done func(int64)
}

func (c *countedReader) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n += int64(n)
	return n, err
}

func (c *countedReader) Close() error {
	if c.done != nil {
		c.done(c.n)
		c.done = nil
	}
	return c.ReadCloser.Close()
}

func (w *metered) Head(ctx context.Context, key string) (Attrs, error) {
	start := time.Now()
	a, err := w.Bucket.Head(ctx, key)
	w.record("head", start, err)
	return a, err
}

func (w *metered) Put(ctx context.Context, key string, r io.Reader, opts PutOptions) (Attrs, error) {
	start := time.Now()
	a, err := w.Bucket.Put(ctx, key, r, opts)
	w.record("put", start, err)
	if err == nil {
		w.addBytes("put", a.Size)
	}
	return a, err
}

func (w *metered) Delete(ctx context.Context, key string) error {
	start := time.Now()
	err := w.Bucket.Delete(ctx, key)
	w.record("delete", start, err)
	return err
}

func (w *metered) List(ctx context.Context, prefix string, opts ListOptions, fn func(ObjectInfo) error) error {
	start := time.Now()
	err := w.Bucket.List(ctx, prefix, opts, fn)
	w.record("list", start, err)
	return err
}

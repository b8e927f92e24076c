package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/tiercel/tiercel/objstore"
)

// ObjOptions shape an object-store benchmark.
type ObjOptions struct {
	Sizes       []int64 // object sizes (default 8 MiB and 64 MiB)
	Concurrency []int   // concurrent requests (default 1, 4, 16)
	PerWorker   int     // objects each worker writes and reads per cell (default 2)
	RangeSize   int64   // ranged GET size (default 1 MiB)
	Ranges      int     // ranged GETs for the latency figure (default 200)
}

// ObjResult is one cell: an operation at a size and concurrency.
type ObjResult struct {
	Store       string  `json:"store"`
	Op          string  `json:"op"`
	Size        int64   `json:"size"`
	Concurrency int     `json:"concurrency"`
	MiBPerSec   float64 `json:"mib_per_sec,omitempty"`
	P50Ms       float64 `json:"p50_ms,omitempty"`
	P99Ms       float64 `json:"p99_ms,omitempty"`
}

func (r ObjResult) String() string {
	if r.Op == "range-get" {
		return fmt.Sprintf("%-10s %-9s %8s            p50 %7.2f ms  p99 %7.2f ms", r.Store, r.Op, size(r.Size), r.P50Ms, r.P99Ms)
	}
	return fmt.Sprintf("%-10s %-9s %8s x%-3d %8.1f MiB/s", r.Store, r.Op, size(r.Size), r.Concurrency, r.MiBPerSec)
}

func size(n int64) string { return fmt.Sprintf("%d MiB", n>>20) }

func (o *ObjOptions) defaults() {
	if len(o.Sizes) == 0 {
		o.Sizes = []int64{8 << 20, 64 << 20}
	}
	if len(o.Concurrency) == 0 {
		o.Concurrency = []int{1, 4, 16}
	}
	if o.PerWorker == 0 {
		o.PerWorker = 2
	}
	if o.RangeSize == 0 {
		o.RangeSize = 1 << 20
	}
	if o.Ranges == 0 {
		o.Ranges = 200
	}
}

// Objstore measures PUT and GET throughput and ranged-GET latency of b.
// It deletes what it wrote.
func Objstore(ctx context.Context, store string, b objstore.Bucket, o ObjOptions) ([]ObjResult, error) {
	o.defaults()
	var out []ObjResult
	for _, sz := range o.Sizes {
		data := make([]byte, sz)
		_, _ = rand.Read(data)
		for _, c := range o.Concurrency {
			keys := make([]string, c*o.PerWorker)
			for i := range keys {
				keys[i] = fmt.Sprintf("tiercel-bench/%d/%d/%d", sz, c, i)
			}
			put := func(k string) error {
				_, err := b.Put(ctx, k, bytes.NewReader(data), objstore.PutOptions{Size: sz})
				return err
			}
			get := func(k string) error {
				rc, _, err := b.Get(ctx, k, 0, -1)
				if err != nil {
					return err
				}
				defer rc.Close()
				n, err := io.Copy(io.Discard, rc)
				if err == nil && n != sz {
					err = fmt.Errorf("read %d of %d bytes", n, sz)
				}
				return err
			}
			for _, op := range []struct {
				name string
				f    func(string) error
			}{{"put", put}, {"get", get}} {
				d, err := parallel(keys, c, op.f)
				if err != nil {
					return out, fmt.Errorf("%s %s x%d: %w", op.name, size(sz), c, err)
				}
				out = append(out, ObjResult{Store: store, Op: op.name, Size: sz, Concurrency: c, MiBPerSec: mibPerSec(sz*int64(len(keys)), d)})
			}
			if sz == o.Sizes[0] && c == o.Concurrency[0] {
				r, err := rangeLatency(ctx, store, b, keys[0], sz, o)
				if err != nil {
					return out, err
				}
				out = append(out, r)
			}
			for _, k := range keys {
				_ = b.Delete(ctx, k)
			}
		}
	}
	return out, nil
}

func parallel(keys []string, c int, f func(string) error) (time.Duration, error) {
	start := time.Now()
	work := make(chan string)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for w := 0; w < c; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range work {
				if err := f(k); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for _, k := range keys {
		work <- k
	}
	close(work)
	wg.Wait()
	return time.Since(start), first
}

func rangeLatency(ctx context.Context, store string, b objstore.Bucket, key string, sz int64, o ObjOptions) (ObjResult, error) {
	h := newHist()
	buf := make([]byte, o.RangeSize)
	for i := 0; i < o.Ranges; i++ {
		off := (int64(i) * 7919 * o.RangeSize) % max(sz-o.RangeSize, 1)
		start := time.Now()
		rc, _, err := b.Get(ctx, key, off, o.RangeSize)
		if err != nil {
			return ObjResult{}, err
		}
		_, err = io.ReadFull(rc, buf)
		rc.Close()
		if err != nil {
			return ObjResult{}, err
		}
		_ = h.RecordValue(max(time.Since(start).Microseconds(), 1))
	}
	r := ObjResult{Store: store, Op: "range-get", Size: o.RangeSize, Concurrency: 1}
	res := Result{}
	fill(&res, h)
	r.P50Ms, r.P99Ms = res.P50Ms, res.P99Ms
	return r, nil
}

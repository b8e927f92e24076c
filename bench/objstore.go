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

// Store is a bucket under a name for a comparison.
type Store struct {
	Name   string
	Bucket objstore.Bucket
}

// Objstore measures PUT and GET throughput and ranged-GET latency of each
// store. Stores are interleaved cell by cell, and the order alternates
// between repetitions, so a server warming up or a noisy neighbour does not
// favour whichever client runs first. Throughput is the mean of the
// repetitions. It deletes what it wrote.
func Objstore(ctx context.Context, stores []Store, o ObjOptions) ([]ObjResult, error) {
	o.defaults()
	const reps = 2
	var out []ObjResult
	for _, sz := range o.Sizes {
		data := make([]byte, sz)
		_, _ = rand.Read(data)
		for _, c := range o.Concurrency {
			sums := map[string]map[string]float64{}
			for rep := 0; rep < reps; rep++ {
				for i := range stores {
					st := stores[i]
					if rep%2 == 1 {
						st = stores[len(stores)-1-i]
					}
					if sums[st.Name] == nil {
						sums[st.Name] = map[string]float64{}
					}
					put, get, err := cell(ctx, st.Bucket, data, c, o.PerWorker, fmt.Sprintf("tiercel-bench/%d/%d/%d", sz, c, rep))
					if err != nil {
						return out, fmt.Errorf("%s %s x%d: %w", st.Name, size(sz), c, err)
					}
					sums[st.Name]["put"] += put / reps
					sums[st.Name]["get"] += get / reps
				}
			}
			for _, st := range stores {
				for _, op := range []string{"put", "get"} {
					out = append(out, ObjResult{Store: st.Name, Op: op, Size: sz, Concurrency: c, MiBPerSec: sums[st.Name][op]})
				}
			}
		}
	}
	for _, st := range stores {
		r, err := rangeLatency(ctx, st.Name, st.Bucket, o)
		if err != nil {
			return out, fmt.Errorf("%s: %w", st.Name, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// cell writes then reads c*perWorker objects with c workers and returns
// both throughputs in MiB/s.
func cell(ctx context.Context, b objstore.Bucket, data []byte, c, perWorker int, prefix string) (float64, float64, error) {
	sz := int64(len(data))
	keys := make([]string, c*perWorker)
	for i := range keys {
		keys[i] = fmt.Sprintf("%s/%d", prefix, i)
	}
	defer func() {
		for _, k := range keys {
			_ = b.Delete(ctx, k)
		}
	}()
	putD, err := parallel(keys, c, func(k string) error {
		_, err := b.Put(ctx, k, bytes.NewReader(data), objstore.PutOptions{Size: sz})
		return err
	})
	if err != nil {
		return 0, 0, err
	}
	getD, err := parallel(keys, c, func(k string) error {
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
	})
	total := sz * int64(len(keys))
	return mibPerSec(total, putD), mibPerSec(total, getD), err
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

func rangeLatency(ctx context.Context, store string, b objstore.Bucket, o ObjOptions) (ObjResult, error) {
	sz := 8 * o.RangeSize
	data := make([]byte, sz)
	_, _ = rand.Read(data)
	const key = "tiercel-bench/range"
	if _, err := b.Put(ctx, key, bytes.NewReader(data), objstore.PutOptions{Size: sz}); err != nil {
		return ObjResult{}, err
	}
	defer b.Delete(ctx, key)
	h := newHist()
	buf := make([]byte, o.RangeSize)
	for i := 0; i < o.Ranges; i++ {
		off := (int64(i) * 7919 * o.RangeSize) % (sz - o.RangeSize)
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

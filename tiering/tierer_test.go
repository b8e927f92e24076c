package tiering_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tiercel/tiercel/internal/recordbatch"
	"github.com/tiercel/tiercel/objstore"
	"github.com/tiercel/tiercel/objstore/mem"
	"github.com/tiercel/tiercel/tiering"
)

// fakeLog is a LocalLog of closed one-batch segments and an empty active one.
type fakeLog struct {
	mu      sync.Mutex
	segs    []tiering.LocalSegment
	data    map[int64][]byte
	open    *atomic.Int64 // segments open for upload across all fake logs
	maxOpen *atomic.Int64
}

func newFakeLog(t *testing.T, n int, open, maxOpen *atomic.Int64) *fakeLog {
	f := &fakeLog{data: map[int64][]byte{}, open: open, maxOpen: maxOpen}
	for i := range n {
		b, err := recordbatch.Build([]recordbatch.Record{{Timestamp: time.Now().UnixMilli(), Value: bytes.Repeat([]byte{byte(i)}, 100)}}, recordbatch.BuildOptions{ProducerID: -1, BaseOffset: int64(i)})
		if err != nil {
			t.Fatal(err)
		}
		f.data[int64(i)] = b
		f.segs = append(f.segs, tiering.LocalSegment{BaseOffset: int64(i), NextOffset: int64(i + 1), Size: int64(len(b)), MaxTimestamp: time.Now().UnixMilli()})
	}
	f.segs = append(f.segs, tiering.LocalSegment{BaseOffset: int64(n), NextOffset: int64(n), Active: true, MaxTimestamp: -1})
	return f
}

func (f *fakeLog) LocalSegments() []tiering.LocalSegment {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]tiering.LocalSegment(nil), f.segs...)
}

func (f *fakeLog) OpenSegment(base int64) (tiering.Segment, func() error, error) {
	n := f.open.Add(1)
	for {
		m := f.maxOpen.Load()
		if n <= m || f.maxOpen.CompareAndSwap(m, n) {
			break
		}
	}
	time.Sleep(time.Millisecond) // keep uploads overlapping
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.segs {
		if s.BaseOffset == base && !s.Active {
			return tiering.Segment{Info: s, Log: bytes.NewReader(f.data[base])}, func() error { f.open.Add(-1); return nil }, nil
		}
	}
	f.open.Add(-1)
	return tiering.Segment{}, nil, fmt.Errorf("no closed segment at %d", base)
}

func (f *fakeLog) LocalStart() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.segs[0].BaseOffset
}

func (f *fakeLog) DropBefore(offset int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for len(f.segs) > 1 && f.segs[0].NextOffset <= offset {
		f.segs = f.segs[1:]
	}
	return nil
}

// TestTiererUploadsEveryPartitionWithABoundedPool: with many partitions
// and a pool of two, every closed segment of every partition reaches its
// manifest in order, no more than two uploads run at once, the local logs
// are trimmed to local.retention.bytes, and the bucket holds exactly the
// manifests' objects.
func TestTiererUploadsEveryPartitionWithABoundedPool(t *testing.T) {
	const parts, segs, jobs = 20, 4, 2
	bucket := mem.New("tierer")
	tr := tiering.NewTierer(tiering.TiererOptions{Bucket: bucket, Interval: time.Hour, Jobs: jobs})
	defer tr.Close()
	var open, maxOpen atomic.Int64
	logs := make([]*fakeLog, parts)
	for p := range parts {
		logs[p] = newFakeLog(t, segs, &open, &maxOpen)
		tr.Add(tiering.PartitionConfig{TopicID: "tid", Partition: int32(p), Retention: tiering.Retention{LocalMs: -1, LocalBytes: 0, Ms: -1, Bytes: -1}},
			logs[p], tiering.EmptyManifest("tid", int32(p)))
	}
	// One Kick (Add's) and an hour-long interval: everything after the
	// first pass happens through the replanning of finished jobs.
	deadline := time.Now().Add(20 * time.Second)
	for p := range parts {
		for {
			_, end, _ := tr.Range("tid", int32(p))
			if end == segs && logs[p].LocalStart() == segs {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("partition %d: tiered to %d, local start %d", p, end, logs[p].LocalStart())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	if m := maxOpen.Load(); m > jobs {
		t.Fatalf("%d uploads at once with a pool of %d", m, jobs)
	}
	store := tiering.ManifestStore{Bucket: bucket}
	named := 0
	for p := range parts {
		m, _, err := store.Load(context.Background(), "tid", int32(p))
		if err != nil || len(m.Segments) != segs || m.Check() != nil {
			t.Fatalf("partition %d manifest: %v %+v", p, err, m)
		}
		named += len(m.Segments)
	}
	objects := 0
	_ = bucket.List(context.Background(), "topics/", objstore.ListOptions{}, func(o objstore.ObjectInfo) error {
		if bytes.HasSuffix([]byte(o.Key), []byte(".seg")) {
			objects++
		}
		return nil
	})
	if objects != named {
		t.Fatalf("%d segment objects in the bucket, manifests name %d", objects, named)
	}
}

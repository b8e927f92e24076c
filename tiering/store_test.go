package tiering

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/tiercel/tiercel/objstore"
	"github.com/tiercel/tiercel/objstore/faulty"
	"github.com/tiercel/tiercel/objstore/fs"
	"github.com/tiercel/tiercel/objstore/mem"
)

var fast = objstore.RetryPolicy{Attempts: 30, Base: time.Millisecond, Max: 2 * time.Millisecond}

// TestManifestUpdatesRace: writers race to append to one manifest through a
// store that loses responses and fails transiently; every update that
// returned success is in the manifest exactly once, none is lost.
func TestManifestUpdatesRace(t *testing.T) {
	fsb, err := fs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for name, inner := range map[string]objstore.Bucket{"mem": mem.New("m"), "fs": fsb} {
		t.Run(name, func(t *testing.T) {
			f := faulty.Wrap(inner, 3, faulty.Faults{Retriable: 0.1, LostResponse: 0.2})
			store := ManifestStore{Bucket: objstore.WithRetries(f, fast), Attempts: 1000}
			ctx := context.Background()
			var mu sync.Mutex
			ok := map[string]bool{}
			var wg sync.WaitGroup
			for w := range 6 {
				wg.Add(1)
				go func(w int) {
					defer wg.Done()
					for i := range 10 {
						key := SegmentKey("topic-id", 0, int64(w*100+i), 1, 0)
						_, err := store.Update(ctx, "topic-id", 0, 1, func(m *Manifest) error {
							s := RemoteSegment{Key: key, BaseOffset: m.End(), NextOffset: m.End() + 1}
							_, err := m.Add(s)
							return err
						})
						if err != nil {
							t.Errorf("writer %d: %v", w, err)
							return
						}
						mu.Lock()
						ok[key] = true
						mu.Unlock()
					}
				}(w)
			}
			wg.Wait()
			m, _, err := store.Load(ctx, "topic-id", 0)
			if err != nil {
				t.Fatal(err)
			}
			seen := map[string]int{}
			for _, s := range m.Segments {
				seen[s.Key]++
			}
			for k := range ok {
				if seen[k] != 1 {
					t.Fatalf("acknowledged update %s appears %d times", k, seen[k])
				}
			}
			if len(m.Segments) != len(ok) || len(ok) != 60 {
				t.Fatalf("%d segments for %d acknowledged updates", len(m.Segments), len(ok))
			}
			if f.Count("lost") == 0 {
				t.Fatal("no lost response was injected: the test proved nothing")
			}
		})
	}
}

// TestManifestFencing: once a newer epoch wrote, an older one cannot.
func TestManifestFencing(t *testing.T) {
	store := ManifestStore{Bucket: mem.New("f")}
	ctx := context.Background()
	add := func(epoch int32) error {
		_, err := store.Update(ctx, "t", 3, epoch, func(m *Manifest) error {
			_, err := m.Add(RemoteSegment{Key: SegmentKey("t", 3, m.End(), epoch, 0), BaseOffset: m.End(), NextOffset: m.End() + 10})
			return err
		})
		return err
	}
	if err := add(1); err != nil {
		t.Fatal(err)
	}
	if err := add(2); err != nil {
		t.Fatal(err)
	}
	if err := add(1); !errors.Is(err, ErrFenced) {
		t.Fatalf("a fenced leader's update: %v", err)
	}
	m, _, _ := store.Load(ctx, "t", 3)
	if len(m.Segments) != 2 || m.LeaderEpoch != 2 {
		t.Fatalf("manifest after the fenced write: %+v", m)
	}
	if ManifestKey("t", 3) == ManifestKey("t", 4) || SegmentKey("t", 3, 0, 1, 0) == SegmentKey("t", 3, 0, 1, 0) {
		t.Fatal("keys collide")
	}
}

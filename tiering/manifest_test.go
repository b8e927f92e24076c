package tiering

import (
	"errors"
	"fmt"
	"math/rand"
	"testing"
)

func seg(base, next int64) RemoteSegment {
	return RemoteSegment{Key: fmt.Sprintf("k-%d-%d", base, next), BaseOffset: base, NextOffset: next}
}

func TestManifestOperations(t *testing.T) {
	var m Manifest
	for _, s := range []RemoteSegment{seg(0, 10), seg(10, 25), seg(25, 26)} {
		if added, err := m.Add(s); err != nil || !added {
			t.Fatalf("add %v: %v %v", s, added, err)
		}
	}
	if added, err := m.Add(seg(10, 25)); err != nil || added {
		t.Fatalf("a repeated upload: %v %v", added, err)
	}
	if _, err := m.Add(seg(30, 40)); !errors.Is(err, ErrNotContiguous) {
		t.Fatalf("a gap: %v", err)
	}
	if _, err := m.Add(seg(20, 30)); !errors.Is(err, ErrNotContiguous) {
		t.Fatalf("an overlap: %v", err)
	}
	if s, ok := m.Find(24); !ok || s.BaseOffset != 10 {
		t.Fatalf("find 24: %v %v", s, ok)
	}
	if _, ok := m.Find(26); ok {
		t.Fatal("found an offset past the end")
	}
	dropped := m.DropBefore(12)
	if len(dropped) != 1 || dropped[0].BaseOffset != 0 || m.LogStart != 12 || len(m.Segments) != 2 {
		t.Fatalf("drop before 12: %v, %+v", dropped, m)
	}
	if _, ok := m.Find(11); ok {
		t.Fatal("found an offset below the log start")
	}
	if m.DropBefore(5) != nil || m.LogStart != 12 {
		t.Fatal("the log start went back")
	}
	if err := m.Fence(3); err != nil {
		t.Fatal(err)
	}
	if err := m.Fence(2); !errors.Is(err, ErrFenced) {
		t.Fatalf("an older epoch: %v", err)
	}
	if err := m.Check(); err != nil {
		t.Fatal(err)
	}
	// A segment wholly below the start of an empty manifest is not kept.
	var e Manifest
	e.DropBefore(100)
	if added, _ := e.Add(seg(0, 50)); added {
		t.Fatal("kept a segment below the log start")
	}
}

// TestManifestRandomized applies random adds (some repeated, some out of
// place) and drops against a model: the set of offsets the manifest covers.
func TestManifestRandomized(t *testing.T) {
	for seed := int64(1); seed <= 200; seed++ {
		rng := rand.New(rand.NewSource(seed))
		var m Manifest
		var next int64       // where the model's log ends
		var start int64      // the model's log start
		var uploaded []int64 // bases of segments ever added
		for step := 0; step < 200; step++ {
			switch r := rng.Intn(10); {
			case r < 6:
				size := int64(1 + rng.Intn(20))
				added, err := m.Add(seg(next, next+size))
				if err != nil || (!added && next+size > start) {
					t.Fatalf("seed %d: add [%d,%d): %v %v", seed, next, next+size, added, err)
				}
				uploaded = append(uploaded, next)
				next += size
			case r < 7 && len(uploaded) > 0:
				// A repeated upload of an old segment changes nothing.
				before := len(m.Segments)
				b := uploaded[rng.Intn(len(uploaded))]
				if s, ok := m.Find(b); ok && s.BaseOffset == b {
					if added, err := m.Add(s); added || err != nil {
						t.Fatalf("seed %d: repeated %v: %v %v", seed, s, added, err)
					}
				}
				if len(m.Segments) != before {
					t.Fatalf("seed %d: a repeated upload changed the manifest", seed)
				}
			default:
				to := start + int64(rng.Intn(int(next-start)+1))
				m.DropBefore(to)
				start = max(start, to)
			}
			if err := m.Check(); err != nil {
				t.Fatalf("seed %d step %d: %v", seed, step, err)
			}
			if m.LogStart != start {
				t.Fatalf("seed %d: log start %d, model %d", seed, m.LogStart, start)
			}
			// Every offset in [start, next) is found in exactly the segment covering it.
			for o := start; o < next; o += 1 + int64(rng.Intn(5)) {
				s, ok := m.Find(o)
				if !ok || o < s.BaseOffset || o >= s.NextOffset {
					t.Fatalf("seed %d: offset %d not found (%v)", seed, o, s)
				}
			}
			if len(m.Segments) > 0 && m.End() != next {
				t.Fatalf("seed %d: end %d, model %d", seed, m.End(), next)
			}
		}
	}
}

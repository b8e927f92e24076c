package tiering

import (
	"math/rand"
	"testing"
)

func locals(bounds ...int64) []LocalSegment {
	var out []LocalSegment
	for i := 0; i+1 < len(bounds); i++ {
		out = append(out, LocalSegment{BaseOffset: bounds[i], NextOffset: bounds[i+1], Size: (bounds[i+1] - bounds[i]) * 100, MaxTimestamp: bounds[i+1] * 1000})
	}
	if len(out) > 0 {
		out[len(out)-1].Active = true
	}
	return out
}

var keepAll = Retention{LocalMs: -1, LocalBytes: -1, Ms: -1, Bytes: -1}

func TestPlanUploadsClosedSegmentsInOrder(t *testing.T) {
	var m Manifest
	p := MakePlan(locals(0, 10, 20, 30), &m, keepAll, 0)
	if len(p.Upload) != 2 || p.Upload[0].BaseOffset != 0 || p.Upload[1].BaseOffset != 10 {
		t.Fatalf("uploads %+v", p.Upload)
	}
	m.Add(seg(0, 10))
	p = MakePlan(locals(0, 10, 20, 30), &m, keepAll, 0)
	if len(p.Upload) != 1 || p.Upload[0].BaseOffset != 10 || p.LocalStart != 0 || p.RemoteStart != 0 {
		t.Fatalf("after one upload: %+v", p)
	}
}

// A leader whose segments end elsewhere than the uploaded ones (it was a
// follower that rolled its copy at other offsets) uploads the part of the
// segment straddling the remote end from that end on, then its next
// segments; a gap still stops the uploads.
func TestPlanStraddlingSegment(t *testing.T) {
	var m Manifest
	m.Add(seg(0, 15))
	p := MakePlan(locals(0, 10, 20, 30, 40), &m, keepAll, 0)
	if len(p.Upload) != 2 || p.Upload[0].BaseOffset != 15 || p.Upload[0].NextOffset != 20 || p.Upload[1].BaseOffset != 20 {
		t.Fatalf("uploads %+v", p.Upload)
	}
	p = MakePlan(locals(20, 30, 40), &m, keepAll, 0)
	if len(p.Upload) != 0 {
		t.Fatalf("uploads across a gap: %+v", p.Upload)
	}
}

func TestPlanLocalRetentionOnlyAfterUpload(t *testing.T) {
	var m Manifest
	r := Retention{LocalMs: -1, LocalBytes: 0, Ms: -1, Bytes: -1} // keep nothing locally
	p := MakePlan(locals(0, 10, 20, 30), &m, r, 0)
	if p.LocalStart != 0 {
		t.Fatalf("dropped untiered data locally: %+v", p)
	}
	m.Add(seg(0, 10))
	m.Add(seg(10, 20))
	p = MakePlan(locals(0, 10, 20, 30), &m, r, 0)
	if p.LocalStart != 20 {
		t.Fatalf("tiered segments kept locally: %+v", p)
	}
	// By age: only segments older than local.retention.ms.
	r = Retention{LocalMs: 15_000, LocalBytes: -1, Ms: -1, Bytes: -1}
	p = MakePlan(locals(0, 10, 20, 30), &m, r, 30_000)
	if p.LocalStart != 10 {
		t.Fatalf("by age: %+v", p)
	}
}

func TestPlanRemoteRetention(t *testing.T) {
	var m Manifest
	for _, s := range []RemoteSegment{{Key: "a", BaseOffset: 0, NextOffset: 10, Size: 1000, MaxTimestamp: 10_000}, {Key: "b", BaseOffset: 10, NextOffset: 20, Size: 1000, MaxTimestamp: 20_000}} {
		m.Add(s)
	}
	p := MakePlan(locals(20, 30), &m, Retention{LocalMs: -1, LocalBytes: -1, Ms: 15_000, Bytes: -1}, 30_000)
	if p.RemoteStart != 10 {
		t.Fatalf("by age: %+v", p)
	}
	// 2000 bytes remote + 1000 only local > 2500: the oldest segment goes.
	p = MakePlan(locals(20, 30), &m, Retention{LocalMs: -1, LocalBytes: -1, Ms: -1, Bytes: 2500}, 0)
	if p.RemoteStart != 10 {
		t.Fatalf("by size: %+v", p)
	}
	if p = MakePlan(locals(20, 30), &m, keepAll, 0); p.RemoteStart != 0 {
		t.Fatalf("unlimited retention dropped: %+v", p)
	}
}

// TestPlanRandomized checks the planner's safety rules on random logs:
// uploads continue the remote log and skip the active segment; the local
// log never drops what is not tiered; the bucket drops only tiered,
// whole segments, never moving its start back.
func TestPlanRandomized(t *testing.T) {
	for seed := int64(1); seed <= 500; seed++ {
		rng := rand.New(rand.NewSource(seed))
		bounds := []int64{int64(rng.Intn(50))}
		for range 1 + rng.Intn(8) {
			bounds = append(bounds, bounds[len(bounds)-1]+1+int64(rng.Intn(30)))
		}
		local := locals(bounds...)
		var m Manifest
		tiered := rng.Intn(len(local))
		for _, s := range local[:tiered] {
			m.Add(RemoteSegment{Key: "k", BaseOffset: s.BaseOffset, NextOffset: s.NextOffset, Size: s.Size, MaxTimestamp: s.MaxTimestamp})
			m.Segments[len(m.Segments)-1].Key = string(rune('a' + len(m.Segments)))
		}
		r := Retention{LocalMs: int64(rng.Intn(3)-1) * 50_000, LocalBytes: int64(rng.Intn(3)-1) * 3000, Ms: int64(rng.Intn(3)-1) * 80_000, Bytes: int64(rng.Intn(3)-1) * 5000}
		now := int64(rng.Intn(400_000))
		p := MakePlan(local, &m, r, now)
		next := m.End()
		for i, u := range p.Upload {
			if u.Active || (len(m.Segments) > 0 || i > 0) && u.BaseOffset != next {
				t.Fatalf("seed %d: upload %+v does not continue %d", seed, u, next)
			}
			next = u.NextOffset
		}
		if p.LocalStart > m.End() && p.LocalStart != local[0].BaseOffset {
			t.Fatalf("seed %d: local start %d beyond the tiered end %d", seed, p.LocalStart, m.End())
		}
		if act := local[len(local)-1]; p.LocalStart > act.BaseOffset {
			t.Fatalf("seed %d: the active segment dropped", seed)
		}
		if p.RemoteStart < m.LogStart || p.RemoteStart > m.End() {
			t.Fatalf("seed %d: remote start %d outside [%d, %d]", seed, p.RemoteStart, m.LogStart, m.End())
		}
		if p.RemoteStart != m.LogStart {
			boundary := false
			for _, s := range m.Segments {
				boundary = boundary || s.NextOffset == p.RemoteStart
			}
			if !boundary {
				t.Fatalf("seed %d: remote start %d is not a segment boundary", seed, p.RemoteStart)
			}
		}
		if r.Ms < 0 && r.Bytes < 0 && p.RemoteStart != m.LogStart {
			t.Fatalf("seed %d: unlimited retention dropped remote data", seed)
		}
	}
}

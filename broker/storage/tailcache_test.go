package storage

import (
	"bytes"
	"math/rand"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tiercel/tiercel/internal/recordbatch"
	"github.com/tiercel/tiercel/internal/vfs"
)

// TestTailCacheAgainstSegments drives two logs sharing a small tail cache
// budget through random appends (some not retained), reads, truncations,
// log start moves, segment rolls and age drops, and checks every read
// answered from the cache against the same read from the segment files:
// same first batch, one a byte prefix of the other (the cache may stop at
// its end or go on past a segment's), whole batches within maxBytes and
// below maxOffset, and empty only when the segment read is. The budget
// must come back whole once the logs close.
func TestTailCacheAgainstSegments(t *testing.T) {
	for seed := int64(1); seed <= 6; seed++ {
		rng := rand.New(rand.NewSource(seed))
		cfg := DefaultConfig()
		cfg.SegmentBytes = 8 << 10
		cfg.IndexIntervalBytes = 512
		e := newEnv(vfs.Default, t.TempDir(), cfg)
		// The clock moves while sync goroutines read it.
		var now atomic.Int64
		now.Store(e.now)
		e.opts.Now = func() time.Time { return time.UnixMilli(now.Load()) }
		const budget = 12 << 10
		e.opts.TailCacheBytes = budget
		m := e.open(t)
		var logs []*Log
		for p := int32(0); p < 2; p++ {
			l, err := m.Create(TopicPartition{Topic: "t", Partition: p}, [16]byte{}, cfg)
			if err != nil {
				t.Fatal(err)
			}
			l.tail.logLimit = 7 << 10
			logs = append(logs, l)
		}
		hits := 0
		for step := 0; step < 1500; step++ {
			l := logs[rng.Intn(len(logs))]
			switch r := rng.Intn(100); {
			case r < 45:
				var records []byte
				for range 1 + rng.Intn(3) {
					n := 1 + rng.Intn(4)
					vals := make([]string, n)
					for i := range vals {
						vals[i] = strings.Repeat(string(rune('a'+rng.Intn(26))), 1+rng.Intn(400))
					}
					records = append(records, batch(t, vals...)...)
				}
				if _, err := l.Append(records, AppendOptions{LeaderEpoch: 1, Retain: rng.Intn(10) > 0}); err != nil {
					t.Fatal(err)
				}
			case r < 49:
				// Followers truncate at batch boundaries.
				if end, start := l.EndOffset(), l.StartOffset(); end > start {
					res, err := l.read(start+rng.Int63n(end-start), 1, end, false)
					if err != nil {
						t.Fatal(err)
					}
					if h, _ := recordbatch.ParseHeader(res.Records); h.BaseOffset >= start {
						if err := l.TruncateTo(h.BaseOffset); err != nil {
							t.Fatal(err)
						}
					}
				}
			case r < 51:
				if err := l.Flush(); err != nil {
					t.Fatal(err)
				}
				if hw, start := l.HighWatermark(), l.StartOffset(); hw > start {
					if _, err := l.DeleteRecordsBefore(start + rng.Int63n(hw-start+1)); err != nil {
						t.Fatal(err)
					}
				}
			case r < 52:
				now.Add(tailCacheMaxAgeMs / 2)
				m.tick()
			default:
				start, end := l.StartOffset(), l.EndOffset()
				if end < start {
					t.Fatalf("seed %d step %d: log start %d beyond its end %d", seed, step, start, end)
				}
				if end == start {
					continue
				}
				off := start + rng.Int63n(end-start)
				maxBytes := int32(1 + rng.Intn(6000))
				maxOffset := off + 1 + rng.Int63n(end-off+1)
				l.mu.Lock()
				_, cached := l.tail.read(off, maxBytes, maxOffset)
				l.mu.Unlock()
				if cached {
					hits++
				}
				got, err := l.read(off, maxBytes, maxOffset, true)
				if err != nil {
					t.Fatalf("seed %d step %d: read %d: %v", seed, step, off, err)
				}
				want, err := l.read(off, maxBytes, maxOffset, false)
				if err != nil {
					t.Fatalf("seed %d step %d: segment read %d: %v", seed, step, off, err)
				}
				checkTailRead(t, got.Records, want.Records, off, maxBytes, maxOffset)
			}
			var held int64
			for _, l := range logs {
				l.mu.Lock()
				held += l.tail.bytes
				l.mu.Unlock()
			}
			if left := m.tailBudget.Load(); left+held != budget || left < 0 {
				t.Fatalf("seed %d step %d: budget left %d + held %d != %d", seed, step, left, held, budget)
			}
		}
		if hits < 100 {
			t.Fatalf("seed %d: only %d reads came from the tail cache; the test does not exercise it", seed, hits)
		}
		m.Close()
		if left := m.tailBudget.Load(); left != budget {
			t.Fatalf("seed %d: budget after close %d, want %d", seed, left, budget)
		}
	}
}

func checkTailRead(t *testing.T, got, want []byte, off int64, maxBytes int32, maxOffset int64) {
	t.Helper()
	if (len(got) == 0) != (len(want) == 0) {
		t.Fatalf("read %d: %d bytes from the cache, %d from the segment", off, len(got), len(want))
	}
	if len(got) == 0 {
		return
	}
	short, long := got, want
	if len(short) > len(long) {
		short, long = long, short
	}
	if !bytes.HasPrefix(long, short) {
		t.Fatalf("read %d: cache and segment answers differ (%d and %d bytes)", off, len(got), len(want))
	}
	var batches, size int
	for pos := 0; pos < len(got); {
		h, err := recordbatch.ParseHeader(got[pos:])
		if err != nil || pos+h.TotalSize() > len(got) {
			t.Fatalf("read %d: a partial batch at byte %d", off, pos)
		}
		if pos == 0 && (h.BaseOffset > off || h.LastOffset() < off) {
			t.Fatalf("read %d: first batch holds %d-%d", off, h.BaseOffset, h.LastOffset())
		}
		if h.BaseOffset >= maxOffset {
			t.Fatalf("read %d: batch at %d is not below %d", off, h.BaseOffset, maxOffset)
		}
		if recordbatch.ComputeCRC(got[pos:pos+h.TotalSize()]) != h.CRC {
			t.Fatalf("read %d: batch at %d fails its CRC", off, h.BaseOffset)
		}
		batches++
		size = pos + h.TotalSize()
		pos = size
	}
	if batches > 1 && size > int(maxBytes) {
		t.Fatalf("read %d: %d bytes in %d batches, over maxBytes %d", off, size, batches, maxBytes)
	}
}

// TestTailCacheKeepsNothingUnretained: an append without Retain (its
// caller may reuse the buffer) never reaches the cache.
func TestTailCacheKeepsNothingUnretained(t *testing.T) {
	e := newEnv(vfs.Default, t.TempDir(), DefaultConfig())
	e.opts.TailCacheBytes = 1 << 20
	m := e.open(t)
	defer m.Close()
	l, _ := m.Create(tp0, [16]byte{}, DefaultConfig())
	b := batch(t, "original")
	mustAppend(t, l, b)
	copy(b[len(b)-8:], "scribble")
	res, err := l.Read(0, 1<<20, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got := values(t, res.Records); len(got) != 1 || got[0] != "original" {
		t.Fatalf("read %q after the caller reused its buffer", got)
	}
	kept := batch(t, "kept")
	if _, err := l.Append(kept, AppendOptions{Retain: true}); err != nil {
		t.Fatal(err)
	}
	res, _ = l.Read(1, 1<<20, 2)
	if len(res.Records) == 0 || &res.Records[0] != &kept[0] {
		t.Fatal("a retained append's bytes were not served from the cache")
	}
}

// TestTailCacheOff: with no budget (tiercel.log.tail.cache.bytes=0) every
// read comes from the segment.
func TestTailCacheOff(t *testing.T) {
	e := newEnv(vfs.Default, t.TempDir(), DefaultConfig())
	e.opts.TailCacheBytes = 0
	m := e.open(t)
	defer m.Close()
	l, _ := m.Create(tp0, [16]byte{}, DefaultConfig())
	kept := batch(t, "kept")
	if _, err := l.Append(kept, AppendOptions{Retain: true}); err != nil {
		t.Fatal(err)
	}
	res, err := l.Read(0, 1<<20, 1)
	if err != nil || len(res.Records) == 0 {
		t.Fatalf("read: %v", err)
	}
	if &res.Records[0] == &kept[0] {
		t.Fatal("served from the cache although it is off")
	}
}

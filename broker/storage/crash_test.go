package storage

import (
	"fmt"
	"math/rand"
	"testing"

	"github.com/tiercel/tiercel/internal/recordbatch"
	"github.com/tiercel/tiercel/internal/vfs"
)

// TestCrashAgainstModel appends, waits for durability, checkpoints and
// rolls at random, then crashes the in-memory filesystem (keeping only
// synced bytes, plus a random torn prefix of unsynced ones) and reopens.
// The model: every record whose WaitDurable returned is present exactly
// once, in order, at its offset; nothing appears that was never written;
// a producer retrying its last batch after the crash is deduplicated if
// that batch survived.
func TestCrashAgainstModel(t *testing.T) {
	seeds := 150
	if testing.Short() {
		seeds = 30
	}
	for s := 0; s < seeds; s++ {
		seed := int64(s)
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel()
			crashModel(t, seed)
		})
	}
}

func crashModel(t *testing.T, seed int64) {
	rng := rand.New(rand.NewSource(seed))
	cfg := DefaultConfig()
	cfg.SegmentBytes = int64(300 + rng.Intn(3000))
	cfg.IndexIntervalBytes = int32(32 + rng.Intn(500))
	mem := vfs.NewMem()
	e := newEnv(mem, "/d", cfg)
	m := e.open(t)
	l, err := m.Create(tp0, [16]byte{9}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var (
		written []string // every value appended, in offset order (a superset of what survives)
		acked   int      // written[:acked] was acknowledged durable
		pid     = int64(100)
		nextSeq int32
		pending []pendingBatch // appended but not acknowledged: retried after a crash
	)
	for op := 0; op < 120; op++ {
		switch r := rng.Intn(20); {
		case r < 13:
			n := 1 + rng.Intn(4)
			vals := make([]string, n)
			for i := range vals {
				vals[i] = fmt.Sprintf("s%d-o%d-r%d", seed, op, i)
			}
			recs := make([]recordbatch.Record, n)
			for i, v := range vals {
				recs[i] = recordbatch.Record{Timestamp: int64(op), Value: []byte(v)}
			}
			b, _ := recordbatch.Build(recs, recordbatch.BuildOptions{ProducerID: pid, ProducerEpoch: 0, BaseSequence: nextSeq})
			pending = append(pending, pendingBatch{bytes: append([]byte(nil), b...), vals: vals})
			res, err := l.Append(b, AppendOptions{})
			if err != nil {
				t.Fatalf("op %d append: %v", op, err)
			}
			if res.BaseOffset != int64(len(written)) {
				t.Fatalf("op %d: appended at %d, model end %d", op, res.BaseOffset, len(written))
			}
			written = append(written, vals...)
			nextSeq += int32(n)
			if rng.Intn(3) > 0 {
				if err := l.WaitDurable(t.Context(), int64(len(written))); err != nil {
					t.Fatal(err)
				}
				acked = len(written)
				pending = nil
			}
		case r < 15:
			if err := m.Checkpoint(); err != nil {
				t.Fatal(err)
			}
		case r < 16:
			l.mu.Lock()
			if l.active().size > 0 {
				if err := l.roll(); err != nil {
					t.Fatal(err)
				}
			}
			l.mu.Unlock()
		default:
			crashed := mem.Crash(rng)
			m.closeLogs() // the old process is gone; its files are not ours any more
			mem = crashed
			e.fs = mem
			m = e.open(t)
			l = m.Get(tp0)
			if l == nil {
				t.Fatalf("op %d: log vanished after crash", op)
			}
			got := readAll(t, l, 0)
			if len(got) < acked {
				t.Fatalf("op %d: %d records after crash, %d were acknowledged", op, len(got), acked)
			}
			for i, v := range got {
				if i >= len(written) || v != written[i] {
					t.Fatalf("op %d: record %d is %q, model says %q", op, i, v, at(written, i))
				}
			}
			if l.EndOffset() != int64(len(got)) || l.HighWatermark() != l.EndOffset() {
				t.Fatalf("op %d: end %d hw %d for %d records", op, l.EndOffset(), l.HighWatermark(), len(got))
			}
			written = got
			acked = len(got)
			// The producer never learned whether its unacknowledged batches
			// landed: it retries them in order.
			for _, p := range pending {
				res, err := l.Append(append([]byte(nil), p.bytes...), AppendOptions{})
				if err != nil {
					t.Fatalf("op %d: retry after crash: %v", op, err)
				}
				if res.Duplicate {
					if res.BaseOffset >= int64(len(written)) || written[res.BaseOffset] != p.vals[0] {
						t.Fatalf("op %d: duplicate reported at %d, which does not hold %q", op, res.BaseOffset, p.vals[0])
					}
					continue
				}
				if res.BaseOffset != int64(len(written)) {
					t.Fatalf("op %d: retry appended at %d, end was %d", op, res.BaseOffset, len(written))
				}
				for _, v := range written {
					if v == p.vals[0] {
						t.Fatalf("op %d: batch %q survived the crash but was appended again", op, v)
					}
				}
				written = append(written, p.vals...)
			}
			pending = nil
			if err := l.WaitDurable(t.Context(), int64(len(written))); err != nil {
				t.Fatal(err)
			}
			acked = len(written)
		}
	}
	m.Close()
}

type pendingBatch struct {
	bytes []byte
	vals  []string
}

func at(s []string, i int) string {
	if i < len(s) {
		return s[i]
	}
	return "<nothing>"
}

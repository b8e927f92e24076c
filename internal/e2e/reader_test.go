package e2e

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// liveReader is a group consumer that runs while the cluster is disrupted
// and records what it is delivered.
type liveReader struct {
	cl     *kgo.Client
	done   chan struct{}
	mu     sync.Mutex
	at     map[int32]map[int64]string // partition -> offset -> value
	seen   map[string]bool
	repeat int // deliveries of an offset already delivered (allowed after a rebalance)
	clash  []string
	errs   map[int32]string // the last fetch error of each partition, to say why a reader stalled
	polled time.Time        // when the last poll returned
}

// startLiveReader consumes topic in group from the start through seeds.
func startLiveReader(t *testing.T, seeds []string, topic, group string) *liveReader {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.AutoCommitInterval(200*time.Millisecond),
		kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }))
	if err != nil {
		t.Fatal(err)
	}
	r := &liveReader{cl: cl, done: make(chan struct{}), at: map[int32]map[int64]string{}, seen: map[string]bool{}, errs: map[int32]string{}}
	go func() {
		defer close(r.done)
		for {
			fs := cl.PollFetches(context.Background())
			if fs.IsClientClosed() {
				return
			}
			r.mu.Lock()
			r.polled = time.Now()
			fs.EachError(func(_ string, p int32, err error) {
				r.errs[p] = time.Now().Format("15:04:05.000") + " " + err.Error()
			})
			fs.EachRecord(func(rec *kgo.Record) {
				offs := r.at[rec.Partition]
				if offs == nil {
					offs = map[int64]string{}
					r.at[rec.Partition] = offs
				}
				v := string(rec.Value)
				if old, ok := offs[rec.Offset]; ok {
					r.repeat++
					if old != v {
						r.clash = append(r.clash, old+" / "+v)
					}
				}
				offs[rec.Offset] = v
				r.seen[v] = true
			})
			r.mu.Unlock()
		}
	}()
	t.Cleanup(r.close)
	return r
}

func (r *liveReader) close() {
	r.cl.Close()
	<-r.done
}

// check waits until every acknowledged value was delivered, then fails if
// one offset was ever delivered with two different values (the log seen
// through different leaders diverged).
func (r *liveReader) check(t *testing.T, acked map[string]bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		r.mu.Lock()
		missing := 0
		for v := range acked {
			if !r.seen[v] {
				missing++
			}
		}
		clash, repeat, n := r.clash, r.repeat, len(r.seen)
		r.mu.Unlock()
		if len(clash) > 0 {
			t.Fatalf("the consumer was delivered different records at one offset: %v", clash[:min(5, len(clash))])
		}
		if missing == 0 {
			t.Logf("the live consumer read all %d acknowledged records (%d distinct, %d repeated deliveries)", len(acked), n, repeat)
			return
		}
		if time.Now().After(deadline) {
			r.mu.Lock()
			for p, offs := range r.at {
				last := int64(-1)
				for o := range offs {
					last = max(last, o)
				}
				t.Logf("live consumer: partition %d read %d offsets, up to %d; last fetch error: %q", p, len(offs), last, r.errs[p])
			}
			t.Logf("live consumer: last poll returned at %s", r.polled.Format("15:04:05.000"))
			r.mu.Unlock()
			t.Fatalf("the live consumer never read %d of %d acknowledged records", missing, len(acked))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

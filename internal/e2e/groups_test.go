package e2e

import (
	"context"
	"fmt"
	"math/rand"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tiercel/tiercel/internal/brokertest"
)

// TestKill9CommittedOffsets kills the broker with SIGKILL while several
// groups commit ever-growing offsets (and the coordinator compacts
// __consumer_offsets), restarts it, and checks after every restart that each
// group's committed offset is at least the last one the broker acknowledged
// (and never one nobody committed).
func TestKill9CommittedOffsets(t *testing.T) {
	const (
		cycles     = 6
		groups     = 4
		partitions = 3
		topic      = "offsets"
	)
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewSource(seed))
	t.Logf("seed %d", seed)
	// Small compaction thresholds: the coordinator rewrites its state and
	// drops old segments many times between the kills.
	proc := brokertest.StartProcess(t, t.TempDir(), "tiercel.offsets.compact.bytes=32768", "offsets.topic.segment.bytes=16384", "offsets.topic.num.partitions=3")
	createTopic(t, proc.Addr(), topic, partitions)

	type key struct {
		group     string
		partition int32
	}
	var (
		mu        sync.Mutex
		acked     = map[key]int64{} // highest acknowledged commit
		attempted = map[key]int64{} // highest commit ever sent
		wg        sync.WaitGroup
	)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for g := range groups {
		wg.Add(1)
		go func(group string) {
			defer wg.Done()
			cl, err := kgo.NewClient(kgo.SeedBrokers(proc.Addr()), kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }))
			if err != nil {
				t.Error(err)
				return
			}
			defer cl.Close()
			adm := kadm.NewClient(cl)
			for next := int64(1); ctx.Err() == nil; next++ {
				offs := kadm.Offsets{}
				for p := int32(0); p < partitions; p++ {
					offs.Add(kadm.Offset{Topic: topic, Partition: p, At: next, LeaderEpoch: -1})
				}
				mu.Lock()
				for p := int32(0); p < partitions; p++ {
					attempted[key{group, p}] = next
				}
				mu.Unlock()
				cctx, stop := context.WithTimeout(ctx, 5*time.Second)
				resps, err := adm.CommitOffsets(cctx, group, offs)
				stop()
				if err != nil {
					continue
				}
				mu.Lock()
				resps.Each(func(r kadm.OffsetResponse) {
					if r.Err == nil {
						acked[key{group, r.Partition}] = r.At
					}
				})
				mu.Unlock()
			}
		}(fmt.Sprint("g", g))
	}

	check := func(cycle int) {
		t.Helper()
		mu.Lock()
		want := map[key]int64{}
		for k, v := range acked {
			want[k] = v
		}
		mu.Unlock()
		adm, cl := newAdmin(t, proc.Addr())
		defer cl.Close()
		for g := range groups {
			group := fmt.Sprint("g", g)
			var got kadm.OffsetResponses
			deadline := time.Now().Add(20 * time.Second)
			for {
				fctx, stop := context.WithTimeout(context.Background(), 5*time.Second)
				var err error
				got, err = adm.FetchOffsets(fctx, group)
				stop()
				if err == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("cycle %d: fetching %s: %v", cycle, group, err)
				}
				time.Sleep(100 * time.Millisecond)
			}
			for p := int32(0); p < partitions; p++ {
				k := key{group, p}
				o, _ := got.Lookup(topic, p)
				mu.Lock()
				hi := attempted[k]
				mu.Unlock()
				if o.At < want[k] || o.At > hi {
					t.Fatalf("cycle %d: %s partition %d committed %d; acknowledged %d, highest sent %d", cycle, group, p, o.At, want[k], hi)
				}
			}
		}
	}
	total := int64(0)
	for c := range cycles {
		time.Sleep(time.Duration(200+rng.Intn(400)) * time.Millisecond)
		proc.Kill()
		proc.Restart()
		check(c)
	}
	cancel()
	wg.Wait()
	for _, v := range acked {
		total += v
	}
	if total < 200 {
		t.Fatalf("only %d commits acknowledged: too little load to prove anything", total)
	}
	t.Logf("%d commits acknowledged over %d kills", total, cycles)
	proc.Stop()
}

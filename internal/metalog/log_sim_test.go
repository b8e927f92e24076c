package metalog

import (
	"context"
	"fmt"
	"math/rand"
	"sync"
	"testing"
	"time"

	"github.com/tiercel/tiercel/objstore"
	"github.com/tiercel/tiercel/objstore/faulty"
	"github.com/tiercel/tiercel/objstore/mem"
)

// TestConcurrentAppenders: four brokers append to one log at once through
// a store that fails requests and loses answers (after the write), making
// topics of their own and racing to move the leadership of shared
// partitions. Afterwards: every append acknowledged is in the log exactly
// once, nothing is in it twice, every broker that catches up holds the
// state a fresh replay gives, and leader epochs only ever grow by one.
func TestConcurrentAppenders(t *testing.T) {
	for seed := int64(1); seed <= 20; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { appendersRun(t, seed) })
	}
}

func appendersRun(t *testing.T, seed int64) {
	ctx := context.Background()
	inner := mem.New("metalog")
	f := faulty.Wrap(inner, seed, faulty.Faults{Retriable: 0.1, LostResponse: 0.15})
	b := objstore.WithRetries(f, objstore.RetryPolicy{Attempts: 12, Base: time.Millisecond, Max: 2 * time.Millisecond})
	first, err := Open(ctx, b, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := first.Append(ctx, []Op{{CreateTopic: &CreateTopic{Name: "shared", ID: "S", Leaders: []int32{0, 0, 0}}}}); err != nil {
		t.Fatal(err)
	}
	const writers, each = 4, 25
	var mu sync.Mutex
	acked := map[string]int64{} // "writer/i" -> seq
	logs := make([]*Log, writers)
	var wg sync.WaitGroup
	for w := range writers {
		l, err := Open(ctx, b, int32(w))
		if err != nil {
			t.Fatal(err)
		}
		logs[w] = l
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewSource(seed*100 + int64(w)))
			for i := range each {
				var op Op
				if rng.Intn(2) == 0 {
					op.CreateTopic = &CreateTopic{Name: fmt.Sprintf("t-%d-%d", w, i), ID: fmt.Sprintf("id-%d-%d", w, i), Leaders: []int32{int32(w)}}
				} else {
					if _, err := l.CatchUp(ctx); err != nil {
						t.Error(err)
						return
					}
					p := int32(rng.Intn(3))
					cur := l.state.Topics["shared"].Leaders[p]
					op.SetLeader = &SetLeader{Topic: "shared", Partition: p, Leader: int32(w), Expect: cur}
				}
				seq, _, err := l.Append(ctx, []Op{op})
				if err != nil {
					if op.SetLeader != nil && errorsIsStale(err) {
						continue // lost the race before writing: fine
					}
					t.Errorf("writer %d op %d: %v", w, i, err)
					return
				}
				mu.Lock()
				acked[fmt.Sprintf("%d/%d", w, i)] = seq
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if f.Count("lost") == 0 {
		t.Fatal("no answer was lost: the run proves less than it says")
	}

	// A fresh replay, checking epochs entry by entry.
	st := NewState()
	seen := map[string]int64{} // nonce -> seq
	epochs := map[int32]int32{}
	for seq := int64(1); ; seq++ {
		data, _, err := objstore.ReadAll(ctx, inner, EntryKey(seq))
		if err != nil {
			break
		}
		var e Entry
		if err := unmarshal(data, &e); err != nil {
			t.Fatal(err)
		}
		if prev, dup := seen[e.Nonce]; dup {
			t.Fatalf("entries %d and %d are the same append", prev, seq)
		}
		seen[e.Nonce] = seq
		if _, err := st.Apply(e); err != nil {
			t.Fatal(err)
		}
		for p, l := range st.Topics["shared"].Leaders {
			if old := epochs[int32(p)]; l.Epoch < old || l.Epoch > old+1 {
				t.Fatalf("entry %d: shared-%d epoch %d after %d", seq, p, l.Epoch, old)
			}
			epochs[int32(p)] = l.Epoch
		}
	}
	for key, seq := range acked {
		if seq > st.Seq {
			t.Fatalf("append %s acknowledged at %d, the log ends at %d", key, seq, st.Seq)
		}
	}
	created := 0
	for key := range acked {
		var w, i int
		fmt.Sscanf(key, "%d/%d", &w, &i)
		if tp := st.Topics[fmt.Sprintf("t-%d-%d", w, i)]; tp != nil {
			created++
		}
	}
	want := 0
	for _, n := range st.TopicNames() {
		if n != "shared" {
			want++
		}
	}
	if created != want {
		t.Fatalf("%d topics in the log, %d of them acknowledged", want, created)
	}
	for w, l := range logs {
		if _, err := l.CatchUp(ctx); err != nil {
			t.Fatal(err)
		}
		if got := l.State(); !sameState(got, st) {
			t.Fatalf("writer %d holds a state different from a fresh replay at %d", w, st.Seq)
		}
	}
}

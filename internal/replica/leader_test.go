package replica

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"
)

// TestLeaderTranscript: the watermark follows the slowest replica of the
// maximal ISR; a lagging follower is proposed out and holds the watermark
// back until its removal is committed; a caught-up one is proposed back
// in; min.insync.replicas refuses produces; bad fetches are errors.
func TestLeaderTranscript(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	l := NewLeader(Config{LagTime: ms(100), MinISR: 2}, 1, 5, []int32{1, 2, 3}, []int32{1, 2, 3}, 10, 10, 0)
	l.Appended(20)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(l.Fetched(2, 20, ms(10)))
	must(l.Fetched(3, 15, ms(10)))
	if l.HighWatermark() != 15 {
		t.Fatalf("hw %d, want 15 (replica 3's end)", l.HighWatermark())
	}
	if _, ok := l.Propose(ms(50)); ok {
		t.Fatal("a proposal before anyone lagged for 100 ms")
	}
	must(l.Fetched(2, 20, ms(150)))
	isr, ok := l.Propose(ms(150))
	if !ok || fmt.Sprint(isr) != "[1 2]" {
		t.Fatalf("proposal %v %v, want [1 2]: replica 3 last caught up at 0", isr, ok)
	}
	must(l.Fetched(2, 20, ms(160)))
	if l.HighWatermark() != 15 {
		t.Fatalf("hw %d before the shrink is committed, want 15", l.HighWatermark())
	}
	l.Committed(isr)
	if l.HighWatermark() != 20 {
		t.Fatalf("hw %d after the shrink, want 20", l.HighWatermark())
	}
	must(l.Fetched(3, 20, ms(170)))
	if isr, ok := l.Propose(ms(170)); !ok || fmt.Sprint(isr) != "[1 2 3]" {
		t.Fatalf("proposal %v %v, want replica 3 back", isr, ok)
	}
	l.Rejected()
	l.Committed([]int32{1})
	if err := l.CheckProduce(); !errors.Is(err, ErrNotEnoughReplicas) {
		t.Fatalf("produce with an ISR of 1 and min.insync.replicas 2: %v", err)
	}
	if err := l.Fetched(9, 0, ms(200)); !errors.Is(err, ErrUnknownReplica) {
		t.Fatalf("fetch by a broker that is no replica: %v", err)
	}
	if err := l.Fetched(2, 21, ms(200)); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("fetch past the log end: %v", err)
	}
	if l.HighWatermark() != 20 {
		t.Fatalf("hw went to %d", l.HighWatermark())
	}
}

// TestTruncation: OffsetForLeaderEpoch answers and the truncation they
// lead to, including the round that must ask again.
// TestFollowerThatLostItsLog: a follower whose fetch position goes back
// within an epoch (restarted on an empty disk) is proposed out of the ISR
// at once, without waiting replica.lag.time.max.ms.
func TestFollowerThatLostItsLog(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	l := NewLeader(Config{LagTime: ms(30000), MinISR: 1}, 1, 2, []int32{1, 2, 3}, []int32{1, 2, 3}, 0, 0, 0)
	l.Appended(100)
	for _, r := range []int32{2, 3} {
		if err := l.Fetched(r, 100, ms(10)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Fetched(3, 0, ms(20)); err != nil {
		t.Fatal(err)
	}
	isr, ok := l.Propose(ms(20))
	if !ok || fmt.Sprint(isr) != "[1 2]" {
		t.Fatalf("proposal %v %v, want [1 2] at once", isr, ok)
	}
	l.Committed(isr)
	if err := l.Fetched(3, 100, ms(30)); err != nil {
		t.Fatal(err)
	}
	if isr, ok := l.Propose(ms(30)); !ok || fmt.Sprint(isr) != "[1 2 3]" {
		t.Fatalf("caught up again: proposal %v %v, want [1 2 3]", isr, ok)
	}
}

func TestTruncation(t *testing.T) {
	leader := []EpochStart{{0, 0}, {1, 158}, {3, 159}}
	for _, c := range []struct {
		epoch   int32
		wantE   int32
		wantEnd int64
	}{{0, 0, 158}, {1, 1, 159}, {2, 1, 159}, {3, 3, 200}, {9, 3, 200}, {-1, -1, -1}} {
		if e, end := EndOffsetFor(leader, 200, c.epoch); e != c.wantE || end != c.wantEnd {
			t.Errorf("EndOffsetFor(%d) = %d, %d; want %d, %d", c.epoch, e, end, c.wantE, c.wantEnd)
		}
	}
	follower := []EpochStart{{0, 0}, {2, 161}}
	// Asked for epoch 2, told (1, 159): the follower has no epoch 1, keeps
	// its epoch 0 (to 161) and asks again.
	if to, done := TruncationOffset(follower, 163, 100, 1, 159); to != 161 || done {
		t.Fatalf("first round: %d %v, want 161 and ask again", to, done)
	}
	// Asked for epoch 0, told (0, 158): done at 158.
	if to, done := TruncationOffset(follower[:1], 161, 100, 0, 158); to != 158 || !done {
		t.Fatalf("second round: %d %v, want 158, done", to, done)
	}
	if to, done := TruncationOffset(follower, 163, 100, -1, -1); to != 100 || !done {
		t.Fatalf("no common epoch: %d %v, want the high watermark 100", to, done)
	}
}

// TestReassignedReplicas: a replica added by a reassignment is unknown
// until SetReplicas, then joins the ISR once it holds the high watermark;
// a removed one can no longer fetch and no longer counts.
func TestReassignedReplicas(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	l := NewLeader(Config{LagTime: ms(100), MinISR: 1}, 1, 0, []int32{1, 2}, []int32{1, 2}, 0, 0, 0)
	l.Appended(10)
	if err := l.Fetched(3, 0, ms(1)); !errors.Is(err, ErrUnknownReplica) {
		t.Fatalf("fetch by a replica not added yet: %v", err)
	}
	l.SetReplicas([]int32{1, 2, 3}, ms(2))
	if err := l.Fetched(2, 10, ms(3)); err != nil {
		t.Fatal(err)
	}
	if err := l.Fetched(3, 4, ms(3)); err != nil {
		t.Fatal(err)
	}
	if _, ok := l.Propose(ms(4)); ok || l.HighWatermark() != 10 {
		t.Fatalf("a replica halfway through its copy changed the ISR or held back the watermark (%d)", l.HighWatermark())
	}
	if err := l.Fetched(3, 10, ms(5)); err != nil {
		t.Fatal(err)
	}
	isr, ok := l.Propose(ms(5))
	if !ok || fmt.Sprint(isr) != "[1 2 3]" {
		t.Fatalf("proposal %v %v, want the caught-up replica in", isr, ok)
	}
	l.Committed([]int32{1, 3}) // the reassignment completed: 2 left
	l.SetReplicas([]int32{1, 3}, ms(6))
	if err := l.Fetched(2, 10, ms(7)); !errors.Is(err, ErrUnknownReplica) {
		t.Fatalf("fetch by a removed replica: %v", err)
	}
	l.Appended(12)
	if err := l.Fetched(3, 12, ms(8)); err != nil || l.HighWatermark() != 12 {
		t.Fatalf("hw %d (%v), want 12: the removed replica no longer counts", l.HighWatermark(), err)
	}
}

// TestLeftTheISRStaysOut: a follower taken out of the ISR by someone else
// (it left as it shut down) is not proposed back on the strength of its
// fetches from before; a fetch that catches up again brings it back.
func TestLeftTheISRStaysOut(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	l := NewLeader(Config{LagTime: ms(100), MinISR: 1}, 1, 0, []int32{1, 2, 3}, []int32{1, 2, 3}, 0, 0, 0)
	l.Appended(10)
	for _, r := range []int32{2, 3} {
		if err := l.Fetched(r, 10, ms(5)); err != nil {
			t.Fatal(err)
		}
	}
	l.Committed([]int32{1, 3})
	if isr, ok := l.Propose(ms(10)); ok {
		t.Fatalf("proposed %v: broker 2 left the ISR and has not fetched since", isr)
	}
	if err := l.Fetched(2, 10, ms(20)); err != nil {
		t.Fatal(err)
	}
	if isr, ok := l.Propose(ms(20)); !ok || fmt.Sprint(isr) != "[1 2 3]" {
		t.Fatalf("proposal %v %v after broker 2 caught up again", isr, ok)
	}
}

// TestBrokerEpochs: a follower's fetch under a new broker epoch (its
// broker restarted) starts a new copy, which joins once it reaches the
// log end as that process (here after an empty disk), and
// Epochs names the epochs the followers were last seen with; a repeated
// commit of the unchanged ISR keeps a pending proposal.
func TestBrokerEpochs(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	l := NewLeader(Config{LagTime: ms(100), MinISR: 1}, 1, 0, []int32{1, 2, 3}, []int32{1, 2}, 0, 0, 0)
	l.Appended(10)
	for _, r := range []int32{2, 3} {
		if err := l.FetchedAs(r, 7, 10, ms(5)); err != nil {
			t.Fatal(err)
		}
	}
	isr, ok := l.Propose(ms(6))
	if !ok || fmt.Sprint(isr, l.Epochs([]int32{3})) != "[1 2 3] map[3:7]" {
		t.Fatalf("proposal %v %v, epochs %v", isr, ok, l.Epochs([]int32{3}))
	}
	l.Committed([]int32{1, 2}) // the log applied again, nothing changed
	if p := l.Pending(); fmt.Sprint(p) != "[1 2 3]" {
		t.Fatalf("pending %v after an unchanged commit, want the proposal kept", p)
	}
	l.Rejected()
	if err := l.FetchedAs(3, 9, 0, ms(7)); err != nil { // restarted on an empty disk
		t.Fatal(err)
	}
	if isr, ok := l.Propose(ms(8)); ok && slices.Contains(isr, 3) {
		t.Fatalf("proposed %v: broker 3 restarted and has not caught up as its new process", isr)
	}
	if err := l.FetchedAs(3, 9, 10, ms(9)); err != nil {
		t.Fatal(err)
	}
	if isr, ok := l.Propose(ms(9)); !ok || fmt.Sprint(isr, l.Epochs([]int32{3})) != "[1 2 3] map[3:9]" {
		t.Fatalf("proposal %v %v after broker 3 caught up under epoch 9 (epochs %v)", isr, ok, l.Epochs([]int32{3}))
	}
}

package metalog

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/tiercel/tiercel/objstore/mem"
)

// TestApplyTranscript: the state machine step by step, including the ops
// it must skip the same way on every broker.
func TestApplyTranscript(t *testing.T) {
	s := NewState()
	step := func(ops []Op, want ...bool) {
		t.Helper()
		done, err := s.Apply(Entry{Seq: s.Seq + 1, Ops: ops})
		if err != nil {
			t.Fatal(err)
		}
		for i := range want {
			if done[i] != want[i] {
				t.Fatalf("entry %d op %d applied = %v, want %v", s.Seq, i, done[i], want[i])
			}
		}
	}
	step([]Op{{CreateTopic: &CreateTopic{Name: "a", ID: "A", Leaders: []int32{1, 2}}}}, true)
	step([]Op{{CreateTopic: &CreateTopic{Name: "a", ID: "A2", Leaders: []int32{1}}}}, false) // exists
	// Two takeovers of a-0 racing from the same expectation: the first wins.
	race := []Op{
		{SetLeader: &SetLeader{Topic: "a", Partition: 0, Leader: 3, Expect: Leader{Broker: 1, Epoch: 0}}},
		{SetLeader: &SetLeader{Topic: "a", Partition: 0, Leader: 4, Expect: Leader{Broker: 1, Epoch: 0}}},
	}
	step(race, true, false)
	if l := s.Topics["a"].Leaders[0]; l != (Leader{Broker: 3, Epoch: 1}) {
		t.Fatalf("a-0 led by %+v", l)
	}
	step([]Op{{SetLeader: &SetLeader{Topic: "a", Partition: 5, Leader: 3}}}, false) // no such partition
	step([]Op{{DeleteTopic: &DeleteTopic{Name: "a", ID: "other"}}}, false)          // another incarnation of the name
	step([]Op{{DeleteTopic: &DeleteTopic{Name: "a", ID: "A"}}, {RegisterBroker: &RegisterBroker{ID: 3, Incarnation: "x"}}}, true, true)
	if len(s.Topics) != 0 || s.Brokers[3] != "x" || s.Seq != 6 {
		t.Fatalf("state %+v", s)
	}
	if err := s.Check(Op{SetLeader: &SetLeader{Topic: "a"}}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("check on a deleted topic: %v", err)
	}
	if _, err := s.Apply(Entry{Seq: 9}); err == nil {
		t.Fatal("an entry out of order was applied")
	}
}

// TestSnapshotReplay: a broker opening the log starts from the newest
// snapshot and replays only what came after it, reaching the same state
// as a replay of every entry; the entries before the snapshot are not
// needed (they are deleted here to prove it).
func TestSnapshotReplay(t *testing.T) {
	ctx := context.Background()
	b := mem.New("snap")
	l, err := Open(ctx, b, 1)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 30 {
		op := Op{CreateTopic: &CreateTopic{Name: fmt.Sprint("t", i), ID: fmt.Sprint("id", i), Leaders: []int32{1}}}
		if _, _, err := l.Append(ctx, []Op{op}); err != nil {
			t.Fatal(err)
		}
		if i == 19 {
			if seq, err := l.Snapshot(ctx); err != nil || seq != 20 {
				t.Fatalf("snapshot: %d %v", seq, err)
			}
			if _, err := l.Snapshot(ctx); err != nil {
				t.Fatalf("a second snapshot of the same entry: %v", err)
			}
		}
	}
	full := l.State()
	for seq := int64(1); seq <= 20; seq++ {
		if err := b.Delete(ctx, EntryKey(seq)); err != nil {
			t.Fatal(err)
		}
	}
	again, err := Open(ctx, b, 2)
	if err != nil {
		t.Fatal(err)
	}
	if got := again.State(); !sameState(got, full) {
		t.Fatalf("state from the snapshot: seq %d, %d topics; want seq %d, %d topics", got.Seq, len(got.Topics), full.Seq, len(full.Topics))
	}
}

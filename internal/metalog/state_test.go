package metalog

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/tiercel/tiercel/objstore"
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
	// Parked (the cluster paused), then adopted: the epoch grows each time.
	step([]Op{{SetLeader: &SetLeader{Topic: "a", Partition: 0, Leader: Parked, Expect: Leader{Broker: 3, Epoch: 1}}}}, true)
	step([]Op{{SetLeader: &SetLeader{Topic: "a", Partition: 0, Leader: -2, Expect: Leader{Broker: Parked, Epoch: 2}}}}, false) // no such broker
	step([]Op{{SetLeader: &SetLeader{Topic: "a", Partition: 0, Leader: 2, Expect: Leader{Broker: Parked, Epoch: 2}}}}, true)
	if l := s.Topics["a"].Leaders[0]; l != (Leader{Broker: 2, Epoch: 3}) {
		t.Fatalf("a-0 adopted as %+v", l)
	}
	step([]Op{{SetLeader: &SetLeader{Topic: "a", Partition: 5, Leader: 3}}}, false) // no such partition
	// A takeover naming the incarnation it revoked is skipped once the
	// broker registered a newer one.
	step([]Op{{CreateTopic: &CreateTopic{Name: "inc", ID: "I", Leaders: []int32{7, 7}}}, {RegisterBroker: &RegisterBroker{ID: 7, Incarnation: "old"}}}, true, true)
	step([]Op{{SetLeader: &SetLeader{Topic: "inc", Partition: 0, Leader: 8, Expect: Leader{Broker: 7}, ExpectIncarnation: "old"}}}, true)
	step([]Op{{RegisterBroker: &RegisterBroker{ID: 7, Incarnation: "new"}}, {SetLeader: &SetLeader{Topic: "inc", Partition: 1, Leader: 8, Expect: Leader{Broker: 7}, ExpectIncarnation: "old"}}}, true, false)
	step([]Op{{DeleteTopic: &DeleteTopic{Name: "inc", ID: "I"}}}, true)
	step([]Op{{RegisterBroker: &RegisterBroker{ID: 7, Incarnation: "newer", Rack: "r1", Region: "east"}}}, true)
	if p := s.Clone().Places[7]; p != (BrokerPlace{Rack: "r1", Region: "east"}) || s.Brokers[7] != "newer" {
		t.Fatalf("broker 7 registered as %q at %+v", s.Brokers[7], p)
	}
	// Broker ids allocated from Min, never one registered already.
	step([]Op{{AllocateBrokerID: &AllocateBrokerID{Incarnation: "i1", Min: 1001}}, {AllocateBrokerID: &AllocateBrokerID{Incarnation: "i2", Min: 1001}}, {AllocateBrokerID: &AllocateBrokerID{Min: 1001}}}, true, true, false)
	if s.AllocatedBrokerID("i1") != 1001 || s.AllocatedBrokerID("i2") != 1002 || s.AllocatedBrokerID("i3") != -1 {
		t.Fatalf("allocated %v", s.Brokers)
	}
	step([]Op{{RegisterBroker: &RegisterBroker{ID: 1003, Incarnation: "x"}}, {AllocateBrokerID: &AllocateBrokerID{Incarnation: "i3", Min: 1001}}}, true, true)
	if s.AllocatedBrokerID("i3") != 1004 {
		t.Fatalf("allocated %v", s.Brokers)
	}
	step([]Op{{DeleteTopic: &DeleteTopic{Name: "a", ID: "other"}}}, false) // another incarnation of the name
	step([]Op{{DeleteTopic: &DeleteTopic{Name: "a", ID: "A"}}, {RegisterBroker: &RegisterBroker{ID: 3, Incarnation: "x"}}}, true, true)
	if len(s.Topics) != 0 || s.Brokers[3] != "x" || s.Seq != 16 {
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

// TestApplyClusterOps: the ops behind the admin APIs, including the ones
// two brokers can race on (the cluster id, growing a topic) and the
// producer-id blocks that must never overlap.
func TestApplyClusterOps(t *testing.T) {
	s := NewState()
	step := func(writer int32, ops []Op, want ...bool) {
		t.Helper()
		done, err := s.Apply(Entry{Seq: s.Seq + 1, Writer: writer, Ops: ops})
		if err != nil {
			t.Fatal(err)
		}
		for i := range want {
			if done[i] != want[i] {
				t.Fatalf("entry %d op %d applied = %v, want %v", s.Seq, i, done[i], want[i])
			}
		}
	}
	step(1, []Op{{InitCluster: &InitCluster{ClusterID: "c1"}}}, true)
	step(2, []Op{{InitCluster: &InitCluster{ClusterID: "c2"}}}, false) // the first one names the cluster
	if s.ClusterID != "c1" {
		t.Fatalf("cluster %q", s.ClusterID)
	}
	step(1, []Op{{CreateTopic: &CreateTopic{Name: "t", ID: "T", Leaders: []int32{1}}}}, true)
	grow := func(from int32, n int) Op {
		return Op{AddPartitions: &AddPartitions{Name: "t", ID: "T", From: from, Leaders: make([]int32, n)}}
	}
	// Two brokers grow t from 1 partition at once: only the first counts.
	step(2, []Op{grow(1, 2), grow(1, 5)}, true, false)
	if n := s.Topics["t"].Partitions(); n != 3 {
		t.Fatalf("t has %d partitions, want 3", n)
	}
	step(1, []Op{{SetTopicConfigs: &SetTopicConfigs{Name: "t", ID: "old", Configs: map[string]string{"x": "1"}}}}, false)
	step(1, []Op{{SetTopicConfigs: &SetTopicConfigs{Name: "t", ID: "T", Configs: map[string]string{"retention.ms": "1"}}}}, true)
	step(1, []Op{{SetBrokerConfigs: &SetBrokerConfigs{Configs: map[string]string{"a": "b"}}}}, true)
	c := s.Clone()
	step(1, []Op{{AllocateProducerIDs: &AllocateProducerIDs{Count: 1000}}}, true)
	step(2, []Op{{AllocateProducerIDs: &AllocateProducerIDs{Count: 1000}}, {AllocateProducerIDs: &AllocateProducerIDs{Count: 0}}}, true, false)
	step(1, []Op{{AllocateProducerIDs: &AllocateProducerIDs{Count: 1000}}}, true)
	if s.ProducerBlocks[1] != 2000 || s.ProducerBlocks[2] != 1000 || s.NextProducerID != 3000 {
		t.Fatalf("producer blocks %v, next %d", s.ProducerBlocks, s.NextProducerID)
	}
	if c.Topics["t"].Configs["retention.ms"] != "1" || c.BrokerConfigs["a"] != "b" || len(c.ProducerBlocks) != 0 || c.NextProducerID != 0 {
		t.Fatalf("the clone changed with the state, or lost what it held: %+v", c)
	}
}

// TestApplyMoves: requested moves are recorded, refused when the leader
// changed since, cancelled, and cleared by the leader change that carries
// them out; preferred leaders stay where the partitions were placed.
func TestApplyMoves(t *testing.T) {
	s := NewState()
	apply := func(ops ...Op) []bool {
		t.Helper()
		done, err := s.Apply(Entry{Seq: s.Seq + 1, Ops: ops})
		if err != nil {
			t.Fatal(err)
		}
		return done
	}
	apply(Op{CreateTopic: &CreateTopic{Name: "m", ID: "M", Leaders: []int32{1, 2}}})
	move := func(p, to int32, expect Leader) Op {
		return Op{RequestMove: &RequestMove{Topic: "m", ID: "M", Partition: p, To: to, Expect: expect}}
	}
	if d := apply(move(0, 3, Leader{Broker: 1}), move(1, 3, Leader{Broker: 9}), move(1, 2, Leader{Broker: 2})); !d[0] || d[1] || d[2] {
		t.Fatalf("moves applied %v, want [true false false] (a stale leader, a move to itself)", d)
	}
	if to := s.Topics["m"].Moves[0]; to != 3 {
		t.Fatalf("pending move of m-0 to %d", to)
	}
	c := s.Clone()
	if d := apply(Op{CancelMove: &CancelMove{Topic: "m", ID: "M", Partition: 0}}, Op{CancelMove: &CancelMove{Topic: "m", ID: "M", Partition: 1}}); !d[0] || d[1] {
		t.Fatalf("cancels applied %v", d)
	}
	if len(s.Topics["m"].Moves) != 0 || c.Topics["m"].Moves[0] != 3 {
		t.Fatal("a cancel did not clear the move, or reached into the clone")
	}
	apply(move(1, 1, Leader{Broker: 2}))
	apply(Op{SetLeader: &SetLeader{Topic: "m", Partition: 1, Leader: 1, Expect: Leader{Broker: 2}}})
	tp := s.Topics["m"]
	if len(tp.Moves) != 0 || tp.Leaders[1] != (Leader{Broker: 1, Epoch: 1}) || tp.PreferredLeader(1) != 2 {
		t.Fatalf("after the move: moves %v, leader %+v, preferred %d", tp.Moves, tp.Leaders[1], tp.PreferredLeader(1))
	}
}

// TestSnapshotsKeepNewestTwo: each snapshot deletes those older than the
// newest two; entries stay.
func TestSnapshotsKeepNewestTwo(t *testing.T) {
	ctx := context.Background()
	b := mem.New("snaps")
	l, err := Open(ctx, b, 1)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		op := Op{CreateTopic: &CreateTopic{Name: fmt.Sprint("t", i), ID: fmt.Sprint("id", i), Leaders: []int32{1}}}
		if _, _, err := l.Append(ctx, []Op{op}); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Snapshot(ctx); err != nil {
			t.Fatal(err)
		}
	}
	var snaps, entries []string
	if err := b.List(ctx, "cluster/", objstore.ListOptions{}, func(o objstore.ObjectInfo) error {
		if strings.HasPrefix(o.Key, "cluster/snapshot/") {
			snaps = append(snaps, o.Key)
		} else {
			entries = append(entries, o.Key)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(snaps) != fmt.Sprint([]string{SnapshotKey(3), SnapshotKey(4)}) || len(entries) != 4 {
		t.Fatalf("snapshots %v, %d entries; want the snapshots of 3 and 4 and every entry", snaps, len(entries))
	}
}

// TestApplyReplication: replica assignments and ISR changes (issue 8):
// only the current leader's change against the current ISR applies, the
// ISR holds the leader and only replicas, and a leader is elected from
// the ISR (or parked).
func TestApplyReplication(t *testing.T) {
	s := NewState()
	step := stepper(t, &s)
	step(Op{CreateTopic: &CreateTopic{Name: "r", ID: "R", Leaders: []int32{1, 2}, Replicas: [][]int32{{1, 2, 3}, {2, 3}}}}, true)
	step(Op{CreateTopic: &CreateTopic{Name: "bad", ID: "B", Leaders: []int32{1}, Replicas: [][]int32{{2, 3}}}}, false)    // leader not a replica
	step(Op{CreateTopic: &CreateTopic{Name: "bad", ID: "B", Leaders: []int32{1}, Replicas: [][]int32{{1, 1}}}}, false)    // a replica twice
	step(Op{CreateTopic: &CreateTopic{Name: "bad", ID: "B", Leaders: []int32{1, 2}, Replicas: [][]int32{{1, 2}}}}, false) // lists missing
	tp := s.Topics["r"]
	if fmt.Sprint(tp.ISROf(0), tp.ReplicasOf(1)) != "[1 2 3] [2 3]" {
		t.Fatalf("isr %v replicas %v", tp.ISR, tp.Replicas)
	}
	lead := Leader{Broker: 1}
	step(Op{SetISR: &SetISR{Topic: "r", ID: "R", Partition: 0, Expect: lead, ExpectISR: []int32{1, 2, 3}, ISR: []int32{1, 2}}}, true)
	step(Op{SetISR: &SetISR{Topic: "r", ID: "R", Partition: 0, Expect: lead, ExpectISR: []int32{1, 2, 3}, ISR: []int32{1}}}, false)           // stale ISR
	step(Op{SetISR: &SetISR{Topic: "r", ID: "R", Partition: 0, Expect: Leader{Broker: 2}, ExpectISR: []int32{1, 2}, ISR: []int32{2}}}, false) // not the leader
	step(Op{SetISR: &SetISR{Topic: "r", ID: "R", Partition: 0, Expect: lead, ExpectISR: []int32{1, 2}, ISR: []int32{2}}}, false)              // without the leader
	step(Op{SetISR: &SetISR{Topic: "r", ID: "R", Partition: 0, Expect: lead, ExpectISR: []int32{1, 2}, ISR: []int32{1, 4}}}, false)           // not a replica
	step(Op{SetLeader: &SetLeader{Topic: "r", Partition: 0, Leader: 3, Expect: lead}}, false)                                                 // out of sync
	step(Op{SetLeader: &SetLeader{Topic: "r", Partition: 0, Leader: 2, Expect: lead}}, true)
	if l := s.Topics["r"].Leaders[0]; l != (Leader{Broker: 2, Epoch: 1}) {
		t.Fatalf("leader %+v", l)
	}
	lead2 := Leader{Broker: 2, Epoch: 1}
	step(Op{SetLeader: &SetLeader{Topic: "r", Partition: 0, Leader: 1, Expect: lead2, ISR: []int32{2}}}, false)    // the ISR lacks the leader
	step(Op{SetLeader: &SetLeader{Topic: "r", Partition: 0, Leader: 1, Expect: lead2, ISR: []int32{1, 5}}}, false) // not a replica
	step(Op{SetLeader: &SetLeader{Topic: "r", Partition: 0, Leader: 1, Expect: lead2, ISR: []int32{1}}}, true)     // the old leader leaves the ISR
	if tp := s.Topics["r"]; fmt.Sprint(tp.Leaders[0], tp.ISROf(0)) != "{1 2} [1]" {
		t.Fatalf("after election: leader %+v isr %v", tp.Leaders[0], tp.ISROf(0))
	}
	step(Op{AddPartitions: &AddPartitions{Name: "r", ID: "R", From: 2, Leaders: []int32{3}}}, false) // replicas required
	step(Op{AddPartitions: &AddPartitions{Name: "r", ID: "R", From: 2, Leaders: []int32{3}, Replicas: [][]int32{{3, 1}}}}, true)
	if fmt.Sprint(s.Clone().Topics["r"].ISROf(2)) != "[3 1]" {
		t.Fatalf("new partition's ISR %v", s.Topics["r"].ISR)
	}
	step(Op{SetISR: &SetISR{Topic: "plain", Partition: 0}}, false) // no such replicated partition
}

// TestApplyReassignment: a replicated partition's reassignment widens its
// replicas to target ∪ original, completes only when its leader is a
// target replica and every target replica is in sync, then narrows the
// replicas and ISR to the target; a request back to the original
// replicas cancels it; stale or invalid requests are skipped.
func TestApplyReassignment(t *testing.T) {
	s := NewState()
	step := stepper(t, &s)
	reassign := func(expect, target []int32) Op {
		return Op{ReassignReplicas: &ReassignReplicas{Topic: "r", ID: "R", Partition: 0, ExpectReplicas: expect, Target: target}}
	}
	complete := func(leader Leader, isr []int32) Op {
		return Op{CompleteReassignment: &CompleteReassignment{Topic: "r", ID: "R", Partition: 0, Expect: leader, ExpectISR: isr}}
	}
	show := func() string {
		tp := s.Clone().Topics["r"]
		r, ok := tp.ReassigningOf(0)
		return fmt.Sprint(tp.ReplicasOf(0), tp.ISROf(0), ok, r.Adding(), r.Removing(), tp.PreferredLeader(0))
	}
	step(Op{CreateTopic: &CreateTopic{Name: "r", ID: "R", Leaders: []int32{1}, Replicas: [][]int32{{1, 2, 3}}}}, true)
	step(reassign([]int32{1, 2}, []int32{2, 3, 4}), false)    // stale replicas
	step(reassign([]int32{1, 2, 3}, []int32{2, 2, 4}), false) // a replica twice
	step(reassign([]int32{1, 2, 3}, nil), false)              // no replicas
	step(reassign([]int32{1, 2, 3}, []int32{2, 3, 4}), true)
	if got := show(); got != "[2 3 4 1] [1 2 3] true [4] [1] 1" {
		t.Fatalf("started: %s", got)
	}
	step(complete(Leader{Broker: 1}, []int32{1, 2, 3}), false) // 4 not in sync, and 1 is leaving
	lead := Leader{Broker: 1}
	step(Op{SetISR: &SetISR{Topic: "r", ID: "R", Partition: 0, Expect: lead, ExpectISR: []int32{1, 2, 3}, ISR: []int32{1, 2, 3, 4}}}, true)
	step(complete(lead, []int32{1, 2, 3, 4}), false) // the leader is not a target replica
	step(Op{SetLeader: &SetLeader{Topic: "r", Partition: 0, Leader: 2, Expect: lead}}, true)
	lead = Leader{Broker: 2, Epoch: 1}
	step(complete(lead, []int32{1, 2, 3}), false) // stale ISR
	step(complete(lead, []int32{1, 2, 3, 4}), true)
	if got := show(); got != "[2 3 4] [2 3 4] false [] [] 2" {
		t.Fatalf("completed: %s", got)
	}
	step(complete(lead, []int32{2, 3, 4}), false) // nothing in progress

	// Cancelled: back to the original replicas, the adding one out of the ISR.
	step(reassign([]int32{2, 3, 4}, []int32{2, 5}), true)
	if got := show(); got != "[2 5 3 4] [2 3 4] true [5] [3 4] 2" {
		t.Fatalf("second: %s", got)
	}
	step(Op{SetISR: &SetISR{Topic: "r", ID: "R", Partition: 0, Expect: lead, ExpectISR: []int32{2, 3, 4}, ISR: []int32{2, 3, 4, 5}}}, true)
	step(reassign([]int32{2, 5, 3, 4}, []int32{4, 3, 2}), true) // the same members: in this order, 4 preferred
	if got := show(); got != "[4 3 2] [2 3 4] false [] [] 4" {
		t.Fatalf("cancelled: %s", got)
	}
	// A target without the leader: it hands over first.
	step(reassign([]int32{4, 3, 2}, []int32{3, 4}), true)
	step(Op{SetLeader: &SetLeader{Topic: "r", Partition: 0, Leader: 3, Expect: lead}}, true)
	step(reassign([]int32{3, 4, 2}, []int32{4, 5}), true) // replaces the target; 2 stays original
	if got := show(); got != "[4 5 3 2] [2 3 4] true [5] [3 2] 4" {
		t.Fatalf("replaced: %s", got)
	}
	// Led by an adding replica, it cannot be cancelled (its leader would
	// not be a replica).
	lead = Leader{Broker: 3, Epoch: 2}
	step(Op{SetISR: &SetISR{Topic: "r", ID: "R", Partition: 0, Expect: lead, ExpectISR: []int32{2, 3, 4}, ISR: []int32{2, 3, 4, 5}}}, true)
	step(Op{SetLeader: &SetLeader{Topic: "r", Partition: 0, Leader: 5, Expect: lead}}, true)
	step(reassign([]int32{4, 5, 3, 2}, []int32{2, 3, 4}), false)
	step(reassign([]int32{4, 5, 3, 2}, []int32{5, 6}), true)
	if got := show(); got != "[5 6 4 3 2] [2 3 4 5] true [5 6] [4 3 2] 4" {
		t.Fatalf("replaced again: %s", got)
	}
}

// TestUncleanRegistration: a broker registering after a crash leaves
// every ISR it shares; the partitions it led go to another in-sync replica
// at epoch + 1; one whose ISR is that broker alone keeps it; a clean
// registration changes nothing.
func TestUncleanRegistration(t *testing.T) {
	s := NewState()
	step := stepper(t, &s)
	apply := func(op Op) { t.Helper(); step(op, true) }
	apply(Op{CreateTopic: &CreateTopic{Name: "r", ID: "R", Leaders: []int32{1, 2, 1}, Replicas: [][]int32{{1, 2, 3}, {2, 1, 3}, {1, 2}}}})
	apply(Op{SetISR: &SetISR{Topic: "r", ID: "R", Partition: 2, Expect: Leader{Broker: 1}, ExpectISR: []int32{1, 2}, ISR: []int32{1}}})
	apply(Op{CreateTopic: &CreateTopic{Name: "one", ID: "O", Leaders: []int32{1}}})
	apply(Op{RegisterBroker: &RegisterBroker{ID: 1, Incarnation: "a"}})
	before := fmt.Sprint(s.Topics["r"].Leaders, s.Topics["r"].ISR)
	apply(Op{RegisterBroker: &RegisterBroker{ID: 1, Incarnation: "b", Unclean: true}})
	tp := s.Topics["r"]
	if got := fmt.Sprint(tp.Leaders, tp.ISR); got != "[{2 1} {2 0} {1 0}] [[2 3] [2 3] [1]]" {
		t.Fatalf("after broker 1's unclean restart: %s (before: %s)", got, before)
	}
	if l := s.Topics["one"].Leaders[0]; l != (Leader{Broker: 1}) {
		t.Fatalf("a partition with one replica moved: %+v", l)
	}
	apply(Op{RegisterBroker: &RegisterBroker{ID: 2, Incarnation: "c"}})
	if got := fmt.Sprint(tp.Leaders, tp.ISR); got != "[{2 1} {2 0} {1 0}] [[2 3] [2 3] [1]]" {
		t.Fatalf("a clean registration changed the ISRs: %s", got)
	}
}

// stepper applies one op per entry to s and fails the test unless it took
// effect exactly when want says.
func stepper(t *testing.T, s *State) func(op Op, want bool) {
	return func(op Op, want bool) {
		t.Helper()
		done, err := s.Apply(Entry{Seq: s.Seq + 1, Ops: []Op{op}})
		if err != nil {
			t.Fatal(err)
		}
		if done[0] != want {
			t.Fatalf("entry %d applied = %v, want %v: %v", s.Seq, done[0], want, s.Check(op))
		}
	}
}

// TestSetISRExpectations: an ISR change proposed against an older
// partition epoch is skipped (a reassignment changed the replicas
// meanwhile, even back to the same ISR), and so is one that adds a broker
// registered again since the leader saw it catch up (KIP-903).
func TestSetISRExpectations(t *testing.T) {
	s := NewState()
	step := stepper(t, &s)
	step(Op{RegisterBroker: &RegisterBroker{ID: 3, Incarnation: "a"}}, true)
	epoch3 := s.BrokerEpochs[3]
	step(Op{CreateTopic: &CreateTopic{Name: "r", ID: "R", Leaders: []int32{1}, Replicas: [][]int32{{1, 2, 3}}}}, true)
	lead := Leader{Broker: 1}
	pe := func(e int32) *int32 { return &e }
	step(Op{SetISR: &SetISR{Topic: "r", ID: "R", Partition: 0, Expect: lead, ExpectISR: []int32{1, 2, 3}, ISR: []int32{1, 2}, ExpectPartitionEpoch: pe(0)}}, true)
	if e := s.Topics["r"].PartitionEpoch(0); e != 1 {
		t.Fatalf("partition epoch %d after an ISR change, want 1", e)
	}
	add3 := func(epoch int32, brokerEpoch int64) Op {
		return Op{SetISR: &SetISR{Topic: "r", ID: "R", Partition: 0, Expect: lead, ExpectISR: []int32{1, 2}, ISR: []int32{1, 2, 3},
			ExpectPartitionEpoch: pe(epoch), AddedEpochs: map[int32]int64{3: brokerEpoch}}}
	}
	// Replicas changed and back: same ISR, newer partition epoch.
	step(Op{ReassignReplicas: &ReassignReplicas{Topic: "r", ID: "R", Partition: 0, ExpectReplicas: []int32{1, 2, 3}, Target: []int32{1, 2}}}, true)
	step(Op{ReassignReplicas: &ReassignReplicas{Topic: "r", ID: "R", Partition: 0, ExpectReplicas: []int32{1, 2, 3}, Target: []int32{1, 2, 3}}}, true)
	step(add3(1, epoch3), false)
	step(Op{RegisterBroker: &RegisterBroker{ID: 3, Incarnation: "b"}}, true) // restarted
	step(add3(3, epoch3), false)
	step(add3(3, s.BrokerEpochs[3]), true)
}

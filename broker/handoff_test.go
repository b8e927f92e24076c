package broker_test

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tiercel/tiercel/broker"
	"github.com/tiercel/tiercel/internal/brokertest"
	"github.com/tiercel/tiercel/objstore/mem"
)

// TestHandoffRefusesALateAppend: a produce that looked its partition up
// before a handoff committed the new leader, and reached the leader check
// only after the handoff had finished, must not append to the log left
// behind: acknowledged there, its records would be lost, because the new
// leader starts where the bucket ends (seen once in the rolling-restart
// test, 607 acknowledged records missing). Knobs hold the produce and the
// handoff at exactly those points; the produce must be refused and retried
// at the new leader.
func TestHandoffRefusesALateAppend(t *testing.T) {
	var armed atomic.Bool
	flushed, lookedUp, done := make(chan struct{}), make(chan struct{}), make(chan struct{})
	var onceFlushed, onceLookedUp, onceDone sync.Once
	closed := func(c chan struct{}) bool {
		select {
		case <-c:
			return true
		default:
			return false
		}
	}
	wait := func(c chan struct{}) {
		select {
		case <-c:
		case <-time.After(30 * time.Second): // the test fails on its own then
		}
	}
	knobs := &broker.Knobs{
		HandoffFlushed: func(topic string, _ int32) {
			if topic != "late" || !armed.Load() {
				return
			}
			onceFlushed.Do(func() { close(flushed) })
			wait(lookedUp)
		},
		ProduceLookedUp: func(topic string, _ int32) {
			if topic != "late" || !closed(flushed) {
				return
			}
			first := false
			onceLookedUp.Do(func() { close(lookedUp); first = true })
			if first {
				wait(done) // the handoff commits, cleans up and returns meanwhile
			}
		},
		HandoffDone: func() {
			if closed(flushed) {
				onceDone.Do(func() { close(done) })
			}
		},
	}
	brokers := startClusterKnobs(t, mem.New("late"), 2, knobs, nil)
	create(t, admin(t, brokers[0].Addr()), "late", 1, nil)
	var from int32
	brokertest.WaitFor(t, "a leader for late-0", func() bool {
		for _, tp := range metadataOf(t, brokers[1].Addr()).Topics {
			if *tp.Topic == "late" && len(tp.Partitions) == 1 {
				from = tp.Partitions[0].Leader
			}
		}
		return from > 0
	})
	to := 3 - from
	cl := client(t, brokers[0].Addr(), kgo.DefaultProduceTopic("late"), kgo.RetryBackoffFn(func(int) time.Duration { return 20 * time.Millisecond }))
	for i := range 10 {
		if err := cl.ProduceSync(ctx(t), &kgo.Record{Value: []byte{byte('0' + i)}}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	armed.Store(true)
	req := kmsg.NewPtrAlterPartitionAssignmentsRequest()
	req.Topics = []kmsg.AlterPartitionAssignmentsRequestTopic{{Topic: "late", Partitions: []kmsg.AlterPartitionAssignmentsRequestTopicPartition{{Partition: 0, Replicas: []int32{to}}}}}
	if resp, err := req.RequestWith(ctx(t), cl); err != nil || resp.ErrorCode != 0 || resp.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("reassigning late-0 to broker %d: %v %+v", to, err, resp)
	}
	select {
	case <-flushed:
	case <-time.After(30 * time.Second):
		t.Fatal("the handoff never flushed late-0")
	}
	// The client still believes broker `from` leads: this produce reaches
	// it while the handoff waits after its flush.
	if err := cl.ProduceSync(ctx(t), &kgo.Record{Value: []byte("late")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if !closed(done) {
		t.Fatal("the produce was answered before the handoff finished: the knobs did not hold it where the race is")
	}
	got := consume(t, brokers[to-1].Addr(), "late", 11)
	var values []string
	for _, r := range got {
		values = append(values, string(r.Value))
	}
	if len(got) != 11 || values[10] != "late" {
		t.Fatalf("the new leader (broker %d) has %q; want the ten records before the move and then \"late\": an acknowledged record was lost", to, values)
	}
}

// TestPreferredElectionWaitsForSync: a preferred election whose preferred
// replica is live but out of the ISR is refused with
// PREFERRED_LEADER_NOT_AVAILABLE, as Kafka does, and leadership stays;
// once the replica is back in sync the election moves it there.
func TestPreferredElectionWaitsForSync(t *testing.T) {
	var held atomic.Bool
	knobs := &broker.Knobs{FollowerFetch: func(node, _ int32) {
		for node == 3 && held.Load() {
			time.Sleep(10 * time.Millisecond)
		}
	}}
	brokers := startClusterKnobs(t, mem.New("pref"), 3, knobs, nil, "replica.lag.time.max.ms=1000", "tiercel.replica.isr.check.ms=100")
	t.Cleanup(func() { held.Store(false) }) // before the brokers close: a held fetcher would hold their shutdown
	addr := brokers[0].Addr()
	if err := brokertest.CreateTopicWithReplicas(ctx(t), client(t, addr), "pref", [][]int32{{1, 2, 3}}, nil); err != nil {
		t.Fatal(err)
	}
	isr := func() []int32 {
		if ps := partitionsOf(t, addr, "pref"); len(ps) == 1 {
			return ps[0].ISR
		}
		return nil
	}
	brokertest.WaitFor(t, "all three in sync", func() bool { return len(isr()) == 3 })
	held.Store(true)
	produceN(t, addr, "pref", 10) // acks=all: answered once broker 3 is dropped
	brokertest.WaitFor(t, "broker 3 out of the ISR", func() bool { return len(isr()) == 2 })
	adm := admin(t, addr)
	preferReplica(t, adm, addr, "pref", []int32{3, 1, 2})
	elect := func() error {
		res, err := adm.ElectLeaders(ctx(t), kadm.ElectPreferredReplica, kadm.TopicsSet{"pref": {0: {}}})
		if err != nil {
			return err
		}
		return res["pref"][0].Err
	}
	if err := elect(); !errors.Is(err, kerr.PreferredLeaderNotAvailable) {
		t.Fatalf("preferred election with the preferred replica out of sync: %v, want PREFERRED_LEADER_NOT_AVAILABLE", err)
	}
	time.Sleep(500 * time.Millisecond)
	if ps := partitionsOf(t, addr, "pref"); len(ps) != 1 || ps[0].Leader != 1 {
		t.Fatalf("the refused election moved leadership: %+v", ps)
	}
	held.Store(false)
	brokertest.WaitFor(t, "broker 3 back in sync", func() bool { return len(isr()) == 3 })
	if err := elect(); err != nil {
		t.Fatalf("preferred election with the replica in sync: %v", err)
	}
	brokertest.WaitFor(t, "broker 3 leading", func() bool {
		ps := partitionsOf(t, brokers[2].Addr(), "pref")
		return len(ps) == 1 && ps[0].Leader == 3
	})
}

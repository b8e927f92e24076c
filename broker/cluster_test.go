package broker_test

import (
	"fmt"
	"sort"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tiercel/tiercel/broker"
	"github.com/tiercel/tiercel/internal/brokertest"
	"github.com/tiercel/tiercel/objstore"
	"github.com/tiercel/tiercel/objstore/mem"
)

// metadataOf asks exactly the broker at addr (a kgo client would route
// the request to any broker it knows).
func metadataOf(t *testing.T, addr string) *kmsg.MetadataResponse {
	t.Helper()
	resp, err := client(t, addr).SeedBrokers()[0].Request(ctx(t), kmsg.NewPtrMetadataRequest())
	if err != nil {
		t.Fatal(err)
	}
	return resp.(*kmsg.MetadataResponse)
}

// startCluster starts n brokers on one bucket that find each other by
// gossip through the first one.
func startCluster(t *testing.T, n int, sets ...string) []*brokertest.Broker {
	t.Helper()
	return startClusterOn(t, mem.New("cluster"), n, sets...)
}

// startClusterOn starts n brokers (ids 1..n) on new data directories and
// the given bucket.
func startClusterOn(t *testing.T, bucket objstore.Bucket, n int, sets ...string) []*brokertest.Broker {
	t.Helper()
	return startClusterWith(t, bucket, n, nil, sets...)
}

// startClusterWith is startClusterOn with settings per broker id too.
func startClusterWith(t *testing.T, bucket objstore.Bucket, n int, each func(id int) []string, sets ...string) []*brokertest.Broker {
	t.Helper()
	return startClusterKnobs(t, bucket, n, nil, each, sets...)
}

// startClusterKnobs is startClusterWith with the same test hooks in every
// broker.
func startClusterKnobs(t *testing.T, bucket objstore.Bucket, n int, knobs *broker.Knobs, each func(id int) []string, sets ...string) []*brokertest.Broker {
	t.Helper()
	var out []*brokertest.Broker
	for i := 1; i <= n; i++ {
		s := append([]string{fmt.Sprintf("node.id=%d", i), "tiercel.gossip.listener=127.0.0.1:0", "tiercel.gossip.local=true",
			"tiercel.metadata.poll.ms=100", fmt.Sprintf("broker.rack=zone-%d", i)}, sets...)
		if each != nil {
			s = append(s, each(i)...)
		}
		if i > 1 {
			s = append(s, "tiercel.gossip.seeds="+out[0].GossipAddr())
		}
		out = append(out, brokertest.StartWithKnobs(t, t.TempDir(), bucket, knobs, s...))
	}
	for _, br := range out {
		brokertest.WaitFor(t, "every broker to list all brokers", func() bool { return len(metadataOf(t, br.Addr()).Brokers) == n })
	}
	return out
}

// TestClusterOfThree: three brokers gossiping over loopback and sharing a
// bucket look like one Kafka cluster: a topic created through one is led
// by all three, a client seeded with any broker produces to and consumes
// from every leader (in a consumer group, whose coordinator is the leader
// of its offsets partition), a broker that does not lead a partition
// answers NOT_LEADER_OR_FOLLOWER, and a broker that leaves is no longer
// listed.
func TestClusterOfThree(t *testing.T) {
	brokers := startCluster(t, 3, groupSets...)
	adm := admin(t, brokers[1].Addr())
	create(t, adm, "spread", 6, nil)

	leaders := func(addr string) map[int32]int32 {
		out := map[int32]int32{}
		for _, tp := range metadataOf(t, addr).Topics {
			if *tp.Topic == "spread" {
				for _, p := range tp.Partitions {
					out[p.Partition] = p.Leader
				}
			}
		}
		return out
	}
	for _, br := range brokers {
		brokertest.WaitFor(t, "every broker to know the topic", func() bool { return len(leaders(br.Addr())) == 6 })
	}
	byLeader := map[int32][]int32{}
	for p, l := range leaders(brokers[0].Addr()) {
		byLeader[l] = append(byLeader[l], p)
	}
	if len(byLeader[1]) != 2 || len(byLeader[2]) != 2 || len(byLeader[3]) != 2 {
		t.Fatalf("6 partitions placed as %v, want 2 on each broker", byLeader)
	}

	const n = 600
	p := client(t, brokers[2].Addr(), kgo.DefaultProduceTopic("spread"))
	var recs []*kgo.Record
	for i := range n {
		recs = append(recs, &kgo.Record{Key: []byte(fmt.Sprint(i)), Value: []byte(fmt.Sprint(i))})
	}
	if err := p.ProduceSync(ctx(t), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	sent := map[int32][]string{}
	for _, r := range recs {
		sent[r.Partition] = append(sent[r.Partition], string(r.Value))
	}
	if len(sent) != 6 {
		t.Fatalf("records went to %d partitions", len(sent))
	}

	// The group leaves (kgo's Close) while its coordinator is up: the
	// offsets partitions are not handed over when their broker stops
	// (docs/design.md), and a LeaveGroup to a stopped coordinator is
	// retried for a minute.
	got := consume(t, brokers[0].Addr(), "spread", n, kgo.ConsumerGroup("g-cluster"))
	received := map[int32][]string{}
	for _, r := range got {
		received[r.Partition] = append(received[r.Partition], string(r.Value))
	}
	for part, want := range sent {
		if fmt.Sprint(received[part]) != fmt.Sprint(want) {
			t.Fatalf("partition %d: consumed %d records, produced %d, or out of order", part, len(received[part]), len(want))
		}
	}
	// Every broker names the same coordinator for the group.
	coordinators := map[int32]bool{}
	for _, br := range brokers {
		fc := kmsg.NewPtrFindCoordinatorRequest()
		fc.CoordinatorKey = "g-cluster"
		raw, err := client(t, br.Addr()).SeedBrokers()[0].Request(ctx(t), fc)
		if err != nil {
			t.Fatal(err)
		}
		resp := raw.(*kmsg.FindCoordinatorResponse)
		if resp.ErrorCode != 0 {
			t.Fatalf("FindCoordinator: %v %+v", err, resp)
		}
		coordinators[resp.NodeID] = true
	}
	if len(coordinators) != 1 {
		t.Fatalf("the brokers name %d different coordinators for one group", len(coordinators))
	}

	// A broker that does not lead a partition refuses to take writes for it.
	notLed := byLeader[1][0]
	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis = -1, 5000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = "spread"
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Partition = notLed
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	raw, err := client(t, brokers[1].Addr()).Broker(2).Request(ctx(t), req)
	if err != nil {
		t.Fatal(err)
	}
	if code := raw.(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode; code != kerr.NotLeaderForPartition.Code {
		t.Fatalf("produce to broker 2 for a partition broker 1 leads: error %d, want NOT_LEADER_OR_FOLLOWER", code)
	}

	// Broker 3 leaves (cleanly, handing its partitions over: see
	// TestGracefulHandoff); the others stop listing it.
	brokers[2].Close()
	var ids []int
	brokertest.WaitFor(t, "broker 1 to stop listing broker 3", func() bool {
		ids = ids[:0]
		for _, b := range metadataOf(t, brokers[0].Addr()).Brokers {
			ids = append(ids, int(b.NodeID))
		}
		sort.Ints(ids)
		return fmt.Sprint(ids) == "[1 2]" // the leave message is gossiped, not awaited
	})
}

// TestGracefulHandoff: a broker shut down cleanly hands its partitions to
// the others first (roll, upload, then new leaders at epoch + 1), so with
// replication factor 1 a producer that keeps going loses nothing and
// duplicates nothing, and a consumer reads every record in order from the
// new leaders (the moved records come from the bucket).
func TestGracefulHandoff(t *testing.T) {
	brokers := startCluster(t, 3)
	adm := admin(t, brokers[0].Addr())
	create(t, adm, "moving", 6, nil)
	for _, br := range brokers {
		brokertest.WaitFor(t, "every broker to know the topic", func() bool {
			for _, tp := range metadataOf(t, br.Addr()).Topics {
				if *tp.Topic == "moving" {
					return true
				}
			}
			return false
		})
	}
	p := client(t, brokers[0].Addr(), kgo.DefaultProduceTopic("moving"))
	sent := sentLog{}
	sent.produce(t, p, 0, 300)

	brokers[2].Close()
	// Broker 1 may hear that broker 3 left before it applies the handoff:
	// wait for its view to show the new leaders.
	brokertest.WaitFor(t, "broker 3's partitions led by 1 and 2", func() bool {
		for _, l := range leadersOf(t, brokers[0].Addr(), "moving") {
			if l != 1 && l != 2 {
				return false
			}
		}
		return true
	})
	for _, tp := range metadataOf(t, brokers[0].Addr()).Topics {
		if *tp.Topic != "moving" {
			continue
		}
		moved := 0
		for _, part := range tp.Partitions {
			if part.LeaderEpoch == 1 {
				moved++
			}
		}
		if moved != 2 {
			t.Fatalf("%d partitions at epoch 1, want broker 3's 2", moved)
		}
	}
	sent.produce(t, p, 300, 600)
	sent.check(t, consume(t, brokers[1].Addr(), "moving", 600))
}

// sentLog is what a test produced, by partition.
type sentLog map[int32][]string

// produce writes the values from..to-1, each keyed by itself, through p.
func (s sentLog) produce(t *testing.T, p *kgo.Client, from, to int) {
	t.Helper()
	var recs []*kgo.Record
	for i := from; i < to; i++ {
		recs = append(recs, &kgo.Record{Key: []byte(fmt.Sprint(i)), Value: []byte(fmt.Sprint(i))})
	}
	if err := p.ProduceSync(ctx(t), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		s[r.Partition] = append(s[r.Partition], string(r.Value))
	}
}

// check fails unless got holds exactly what was sent, in order per
// partition.
func (s sentLog) check(t *testing.T, got []*kgo.Record) {
	t.Helper()
	received := map[int32][]string{}
	for _, r := range got {
		received[r.Partition] = append(received[r.Partition], string(r.Value))
	}
	n := 0
	for part, want := range s {
		n += len(want)
		if fmt.Sprint(received[part]) != fmt.Sprint(want) {
			t.Fatalf("partition %d: consumed %v, produced %v", part, received[part], want)
		}
	}
	if len(got) != n {
		t.Fatalf("consumed %d records, produced %d", len(got), n)
	}
}

// leadersOf is each partition's leader of topic in the answer of the
// broker at addr (nil if it does not know the topic).
func leadersOf(t *testing.T, addr, topic string) []int32 {
	t.Helper()
	for _, tp := range metadataOf(t, addr).Topics {
		if *tp.Topic == topic {
			out := make([]int32, len(tp.Partitions))
			for _, p := range tp.Partitions {
				out[p.Partition] = p.Leader
			}
			return out
		}
	}
	return nil
}

// TestReassignAndElect: AlterPartitionReassignments moves a partition's
// leadership to another broker (carried out by its leader: roll, upload,
// epoch + 1) with its records intact; ListPartitionReassignments shows it
// until it is done; ElectLeaders moves it back to its preferred leader;
// bad requests get Kafka's errors.
func TestReassignAndElect(t *testing.T) {
	brokers := startCluster(t, 3)
	cl := client(t, brokers[0].Addr())
	create(t, admin(t, brokers[0].Addr()), "re", 3, nil)
	leaderOf := func(p int32) (int32, int32) {
		for _, tp := range metadataOf(t, brokers[1].Addr()).Topics {
			if *tp.Topic == "re" && int(p) < len(tp.Partitions) {
				return tp.Partitions[p].Leader, tp.Partitions[p].LeaderEpoch
			}
		}
		return -1, -1
	}
	brokertest.WaitFor(t, "broker 2 to know the topic", func() bool { l, _ := leaderOf(0); return l > 0 })
	from, _ := leaderOf(0)
	to := from%3 + 1
	produceN(t, brokers[0].Addr(), "re", 100)

	alter := func(topic string, p int32, replicas []int32) (int16, string) {
		req := kmsg.NewPtrAlterPartitionAssignmentsRequest()
		rt := kmsg.NewAlterPartitionAssignmentsRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewAlterPartitionAssignmentsRequestTopicPartition()
		rp.Partition, rp.Replicas = p, replicas
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx(t), cl)
		if err != nil {
			t.Fatal(err)
		}
		sp := resp.Topics[0].Partitions[0]
		msg := ""
		if sp.ErrorMessage != nil {
			msg = *sp.ErrorMessage
		}
		return sp.ErrorCode, msg
	}
	for _, c := range []struct {
		topic    string
		replicas []int32
		want     int16
	}{
		{"re", []int32{9}, kerr.InvalidReplicaAssignment.Code},
		{"re", []int32{1, 2}, kerr.InvalidReplicaAssignment.Code},
		{"missing", []int32{1}, kerr.UnknownTopicOrPartition.Code},
		{"re", nil, kerr.NoReassignmentInProgress.Code},
	} {
		if code, msg := alter(c.topic, 0, c.replicas); code != c.want {
			t.Fatalf("reassign %s-0 to %v: %v (%s), want %v", c.topic, c.replicas, kerr.ErrorForCode(code), msg, kerr.ErrorForCode(c.want))
		}
	}
	ends, err := admin(t, brokers[0].Addr()).ListEndOffsets(ctx(t), "re")
	if err != nil {
		t.Fatal(err)
	}
	epoch0End, _ := ends.Lookup("re", 0)
	if code, msg := alter("re", 0, []int32{to}); code != 0 {
		t.Fatalf("reassign re-0 from %d to %d: %v %s", from, to, kerr.ErrorForCode(code), msg)
	}
	brokertest.WaitFor(t, "the move to be carried out", func() bool {
		l, e := leaderOf(0)
		return l == to && e == 1
	})
	// Broker 2 may see the move before the new leader applies it.
	brokertest.WaitFor(t, "the new leader to know it leads", func() bool {
		for _, tp := range metadataOf(t, brokers[to-1].Addr()).Topics {
			if *tp.Topic == "re" && len(tp.Partitions) > 0 {
				return tp.Partitions[0].Leader == to && tp.Partitions[0].LeaderEpoch == 1
			}
		}
		return false
	})
	// The new leader's log starts where the bucket's ends, and still knows
	// where epoch 0 ended (a consumer validating its position after the
	// move must not be sent back to offset 0).
	oe := kmsg.NewPtrOffsetForLeaderEpochRequest()
	oe.ReplicaID = -1
	oe.Topics = []kmsg.OffsetForLeaderEpochRequestTopic{{Topic: "re", Partitions: []kmsg.OffsetForLeaderEpochRequestTopicPartition{{Partition: 0, CurrentLeaderEpoch: -1, LeaderEpoch: 0}}}}
	raw, err := cl.Broker(int(to)).Request(ctx(t), oe)
	if err != nil {
		t.Fatal(err)
	}
	if p := raw.(*kmsg.OffsetForLeaderEpochResponse).Topics[0].Partitions[0]; p.ErrorCode != 0 || p.LeaderEpoch != 0 || p.EndOffset != epoch0End.Offset {
		t.Fatalf("OffsetForLeaderEpoch(0) on the new leader: error %d, epoch %d ending at %d; want epoch 0 ending at %d", p.ErrorCode, p.LeaderEpoch, p.EndOffset, epoch0End.Offset)
	}
	// Every broker applies the move within a poll; then none lists it.
	brokertest.WaitFor(t, "no reassignment listed", func() bool {
		list, err := kmsg.NewPtrListPartitionReassignmentsRequest().RequestWith(ctx(t), cl)
		return err == nil && len(list.Topics) == 0
	})
	produceN(t, brokers[2].Addr(), "re", 100)
	if got := consume(t, brokers[1].Addr(), "re", 200); len(got) != 200 {
		t.Fatalf("consumed %d of 200 records", len(got))
	}

	elect := kmsg.NewPtrElectLeadersRequest()
	elect.Topics = []kmsg.ElectLeadersRequestTopic{{Topic: "re", Partitions: []int32{0, 1}}}
	eresp, err := elect.RequestWith(ctx(t), cl)
	if err != nil {
		t.Fatal(err)
	}
	codes := map[int32]int16{}
	for _, p := range eresp.Topics[0].Partitions {
		codes[p.Partition] = p.ErrorCode
	}
	if codes[0] != 0 || codes[1] != kerr.ElectionNotNeeded.Code {
		t.Fatalf("preferred election: %v", codes)
	}
	brokertest.WaitFor(t, "re-0 back on its preferred leader", func() bool {
		l, e := leaderOf(0)
		return l == from && e == 2
	})
	if got := consume(t, brokers[2].Addr(), "re", 200); len(got) != 200 {
		t.Fatalf("consumed %d of 200 records after moving back", len(got))
	}
}

// TestPreferredLeadersReturn: a broker stopped cleanly hands its
// partitions over; when it comes back, auto.leader.rebalance.enable moves
// them back to it (their preferred leader) with the records intact.
func TestPreferredLeadersReturn(t *testing.T) {
	brokers := startCluster(t, 3, "auto.leader.rebalance.enable=true", "tiercel.leader.rebalance.join.delay.ms=200")
	create(t, admin(t, brokers[0].Addr()), "home", 6, nil)
	leaders := func() map[int32]int32 {
		out := map[int32]int32{}
		for _, tp := range metadataOf(t, brokers[0].Addr()).Topics {
			if *tp.Topic == "home" {
				for _, p := range tp.Partitions {
					out[p.Partition] = p.Leader
				}
			}
		}
		return out
	}
	brokertest.WaitFor(t, "the topic on broker 1", func() bool { return len(leaders()) == 6 })
	placed := leaders()
	produceN(t, brokers[0].Addr(), "home", 300)
	brokers[2].Restart()
	brokertest.WaitFor(t, "broker 3's partitions back on broker 3", func() bool {
		now := leaders()
		for p, l := range placed {
			if now[p] != l {
				return false
			}
		}
		return true
	})
	produceN(t, brokers[1].Addr(), "home", 300)
	if got := consume(t, brokers[1].Addr(), "home", 600); len(got) != 600 {
		t.Fatalf("consumed %d of 600", len(got))
	}
}

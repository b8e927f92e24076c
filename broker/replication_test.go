package broker_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tiercel/tiercel/internal/brokertest"
)

// createReplicated creates topic with rf replicas per partition through
// the broker at addr and waits until every broker in addrs knows it.
func createReplicated(t *testing.T, addr, topic string, partitions int32, rf int16, configs map[string]*string, addrs ...string) {
	t.Helper()
	resp, err := admin(t, addr).CreateTopic(ctx(t), partitions, rf, configs, topic)
	if err != nil || resp.Err != nil {
		t.Fatalf("create %s: %v %v", topic, err, resp.Err)
	}
	for _, a := range addrs {
		brokertest.WaitFor(t, "every broker to know "+topic, func() bool { return partitionsOf(t, a, topic) != nil })
	}
}

// preferReplica reorders the replicas of topic's partition 0 so that
// replicas[0] is its preferred leader, and waits until the broker at addr
// lists that order.
func preferReplica(t *testing.T, adm *kadm.Client, addr, topic string, replicas []int32) {
	t.Helper()
	req := kadm.AlterPartitionAssignmentsReq{}
	req.Assign(topic, 0, replicas)
	if res, err := adm.AlterPartitionAssignments(ctx(t), req); err != nil || res[topic][0].Err != nil {
		t.Fatalf("reorder replicas: %v %+v", err, res)
	}
	brokertest.WaitFor(t, fmt.Sprintf("broker %d preferred", replicas[0]), func() bool {
		ps := partitionsOf(t, addr, topic)
		return len(ps) == 1 && ps[0].Replicas[0] == replicas[0]
	})
}

// partitionsOf is topic's partitions in the answer of exactly the broker at addr.
func partitionsOf(t *testing.T, addr, topic string) []kmsg.MetadataResponseTopicPartition {
	t.Helper()
	for _, tp := range metadataOf(t, addr).Topics {
		if *tp.Topic == topic && tp.ErrorCode == 0 {
			return tp.Partitions
		}
	}
	return nil
}

// diskValues is every record value a stopped broker's copy of partition p holds.
func diskValues(t *testing.T, dir, topic string, p int32) []string {
	t.Helper()
	_, vs := brokertest.DiskLog(t, dir, topic, p)
	return vs
}

// TestReplicatedTopic: a topic with replication factor 3 on three brokers
// in three racks has each partition on all three, every replica in sync;
// acks=all produces are answered once the followers hold the records; the
// three copies of every partition are identical on disk; and a clean
// shutdown of a leader moves its partitions to an in-sync follower with
// nothing lost and no upload needed (it works with tiering off).
func TestReplicatedTopic(t *testing.T) {
	// Both durability rules: acks=all once fsynced on every in-sync
	// replica (the default), or once written to each (Kafka's).
	for _, policy := range []string{"fsync", "interval"} {
		t.Run(policy, func(t *testing.T) { replicatedTopic(t, "log.flush.policy="+policy) })
	}
}

func replicatedTopic(t *testing.T, sets ...string) {
	brokers := startCluster(t, 3, sets...)
	var addrs []string
	for _, br := range brokers {
		addrs = append(addrs, br.Addr())
	}
	off := "false"
	createReplicated(t, addrs[0], "r", 3, 3, map[string]*string{"remote.storage.enable": &off}, addrs...)
	for _, p := range partitionsOf(t, addrs[0], "r") {
		rs := slices.Clone(p.Replicas)
		slices.Sort(rs)
		if fmt.Sprint(rs) != "[1 2 3]" || len(p.ISR) != 3 || p.Replicas[0] != p.Leader {
			t.Fatalf("partition %d: replicas %v isr %v leader %d", p.Partition, p.Replicas, p.ISR, p.Leader)
		}
	}
	// The partition count grows with three replicas per new partition.
	adm := admin(t, addrs[0])
	if rs, err := adm.CreatePartitions(ctx(t), 1, "r"); err != nil || rs["r"].Err != nil {
		t.Fatalf("create partitions: %v %v", err, rs["r"].Err)
	}
	brokertest.WaitFor(t, "the fourth partition in sync on three", func() bool {
		ps := partitionsOf(t, addrs[0], "r")
		return len(ps) == 4 && len(ps[3].Replicas) == 3 && len(ps[3].ISR) == 3
	})
	p := client(t, addrs[0], kgo.DefaultProduceTopic("r"))
	sent := sentLog{}
	sent.produce(t, p, 0, 300)
	sent.check(t, consume(t, addrs[1], "r", 300))

	// A clean shutdown of broker 3 hands its partitions to in-sync
	// followers, which carry on from their copies.
	brokers[2].Close()
	brokertest.WaitFor(t, "broker 3 to lead nothing and leave the ISRs", func() bool {
		for _, part := range partitionsOf(t, addrs[0], "r") {
			if part.Leader == 3 || slices.Contains(part.ISR, 3) || part.ErrorCode != 0 {
				return false
			}
		}
		return true
	})
	// It stays out: its fetchers stopped before it left, so its leaders
	// saw no fetch that would take it back in (two ISR checks later).
	time.Sleep(2500 * time.Millisecond)
	for _, part := range partitionsOf(t, addrs[0], "r") {
		if slices.Contains(part.ISR, 3) {
			t.Fatalf("partition %d: the stopped broker 3 is back in the ISR %v", part.Partition, part.ISR)
		}
	}
	sent.produce(t, p, 300, 600)
	sent.check(t, consume(t, addrs[1], "r", 600))

	brokers[0].Close()
	brokers[1].Close()
	for part := range int32(4) {
		a := diskValues(t, brokers[0].DataDir(), "r", part)
		b := diskValues(t, brokers[1].DataDir(), "r", part)
		if len(a) != len(sent[part]) || !slices.Equal(a, b) || fmt.Sprint(a) != fmt.Sprint(sent[part]) {
			t.Fatalf("partition %d: broker 1 holds %d records, broker 2 %d, %d were sent; copies equal: %v", part, len(a), len(b), len(sent[part]), slices.Equal(a, b))
		}
		c := diskValues(t, brokers[2].DataDir(), "r", part)
		if len(c) > len(a) || !slices.Equal(c, a[:len(c)]) {
			t.Fatalf("partition %d: broker 3's copy is not a prefix of the others", part)
		}
	}
}

// TestMinInsyncReplicas: with min.insync.replicas=2 and two of three
// brokers gone, the leader drops them from the ISR after
// replica.lag.time.max.ms and refuses acks=all produces with
// NOT_ENOUGH_REPLICAS; acks=1 still works; when a follower is back and
// caught up it rejoins the ISR and acks=all works again.
func TestMinInsyncReplicas(t *testing.T) {
	brokers := startCluster(t, 3, "replica.lag.time.max.ms=1500", "tiercel.replica.isr.check.ms=100")
	var addrs []string
	for _, br := range brokers {
		addrs = append(addrs, br.Addr())
	}
	// One partition led by broker 1, followed by 2 and 3.
	if err := brokertest.CreateTopicWithReplicas(ctx(t), client(t, addrs[0]), "one", [][]int32{{1, 2, 3}},
		map[string]string{"min.insync.replicas": "2", "remote.storage.enable": "false"}); err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		brokertest.WaitFor(t, "every broker to know the topic", func() bool { return partitionsOf(t, a, "one") != nil })
	}
	all := client(t, addrs[0], kgo.DefaultProduceTopic("one"))
	if err := all.ProduceSync(ctx(t), &kgo.Record{Value: []byte("a")}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	brokers[1].Close()
	brokers[2].Close()
	brokertest.WaitFor(t, "the ISR to shrink to the leader", func() bool {
		ps := partitionsOf(t, addrs[0], "one")
		return len(ps) == 1 && fmt.Sprint(ps[0].ISR) == "[1]"
	})
	produce := func(acks int16) int16 {
		t.Helper()
		code, err := brokertest.ProduceOne(ctx(t), addrs[0], "one", acks)
		if err != nil {
			t.Fatal(err)
		}
		return code
	}
	if code := produce(-1); code != kerr.NotEnoughReplicas.Code {
		t.Fatalf("acks=all with an ISR of one: %v, want NOT_ENOUGH_REPLICAS", kerr.ErrorForCode(code))
	}
	if code := produce(1); code != 0 {
		t.Fatalf("acks=1 with an ISR of one: %v", kerr.ErrorForCode(code))
	}

	brokers[1].Restart()
	brokertest.WaitFor(t, "broker 2 to rejoin the ISR", func() bool {
		ps := partitionsOf(t, addrs[0], "one")
		return len(ps) == 1 && fmt.Sprint(ps[0].ISR) == "[1 2]"
	})
	if code := produce(-1); code != 0 {
		t.Fatalf("acks=all with two in sync: %v", kerr.ErrorForCode(code))
	}
}

// fetchBytes counts the bytes of Fetch responses a client read, by broker.
type fetchBytes struct {
	mu sync.Mutex
	by map[int32]int
}

func (f *fetchBytes) OnBrokerRead(meta kgo.BrokerMetadata, key int16, n int, _, _ time.Duration, err error) {
	if key == 1 && err == nil {
		f.mu.Lock()
		f.by[meta.NodeID] += n
		f.mu.Unlock()
	}
}

// TestFollowerReads: a consumer with client.rack reads a replicated
// partition from the in-sync replica in its rack (KIP-392), only records
// below the high watermark, and the leader's own rack reads from the
// leader.
func TestFollowerReads(t *testing.T) {
	brokers := startCluster(t, 3) // racks zone-1, zone-2, zone-3
	addr := brokers[0].Addr()
	if err := brokertest.CreateTopicWithReplicas(ctx(t), client(t, addr), "near", [][]int32{{1, 2, 3}}, nil); err != nil {
		t.Fatal(err)
	}
	for _, br := range brokers {
		brokertest.WaitFor(t, "every broker to know the topic", func() bool { return partitionsOf(t, br.Addr(), "near") != nil })
	}
	p := client(t, addr, kgo.DefaultProduceTopic("near"))
	sent := sentLog{}
	sent.produce(t, p, 0, 2000)

	for _, c := range []struct {
		rack string
		from int32
	}{{"zone-2", 2}, {"zone-1", 1}} {
		counts := &fetchBytes{by: map[int32]int{}}
		sent.check(t, consume(t, addr, "near", 2000, kgo.Rack(c.rack), kgo.WithHooks(counts)))
		counts.mu.Lock()
		by := counts.by
		counts.mu.Unlock()
		for id, n := range by {
			if id != c.from && n > by[c.from] {
				t.Fatalf("a consumer in %s read %d fetch bytes from broker %d, %d from broker %d", c.rack, n, id, by[c.from], c.from)
			}
		}
		if by[c.from] < 2000 {
			t.Fatalf("a consumer in %s read %d fetch bytes from broker %d: %v", c.rack, by[c.from], c.from, by)
		}
	}
}

// TestFollowerTieredReads: a consumer in a follower's rack reads a tiered
// replicated partition from that follower from offset 0, although the
// follower's copy, like the leader's log, holds only the newest segments:
// the older ones come from the bucket through the follower's own copy of
// the manifest, and the leader serves next to nothing.
func TestFollowerTieredReads(t *testing.T) {
	brokers := startCluster(t, 3, "remote.log.manager.task.interval.ms=50") // racks zone-1, zone-2, zone-3
	addr := brokers[0].Addr()
	configs := map[string]string{"remote.storage.enable": "true", "segment.bytes": "8192", "local.retention.bytes": "16384"}
	if err := brokertest.CreateTopicWithReplicas(ctx(t), client(t, addr), "deep", [][]int32{{1, 2, 3}}, configs); err != nil {
		t.Fatal(err)
	}
	for _, br := range brokers {
		brokertest.WaitFor(t, "every broker to know the topic", func() bool { return partitionsOf(t, br.Addr(), "deep") != nil })
	}
	p := client(t, addr, kgo.DefaultProduceTopic("deep"))
	sent := sentLog{}
	for i := 0; i < 4000; i += 500 {
		sent.produce(t, p, i, i+500)
	}
	// Earliest (the bucket's log start) is 0 while the leader's local log
	// has moved on: wait for that on the leader's word.
	adm := admin(t, addr)
	brokertest.WaitFor(t, "the older segments only in the bucket", func() bool {
		for _, s := range brokers[0].TieringStatus() {
			if s.Topic == "deep" {
				return s.LocalStart > 1000 && s.RemoteStart == 0
			}
		}
		return false
	})
	if start, err := adm.ListStartOffsets(ctx(t), "deep"); err != nil || start["deep"][0].Offset != 0 {
		t.Fatalf("log start: %v %+v", err, start)
	}

	counts := &fetchBytes{by: map[int32]int{}}
	sent.check(t, consume(t, addr, "deep", 4000, kgo.Rack("zone-2"), kgo.WithHooks(counts)))
	counts.mu.Lock()
	by := counts.by
	counts.mu.Unlock()
	if by[2] < 4000*3 || by[1]+by[3] > by[2]/20 {
		t.Fatalf("fetch bytes by broker %v: the follower in zone-2 should have served nearly all", by)
	}
	for _, br := range brokers {
		br.Close()
	}
	if start, _ := brokertest.DiskLog(t, brokers[1].DataDir(), "deep", 0); start <= 1000 {
		t.Fatalf("the follower's copy starts at %d: the consumer's reads below it were not tiered reads", start)
	}
}

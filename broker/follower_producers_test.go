package broker_test

import (
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tiercel/tiercel/internal/brokertest"
	"github.com/tiercel/tiercel/internal/recordbatch"
	"github.com/tiercel/tiercel/objstore/mem"
)

// produceSeq sends one record of idempotent producer pid at sequence seq
// to partition 0 of topic through exactly the broker at addr (acks=all)
// and returns the error code and base offset of the answer.
func produceSeq(t *testing.T, addr, topic string, pid int64, seq int32) (int16, int64) {
	t.Helper()
	b, err := recordbatch.Build([]recordbatch.Record{{Value: []byte(fmt.Sprintf("p%d-%d", pid, seq))}},
		recordbatch.BuildOptions{ProducerID: pid, ProducerEpoch: 0, BaseSequence: seq})
	if err != nil {
		t.Fatal(err)
	}
	p, err := brokertest.ProduceBatch(ctx(t), addr, topic, -1, b)
	if err != nil {
		t.Fatal(err)
	}
	return p.ErrorCode, p.BaseOffset
}

// TestFollowerCopyKnowsProducers: a follower whose copy starts at its
// leader's local log start (here a broker back on an empty disk, the
// older segments only in the bucket) takes the producer state as of that
// offset from the bucket, so that once it leads, the retry of a batch
// written just below its copy is answered as a duplicate, not written
// again (the five-broker crash test once found such a duplicate: the
// client resent a batch whose answer it had lost to a leader whose copy
// did not know the producer).
func TestFollowerCopyKnowsProducers(t *testing.T) {
	bucket := mem.New("dedup")
	sets := []string{"remote.log.manager.task.interval.ms=50", "tiercel.replica.isr.check.ms=100"}
	brokers := startClusterOn(t, bucket, 3, sets...)
	addr := brokers[0].Addr()
	configs := map[string]string{"segment.bytes": "1024", "local.retention.bytes": "1"}
	if err := brokertest.CreateTopicWithReplicas(ctx(t), client(t, addr), "dedup", [][]int32{{1, 2, 3}}, configs); err != nil {
		t.Fatal(err)
	}
	for _, br := range brokers {
		brokertest.WaitFor(t, "every broker to know the topic", func() bool { return partitionsOf(t, br.Addr(), "dedup") != nil })
	}
	const pid = 4242
	var last int64
	for seq := int32(0); seq < 5; seq++ {
		code, off := produceSeq(t, addr, "dedup", pid, seq)
		if code != 0 {
			t.Fatalf("produce seq %d: error %d", seq, code)
		}
		last = off
	}
	// Other records roll the segment holding the producer's batches, which
	// is then tiered and deleted locally.
	other := client(t, addr, kgo.DefaultProduceTopic("dedup"))
	for i := 0; i < 20; i++ {
		sentLog{}.produce(t, other, i*20, i*20+20)
	}
	brokertest.WaitFor(t, "the producer's batches only in the bucket", func() bool {
		for _, s := range brokers[0].TieringStatus() {
			if s.Topic == "dedup" {
				return s.LocalStart > last+1
			}
		}
		return false
	})

	// Broker 3 comes back on an empty disk: its copy starts at the
	// leader's local log start.
	brokers[2].Close()
	// It left the ISR at shutdown: wait for broker 1 to see that, or the
	// wait below for it back in sync passes on broker 1's older view.
	brokertest.WaitFor(t, "broker 3 out of the ISR", func() bool {
		ps := partitionsOf(t, addr, "dedup")
		return len(ps) == 1 && len(ps[0].ISR) == 2
	})
	s3 := append([]string{"node.id=3", "tiercel.gossip.listener=127.0.0.1:0", "tiercel.gossip.local=true", "tiercel.metadata.poll.ms=100",
		"broker.rack=zone-3", "tiercel.gossip.seeds=" + brokers[0].GossipAddr()}, sets...)
	fresh := brokertest.StartWithBucket(t, t.TempDir(), bucket, s3...)
	brokertest.WaitFor(t, "broker 3 back in sync", func() bool {
		ps := partitionsOf(t, addr, "dedup")
		return len(ps) == 1 && len(ps[0].ISR) == 3
	})

	// Broker 3 leads: preferred leader by the replica order, then elected.
	adm := admin(t, addr)
	preferReplica(t, adm, addr, "dedup", []int32{3, 1, 2})
	if _, err := adm.ElectLeaders(ctx(t), kadm.ElectPreferredReplica, kadm.TopicsSet{"dedup": {0: {}}}); err != nil {
		t.Fatal(err)
	}
	brokertest.WaitFor(t, "broker 3 leading", func() bool {
		ps := partitionsOf(t, fresh.Addr(), "dedup")
		return len(ps) == 1 && ps[0].Leader == 3
	})

	// The retry of the last batch is a duplicate; the next one is taken.
	if code, off := produceSeq(t, fresh.Addr(), "dedup", pid, 4); code != 0 || off != last {
		t.Fatalf("retry of sequence 4 on the new leader: error %d, offset %d; want the original offset %d", code, off, last)
	}
	if code, off := produceSeq(t, fresh.Addr(), "dedup", pid, 5); code != 0 || off <= last {
		t.Fatalf("sequence 5 on the new leader: error %d, offset %d", code, off)
	}
}

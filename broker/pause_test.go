package broker_test

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tiercel/tiercel/internal/brokertest"
	"github.com/tiercel/tiercel/objstore/mem"
)

// parkedEverywhere reports whether every partition of the topics is
// parked (LEADER_NOT_AVAILABLE, no leader, its replicas still listed) in
// the answer of the broker at addr.
func parkedEverywhere(t *testing.T, addr string, topics ...string) bool {
	md := metadataOf(t, addr)
	want := map[string]bool{}
	for _, n := range topics {
		want[n] = true
	}
	for _, tp := range md.Topics {
		if !want[*tp.Topic] {
			continue
		}
		delete(want, *tp.Topic)
		for _, p := range tp.Partitions {
			if p.Leader != -1 || p.ErrorCode != kerr.LeaderNotAvailable.Code || len(p.Replicas) == 0 || p.Replicas[0] < 1 {
				return false
			}
		}
	}
	return len(want) == 0
}

// ledEverywhere reports whether every partition of the topics has a live
// leader in the answer of the broker at addr.
func ledEverywhere(t *testing.T, addr string, topics ...string) bool {
	md := metadataOf(t, addr)
	seen := 0
	for _, tp := range md.Topics {
		for _, n := range topics {
			if *tp.Topic != n {
				continue
			}
			seen++
			for _, p := range tp.Partitions {
				if p.Leader < 0 || p.ErrorCode != 0 {
					return false
				}
			}
		}
	}
	return seen == len(topics)
}

// TestPauseResumeOntoEmptyDisks: pausing the cluster (the dynamic config
// tiercel.cluster.paused, set cluster-wide) parks every partition in the
// bucket, group offsets included; the brokers are stopped and their disks
// dropped; three new brokers on empty data directories and the same bucket
// resume the cluster, adopt the partitions, serve every record from the
// first, and a consumer group continues from the offsets it committed. A
// replicated topic is parked too (its followers fetch the tail before the
// upload) and comes back led by an in-sync replica, its replicas back in
// sync.
func TestPauseResumeOntoEmptyDisks(t *testing.T) {
	bucket := mem.New("paused")
	brokers := startClusterOn(t, bucket, 3, groupSets...)
	adm := admin(t, brokers[0].Addr())
	create(t, adm, "parked", 6, nil)
	createReplicated(t, brokers[0].Addr(), "parkedr", 3, 3, nil, brokers[0].Addr(), brokers[1].Addr(), brokers[2].Addr())

	p := client(t, brokers[1].Addr(), kgo.DefaultProduceTopic("parked"))
	sent := sentLog{}
	sent.produce(t, p, 0, 600)
	p.Close()
	pr := client(t, brokers[2].Addr(), kgo.DefaultProduceTopic("parkedr"))
	sentR := sentLog{}
	sentR.produce(t, pr, 0, 600)
	pr.Close()

	// The group has read half of each partition.
	committed := kadm.Offsets{}
	wantLeft := 0
	for part, vals := range sent {
		half := int64(len(vals) / 2)
		committed.Add(kadm.Offset{Topic: "parked", Partition: part, At: half, LeaderEpoch: -1})
		wantLeft += len(vals) - int(half)
	}
	if r, err := adm.CommitOffsets(ctx(t), "readers", committed); err != nil || r.Error() != nil {
		t.Fatalf("commit: %v %v", err, r.Error())
	}

	// Pause, through any Kafka tool's AlterConfigs on the default broker.
	alter := []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "tiercel.cluster.paused", Value: kadmString("true")}}
	if r, err := adm.AlterBrokerConfigs(ctx(t), alter); err != nil || r[0].Err != nil {
		t.Fatalf("pause: %v %+v", err, r)
	}
	for _, br := range brokers {
		brokertest.WaitFor(t, "every partition parked", func() bool {
			return parkedEverywhere(t, br.Addr(), "parked", "parkedr", "__consumer_offsets")
		})
	}
	if v := pausedValue(t, adm); v != "true" {
		t.Fatalf("tiercel.cluster.paused = %q while paused", v)
	}
	for _, br := range brokers {
		br.Close()
	}

	// New brokers, empty disks, the same bucket.
	fresh := startClusterOn(t, bucket, 3, groupSets...)
	for _, br := range fresh {
		brokertest.WaitFor(t, "every partition adopted", func() bool {
			return ledEverywhere(t, br.Addr(), "parked", "parkedr", "__consumer_offsets")
		})
	}
	sentR.produce(t, client(t, fresh[1].Addr(), kgo.DefaultProduceTopic("parkedr")), 600, 900)
	sentR.check(t, consume(t, fresh[2].Addr(), "parkedr", 900))
	brokertest.WaitFor(t, "the replicated topic in sync on three again", func() bool {
		ps := partitionsOf(t, fresh[0].Addr(), "parkedr")
		for _, part := range ps {
			if len(part.ISR) != 3 {
				return false
			}
		}
		return len(ps) == 3
	})
	adm = admin(t, fresh[2].Addr())
	if v := pausedValue(t, adm); v != "" && v != "false" {
		t.Fatalf("tiercel.cluster.paused = %q after brokers started: still paused", v)
	}
	sent.produce(t, client(t, fresh[0].Addr(), kgo.DefaultProduceTopic("parked")), 600, 900)
	sent.check(t, consume(t, fresh[1].Addr(), "parked", 900))

	// The group goes on from its committed offsets: only the unread half
	// and the new records.
	wantLeft += 300
	fetched, err := adm.FetchOffsets(ctx(t), "readers")
	if err != nil || fetched.Error() != nil {
		t.Fatalf("fetch offsets after resume: %v %v", err, fetched.Error())
	}
	for part := range sent {
		o, ok := fetched.Lookup("parked", part)
		if want, _ := committed.Lookup("parked", part); !ok || o.At != want.At {
			t.Fatalf("partition %d: committed offset %+v after resume, want %d", part, o, want.At)
		}
	}
	rest := consume(t, fresh[0].Addr(), "parked", wantLeft, kgo.ConsumerGroup("readers"))
	if len(rest) != wantLeft {
		t.Fatalf("the group read %d records after resume, want %d", len(rest), wantLeft)
	}
	for _, r := range rest {
		if c, _ := committed.Lookup("parked", r.Partition); r.Offset < c.At {
			t.Fatalf("the group re-read partition %d offset %d below its commit %d", r.Partition, r.Offset, c.At)
		}
	}
}

func kadmString(s string) *string { return &s }

// pausedValue is the cluster-wide tiercel.cluster.paused ("" when unset).
func pausedValue(t *testing.T, adm *kadm.Client) string {
	t.Helper()
	rcs, err := adm.DescribeBrokerConfigs(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, rc := range rcs {
		for _, c := range rc.Configs {
			if c.Key == "tiercel.cluster.paused" {
				return c.MaybeValue()
			}
		}
	}
	return ""
}

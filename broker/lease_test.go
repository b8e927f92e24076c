package broker_test

import (
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tiercel/tiercel/broker"
	"github.com/tiercel/tiercel/internal/brokertest"
	"github.com/tiercel/tiercel/internal/config"
	"github.com/tiercel/tiercel/internal/recordbatch"
	"github.com/tiercel/tiercel/objstore"
	"github.com/tiercel/tiercel/objstore/faulty"
	"github.com/tiercel/tiercel/objstore/mem"
)

var shortLease = []string{"tiercel.lease.ttl.ms=1500", "tiercel.lease.margin.ms=300"}

func newBroker(t *testing.T, dir string, bucket objstore.Bucket, sets ...string) (*broker.Broker, error) {
	t.Helper()
	cfg, err := config.Load(config.LoadOptions{Sets: sets, Flags: map[string]string{"log.dirs": dir, "listeners": "127.0.0.1:0"}})
	if err != nil {
		t.Fatal(err)
	}
	return broker.New(broker.Options{Config: cfg, Bucket: bucket})
}

// TestSameNodeIDRefused: a second broker configured with a node.id that a
// running broker holds refuses to start, with a message that says so; once
// the first stops cleanly (releasing its lease) the id is free at once.
func TestSameNodeIDRefused(t *testing.T) {
	bucket := mem.New("ids")
	first := brokertest.StartWithBucket(t, t.TempDir(), bucket, shortLease...)
	began := time.Now()
	_, err := newBroker(t, t.TempDir(), bucket, shortLease...)
	if err == nil || !strings.Contains(err.Error(), "two brokers must never share a node.id") {
		t.Fatalf("a second broker with node.id 1: %v", err)
	}
	if took := time.Since(began); took > 3*time.Second {
		t.Fatalf("refusing took %v", took)
	}
	first.Close()
	began = time.Now()
	second, err := newBroker(t, t.TempDir(), bucket, shortLease...)
	if err != nil {
		t.Fatalf("node.id 1 after its broker stopped: %v", err)
	}
	if took := time.Since(began); took > time.Second {
		t.Fatalf("starting on a released lease took %v", took)
	}
	_ = second.Shutdown(ctx(t))
}

// TestDataDirInUse: a second broker on a data directory in use fails at
// once with a clear message.
func TestDataDirInUse(t *testing.T) {
	dir := t.TempDir()
	brokertest.StartWithBucket(t, dir, mem.New("dir"))
	_, err := newBroker(t, dir, mem.New("other"))
	if err == nil || !strings.Contains(err.Error(), "is another broker using it") {
		t.Fatalf("a second broker on one data directory: %v", err)
	}
}

// TestObjectStoreOutageStopsAcks: when the object store is unreachable the
// broker cannot renew its lease, and once the lease lapses it stops
// acknowledging produces (NOT_LEADER_OR_FOLLOWER: clients retry); when
// the store returns, it renews and takes produces again, nothing lost.
func TestObjectStoreOutageStopsAcks(t *testing.T) {
	bucket := faulty.Wrap(mem.New("outage"), 1, faulty.Faults{})
	br := brokertest.StartWithBucket(t, t.TempDir(), bucket, shortLease...)
	create(t, admin(t, br.Addr()), "out", 1, nil)
	cl := client(t, br.Addr())
	var acked []string
	produce := func(v string) int16 {
		req := kmsg.NewPtrProduceRequest()
		req.Acks, req.TimeoutMillis = -1, 5000
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = "out"
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Records = batchOf(t, v)
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := cl.SeedBrokers()[0].Request(ctx(t), req)
		if err != nil {
			t.Fatal(err)
		}
		code := resp.(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode
		if code == 0 {
			acked = append(acked, v)
		}
		return code
	}
	if code := produce("before"); code != 0 {
		t.Fatalf("produce before the outage: %d", code)
	}
	bucket.Set(faulty.Faults{Retriable: 1})
	brokertest.WaitFor(t, "produces to be refused during the outage", func() bool { return produce("during") == kerr.NotLeaderForPartition.Code })
	bucket.Set(faulty.Faults{})
	brokertest.WaitFor(t, "produces to be taken again after the outage", func() bool { return produce("after") == 0 })
	// Refused produces were never appended: the log is exactly what was
	// acknowledged (produces kept being acknowledged until the lease
	// lapsed, up to TTL - margin into the outage).
	got := consume(t, br.Addr(), "out", len(acked))
	var vs []string
	for _, r := range got {
		vs = append(vs, string(r.Value))
	}
	if strings.Join(vs, ",") != strings.Join(acked, ",") {
		t.Fatalf("log after the outage: %v, acknowledged %v", vs, acked)
	}
}

// batchOf is one record batch holding v.
func batchOf(t *testing.T, v string) []byte {
	t.Helper()
	b, err := recordbatch.Build([]recordbatch.Record{{Value: []byte(v)}}, recordbatch.NoProducer())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

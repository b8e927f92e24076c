package broker_test

import (
	"context"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tiercel/tiercel/broker"
	"github.com/tiercel/tiercel/internal/brokertest"
	"github.com/tiercel/tiercel/internal/config"
	"github.com/tiercel/tiercel/objstore"
	"github.com/tiercel/tiercel/objstore/mem"
)

// TestMetadataLogSharedByBrokers: two brokers on one bucket share the
// cluster through the metadata log: one cluster id, a topic created,
// reconfigured and deleted through either is seen by the other after a
// poll, and producer ids handed out by the two never overlap.
func TestMetadataLogSharedByBrokers(t *testing.T) {
	bucket := mem.New("shared")
	a := brokertest.StartWithBucket(t, t.TempDir(), bucket, "node.id=1", "tiercel.metadata.poll.ms=20")
	b := brokertest.StartWithBucket(t, t.TempDir(), bucket, "node.id=2", "tiercel.metadata.poll.ms=20")
	admA, admB := admin(t, a.Addr()), admin(t, b.Addr())

	ca, err := admA.BrokerMetadata(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	cb, err := admB.BrokerMetadata(ctx(t))
	if err != nil || ca.Cluster != cb.Cluster || ca.Cluster == "" {
		t.Fatalf("cluster ids %q and %q (%v)", ca.Cluster, cb.Cluster, err)
	}

	create(t, admA, "shared", 2, nil)
	topicConfig := func(adm *kadm.Client, name string) (string, bool) {
		rc, err := adm.DescribeTopicConfigs(ctx(t), "shared")
		if err != nil || len(rc) != 1 || rc[0].Err != nil {
			return "", false
		}
		for _, c := range rc[0].Configs {
			if c.Key == name && c.Value != nil {
				return *c.Value, true
			}
		}
		return "", false
	}
	brokertest.WaitFor(t, "broker 2 to see the topic broker 1 created", func() bool {
		_, ok := topicConfig(admB, "retention.ms")
		return ok
	})
	alter, err := admB.AlterTopicConfigs(ctx(t), []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.ms", Value: kadm.StringPtr("123456")}}, "shared")
	if err != nil || alter[0].Err != nil {
		t.Fatalf("alter through broker 2: %v %v", err, alter)
	}
	brokertest.WaitFor(t, "broker 1 to see broker 2's config change", func() bool {
		v, _ := topicConfig(admA, "retention.ms")
		return v == "123456"
	})
	// Creating the same name through the other broker is refused.
	if r, _ := admB.CreateTopic(ctx(t), 1, 1, nil, "shared"); r.Err == nil {
		t.Fatal("a second topic of the same name was created through the other broker")
	}

	// Producer ids: each broker reserves blocks in the log; none overlap.
	seen := map[int64]string{}
	for i := range 3 {
		for _, br := range []*brokertest.Broker{a, b} {
			cl := client(t, br.Addr())
			resp, err := kmsg.NewPtrInitProducerIDRequest().RequestWith(ctx(t), cl)
			if err != nil || resp.ErrorCode != 0 {
				t.Fatalf("InitProducerId: %v %d", err, resp.ErrorCode)
			}
			if who, dup := seen[resp.ProducerID]; dup {
				t.Fatalf("producer id %d handed out by %s and %s (round %d)", resp.ProducerID, who, br.Addr(), i)
			}
			seen[resp.ProducerID] = br.Addr()
		}
	}

	if _, err := admB.DeleteTopic(ctx(t), "shared"); err != nil {
		t.Fatal(err)
	}
	brokertest.WaitFor(t, "broker 1 to drop the topic broker 2 deleted", func() bool {
		_, ok := topicConfig(admA, "retention.ms")
		return !ok
	})
}

// TestLegacyCatalogCarriedOver: a bucket written by a Tiercel version
// before the metadata log keeps its cluster id, topics and topic ids.
func TestLegacyCatalogCarriedOver(t *testing.T) {
	bucket := mem.New("legacy")
	const catalog = `{"version":1,"cluster_id":"legacyClusterId0000000","next_producer_id":5000,
		"topics":[{"name":"old","id":"AAECAwQFBgcICQoLDA0ODw","partitions":2,"configs":{"retention.ms":"60000"}}]}`
	if _, err := bucket.Put(context.Background(), "cluster/catalog.json", strings.NewReader(catalog), objstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	br := brokertest.StartWithBucket(t, t.TempDir(), bucket)
	adm := admin(t, br.Addr())
	details, err := adm.ListTopics(ctx(t), "old")
	if err != nil {
		t.Fatal(err)
	}
	d := details["old"]
	if want := [16]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}; d.ID != want || len(d.Partitions) != 2 {
		t.Fatalf("topic carried over as %+v", d)
	}
	cl, err := adm.BrokerMetadata(ctx(t))
	if err != nil || cl.Cluster != "legacyClusterId0000000" {
		t.Fatalf("cluster %q %v", cl.Cluster, err)
	}
	resp, err := kmsg.NewPtrInitProducerIDRequest().RequestWith(ctx(t), client(t, br.Addr()))
	if err != nil || resp.ProducerID < 5000 {
		t.Fatalf("producer id %d after a catalog that had handed out ids below 5000 (%v)", resp.ProducerID, err)
	}
	p := client(t, br.Addr(), kgo.DefaultProduceTopic("old"))
	if err := p.ProduceSync(ctx(t), &kgo.Record{Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// TestDataDirOfAnotherCluster: a data directory used with one bucket is
// refused with another bucket's cluster, with a message naming both.
func TestDataDirOfAnotherCluster(t *testing.T) {
	dir := t.TempDir()
	first := brokertest.StartWithBucket(t, dir, mem.New("one"))
	first.Close()
	cfg, err := config.Load(config.LoadOptions{Flags: map[string]string{"log.dirs": dir, "listeners": "127.0.0.1:0"}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = broker.New(broker.Options{Config: cfg, Bucket: mem.New("two")})
	if err == nil || !strings.Contains(err.Error(), "belongs to cluster") || !strings.Contains(err.Error(), "use an empty data directory") {
		t.Fatalf("start on another cluster's bucket: %v", err)
	}
}

// TestAllocatedBrokerIDs: brokers started with node.id=-1 get ids above
// reserved.broker.max.id through the metadata log, distinct, kept across a
// restart on the same data directory (meta.properties), and serve as a
// cluster under them; a configured id above reserved.broker.max.id is
// refused at start.
func TestAllocatedBrokerIDs(t *testing.T) {
	bucket := mem.New("ids")
	sets := []string{"node.id=-1", "tiercel.gossip.listener=127.0.0.1:0", "tiercel.gossip.local=true", "tiercel.metadata.poll.ms=100"}
	a := brokertest.StartWithBucket(t, t.TempDir(), bucket, sets...)
	b := brokertest.StartWithBucket(t, t.TempDir(), bucket, append(sets, "tiercel.gossip.seeds="+a.GossipAddr())...)
	idOf := func(br *brokertest.Broker) int32 { return metadataOf(t, br.Addr()).ControllerID }
	if ia, ib := idOf(a), idOf(b); ia != 1001 || ib != 1002 {
		t.Fatalf("allocated ids %d and %d, want 1001 and 1002", ia, ib)
	}
	brokertest.WaitFor(t, "both brokers listed", func() bool { return len(metadataOf(t, a.Addr()).Brokers) == 2 })
	create(t, admin(t, a.Addr()), "both", 2, nil)
	brokertest.WaitFor(t, "each broker leading a partition", func() bool {
		led := map[int32]bool{}
		for _, tp := range metadataOf(t, b.Addr()).Topics {
			for _, p := range tp.Partitions {
				led[p.Leader] = true
			}
		}
		return led[1001] && led[1002]
	})

	b.Restart()
	if id := idOf(b); id != 1002 {
		t.Fatalf("after a restart on its data directory broker 1002 came back as %d", id)
	}

	cfg, err := config.Load(config.LoadOptions{Sets: []string{"node.id=5000"}, Flags: map[string]string{"log.dirs": t.TempDir(), "listeners": "127.0.0.1:0"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := broker.New(broker.Options{Config: cfg, Bucket: bucket}); err == nil || !strings.Contains(err.Error(), "reserved.broker.max.id") {
		t.Fatalf("start with node.id 5000: %v", err)
	}
}

package broker_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tiercel/tiercel/internal/brokertest"
)

func TestBrokerConfigsAndCluster(t *testing.T) {
	b := brokertest.Start(t, "num.partitions=2")
	adm := admin(t, b.Addr())
	rc, err := adm.DescribeBrokerConfigs(ctx(t), 1)
	if err != nil {
		t.Fatal(err)
	}
	find := func(rc kadm.ResourceConfigs, key string) kadm.Config {
		for _, c := range rc[0].Configs {
			if c.Key == key {
				return c
			}
		}
		t.Fatalf("%s not described", key)
		return kadm.Config{}
	}
	if c := find(rc, "num.partitions"); c.MaybeValue() != "2" || c.Source.String() != "STATIC_BROKER_CONFIG" {
		t.Fatalf("num.partitions %q from %s", c.MaybeValue(), c.Source)
	}
	if c := find(rc, "delete.topic.enable"); c.MaybeValue() != "true" || c.Source.String() != "DEFAULT_CONFIG" {
		t.Fatalf("delete.topic.enable %q from %s", c.MaybeValue(), c.Source)
	}
	// A dynamic broker default reaches topics that do not override it, and survives a restart.
	r, err := adm.AlterBrokerConfigs(ctx(t), []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "log.retention.ms", Value: kadm.StringPtr("1234567")}}, 1)
	if err != nil || r[0].Err != nil {
		t.Fatalf("alter broker: %v %v", err, r[0].Err)
	}
	r, _ = adm.AlterBrokerConfigs(ctx(t), []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "log.dirs", Value: kadm.StringPtr("/x")}}, 1)
	if !errors.Is(r[0].Err, kerr.InvalidConfig) {
		t.Fatalf("a read-only broker config changed: %v", r[0].Err)
	}
	create(t, adm, "inherits", 1, nil)
	b.Restart()
	adm = admin(t, b.Addr())
	tc, err := adm.DescribeTopicConfigs(ctx(t), "inherits")
	if err != nil {
		t.Fatal(err)
	}
	if c := find(tc, "retention.ms"); c.MaybeValue() != "1234567" || c.Source.String() != "DYNAMIC_BROKER_CONFIG" {
		t.Fatalf("retention.ms %q from %s after a dynamic broker change and restart", c.MaybeValue(), c.Source)
	}

	cl := client(t, b.Addr())
	dc, err := kmsg.NewPtrDescribeClusterRequest().RequestWith(ctx(t), cl)
	if err != nil || dc.ErrorCode != 0 || len(dc.Brokers) != 1 || dc.ClusterID == "" || fmt.Sprintf("%s:%d", dc.Brokers[0].Host, dc.Brokers[0].Port) != b.Addr() {
		t.Fatalf("describe cluster: %v %+v", err, dc)
	}
	md, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx(t), cl)
	if err != nil || md.ClusterID == nil || *md.ClusterID != dc.ClusterID {
		t.Fatalf("metadata and describe cluster disagree on the cluster id: %v", err)
	}
}

func TestOffsetForLeaderEpochAndDescribeTopicPartitions(t *testing.T) {
	b := brokertest.Start(t)
	adm := admin(t, b.Addr())
	create(t, adm, "a", 3, nil)
	create(t, adm, "b", 2, nil)
	p := client(t, b.Addr(), kgo.DefaultProduceTopic("a"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for i := 0; i < 5; i++ {
		if err := p.ProduceSync(ctx(t), &kgo.Record{Partition: 0, Value: []byte("x")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	cl := client(t, b.Addr())
	req := kmsg.NewPtrOffsetForLeaderEpochRequest()
	req.ReplicaID = -1
	rt := kmsg.NewOffsetForLeaderEpochRequestTopic()
	rt.Topic = "a"
	for _, c := range []struct{ current, epoch int32 }{{-1, 0}, {0, 5}, {1, 0}} {
		rp := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
		rp.CurrentLeaderEpoch, rp.LeaderEpoch = c.current, c.epoch
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx(t), cl)
	if err != nil {
		t.Fatal(err)
	}
	ps := resp.Topics[0].Partitions
	if ps[0].ErrorCode != 0 || ps[0].LeaderEpoch != 0 || ps[0].EndOffset != 5 {
		t.Errorf("epoch 0: %+v", ps[0])
	}
	if ps[1].ErrorCode != 0 || ps[1].LeaderEpoch != 0 || ps[1].EndOffset != 5 {
		t.Errorf("a later epoch answers the latest known: %+v", ps[1])
	}
	if ps[2].ErrorCode != kerr.UnknownLeaderEpoch.Code {
		t.Errorf("a current epoch newer than the leader's: %+v", ps[2])
	}

	// Five partitions, paged two at a time through the cursor.
	var seen []string
	var cursor *kmsg.DescribeTopicPartitionsRequestCursor
	for page := 0; page < 5; page++ {
		d := kmsg.NewPtrDescribeTopicPartitionsRequest()
		d.ResponsePartitionLimit = 2
		d.Cursor = cursor
		dr, err := d.RequestWith(ctx(t), cl)
		if err != nil {
			t.Fatal(err)
		}
		for _, tp := range dr.Topics {
			for _, p := range tp.Partitions {
				seen = append(seen, fmt.Sprintf("%s-%d", *tp.Topic, p.Partition))
			}
		}
		if dr.NextCursor == nil {
			break
		}
		cursor = &kmsg.DescribeTopicPartitionsRequestCursor{Topic: dr.NextCursor.Topic, Partition: dr.NextCursor.Partition}
	}
	if fmt.Sprint(seen) != "[a-0 a-1 a-2 b-0 b-1]" {
		t.Fatalf("paged partitions %v", seen)
	}
}

// TestFetchSessions drives KIP-227 by hand: a session is created, an
// incremental fetch returns only changed partitions, a wrong epoch and an
// unknown session are refused, and epoch -1 closes it.
func TestFetchSessions(t *testing.T) {
	b := brokertest.Start(t)
	create(t, admin(t, b.Addr()), "s", 2, nil)
	cl := client(t, b.Addr())
	// kgo sends the newest version both sides support (topic ids from v13).
	details, err := admin(t, b.Addr()).ListTopics(ctx(t), "s")
	if err != nil {
		t.Fatal(err)
	}
	topicID := details["s"].ID
	fetch := func(id, epoch int32, parts ...int32) *kmsg.FetchResponse {
		t.Helper()
		r := kmsg.NewPtrFetchRequest()
		r.SessionID, r.SessionEpoch, r.MaxBytes = id, epoch, 1<<20
		if len(parts) > 0 {
			ft := kmsg.NewFetchRequestTopic()
			ft.Topic, ft.TopicID = "s", topicID
			for _, p := range parts {
				fp := kmsg.NewFetchRequestTopicPartition()
				fp.Partition, fp.PartitionMaxBytes, fp.CurrentLeaderEpoch = p, 1<<20, -1
				ft.Partitions = append(ft.Partitions, fp)
			}
			r.Topics = append(r.Topics, ft)
		}
		resp, err := r.RequestWith(ctx(t), cl)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	count := func(r *kmsg.FetchResponse) int {
		n := 0
		for _, tp := range r.Topics {
			n += len(tp.Partitions)
		}
		return n
	}
	first := fetch(0, 0, 0, 1)
	if first.ErrorCode != 0 || first.SessionID == 0 || count(first) != 2 || first.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("session creation: %+v", first)
	}
	id := first.SessionID
	if r := fetch(id, 1); r.ErrorCode != 0 || count(r) != 0 {
		t.Fatalf("an incremental fetch with nothing new returned %d partitions (error %d)", count(r), r.ErrorCode)
	}
	p := client(t, b.Addr(), kgo.DefaultProduceTopic("s"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err := p.ProduceSync(ctx(t), &kgo.Record{Partition: 1, Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	r := fetch(id, 2)
	if r.ErrorCode != 0 || count(r) != 1 || r.Topics[0].Partitions[0].Partition != 1 || len(r.Topics[0].Partitions[0].RecordBatches) == 0 {
		t.Fatalf("incremental fetch after a produce to partition 1: %+v", r)
	}
	if r := fetch(id, 2); r.ErrorCode != kerr.InvalidFetchSessionEpoch.Code {
		t.Fatalf("a repeated epoch: error %d", r.ErrorCode)
	}
	if r := fetch(12345, 1); r.ErrorCode != kerr.FetchSessionIDNotFound.Code {
		t.Fatalf("an unknown session: error %d", r.ErrorCode)
	}
	if r := fetch(id, -1, 0); r.ErrorCode != 0 || r.SessionID != 0 {
		t.Fatalf("closing the session: %+v", r)
	}
	if r := fetch(id, 4); r.ErrorCode != kerr.FetchSessionIDNotFound.Code {
		t.Fatalf("a closed session still answered: error %d", r.ErrorCode)
	}
	// A client whose response was lost still names its old session with a
	// full fetch (epoch 0): it gets a new session, not an error (Kafka
	// closes the named session if it exists and carries on).
	if r := fetch(id, 0); r.ErrorCode != 0 || r.SessionID == 0 || r.SessionID == id {
		t.Fatalf("a full fetch naming a gone session: %+v", r)
	}
}

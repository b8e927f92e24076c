package broker_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tiercel/tiercel/internal/brokertest"
)

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func client(t *testing.T, addr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func admin(t *testing.T, addr string) *kadm.Client { return kadm.NewClient(client(t, addr)) }

func create(t *testing.T, adm *kadm.Client, name string, partitions int32, configs map[string]*string) {
	t.Helper()
	r, err := adm.CreateTopic(ctx(t), partitions, 1, configs, name)
	if err != nil || r.Err != nil {
		t.Fatalf("create %s: %v %v", name, err, r.Err)
	}
}

// consume reads n records from the start of every partition of topic. The
// client is closed (a group consumer leaves) before it returns.
func consume(t *testing.T, addr, topic string, n int, opts ...kgo.Opt) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	c := ctx(t)
	for len(out) < n {
		fs := cl.PollFetches(c)
		if c.Err() != nil {
			t.Fatalf("consumed %d of %d", len(out), n)
		}
		fs.EachError(func(_ string, p int32, err error) { t.Fatalf("fetch %d: %v", p, err) })
		out = append(out, fs.Records()...)
	}
	return out
}

func TestTopicLifecycle(t *testing.T) {
	b := brokertest.Start(t)
	adm := admin(t, b.Addr())
	create(t, adm, "life", 3, map[string]*string{"retention.ms": kadm.StringPtr("3600000"), "cleanup.policy": kadm.StringPtr("delete")})

	// kadm returns the topic's error both in r.Err and as err.
	r, err := adm.CreateTopic(ctx(t), 1, 1, nil, "life")
	if !errors.Is(err, kerr.TopicAlreadyExists) || !errors.Is(r.Err, kerr.TopicAlreadyExists) {
		t.Fatalf("duplicate create: %v %v", err, r.Err)
	}
	details, err := adm.ListTopics(ctx(t))
	if err != nil || len(details["life"].Partitions) != 3 || details["life"].ID == (kadm.TopicID{}) {
		t.Fatalf("list: %v %+v", err, details["life"])
	}

	rc, err := adm.DescribeTopicConfigs(ctx(t), "life")
	if err != nil {
		t.Fatal(err)
	}
	cfgs := map[string]kadm.Config{}
	for _, c := range rc[0].Configs {
		cfgs[c.Key] = c
	}
	if c := cfgs["retention.ms"]; c.MaybeValue() != "3600000" || c.Source.String() != "DYNAMIC_TOPIC_CONFIG" {
		t.Errorf("retention.ms: %q from %s", c.MaybeValue(), c.Source)
	}
	if c := cfgs["segment.bytes"]; c.MaybeValue() != "1073741824" || c.Source.String() != "DEFAULT_CONFIG" {
		t.Errorf("segment.bytes: %q from %s", c.MaybeValue(), c.Source)
	}
	if len(cfgs) < 20 {
		t.Errorf("DescribeConfigs listed %d configs; Kafka lists every one", len(cfgs))
	}

	ar, err := adm.AlterTopicConfigs(ctx(t), []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "max.message.bytes", Value: kadm.StringPtr("5000")}, {Op: kadm.DeleteConfig, Name: "retention.ms"}}, "life")
	if err != nil || ar[0].Err != nil {
		t.Fatalf("alter: %v %v", err, ar[0].Err)
	}
	ar, err = adm.AlterTopicConfigs(ctx(t), []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "cleanup.policy", Value: kadm.StringPtr("shred")}}, "life")
	if err != nil || !errors.Is(ar[0].Err, kerr.InvalidConfig) {
		t.Fatalf("invalid alter: %v %v", err, ar[0].Err)
	}
	rc, _ = adm.DescribeTopicConfigs(ctx(t), "life")
	for _, c := range rc[0].Configs {
		if c.Key == "max.message.bytes" && c.MaybeValue() != "5000" {
			t.Errorf("max.message.bytes after alter: %s", c.MaybeValue())
		}
		if c.Key == "retention.ms" && c.Source.String() != "DEFAULT_CONFIG" {
			t.Errorf("retention.ms after delete: %s", c.Source)
		}
	}

	cp, err := adm.CreatePartitions(ctx(t), 2, "life")
	if err != nil || cp["life"].Err != nil {
		t.Fatalf("create partitions: %v %v", err, cp["life"].Err)
	}
	cp, _ = adm.UpdatePartitions(ctx(t), 2, "life")
	if !errors.Is(cp["life"].Err, kerr.InvalidPartitions) {
		t.Fatalf("shrinking partitions: %v", cp["life"].Err)
	}

	b.Restart()
	adm = admin(t, b.Addr())
	details, _ = adm.ListTopics(ctx(t))
	if len(details["life"].Partitions) != 5 {
		t.Fatalf("after restart: %+v", details["life"])
	}
	id := details["life"].ID
	dr, err := adm.DeleteTopics(ctx(t), "life")
	if err != nil || dr["life"].Err != nil {
		t.Fatalf("delete: %v %v", err, dr["life"].Err)
	}
	// A fresh client: kadm answers ListTopics from kgo's metadata cache.
	details, _ = admin(t, b.Addr()).ListTopics(ctx(t))
	if _, ok := details["life"]; ok {
		t.Fatalf("topic still listed after delete: %+v", details["life"])
	}
	create(t, adm, "byid", 1, nil)
	details, _ = admin(t, b.Addr()).ListTopics(ctx(t))
	req := kmsg.NewPtrDeleteTopicsRequest()
	req.Version = 6
	for _, tid := range [][16]byte{details["byid"].ID, id} {
		rt := kmsg.NewDeleteTopicsRequestTopic()
		rt.TopicID = tid
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(ctx(t), client(t, b.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range resp.Topics {
		if r.TopicID == id && r.ErrorCode != kerr.UnknownTopicID.Code {
			t.Errorf("deleting a deleted id: %d", r.ErrorCode)
		}
		if r.TopicID == details["byid"].ID && (r.ErrorCode != 0 || r.Topic == nil || *r.Topic != "byid") {
			t.Errorf("delete by id: %d %v", r.ErrorCode, r.Topic)
		}
	}
}

func TestInvalidTopicNames(t *testing.T) {
	b := brokertest.Start(t)
	adm := admin(t, b.Addr())
	for _, name := range []string{"bad name", "..", strings.Repeat("x", 250), "a/b", "ü"} {
		r, err := adm.CreateTopic(ctx(t), 1, 1, nil, name)
		if !errors.Is(err, kerr.InvalidTopicException) || !errors.Is(r.Err, kerr.InvalidTopicException) {
			t.Errorf("%q: %v %v", name, err, r.Err)
		}
	}
	r, _ := adm.CreateTopic(ctx(t), 1, 3, nil, "rf3")
	if !errors.Is(r.Err, kerr.InvalidReplicationFactor) {
		t.Errorf("replication factor 3 on one broker: %v", r.Err)
	}
	r, _ = adm.CreateTopic(ctx(t), 0, 1, nil, "zero")
	if !errors.Is(r.Err, kerr.InvalidPartitions) {
		t.Errorf("zero partitions: %v", r.Err)
	}
	r, _ = adm.CreateTopic(ctx(t), 1, 1, map[string]*string{"no.such.config": kadm.StringPtr("1")}, "cfg")
	if !errors.Is(r.Err, kerr.InvalidConfig) {
		t.Errorf("unknown config: %v", r.Err)
	}
}

func TestProduceConsumeCodecsAndKeyOrder(t *testing.T) {
	b := brokertest.Start(t)
	adm := admin(t, b.Addr())
	create(t, adm, "codecs", 4, nil)
	codecs := map[string]kgo.CompressionCodec{"none": kgo.NoCompression(), "gzip": kgo.GzipCompression(), "snappy": kgo.SnappyCompression(), "lz4": kgo.Lz4Compression(), "zstd": kgo.ZstdCompression()}
	const perCodec = 400
	for name, codec := range codecs {
		p := client(t, b.Addr(), kgo.DefaultProduceTopic("codecs"), kgo.ProducerBatchCompression(codec))
		var rs []*kgo.Record
		for i := 0; i < perCodec; i++ {
			rs = append(rs, &kgo.Record{Key: []byte(fmt.Sprintf("key-%d", i%10)), Value: []byte(fmt.Sprintf("%s|%d", name, i)),
				Headers: []kgo.RecordHeader{{Key: "codec", Value: []byte(name)}}})
		}
		if err := p.ProduceSync(ctx(t), rs...).FirstErr(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	got := consume(t, b.Addr(), "codecs", perCodec*len(codecs))
	if len(got) != perCodec*len(codecs) {
		t.Fatalf("%d records", len(got))
	}
	// Per key, records of one producer keep their order.
	last := map[string]int{}
	keyPart := map[string]int32{}
	for _, r := range got {
		var codec string
		var i int
		parts := strings.SplitN(string(r.Value), "|", 2)
		codec = parts[0]
		fmt.Sscan(parts[1], &i)
		if string(r.Headers[0].Value) != codec {
			t.Fatalf("header %q on %q", r.Headers[0].Value, r.Value)
		}
		k := codec + string(r.Key)
		if p, ok := keyPart[string(r.Key)]; ok && p != r.Partition {
			t.Fatalf("key %s in partitions %d and %d", r.Key, p, r.Partition)
		}
		keyPart[string(r.Key)] = r.Partition
		if l, ok := last[k]; ok && i <= l {
			t.Fatalf("key %s: %d after %d", k, i, l)
		}
		last[k] = i
	}
}

func TestLongPollWakesOnAppend(t *testing.T) {
	b := brokertest.Start(t)
	adm := admin(t, b.Addr())
	create(t, adm, "poll", 1, nil)
	cons := client(t, b.Addr(), kgo.ConsumeTopics("poll"), kgo.FetchMaxWait(10*time.Second), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	got := make(chan time.Time, 1)
	go func() {
		fs := cons.PollFetches(ctx(t))
		if len(fs.Records()) > 0 {
			got <- time.Now()
		}
	}()
	time.Sleep(500 * time.Millisecond) // the consumer's fetch is now parked
	prod := client(t, b.Addr(), kgo.DefaultProduceTopic("poll"))
	sent := time.Now()
	if err := prod.ProduceSync(ctx(t), &kgo.Record{Value: []byte("wake")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	select {
	case at := <-got:
		if d := at.Sub(sent); d > 3*time.Second {
			t.Fatalf("consumer woke %v after the append; the long poll was not woken", d)
		}
	case <-time.After(8 * time.Second):
		t.Fatal("the parked fetch never returned the record")
	}
}

func TestAutoCreate(t *testing.T) {
	on := brokertest.Start(t, "num.partitions=3")
	p := client(t, on.Addr(), kgo.DefaultProduceTopic("auto"), kgo.AllowAutoTopicCreation())
	if err := p.ProduceSync(ctx(t), &kgo.Record{Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	details, _ := admin(t, on.Addr()).ListTopics(ctx(t))
	if len(details["auto"].Partitions) != 3 {
		t.Fatalf("auto-created topic: %+v", details["auto"])
	}

	off := brokertest.Start(t, "auto.create.topics.enable=false")
	p = client(t, off.Addr(), kgo.DefaultProduceTopic("nope"), kgo.AllowAutoTopicCreation(), kgo.RecordDeliveryTimeout(2*time.Second))
	err := p.ProduceSync(ctx(t), &kgo.Record{Value: []byte("x")}).FirstErr()
	if !errors.Is(err, kerr.UnknownTopicOrPartition) {
		t.Fatalf("produce to an unknown topic with auto-create off: %v", err)
	}
}

func TestRollRetentionRestart(t *testing.T) {
	b := brokertest.Start(t, "log.retention.check.interval.ms=200")
	adm := admin(t, b.Addr())
	create(t, adm, "roll", 1, map[string]*string{"segment.bytes": kadm.StringPtr("2048")})
	// A compact-only topic is never trimmed by retention (compaction itself
	// is not implemented yet: its keys must not be lost meanwhile).
	create(t, adm, "keep", 1, map[string]*string{"segment.bytes": kadm.StringPtr("2048"), "cleanup.policy": kadm.StringPtr("compact"), "retention.bytes": kadm.StringPtr("1"), "retention.ms": kadm.StringPtr("1")})
	p := client(t, b.Addr(), kgo.DefaultProduceTopic("roll"), kgo.ProducerLinger(0))
	for i := 0; i < 200; i++ {
		v := []byte(fmt.Sprintf("%04d-%s", i, strings.Repeat("x", 80)))
		if err := p.ProduceSync(ctx(t), &kgo.Record{Value: v}, &kgo.Record{Topic: "keep", Key: v, Value: v}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	dirs, err := adm.DescribeAllLogDirs(ctx(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	var size int64
	dirs.Each(func(d kadm.DescribedLogDir) {
		d.Topics.Each(func(p kadm.DescribedLogDirPartition) { size += p.Size })
	})
	if size < 200*80 {
		t.Fatalf("log dirs report %d bytes", size)
	}
	b.Restart()
	got := consume(t, b.Addr(), "roll", 200)
	for i, r := range got {
		if r.Offset != int64(i) || !strings.HasPrefix(string(r.Value), fmt.Sprintf("%04d-", i)) {
			t.Fatalf("record %d after restart: offset %d %q", i, r.Offset, r.Value[:4])
		}
	}
	// Retention by size removes whole old segments.
	adm = admin(t, b.Addr())
	if _, err := adm.AlterTopicConfigs(ctx(t), []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.bytes", Value: kadm.StringPtr("4096")}}, "roll"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		starts, err := adm.ListStartOffsets(ctx(t), "roll")
		if err != nil {
			t.Fatal(err)
		}
		if o, _ := starts.Lookup("roll", 0); o.Offset > 100 {
			kept, err := adm.ListStartOffsets(ctx(t), "keep")
			if err != nil {
				t.Fatal(err)
			}
			if o, _ := kept.Lookup("keep", 0); o.Offset != 0 {
				t.Fatalf("retention trimmed the compact-only topic to %d", o.Offset)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("retention.bytes did not advance the log start offset")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestListOffsetsAndDeleteRecords(t *testing.T) {
	b := brokertest.Start(t)
	adm := admin(t, b.Addr())
	create(t, adm, "offs", 1, nil)
	p := client(t, b.Addr(), kgo.DefaultProduceTopic("offs"), kgo.ProducerLinger(0))
	base := time.UnixMilli(1_700_000_000_000)
	for i := 0; i < 10; i++ {
		if err := p.ProduceSync(ctx(t), &kgo.Record{Value: []byte{byte(i)}, Timestamp: base.Add(time.Duration(i) * time.Second)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	lookup := func(l kadm.ListedOffsets, err error) kadm.ListedOffset {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		o, _ := l.Lookup("offs", 0)
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		return o
	}
	if o := lookup(adm.ListEndOffsets(ctx(t), "offs")); o.Offset != 10 {
		t.Errorf("latest %d", o.Offset)
	}
	if o := lookup(adm.ListStartOffsets(ctx(t), "offs")); o.Offset != 0 {
		t.Errorf("earliest %d", o.Offset)
	}
	if o := lookup(adm.ListOffsetsAfterMilli(ctx(t), base.Add(3500*time.Millisecond).UnixMilli(), "offs")); o.Offset != 4 {
		t.Errorf("by timestamp: %d, want 4", o.Offset)
	}
	if o := lookup(adm.ListOffsetsAfterMilli(ctx(t), base.Add(time.Hour).UnixMilli(), "offs")); o.Offset != 10 {
		t.Errorf("after the last timestamp kadm reports the end: %d", o.Offset)
	}
	if o := lookup(adm.ListMaxTimestampOffsets(ctx(t), "offs")); o.Offset != 9 || o.Timestamp != base.Add(9*time.Second).UnixMilli() {
		t.Errorf("max timestamp: %+v", o)
	}
	dr, err := adm.DeleteRecords(ctx(t), kadm.Offsets{"offs": {0: {Topic: "offs", Partition: 0, At: 6}}})
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := dr.Lookup("offs", 0); r.Err != nil || r.LowWatermark != 6 {
		t.Fatalf("delete records: %+v", r)
	}
	if o := lookup(adm.ListStartOffsets(ctx(t), "offs")); o.Offset != 6 {
		t.Errorf("earliest after delete-records %d", o.Offset)
	}
	dr, _ = adm.DeleteRecords(ctx(t), kadm.Offsets{"offs": {0: {Topic: "offs", Partition: 0, At: 50}}})
	if r, _ := dr.Lookup("offs", 0); !errors.Is(r.Err, kerr.OffsetOutOfRange) {
		t.Errorf("delete beyond the high watermark: %v", r.Err)
	}
	got := consume(t, b.Addr(), "offs", 4)
	if got[0].Offset != 6 {
		t.Errorf("consumption starts at %d after delete-records", got[0].Offset)
	}
}

func TestIdempotentConcurrentProducers(t *testing.T) {
	b := brokertest.Start(t)
	create(t, admin(t, b.Addr()), "idem", 6, nil)
	var wg sync.WaitGroup
	const producers, each = 4, 2000
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			cl := client(t, b.Addr(), kgo.DefaultProduceTopic("idem"), kgo.RequiredAcks(kgo.AllISRAcks()))
			var inner sync.WaitGroup
			for i := 0; i < each; i++ {
				inner.Add(1)
				cl.Produce(ctx(t), &kgo.Record{Key: []byte(fmt.Sprint(i % 13)), Value: []byte(fmt.Sprintf("%d-%d", p, i))}, func(_ *kgo.Record, err error) {
					if err != nil {
						t.Error(err)
					}
					inner.Done()
				})
			}
			inner.Wait()
		}(p)
	}
	wg.Wait()
	got := consume(t, b.Addr(), "idem", producers*each)
	seen := map[string]bool{}
	for _, r := range got {
		if seen[string(r.Value)] {
			t.Fatalf("duplicate %s", r.Value)
		}
		seen[string(r.Value)] = true
	}
}

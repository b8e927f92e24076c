package broker_test

import (
	"bytes"
	"math/rand"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tiercel/tiercel/internal/brokertest"
	"github.com/tiercel/tiercel/internal/recordbatch"
)

// TestLargeFetchesAtEveryVersion: record sets large enough to be written
// from their own buffers (writev) come back byte for byte at every Fetch
// version (int32 and compact length prefixes), several in one response,
// next to small ones that are encoded as usual.
func TestLargeFetchesAtEveryVersion(t *testing.T) {
	b := brokertest.Start(t)
	create(t, admin(t, b.Addr()), "big", 3, nil)
	cl := client(t, b.Addr(), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	// ~8 KiB that does not compress (kgo compresses by default).
	value := func(p, i int) []byte {
		rng := rand.New(rand.NewSource(int64(p*100 + i)))
		v := make([]byte, 8000)
		rng.Read(v)
		return v
	}
	counts := []int{5, 1, 4} // partition 1's set stays below the splice size
	for p, n := range counts {
		for i := range n {
			r := &kgo.Record{Topic: "big", Partition: int32(p), Value: value(p, i)}
			if err := cl.ProduceSync(ctx(t), r).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	details, err := admin(t, b.Addr()).ListTopics(ctx(t), "big")
	if err != nil {
		t.Fatal(err)
	}
	conn := dial(t, b.Addr())
	av, err := kmsg.NewPtrApiVersionsRequest().RequestWith(ctx(t), cl)
	if err != nil {
		t.Fatal(err)
	}
	var maxV int16
	for _, k := range av.ApiKeys {
		if k.ApiKey == 1 {
			maxV = k.MaxVersion
		}
	}
	for v := int16(4); v <= maxV; v++ {
		req := kmsg.NewPtrFetchRequest()
		req.ReplicaID, req.MaxBytes, req.MaxWaitMillis = -1, 10<<20, 0
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic, rt.TopicID = "big", details["big"].ID
		for p := range counts {
			rp := kmsg.NewFetchRequestTopicPartition()
			rp.Partition, rp.PartitionMaxBytes, rp.LogStartOffset = int32(p), 1<<20, -1
			rp.CurrentLeaderEpoch = -1
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
		resp := conn.roundTrip(req, v).(*kmsg.FetchResponse)
		if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != len(counts) {
			t.Fatalf("v%d: %d topics", v, len(resp.Topics))
		}
		for _, rp := range resp.Topics[0].Partitions {
			if rp.ErrorCode != 0 {
				t.Fatalf("v%d partition %d: error %d", v, rp.Partition, rp.ErrorCode)
			}
			batches, err := recordbatch.Validate(rp.RecordBatches, recordbatch.ValidateOptions{Deep: true})
			if err != nil {
				t.Fatalf("v%d partition %d: %v", v, rp.Partition, err)
			}
			i := 0
			for _, bt := range batches {
				recs, err := recordbatch.Records(bt)
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range recs {
					if !bytes.Equal(r.Value, value(int(rp.Partition), i)) {
						t.Fatalf("v%d partition %d record %d differs", v, rp.Partition, i)
					}
					i++
				}
			}
			if i != counts[rp.Partition] || rp.HighWatermark != int64(counts[rp.Partition]) {
				t.Fatalf("v%d partition %d: %d records, high watermark %d; want %d", v, rp.Partition, i, rp.HighWatermark, counts[rp.Partition])
			}
		}
	}
}

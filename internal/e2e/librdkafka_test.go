package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/tiercel/tiercel/internal/brokertest"
)

// TestLibrdkafkaInterop drives the broker with librdkafka (bundled by
// confluent-kafka-go): its ApiVersions probing, admin topic creation,
// an idempotent acks=all producer with every codec, and a consumer reading
// back keys, values and headers in order.
func TestLibrdkafkaInterop(t *testing.T) {
	b := brokertest.Start(t)
	const topic = "rdkafka"

	adm, err := kafka.NewAdminClient(&kafka.ConfigMap{"bootstrap.servers": b.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := adm.CreateTopics(ctx, []kafka.TopicSpecification{{Topic: topic, NumPartitions: 2, ReplicationFactor: 1,
		Config: map[string]string{"retention.ms": "3600000"}}})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Error.Code() != kafka.ErrNoError {
		t.Fatalf("create topic: %v", res[0].Error)
	}
	md, err := adm.GetMetadata(nil, true, 10000)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(md.Topics[topic].Partitions); got != 2 {
		t.Fatalf("metadata shows %d partitions, want 2", got)
	}

	const perCodec = 200
	codecs := []string{"none", "gzip", "snappy", "lz4", "zstd"}
	for _, codec := range codecs {
		p, err := kafka.NewProducer(&kafka.ConfigMap{
			"bootstrap.servers":  b.Addr(),
			"enable.idempotence": true,
			"acks":               "all",
			"compression.codec":  codec,
			"linger.ms":          2,
		})
		if err != nil {
			t.Fatal(err)
		}
		tp := topic
		for i := 0; i < perCodec; i++ {
			err := p.Produce(&kafka.Message{
				TopicPartition: kafka.TopicPartition{Topic: &tp, Partition: int32(i % 2)},
				Key:            []byte(fmt.Sprintf("%s-%d", codec, i)),
				Value:          []byte(fmt.Sprintf("value %s %d", codec, i)),
				Headers:        []kafka.Header{{Key: "codec", Value: []byte(codec)}},
			}, nil)
			if err != nil {
				t.Fatal(err)
			}
		}
		delivered := 0
		for delivered < perCodec {
			select {
			case ev := <-p.Events():
				if m, ok := ev.(*kafka.Message); ok {
					if m.TopicPartition.Error != nil {
						t.Fatalf("%s: delivery failed: %v", codec, m.TopicPartition.Error)
					}
					delivered++
				}
			case <-ctx.Done():
				t.Fatalf("%s: %d of %d delivered before the deadline", codec, delivered, perCodec)
			}
		}
		p.Close()
	}

	c, err := kafka.NewConsumer(&kafka.ConfigMap{
		"bootstrap.servers":  b.Addr(),
		"group.id":           "interop-unused",
		"enable.auto.commit": false,
		"auto.offset.reset":  "earliest",
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tp := topic
	if err := c.Assign([]kafka.TopicPartition{{Topic: &tp, Partition: 0, Offset: kafka.OffsetBeginning}, {Topic: &tp, Partition: 1, Offset: kafka.OffsetBeginning}}); err != nil {
		t.Fatal(err)
	}
	want := perCodec * len(codecs)
	next := map[int32]int{}
	for got := 0; got < want; {
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d before the deadline", got, want)
		}
		ev := c.Poll(200)
		m, ok := ev.(*kafka.Message)
		if !ok {
			continue
		}
		part := m.TopicPartition.Partition
		// Producers ran one codec after another, each alternating partitions,
		// so partition p holds i = p, p+2, ... of each codec in turn.
		idx := next[part]
		codec := codecs[idx/(perCodec/2)]
		i := (idx%(perCodec/2))*2 + int(part)
		if wantKey := fmt.Sprintf("%s-%d", codec, i); string(m.Key) != wantKey {
			t.Fatalf("partition %d record %d: key %q, want %q", part, idx, m.Key, wantKey)
		}
		if wantVal := fmt.Sprintf("value %s %d", codec, i); string(m.Value) != wantVal {
			t.Fatalf("partition %d record %d: value %q, want %q", part, idx, m.Value, wantVal)
		}
		if len(m.Headers) != 1 || m.Headers[0].Key != "codec" || string(m.Headers[0].Value) != codec {
			t.Fatalf("partition %d record %d: headers %v", part, idx, m.Headers)
		}
		if int64(m.TopicPartition.Offset) != int64(idx) {
			t.Fatalf("partition %d record %d at offset %d", part, idx, m.TopicPartition.Offset)
		}
		next[part]++
		got++
	}
}

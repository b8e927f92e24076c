package e2e

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/IBM/sarama"
	segkafka "github.com/segmentio/kafka-go"

	"github.com/tiercel/tiercel/internal/brokertest"
)

// TestSaramaInterop produces with sarama's idempotent sync producer at
// several protocol versions and reads back with its partition consumer.
func TestSaramaInterop(t *testing.T) {
	b := brokertest.Start(t)
	for _, version := range []sarama.KafkaVersion{sarama.V2_1_0_0, sarama.V3_6_0_0} {
		t.Run(version.String(), func(t *testing.T) {
			topic := "sarama-" + version.String()
			cfg := sarama.NewConfig()
			cfg.Version = version
			cfg.ClientID = "tiercel-e2e"
			cfg.Producer.RequiredAcks = sarama.WaitForAll
			cfg.Producer.Idempotent = true
			cfg.Producer.Return.Successes = true
			cfg.Producer.Compression = sarama.CompressionSnappy
			cfg.Net.MaxOpenRequests = 1
			cfg.Consumer.Return.Errors = true

			adm, err := sarama.NewClusterAdmin([]string{b.Addr()}, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer adm.Close()
			if err := adm.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 3, ReplicationFactor: 1}, false); err != nil {
				t.Fatal(err)
			}

			prod, err := sarama.NewSyncProducer([]string{b.Addr()}, cfg)
			if err != nil {
				t.Fatal(err)
			}
			const n = 300
			offsets := map[int32][]int64{}
			for i := 0; i < n; i++ {
				part, off, err := prod.SendMessage(&sarama.ProducerMessage{
					Topic: topic, Key: sarama.StringEncoder(fmt.Sprintf("k%d", i%7)), Value: sarama.StringEncoder(fmt.Sprint(i)),
					Headers: []sarama.RecordHeader{{Key: []byte("i"), Value: []byte(fmt.Sprint(i))}},
				})
				if err != nil {
					t.Fatalf("send %d: %v", i, err)
				}
				offsets[part] = append(offsets[part], off)
			}
			prod.Close()

			cons, err := sarama.NewConsumer([]string{b.Addr()}, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer cons.Close()
			total := 0
			for part, offs := range offsets {
				pc, err := cons.ConsumePartition(topic, part, sarama.OffsetOldest)
				if err != nil {
					t.Fatal(err)
				}
				for j, want := range offs {
					select {
					case m := <-pc.Messages():
						if m.Offset != want {
							t.Fatalf("partition %d message %d at offset %d, producer was told %d", part, j, m.Offset, want)
						}
						if len(m.Headers) != 1 || string(m.Headers[0].Value) != string(m.Value) {
							t.Fatalf("partition %d offset %d: header %v does not match value %q", part, m.Offset, m.Headers, m.Value)
						}
						total++
					case err := <-pc.Errors():
						t.Fatal(err)
					case <-time.After(15 * time.Second):
						t.Fatalf("partition %d: message %d did not arrive", part, j)
					}
				}
				pc.Close()
			}
			if total != n {
				t.Fatalf("consumed %d, produced %d", total, n)
			}
		})
	}
}

// TestKafkaGoInterop produces with segmentio/kafka-go's Writer (acks=all,
// zstd) and reads back with its Reader.
func TestKafkaGoInterop(t *testing.T) {
	b := brokertest.Start(t)
	const topic = "kafkago"
	conn, err := segkafka.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.CreateTopics(segkafka.TopicConfig{Topic: topic, NumPartitions: 1, ReplicationFactor: 1}); err != nil {
		t.Fatal(err)
	}
	conn.Close()

	w := &segkafka.Writer{
		Addr: segkafka.TCP(b.Addr()), Topic: topic, RequiredAcks: segkafka.RequireAll,
		Compression: segkafka.Zstd, BatchTimeout: 5 * time.Millisecond,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const n = 500
	msgs := make([]segkafka.Message, n)
	for i := range msgs {
		msgs[i] = segkafka.Message{Key: []byte(fmt.Sprint(i % 5)), Value: []byte(fmt.Sprintf("v%04d", i))}
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	w.Close()

	r := segkafka.NewReader(segkafka.ReaderConfig{
		Brokers: []string{b.Addr()}, Topic: topic, Partition: 0, MaxWait: 100 * time.Millisecond,
		Dialer: &segkafka.Dialer{Timeout: 5 * time.Second, Resolver: &net.Resolver{}},
	})
	defer r.Close()
	for i := 0; i < n; i++ {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
		if m.Offset != int64(i) || string(m.Value) != fmt.Sprintf("v%04d", i) {
			t.Fatalf("message %d: offset %d value %q", i, m.Offset, m.Value)
		}
	}
}

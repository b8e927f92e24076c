package e2e

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	segkafka "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tiercel/tiercel/internal/brokertest"
)

// seenSet records what group members consumed, by partition and offset.
type seenSet struct {
	mu sync.Mutex
	m  map[string]bool
}

func (s *seenSet) add(p int32, off int64) {
	s.mu.Lock()
	s.m[fmt.Sprintf("%d/%d", p, off)] = true
	s.mu.Unlock()
}

func (s *seenSet) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

const (
	interopPartitions = 4
	interopRecords    = 400
)

// groupFixture creates a topic with records spread over its partitions.
func groupFixture(t *testing.T, addr, topic string) {
	t.Helper()
	createTopic(t, addr, topic, interopPartitions)
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var rs []*kgo.Record
	for i := range interopRecords {
		rs = append(rs, &kgo.Record{Value: []byte(fmt.Sprint(i))})
	}
	if err := cl.ProduceSync(context.Background(), rs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// waitSeen waits until the members consumed every record.
func waitSeen(t *testing.T, seen *seenSet) {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for seen.len() < interopRecords {
		if time.Now().After(deadline) {
			t.Fatalf("group consumed %d of %d records", seen.len(), interopRecords)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkCommitted: after the members closed, the group's committed offsets
// are the ends of every partition.
func checkCommitted(t *testing.T, addr, groupID, topic string) {
	t.Helper()
	adm, cl := newAdmin(t, addr)
	defer cl.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		offs, err := adm.FetchOffsets(ctx, groupID)
		cancel()
		ok := err == nil
		var got []int64
		for p := int32(0); ok && p < interopPartitions; p++ {
			o, found := offs.Lookup(topic, p)
			got = append(got, o.At)
			ok = found && o.At == interopRecords/interopPartitions
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("group %s committed %v (err %v), want %d on each partition", groupID, got, err, interopRecords/interopPartitions)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type saramaHandler struct{ seen *seenSet }

func (saramaHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (saramaHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h saramaHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for m := range claim.Messages() {
		h.seen.add(m.Partition, m.Offset)
		sess.MarkMessage(m, "")
	}
	return nil
}

// TestGroupInterop runs two-member consumer groups of sarama, kafka-go and
// librdkafka (classic, and KIP-848 group.protocol=consumer) against the
// broker: every record is consumed and the commits land.
func TestGroupInterop(t *testing.T) {
	b := brokertest.Start(t, "group.initial.rebalance.delay.ms=100", "group.consumer.heartbeat.interval.ms=500")
	for _, version := range []sarama.KafkaVersion{sarama.V2_1_0_0, sarama.V3_6_0_0} {
		t.Run("sarama-"+version.String(), func(t *testing.T) {
			topic, groupID := "sg-"+version.String(), "sarama-"+version.String()
			groupFixture(t, b.Addr(), topic)
			cfg := sarama.NewConfig()
			cfg.Version = version
			cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
			cfg.Consumer.Offsets.AutoCommit.Interval = 100 * time.Millisecond
			cfg.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{sarama.NewBalanceStrategyRange()}
			seen := &seenSet{m: map[string]bool{}}
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			for range 2 {
				g, err := sarama.NewConsumerGroup([]string{b.Addr()}, groupID, cfg)
				if err != nil {
					t.Fatal(err)
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer g.Close()
					for ctx.Err() == nil {
						if err := g.Consume(ctx, []string{topic}, saramaHandler{seen}); err != nil && ctx.Err() == nil {
							t.Logf("sarama consume: %v", err)
							time.Sleep(100 * time.Millisecond)
						}
					}
				}()
			}
			waitSeen(t, seen)
			time.Sleep(300 * time.Millisecond) // one more autocommit
			cancel()
			wg.Wait()
			checkCommitted(t, b.Addr(), groupID, topic)
		})
	}

	t.Run("kafka-go", func(t *testing.T) {
		topic, groupID := "kg", "kafka-go"
		groupFixture(t, b.Addr(), topic)
		seen := &seenSet{m: map[string]bool{}}
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for range 2 {
			r := segkafka.NewReader(segkafka.ReaderConfig{
				Brokers: []string{b.Addr()}, GroupID: groupID, Topic: topic,
				StartOffset: segkafka.FirstOffset, HeartbeatInterval: 200 * time.Millisecond,
				MaxWait: 200 * time.Millisecond,
			})
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer r.Close()
				for {
					m, err := r.FetchMessage(ctx)
					if err != nil {
						return
					}
					seen.add(int32(m.Partition), m.Offset)
					if err := r.CommitMessages(ctx, m); err != nil && ctx.Err() == nil {
						t.Errorf("kafka-go commit: %v", err)
					}
				}
			}()
		}
		waitSeen(t, seen)
		cancel()
		wg.Wait()
		checkCommitted(t, b.Addr(), groupID, topic)
	})

	for _, protocol := range []string{"classic", "consumer"} {
		t.Run("librdkafka-"+protocol, func(t *testing.T) {
			topic, groupID := "rg-"+protocol, "rdkafka-"+protocol
			groupFixture(t, b.Addr(), topic)
			seen := &seenSet{m: map[string]bool{}}
			var cs []*kafka.Consumer
			for range 2 {
				conf := &kafka.ConfigMap{
					"bootstrap.servers": b.Addr(), "group.id": groupID, "auto.offset.reset": "earliest",
					"enable.auto.commit": true, "auto.commit.interval.ms": 100, "group.protocol": protocol,
				}
				if protocol == "classic" {
					_ = conf.SetKey("session.timeout.ms", 6000)
					_ = conf.SetKey("heartbeat.interval.ms", 200)
				}
				c, err := kafka.NewConsumer(conf)
				if err != nil {
					t.Fatal(err)
				}
				if err := c.Subscribe(topic, nil); err != nil {
					t.Fatal(err)
				}
				cs = append(cs, c)
			}
			deadline := time.Now().Add(45 * time.Second)
			for seen.len() < interopRecords && time.Now().Before(deadline) {
				for _, c := range cs {
					if m, ok := c.Poll(20).(*kafka.Message); ok {
						seen.add(m.TopicPartition.Partition, int64(m.TopicPartition.Offset))
					}
				}
			}
			if seen.len() < interopRecords {
				t.Fatalf("librdkafka group consumed %d of %d", seen.len(), interopRecords)
			}
			for _, c := range cs {
				if _, err := c.Commit(); err != nil && err.(kafka.Error).Code() != kafka.ErrNoOffset {
					t.Logf("commit: %v", err)
				}
			}
			for _, c := range cs {
				c.Close()
			}
			checkCommitted(t, b.Addr(), groupID, topic)
			adm, cl := newAdmin(t, b.Addr())
			defer cl.Close()
			listed, err := adm.ListGroupsByType(context.Background(), []string{protocol})
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := listed[groupID]; !ok {
				t.Fatalf("group %s is not listed as a %s group: %v", groupID, protocol, listed)
			}
		})
	}
}

package brokertest

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tiercel/tiercel/internal/recordbatch"
)

// CreateTopicWithReplicas creates topic through cl with an explicit replica
// assignment (each partition's replicas, its leader first) and configs.
func CreateTopicWithReplicas(ctx context.Context, cl *kgo.Client, topic string, replicas [][]int32, configs map[string]string) error {
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, -1, -1
	for p, rs := range replicas {
		a := kmsg.NewCreateTopicsRequestTopicReplicaAssignment()
		a.Partition, a.Replicas = int32(p), rs
		rt.ReplicaAssignment = append(rt.ReplicaAssignment, a)
	}
	for k, v := range configs {
		c := kmsg.NewCreateTopicsRequestTopicConfig()
		c.Name, c.Value = k, kmsg.StringPtr(v)
		rt.Configs = append(rt.Configs, c)
	}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return err
	}
	if err := kerr.ErrorForCode(resp.Topics[0].ErrorCode); err != nil {
		return fmt.Errorf("creating %s: %w", topic, err)
	}
	return nil
}

// ProduceOne sends one record to partition 0 of topic through exactly the
// broker at addr, with acks -1 (all) or 1 and no idempotence, and returns
// the partition's error code: a client's retries would hide it.
func ProduceOne(ctx context.Context, addr, topic string, acks int16) (int16, error) {
	b, err := recordbatch.Build([]recordbatch.Record{{Value: []byte("x")}}, recordbatch.BuildOptions{ProducerID: -1})
	if err != nil {
		return 0, err
	}
	p, err := ProduceBatch(ctx, addr, topic, acks, b)
	return p.ErrorCode, err
}

// ProduceBatch sends one batch (its producer id and sequence as built) to
// partition 0 of topic through exactly the broker at addr, with acks -1
// (all) or 1, and returns the partition's answer.
func ProduceBatch(ctx context.Context, addr, topic string, acks int16, batch []byte) (kmsg.ProduceResponseTopicPartition, error) {
	ack := kgo.AllISRAcks()
	if acks == 1 {
		ack = kgo.LeaderAck()
	}
	// kgo sends a request's acks as the client's: set them to match.
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RequiredAcks(ack), kgo.DisableIdempotentWrite())
	if err != nil {
		return kmsg.ProduceResponseTopicPartition{}, err
	}
	defer cl.Close()
	raw, err := cl.SeedBrokers()[0].Request(ctx, ProduceRequest(topic, acks, batch))
	if err != nil {
		return kmsg.ProduceResponseTopicPartition{}, err
	}
	return raw.(*kmsg.ProduceResponse).Topics[0].Partitions[0], nil
}

// ProduceRequest is a produce request of one batch to partition 0 of topic.
func ProduceRequest(topic string, acks int16, batch []byte) *kmsg.ProduceRequest {
	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis = acks, 30000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = batch
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return req
}

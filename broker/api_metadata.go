package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"slices"

	"github.com/tiercel/tiercel/internal/metalog"
)

// epochError checks a request's current leader epoch (-1 = not given)
// against the partition's: older is FENCED_LEADER_EPOCH, newer
// UNKNOWN_LEADER_EPOCH, as Kafka answers.
func epochError(current, epoch int32) int16 {
	switch {
	case current >= 0 && current < epoch:
		return kerr.FencedLeaderEpoch.Code
	case current > epoch:
		return kerr.UnknownLeaderEpoch.Code
	}
	return 0
}

func (b *Broker) handleMetadata(req *kmsg.MetadataRequest) kmsg.Response {
	resp := kmsg.NewPtrMetadataResponse()
	live := map[int32]bool{} // once per request, not per topic: each call copies and sorts gossip's members
	for _, lb := range b.liveBrokers() {
		resp.Brokers = append(resp.Brokers, kmsg.MetadataResponseBroker{NodeID: lb.id, Host: lb.host, Port: lb.port, Rack: lb.rack})
		live[lb.id] = true
	}
	resp.ClusterID = &b.clusterID
	resp.ControllerID = b.nodeID

	var names []string
	all := req.Topics == nil || (req.Version == 0 && len(req.Topics) == 0)
	if all {
		names = b.topicNames()
	}
	// v4+ carries the client's choice; before v4 Kafka always auto-created.
	allowCreate := req.Version < 4 || req.AllowAutoTopicCreation
	for _, rt := range req.Topics {
		name := ""
		if rt.Topic != nil {
			name = *rt.Topic
		} else if t := b.getTopicByID(rt.TopicID); t != nil {
			name = t.meta.Name
		} else {
			mt := kmsg.NewMetadataResponseTopic()
			mt.TopicID = rt.TopicID
			mt.ErrorCode = kerr.UnknownTopicID.Code
			resp.Topics = append(resp.Topics, mt)
			continue
		}
		if b.getTopic(name) == nil && allowCreate && b.cfg.Bool("auto.create.topics.enable") {
			if _, err := b.createTopic(name, -1, -1, nil, nil, false); err != nil && errorCode(err) != kerr.TopicAlreadyExists.Code {
				mt := kmsg.NewMetadataResponseTopic()
				mt.Topic = kmsg.StringPtr(name)
				mt.ErrorCode = errorCode(err)
				resp.Topics = append(resp.Topics, mt)
				continue
			}
		}
		names = append(names, name)
	}
	for _, name := range names {
		resp.Topics = append(resp.Topics, b.metadataTopic(name, req.IncludeTopicAuthorizedOperations, live))
	}
	return resp
}

func (b *Broker) metadataTopic(name string, withOps bool, live map[int32]bool) kmsg.MetadataResponseTopic {
	mt := kmsg.NewMetadataResponseTopic()
	mt.Topic = kmsg.StringPtr(name)
	t := b.getTopic(name)
	if t == nil {
		mt.ErrorCode = kerr.UnknownTopicOrPartition.Code
		return mt
	}
	mt.TopicID = t.id
	mt.IsInternal = name == offsetsTopic
	if withOps {
		mt.AuthorizedOperations = allTopicOperations
	}
	for p := int32(0); p < t.meta.Partitions; p++ {
		mp := kmsg.NewMetadataResponseTopicPartition()
		leader := t.meta.Leaders[p]
		mp.Partition = p
		mp.Leader = leader.Broker
		mp.LeaderEpoch = leader.Epoch
		mp.Replicas = slices.Clone(t.meta.ReplicasOf(p))
		mp.ISR = slices.Clone(t.meta.ISROf(p))
		if leader.Broker == metalog.Parked && !t.meta.replicated() {
			mp.Replicas = []int32{t.meta.Preferred[p]} // where it goes back to
		}
		for _, r := range mp.Replicas {
			if !live[r] {
				mp.OfflineReplicas = append(mp.OfflineReplicas, r)
			}
		}
		if !live[leader.Broker] {
			// Its broker is not up: Kafka's answer for an offline leader.
			mp.ErrorCode, mp.Leader, mp.ISR = kerr.LeaderNotAvailable.Code, -1, []int32{}
		}
		mt.Partitions = append(mt.Partitions, mp)
	}
	return mt
}

// allTopicOperations is the bit set of every topic ACL operation (Tiercel
// has no ACLs yet, so the client may do all of them).
const allTopicOperations = 1<<3 | 1<<4 | 1<<5 | 1<<6 | 1<<7 | 1<<8 | 1<<10 | 1<<11

func (b *Broker) rack() *string {
	if r := b.cfg.Get("broker.rack"); r != "" {
		return &r
	}
	return nil
}

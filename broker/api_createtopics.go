package broker

import (
	"fmt"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func (b *Broker) handleCreateTopics(req *kmsg.CreateTopicsRequest) kmsg.Response {
	resp := kmsg.NewPtrCreateTopicsResponse()
	seen := map[string]int{}
	for _, rt := range req.Topics {
		seen[rt.Topic]++
	}
	for _, rt := range req.Topics {
		st := kmsg.NewCreateTopicsResponseTopic()
		st.Topic = rt.Topic
		st.NumPartitions, st.ReplicationFactor = -1, -1
		if seen[rt.Topic] > 1 {
			st.ErrorCode = kerr.InvalidRequest.Code
			st.ErrorMessage = kmsg.StringPtr("topic " + rt.Topic + " appears more than once in the request")
			resp.Topics = append(resp.Topics, st)
			continue
		}
		partitions, replication := rt.NumPartitions, rt.ReplicationFactor
		var assignment [][]int32
		if len(rt.ReplicaAssignment) > 0 {
			if partitions != -1 || replication != -1 {
				st.ErrorCode = kerr.InvalidRequest.Code
				st.ErrorMessage = kmsg.StringPtr("give either partitions and replication factor, or a replica assignment")
				resp.Topics = append(resp.Topics, st)
				continue
			}
			assignment = make([][]int32, len(rt.ReplicaAssignment))
			for _, a := range rt.ReplicaAssignment {
				if a.Partition < 0 || int(a.Partition) >= len(assignment) || assignment[a.Partition] != nil {
					st.ErrorCode = kerr.InvalidReplicaAssignment.Code
					st.ErrorMessage = kmsg.StringPtr(fmt.Sprintf("the assignment's partitions must be 0 to %d, each once", len(assignment)-1))
					break
				}
				assignment[a.Partition] = append([]int32{}, a.Replicas...)
			}
			if st.ErrorCode != 0 {
				resp.Topics = append(resp.Topics, st)
				continue
			}
			partitions, replication = int32(len(assignment)), int16(min(len(assignment[0]), 1<<15-1))
		}
		configs := map[string]string{}
		for _, c := range rt.Configs {
			if c.Value != nil {
				configs[c.Name] = *c.Value
			}
		}
		t, err := b.createTopic(rt.Topic, partitions, replication, assignment, configs, req.ValidateOnly)
		if err != nil {
			st.ErrorCode = errorCode(err)
			st.ErrorMessage = errMessage(err)
			resp.Topics = append(resp.Topics, st)
			continue
		}
		st.TopicID = t.id
		st.NumPartitions = t.meta.Partitions
		st.ReplicationFactor = int16(max(len(t.meta.ReplicasOf(0)), 1))
		for _, v := range b.cfg.Topic(t.meta.Configs) {
			c := kmsg.NewCreateTopicsResponseTopicConfig()
			c.Name = v.Name
			c.Value = kmsg.StringPtr(v.Value)
			c.Source = int8(v.Source)
			c.IsSensitive = v.Sensitive
			st.Configs = append(st.Configs, c)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

func (b *Broker) handleDeleteTopics(req *kmsg.DeleteTopicsRequest) kmsg.Response {
	resp := kmsg.NewPtrDeleteTopicsResponse()
	type target struct {
		name *string
		id   [16]byte
	}
	var targets []target
	for _, n := range req.TopicNames {
		targets = append(targets, target{name: kmsg.StringPtr(n)})
	}
	for _, rt := range req.Topics {
		targets = append(targets, target{name: rt.Topic, id: rt.TopicID})
	}
	for _, tg := range targets {
		st := kmsg.NewDeleteTopicsResponseTopic()
		st.Topic, st.TopicID = tg.name, tg.id
		var t *topic
		if tg.name != nil {
			t = b.getTopic(*tg.name)
		} else {
			t = b.getTopicByID(tg.id)
		}
		switch {
		case !b.cfg.Bool("delete.topic.enable"):
			st.ErrorCode = kerr.TopicDeletionDisabled.Code
		case t == nil && tg.name == nil:
			st.ErrorCode = kerr.UnknownTopicID.Code
		case t == nil:
			st.ErrorCode = kerr.UnknownTopicOrPartition.Code
		case internalTopicError(t.meta.Name) != 0:
			st.ErrorCode = internalTopicError(t.meta.Name)
			st.ErrorMessage = kmsg.StringPtr("the internal topic " + t.meta.Name + " cannot be deleted")
		default:
			st.Topic, st.TopicID = kmsg.StringPtr(t.meta.Name), t.id
			if err := b.deleteTopic(t); err != nil {
				st.ErrorCode = errorCode(err)
				st.ErrorMessage = errMessage(err)
			}
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

func (b *Broker) handleCreatePartitions(req *kmsg.CreatePartitionsRequest) kmsg.Response {
	resp := kmsg.NewPtrCreatePartitionsResponse()
	for _, rt := range req.Topics {
		st := kmsg.NewCreatePartitionsResponseTopic()
		st.Topic = rt.Topic
		if err := b.addPartitions(rt.Topic, rt.Count, req.ValidateOnly); err != nil {
			st.ErrorCode = errorCode(err)
			st.ErrorMessage = errMessage(err)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

package broker

import (
	"slices"
	"sort"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func (b *Broker) handleDescribeCluster(req *kmsg.DescribeClusterRequest) kmsg.Response {
	resp := kmsg.NewPtrDescribeClusterResponse()
	host, port := b.advertised()
	resp.ClusterID = b.clusterID
	resp.ControllerID = b.nodeID
	resp.Brokers = []kmsg.DescribeClusterResponseBroker{{NodeID: b.nodeID, Host: host, Port: port, Rack: b.rack()}}
	if req.IncludeClusterAuthorizedOperations {
		resp.ClusterAuthorizedOperations = 1<<3 | 1<<4 | 1<<7 | 1<<8 | 1<<9 | 1<<10 | 1<<11 | 1<<12
	}
	return resp
}

func (b *Broker) handleDescribeLogDirs(req *kmsg.DescribeLogDirsRequest) kmsg.Response {
	resp := kmsg.NewPtrDescribeLogDirsResponse()
	dir := kmsg.NewDescribeLogDirsResponseDir()
	dir.Dir = b.dir
	dir.TotalBytes, dir.UsableBytes = diskSpace(b.dir)
	want := map[string]map[int32]bool{}
	for _, rt := range req.Topics {
		set := map[int32]bool{}
		for _, p := range rt.Partitions {
			set[p] = true
		}
		want[rt.Topic] = set
	}
	byTopic := map[string]*kmsg.DescribeLogDirsResponseDirTopic{}
	var names []string
	for _, l := range b.mgr.Logs() {
		tp := l.TopicPartition()
		if req.Topics != nil && !want[tp.Topic][tp.Partition] {
			continue
		}
		t := byTopic[tp.Topic]
		if t == nil {
			nt := kmsg.NewDescribeLogDirsResponseDirTopic()
			nt.Topic = tp.Topic
			t = &nt
			byTopic[tp.Topic] = t
			names = append(names, tp.Topic)
		}
		p := kmsg.NewDescribeLogDirsResponseDirTopicPartition()
		p.Partition, p.Size, p.OffsetLag = tp.Partition, l.Size(), 0
		t.Partitions = append(t.Partitions, p)
	}
	sort.Strings(names)
	for _, n := range names {
		dir.Topics = append(dir.Topics, *byTopic[n])
	}
	resp.Dirs = []kmsg.DescribeLogDirsResponseDir{dir}
	return resp
}

// handleDescribeTopicPartitions pages through topics and partitions with a
// cursor, bounded by ResponsePartitionLimit (KIP-966).
func (b *Broker) handleDescribeTopicPartitions(req *kmsg.DescribeTopicPartitionsRequest) kmsg.Response {
	resp := kmsg.NewPtrDescribeTopicPartitionsResponse()
	var names []string
	if len(req.Topics) == 0 {
		names = b.topicNames()
	} else {
		for _, t := range req.Topics {
			names = append(names, t.Topic)
		}
		sort.Strings(names)
	}
	limit := int(req.ResponsePartitionLimit)
	if limit <= 0 || limit > 2000 {
		limit = 2000
	}
	startTopic, startPart := "", int32(0)
	if req.Cursor != nil {
		startTopic, startPart = req.Cursor.Topic, req.Cursor.Partition
	}
	count := 0
	for _, name := range names {
		if name < startTopic {
			continue
		}
		rt := kmsg.NewDescribeTopicPartitionsResponseTopic()
		rt.Topic = kmsg.StringPtr(name)
		t := b.getTopic(name)
		if t == nil {
			rt.ErrorCode = kerr.UnknownTopicOrPartition.Code
			resp.Topics = append(resp.Topics, rt)
			continue
		}
		rt.TopicID = t.id
		rt.AuthorizedOperations = allTopicOperations
		first := int32(0)
		if name == startTopic {
			first = startPart
		}
		for p := first; p < t.meta.Partitions; p++ {
			if count == limit {
				c := kmsg.NewDescribeTopicPartitionsResponseNextCursor()
				c.Topic, c.Partition = name, p
				resp.NextCursor = &c
				resp.Topics = append(resp.Topics, rt)
				return resp
			}
			rp := kmsg.NewDescribeTopicPartitionsResponseTopicPartition()
			leader := t.meta.Leaders[p]
			rp.Partition, rp.LeaderID, rp.LeaderEpoch = p, leader.Broker, leader.Epoch
			rp.Replicas, rp.ISR = slices.Clone(t.meta.ReplicasOf(p)), slices.Clone(t.meta.ISROf(p))
			rt.Partitions = append(rt.Partitions, rp)
			count++
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

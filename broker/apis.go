package broker

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// apiRange is an advertised version range. Only APIs that work across the
// whole range are listed: clients trust what ApiVersions says.
type apiRange struct{ min, max int16 }

// apis is the advertised table (Kafka 4.x ranges, capped by what kmsg
// v1.15 encodes). Produce starts at v3: record format v2 only, as Kafka 4.
var apis = map[int16]apiRange{
	0:  {3, 12}, // Produce
	1:  {4, 16}, // Fetch
	2:  {1, 9},  // ListOffsets
	3:  {0, 12}, // Metadata
	8:  {2, 9},  // OffsetCommit
	9:  {1, 9},  // OffsetFetch
	10: {0, 6},  // FindCoordinator
	11: {0, 9},  // JoinGroup
	12: {0, 4},  // Heartbeat
	13: {0, 5},  // LeaveGroup
	14: {0, 5},  // SyncGroup
	15: {0, 5},  // DescribeGroups
	16: {0, 5},  // ListGroups
	18: {0, 4},  // ApiVersions
	19: {2, 7},  // CreateTopics
	20: {1, 6},  // DeleteTopics
	21: {0, 2},  // DeleteRecords
	22: {0, 5},  // InitProducerId
	23: {2, 4},  // OffsetForLeaderEpoch
	32: {1, 4},  // DescribeConfigs
	33: {0, 2},  // AlterConfigs
	35: {1, 4},  // DescribeLogDirs
	37: {0, 3},  // CreatePartitions
	42: {0, 2},  // DeleteGroups
	43: {0, 2},  // ElectLeaders
	44: {0, 1},  // IncrementalAlterConfigs
	45: {0, 0},  // AlterPartitionReassignments (v1 adds replication factor changes)
	46: {0, 0},  // ListPartitionReassignments
	47: {0, 0},  // OffsetDelete
	60: {0, 1},  // DescribeCluster
	68: {0, 1},  // ConsumerGroupHeartbeat
	69: {0, 1},  // ConsumerGroupDescribe
	75: {0, 0},  // DescribeTopicPartitions
}

// reply is what a handler produces: a response now, or a function that
// finishes it later (an acks=all wait, a fetch long poll) off the
// connection's reader so later requests keep being read.
type reply struct {
	resp  kmsg.Response
	later func() kmsg.Response
	none  bool // acks=0 produce: no response at all
}

func now(r kmsg.Response) reply { return reply{resp: r} }

// handle dispatches one decoded request.
func (b *Broker) handle(ctx context.Context, h requestHeader, req kmsg.Request) reply {
	switch r := req.(type) {
	case *kmsg.ProduceRequest:
		return b.handleProduce(ctx, r)
	case *kmsg.FetchRequest:
		return b.handleFetch(ctx, r)
	case *kmsg.ListOffsetsRequest:
		return now(b.handleListOffsets(r))
	case *kmsg.MetadataRequest:
		return now(b.handleMetadata(r))
	case *kmsg.ApiVersionsRequest:
		return now(b.handleApiVersions(r))
	case *kmsg.AlterPartitionAssignmentsRequest:
		return now(b.handleAlterPartitionAssignments(r))
	case *kmsg.ListPartitionReassignmentsRequest:
		return now(b.handleListPartitionReassignments(r))
	case *kmsg.ElectLeadersRequest:
		return now(b.handleElectLeaders(r))
	case *kmsg.CreateTopicsRequest:
		return now(b.handleCreateTopics(r))
	case *kmsg.DeleteTopicsRequest:
		return now(b.handleDeleteTopics(r))
	case *kmsg.DeleteRecordsRequest:
		return now(b.handleDeleteRecords(r))
	case *kmsg.InitProducerIDRequest:
		return now(b.handleInitProducerID(r))
	case *kmsg.OffsetForLeaderEpochRequest:
		return now(b.handleOffsetForLeaderEpoch(r))
	case *kmsg.DescribeConfigsRequest:
		return now(b.handleDescribeConfigs(r))
	case *kmsg.AlterConfigsRequest:
		return now(b.handleAlterConfigs(r))
	case *kmsg.IncrementalAlterConfigsRequest:
		return now(b.handleIncrementalAlterConfigs(r))
	case *kmsg.DescribeLogDirsRequest:
		return now(b.handleDescribeLogDirs(r))
	case *kmsg.CreatePartitionsRequest:
		return now(b.handleCreatePartitions(r))
	case *kmsg.DescribeClusterRequest:
		return now(b.handleDescribeCluster(r))
	case *kmsg.OffsetCommitRequest:
		return b.handleOffsetCommit(ctx, r)
	case *kmsg.OffsetFetchRequest:
		return b.handleOffsetFetch(ctx, r)
	case *kmsg.OffsetDeleteRequest:
		return b.handleOffsetDelete(ctx, r)
	case *kmsg.FindCoordinatorRequest:
		return now(b.handleFindCoordinator(r))
	case *kmsg.JoinGroupRequest:
		return b.handleJoinGroup(ctx, h, r)
	case *kmsg.SyncGroupRequest:
		return b.handleSyncGroup(ctx, r)
	case *kmsg.HeartbeatRequest:
		return b.handleHeartbeat(ctx, r)
	case *kmsg.LeaveGroupRequest:
		return b.handleLeaveGroup(ctx, r)
	case *kmsg.DescribeGroupsRequest:
		return b.handleDescribeGroups(ctx, r)
	case *kmsg.ListGroupsRequest:
		return b.handleListGroups(ctx, r)
	case *kmsg.DeleteGroupsRequest:
		return b.handleDeleteGroups(ctx, r)
	case *kmsg.ConsumerGroupHeartbeatRequest:
		return b.handleConsumerGroupHeartbeat(ctx, h, r)
	case *kmsg.ConsumerGroupDescribeRequest:
		return b.handleConsumerGroupDescribe(ctx, r)
	case *kmsg.DescribeTopicPartitionsRequest:
		return now(b.handleDescribeTopicPartitions(r))
	}
	// Unreachable: decodeRequest only admits keys in apis.
	panic("broker: no handler for " + kmsg.NameForKey(h.key))
}

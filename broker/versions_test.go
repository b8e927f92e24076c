package broker_test

import (
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tiercel/tiercel/internal/brokertest"
)

// minimalRequest builds a small valid request of each advertised API that
// names an existing topic where one is needed.
func minimalRequest(key int16, topic string, id [16]byte) kmsg.Request {
	switch key {
	case 0:
		r := kmsg.NewPtrProduceRequest()
		r.Acks, r.TimeoutMillis = 1, 1000
		return r
	case 1:
		r := kmsg.NewPtrFetchRequest()
		r.SessionEpoch, r.MaxBytes = -1, 1<<20
		t := kmsg.NewFetchRequestTopic()
		t.Topic, t.TopicID = topic, id
		p := kmsg.NewFetchRequestTopicPartition()
		p.PartitionMaxBytes = 1 << 20
		t.Partitions = append(t.Partitions, p)
		r.Topics = append(r.Topics, t)
		return r
	case 2:
		r := kmsg.NewPtrListOffsetsRequest()
		t := kmsg.NewListOffsetsRequestTopic()
		t.Topic = topic
		p := kmsg.NewListOffsetsRequestTopicPartition()
		p.Timestamp = -1
		t.Partitions = append(t.Partitions, p)
		r.Topics = append(r.Topics, t)
		return r
	case 3:
		r := kmsg.NewPtrMetadataRequest()
		t := kmsg.NewMetadataRequestTopic()
		t.Topic = kmsg.StringPtr(topic)
		r.Topics = append(r.Topics, t)
		return r
	case 18:
		return kmsg.NewPtrApiVersionsRequest()
	case 19:
		return kmsg.NewPtrCreateTopicsRequest()
	case 20:
		return kmsg.NewPtrDeleteTopicsRequest()
	case 21:
		return kmsg.NewPtrDeleteRecordsRequest()
	case 22:
		return kmsg.NewPtrInitProducerIDRequest()
	case 23:
		r := kmsg.NewPtrOffsetForLeaderEpochRequest()
		r.ReplicaID = -1
		t := kmsg.NewOffsetForLeaderEpochRequestTopic()
		t.Topic = topic
		p := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
		t.Partitions = append(t.Partitions, p)
		r.Topics = append(r.Topics, t)
		return r
	case 32:
		r := kmsg.NewPtrDescribeConfigsRequest()
		res := kmsg.NewDescribeConfigsRequestResource()
		res.ResourceType, res.ResourceName = kmsg.ConfigResourceTypeTopic, topic
		r.Resources = append(r.Resources, res)
		return r
	case 33:
		return kmsg.NewPtrAlterConfigsRequest()
	case 35:
		return kmsg.NewPtrDescribeLogDirsRequest()
	case 37:
		return kmsg.NewPtrCreatePartitionsRequest()
	case 44:
		return kmsg.NewPtrIncrementalAlterConfigsRequest()
	case 43:
		r := kmsg.NewPtrElectLeadersRequest()
		t := kmsg.NewElectLeadersRequestTopic()
		t.Topic, t.Partitions = topic, []int32{0}
		r.Topics = append(r.Topics, t)
		return r
	case 45:
		// Moving partition 0 to its own leader: accepted, nothing to do.
		r := kmsg.NewPtrAlterPartitionAssignmentsRequest()
		t := kmsg.NewAlterPartitionAssignmentsRequestTopic()
		t.Topic = topic
		p := kmsg.NewAlterPartitionAssignmentsRequestTopicPartition()
		p.Replicas = []int32{1}
		t.Partitions = append(t.Partitions, p)
		r.Topics = append(r.Topics, t)
		return r
	case 46:
		return kmsg.NewPtrListPartitionReassignmentsRequest()
	case 60:
		return kmsg.NewPtrDescribeClusterRequest()
	case 75:
		return kmsg.NewPtrDescribeTopicPartitionsRequest()
	case 8:
		r := kmsg.NewPtrOffsetCommitRequest()
		r.Group, r.Generation = "vg", -1
		t := kmsg.NewOffsetCommitRequestTopic()
		t.Topic = topic
		p := kmsg.NewOffsetCommitRequestTopicPartition()
		p.Offset = 1
		t.Partitions = append(t.Partitions, p)
		r.Topics = append(r.Topics, t)
		return r
	case 9:
		r := kmsg.NewPtrOffsetFetchRequest()
		r.Group = "vg"
		t := kmsg.NewOffsetFetchRequestTopic()
		t.Topic, t.Partitions = topic, []int32{0}
		r.Topics = append(r.Topics, t)
		g := kmsg.NewOffsetFetchRequestGroup()
		g.Group = "vg"
		gt := kmsg.NewOffsetFetchRequestGroupTopic()
		gt.Topic, gt.Partitions = topic, []int32{0}
		g.Topics = append(g.Topics, gt)
		r.Groups = append(r.Groups, g)
		return r
	case 10:
		r := kmsg.NewPtrFindCoordinatorRequest()
		r.CoordinatorKey, r.CoordinatorKeys = "vg", []string{"vg"}
		return r
	case 11:
		// A fresh group each time: v0-3 join at once (the broker runs with
		// no initial delay), v4+ get MEMBER_ID_REQUIRED first.
		r := kmsg.NewPtrJoinGroupRequest()
		groupSeq++
		r.Group = fmt.Sprintf("vj-%d", groupSeq)
		r.SessionTimeoutMillis, r.RebalanceTimeoutMillis, r.ProtocolType = 6000, 6000, "consumer"
		p := kmsg.NewJoinGroupRequestProtocol()
		p.Name, p.Metadata = "range", []byte{0, 0}
		r.Protocols = append(r.Protocols, p)
		return r
	case 12:
		r := kmsg.NewPtrHeartbeatRequest()
		r.Group, r.MemberID = "vg", "nobody"
		return r
	case 13:
		r := kmsg.NewPtrLeaveGroupRequest()
		r.Group, r.MemberID = "vg", "nobody"
		r.Members = []kmsg.LeaveGroupRequestMember{{MemberID: "nobody"}}
		return r
	case 14:
		r := kmsg.NewPtrSyncGroupRequest()
		r.Group, r.MemberID = "vg", "nobody"
		return r
	case 15:
		r := kmsg.NewPtrDescribeGroupsRequest()
		r.Groups = []string{"vg"}
		return r
	case 16:
		return kmsg.NewPtrListGroupsRequest()
	case 42:
		r := kmsg.NewPtrDeleteGroupsRequest()
		r.Groups = []string{"vg-missing"}
		return r
	case 68:
		r := kmsg.NewPtrConsumerGroupHeartbeatRequest()
		groupSeq++
		lastConsumerGroup = fmt.Sprintf("vc-%d", groupSeq)
		r.Group, r.MemberID, r.RebalanceTimeoutMillis = lastConsumerGroup, fmt.Sprintf("member-%d", groupSeq), 5000
		r.SubscribedTopicNames = []string{topic}
		r.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{}
		return r
	case 69:
		r := kmsg.NewPtrConsumerGroupDescribeRequest()
		r.Groups = []string{lastConsumerGroup}
		return r
	case 47:
		r := kmsg.NewPtrOffsetDeleteRequest()
		r.Group = "vg"
		t := kmsg.NewOffsetDeleteRequestTopic()
		t.Topic = topic
		t.Partitions = []kmsg.OffsetDeleteRequestTopicPartition{{Partition: 0}}
		r.Topics = append(r.Topics, t)
		return r
	}
	return nil
}

var (
	groupSeq          int
	lastConsumerGroup string // the KIP-848 group the last heartbeat created
)

// expectedError is the answer some minimal requests must get: they name
// no real member, so the right Kafka error shows the version was handled.
var expectedError = map[int16]int16{
	12: kerr.UnknownMemberID.Code,
	13: kerr.UnknownMemberID.Code,
	14: kerr.UnknownMemberID.Code,
	42: kerr.GroupIDNotFound.Code,
	43: kerr.ElectionNotNeeded.Code, // one broker: the leader is the preferred one
}

// TestEveryAdvertisedVersion sends a request of every API at every version
// the broker advertises and checks it is answered (not a closed
// connection) without a top-level or partition error: clients trust
// ApiVersions, so each advertised version must work.
func TestEveryAdvertisedVersion(t *testing.T) {
	b := brokertest.Start(t, "group.initial.rebalance.delay.ms=0")
	create(t, admin(t, b.Addr()), "v", 1, nil)
	cl := client(t, b.Addr())
	conn := dial(t, b.Addr())
	details, err := admin(t, b.Addr()).ListTopics(ctx(t), "v")
	if err != nil {
		t.Fatal(err)
	}
	id := details["v"].ID
	av, err := kmsg.NewPtrApiVersionsRequest().RequestWith(ctx(t), cl)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range av.ApiKeys {
		for v := k.MinVersion; v <= k.MaxVersion; v++ {
			req := minimalRequest(k.ApiKey, "v", id)
			if req == nil {
				t.Errorf("advertised API %d has no test request", k.ApiKey)
				break
			}
			resp := conn.roundTrip(req, v)
			code := firstError(resp)
			if k.ApiKey == 11 && v >= 4 && code == kerr.MemberIDRequired.Code {
				code = 0
			}
			if want, ok := expectedError[k.ApiKey]; ok {
				if code != want {
					t.Errorf("%s v%d: error %v, want %v", kmsg.NameForKey(k.ApiKey), v, kerr.ErrorForCode(code), kerr.ErrorForCode(want))
				}
				continue
			}
			if code != 0 {
				t.Errorf("%s v%d: error %v", kmsg.NameForKey(k.ApiKey), v, kerr.ErrorForCode(code))
			}
		}
	}
}

func firstError(resp kmsg.Response) int16 {
	switch r := resp.(type) {
	case *kmsg.FetchResponse:
		if r.ErrorCode != 0 {
			return r.ErrorCode
		}
		return r.Topics[0].Partitions[0].ErrorCode
	case *kmsg.ListOffsetsResponse:
		return r.Topics[0].Partitions[0].ErrorCode
	case *kmsg.MetadataResponse:
		return r.Topics[0].ErrorCode
	case *kmsg.ApiVersionsResponse:
		return r.ErrorCode
	case *kmsg.OffsetForLeaderEpochResponse:
		return r.Topics[0].Partitions[0].ErrorCode
	case *kmsg.DescribeConfigsResponse:
		return r.Resources[0].ErrorCode
	case *kmsg.InitProducerIDResponse:
		return r.ErrorCode
	case *kmsg.DescribeClusterResponse:
		return r.ErrorCode
	case *kmsg.DescribeLogDirsResponse:
		return r.ErrorCode
	case *kmsg.OffsetCommitResponse:
		return r.Topics[0].Partitions[0].ErrorCode
	case *kmsg.OffsetFetchResponse:
		if r.Version >= 8 {
			if r.Groups[0].ErrorCode != 0 {
				return r.Groups[0].ErrorCode
			}
			return r.Groups[0].Topics[0].Partitions[0].ErrorCode
		}
		if r.ErrorCode != 0 {
			return r.ErrorCode
		}
		return r.Topics[0].Partitions[0].ErrorCode
	case *kmsg.FindCoordinatorResponse:
		if r.Version >= 4 {
			return r.Coordinators[0].ErrorCode
		}
		return r.ErrorCode
	case *kmsg.JoinGroupResponse:
		return r.ErrorCode
	case *kmsg.HeartbeatResponse:
		return r.ErrorCode
	case *kmsg.LeaveGroupResponse:
		if r.Version >= 3 && r.ErrorCode == 0 {
			return r.Members[0].ErrorCode
		}
		return r.ErrorCode
	case *kmsg.SyncGroupResponse:
		return r.ErrorCode
	case *kmsg.DescribeGroupsResponse:
		return r.Groups[0].ErrorCode
	case *kmsg.ListGroupsResponse:
		return r.ErrorCode
	case *kmsg.DeleteGroupsResponse:
		return r.Groups[0].ErrorCode
	case *kmsg.ConsumerGroupHeartbeatResponse:
		if r.ErrorCode == 0 && (r.MemberEpoch != 1 || r.Assignment == nil || len(r.Assignment.Topics) != 1) {
			return kerr.UnknownServerError.Code
		}
		return r.ErrorCode
	case *kmsg.ConsumerGroupDescribeResponse:
		if r.Groups[0].ErrorCode == 0 && len(r.Groups[0].Members) != 1 {
			return kerr.UnknownServerError.Code
		}
		return r.Groups[0].ErrorCode
	case *kmsg.ElectLeadersResponse:
		if r.ErrorCode != 0 {
			return r.ErrorCode
		}
		return r.Topics[0].Partitions[0].ErrorCode
	case *kmsg.AlterPartitionAssignmentsResponse:
		if r.ErrorCode != 0 {
			return r.ErrorCode
		}
		return r.Topics[0].Partitions[0].ErrorCode
	case *kmsg.ListPartitionReassignmentsResponse:
		if r.ErrorCode != 0 || len(r.Topics) != 0 {
			return kerr.UnknownServerError.Code // no move is pending
		}
		return 0
	case *kmsg.OffsetDeleteResponse:
		if r.ErrorCode != 0 {
			return r.ErrorCode
		}
		return r.Topics[0].Partitions[0].ErrorCode
	}
	return 0
}

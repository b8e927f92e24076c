package broker_test

import (
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
	case 60:
		return kmsg.NewPtrDescribeClusterRequest()
	case 75:
		return kmsg.NewPtrDescribeTopicPartitionsRequest()
	}
	return nil
}

// TestEveryAdvertisedVersion sends a request of every API at every version
// the broker advertises and checks it is answered (not a closed
// connection) without a top-level or partition error: clients trust
// ApiVersions, so each advertised version must work.
func TestEveryAdvertisedVersion(t *testing.T) {
	b := brokertest.Start(t)
	create(t, admin(t, b.Addr()), "v", 1, nil)
	cl := client(t, b.Addr())
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
			req.SetVersion(v)
			resp, err := cl.Request(ctx(t), req)
			if err != nil {
				t.Errorf("%s v%d: %v", kmsg.NameForKey(k.ApiKey), v, err)
				continue
			}
			if code := firstError(resp); code != 0 {
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
	}
	return 0
}

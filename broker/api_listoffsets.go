package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ListOffsets special timestamps.
const (
	offsetLatest        = -1
	offsetEarliest      = -2
	offsetMaxTimestamp  = -3
	offsetEarliestLocal = -4
	offsetLatestTiered  = -5
)

func (b *Broker) handleListOffsets(req *kmsg.ListOffsetsRequest) kmsg.Response {
	resp := kmsg.NewPtrListOffsetsResponse()
	for _, rt := range req.Topics {
		st := kmsg.NewListOffsetsResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewListOffsetsResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.Timestamp, sp.Offset, sp.LeaderEpoch = -1, -1, -1
			l := b.partitionLog(rt.Topic, rp.Partition)
			switch {
			case l == nil:
				sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
			case epochError(rp.CurrentLeaderEpoch) != 0:
				sp.ErrorCode = epochError(rp.CurrentLeaderEpoch)
			default:
				switch rp.Timestamp {
				case offsetLatest:
					// Read-committed readers get the LSO, which equals the
					// high watermark while there are no transactions.
					sp.Offset, sp.LeaderEpoch = l.HighWatermark(), leaderEpoch
				case offsetEarliest, offsetEarliestLocal:
					sp.Offset, sp.LeaderEpoch = l.StartOffset(), leaderEpoch
				case offsetLatestTiered:
					// Nothing is tiered yet: Kafka answers -1 then.
				case offsetMaxTimestamp:
					if off, ts, ep, ok := l.MaxTimestamp(); ok {
						sp.Offset, sp.Timestamp, sp.LeaderEpoch = off, ts, ep
					}
				default:
					if off, ts, ep, ok := l.OffsetForTimestamp(rp.Timestamp); ok {
						sp.Offset, sp.Timestamp, sp.LeaderEpoch = off, ts, ep
					}
				}
				if req.Version == 0 {
					sp.OldStyleOffsets = []int64{sp.Offset}
				}
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

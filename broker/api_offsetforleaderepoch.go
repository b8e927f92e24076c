package broker

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

func (b *Broker) handleOffsetForLeaderEpoch(req *kmsg.OffsetForLeaderEpochRequest) kmsg.Response {
	resp := kmsg.NewPtrOffsetForLeaderEpochResponse()
	for _, rt := range req.Topics {
		st := kmsg.NewOffsetForLeaderEpochResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewOffsetForLeaderEpochResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.LeaderEpoch, sp.EndOffset = -1, -1
			t, l, code := b.leaderLog(rt.Topic, rp.Partition, rp.CurrentLeaderEpoch)
			switch {
			case code != 0:
				sp.ErrorCode = code
			default:
				leaderEpoch := t.meta.Leaders[rp.Partition].Epoch
				sp.LeaderEpoch, sp.EndOffset = l.EndOffsetForEpoch(rp.LeaderEpoch)
				if sp.LeaderEpoch == -1 && l.LatestEpoch() == -1 && rp.LeaderEpoch >= leaderEpoch {
					// An empty log: the current epoch ends at the log end.
					sp.LeaderEpoch, sp.EndOffset = leaderEpoch, l.EndOffset()
				}
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

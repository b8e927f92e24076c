package broker

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tiercel/tiercel/broker/storage"
	"github.com/tiercel/tiercel/internal/replica"
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
			if code != 0 {
				sp.ErrorCode = code
			} else {
				history := b.epochHistory(t, rp.Partition, l)
				sp.LeaderEpoch, sp.EndOffset = replica.EndOffsetFor(history, l.EndOffset(), rp.LeaderEpoch)
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

// epochHistory is a partition's whole leader-epoch history: the epochs of
// its tiered segments (a leader that took the partition over opens its log
// at the tiered end, so its local history starts there), then the local
// log's, then the current epoch from the log end if nothing was written in
// it yet (Kafka records a new leader's epoch when it takes over).
func (b *Broker) epochHistory(t *topic, p int32, l *storage.Log) []replica.EpochStart {
	var h []replica.EpochStart
	add := func(e replica.EpochStart) {
		if n := len(h); n == 0 || e.Epoch > h[n-1].Epoch {
			h = append(h, e)
		}
	}
	if b.tierer != nil && b.tiered(t.meta) {
		local := l.StartOffset()
		for _, s := range b.tierer.Segments(t.meta.ID, p) {
			if s.BaseOffset < local {
				add(replica.EpochStart{Epoch: s.LeaderEpoch, StartOffset: s.BaseOffset})
			}
		}
	}
	for _, e := range l.Epochs() {
		add(replica.EpochStart{Epoch: e.Epoch, StartOffset: e.Start})
	}
	add(replica.EpochStart{Epoch: t.meta.Leaders[p].Epoch, StartOffset: l.EndOffset()})
	return h
}

package broker

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tiercel/tiercel/broker/storage"
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
				sp.LeaderEpoch, sp.EndOffset = endOffsetForEpoch(history, rp.LeaderEpoch, l.EndOffset())
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
func (b *Broker) epochHistory(t *topic, p int32, l *storage.Log) []storage.EpochStart {
	var h []storage.EpochStart
	add := func(e storage.EpochStart) {
		if n := len(h); n == 0 || e.Epoch > h[n-1].Epoch {
			h = append(h, e)
		}
	}
	if b.tierer != nil && b.tiered(t.meta) {
		local := l.StartOffset()
		for _, s := range b.tierer.Segments(t.meta.ID, p) {
			if s.BaseOffset < local {
				add(storage.EpochStart{Epoch: s.LeaderEpoch, Start: s.BaseOffset})
			}
		}
	}
	for _, e := range l.Epochs() {
		add(e)
	}
	add(storage.EpochStart{Epoch: t.meta.Leaders[p].Epoch, Start: l.EndOffset()})
	return h
}

// endOffsetForEpoch answers OffsetForLeaderEpoch from a history: the
// newest epoch at or below epoch, and where it ended (the next epoch's
// start, or the log end); -1, -1 if epoch is older than all of it.
func endOffsetForEpoch(h []storage.EpochStart, epoch int32, logEnd int64) (int32, int64) {
	for i := len(h) - 1; i >= 0; i-- {
		if h[i].Epoch <= epoch {
			if i == len(h)-1 {
				return h[i].Epoch, logEnd
			}
			return h[i].Epoch, h[i+1].Start
		}
	}
	return -1, -1
}

package broker

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tiercel/tiercel/broker/storage"
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
			t, l, code := b.leaderLog(rt.Topic, rp.Partition, rp.CurrentLeaderEpoch)
			switch {
			case code != 0:
				sp.ErrorCode = code
			default:
				leaderEpoch := t.meta.Leaders[rp.Partition].Epoch
				switch rp.Timestamp {
				case offsetLatest:
					// Read-committed readers get the LSO, which equals the
					// high watermark while there are no transactions.
					sp.Offset, sp.LeaderEpoch = l.HighWatermark(), leaderEpoch
				case offsetEarliest:
					sp.Offset, sp.LeaderEpoch = b.logStart(t, rp.Partition, l), leaderEpoch
				case offsetEarliestLocal:
					sp.Offset, sp.LeaderEpoch = l.StartOffset(), leaderEpoch
				case offsetLatestTiered:
					// The last tiered offset; -1 (Kafka's answer) when none is.
					if b.tiered(t.meta) {
						if _, end, ok := b.tierer.Range(t.meta.ID, rp.Partition); ok {
							sp.Offset, sp.LeaderEpoch = end-1, leaderEpoch
						}
					}
				case offsetMaxTimestamp:
					if off, ts, ep, ok := l.MaxTimestamp(); ok {
						sp.Offset, sp.Timestamp, sp.LeaderEpoch = off, ts, ep
					}
				default:
					off, ts, ep, ok, err := b.offsetForTimestamp(t, rp.Partition, l, rp.Timestamp)
					if err != nil {
						sp.ErrorCode = kerr.KafkaStorageError.Code
						b.logger.Warn("ListOffsets by timestamp in the bucket", "topic", rt.Topic, "partition", rp.Partition, "err", err)
					} else if ok {
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

// offsetForTimestamp looks in the tiered segments below the local log
// first, then in the local log.
func (b *Broker) offsetForTimestamp(t *topic, p int32, l *storage.Log, ts int64) (int64, int64, int32, bool, error) {
	if b.tiered(t.meta) {
		start, localStart := b.logStart(t, p, l), l.StartOffset()
		if start < localStart {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			off, found, ep, ok, err := b.remoteOffsetForTimestamp(ctx, t, p, start, localStart, ts)
			if err != nil || ok {
				return off, found, ep, ok, err
			}
		}
	}
	off, found, ep, ok := l.OffsetForTimestamp(ts)
	return off, found, ep, ok, nil
}

package broker

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tiercel/tiercel/broker/storage"
)

func (b *Broker) handleDeleteRecords(req *kmsg.DeleteRecordsRequest) kmsg.Response {
	resp := kmsg.NewPtrDeleteRecordsResponse()
	for _, rt := range req.Topics {
		st := kmsg.NewDeleteRecordsResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewDeleteRecordsResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.LowWatermark = -1
			t, l, code := b.leaderLog(rt.Topic, rp.Partition, -1)
			if code != 0 {
				sp.ErrorCode = code
			} else {
				start, err := b.deleteRecords(t, rp.Partition, l, rp.Offset)
				sp.ErrorCode = errorCode(err)
				if err == nil {
					sp.LowWatermark = start
				}
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

// deleteRecords moves a partition's log start to offset (-1: the high
// watermark): in the bucket first, then locally, so a crash between the
// two is finished at the next start (openPartition).
func (b *Broker) deleteRecords(t *topic, p int32, l *storage.Log, offset int64) (int64, error) {
	hw := l.HighWatermark()
	if offset == -1 { // Kafka's "up to the high watermark"
		offset = hw
	}
	if offset < 0 || offset > hw {
		return 0, fmt.Errorf("%w: %d is beyond the high watermark %d", storage.ErrOffsetOutOfRange, offset, hw)
	}
	if b.tiered(t.meta) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := b.tierer.DeleteRecords(ctx, t.meta.ID, p, offset); err != nil {
			return 0, fmt.Errorf("%w: %v", storage.ErrStorage, err)
		}
	}
	if _, err := l.DeleteRecordsBefore(max(offset, l.StartOffset())); err != nil {
		return 0, err
	}
	return b.logStart(t, p, l), nil
}

package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
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
			l := b.partitionLog(rt.Topic, rp.Partition)
			if l == nil {
				sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
			} else {
				offset := rp.Offset
				if offset == -1 { // Kafka's "up to the high watermark"
					offset = l.HighWatermark()
				}
				start, err := l.DeleteRecordsBefore(offset)
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

package recordbatch

import (
	"encoding/binary"
	"fmt"
)

// BuildOptions describe a batch for Build.
type BuildOptions struct {
	Codec                Codec
	BaseOffset           int64
	PartitionLeaderEpoch int32
	ProducerID           int64 // -1 for a non-idempotent producer
	ProducerEpoch        int16
	BaseSequence         int32
	Transactional        bool
	Control              bool
	LogAppendTime        bool
}

// NoProducer is the options of a plain, non-idempotent producer's batch.
func NoProducer() BuildOptions {
	return BuildOptions{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}
}

// Build encodes records as one v2 batch with a correct CRC. Offsets are
// taken in order from BaseOffset; timestamps from each record. It is the
// encoder for tests and tools; the broker stores what producers send.
func Build(records []Record, opts BuildOptions) ([]byte, error) {
	if len(records) == 0 {
		return nil, fmt.Errorf("%w: a batch needs at least one record", ErrInvalid)
	}
	baseTS, maxTS := records[0].Timestamp, records[0].Timestamp
	for _, r := range records {
		baseTS, maxTS = min(baseTS, r.Timestamp), max(maxTS, r.Timestamp)
	}
	var area []byte
	for i, r := range records {
		var body []byte
		body = append(body, 0)
		body = binary.AppendVarint(body, r.Timestamp-baseTS)
		body = binary.AppendVarint(body, int64(i))
		body = appendBytes(body, r.Key)
		body = appendBytes(body, r.Value)
		body = binary.AppendVarint(body, int64(len(r.Headers)))
		for _, h := range r.Headers {
			body = appendBytes(body, []byte(h.Key))
			body = appendBytes(body, h.Value)
		}
		area = binary.AppendVarint(area, int64(len(body)))
		area = append(area, body...)
	}
	area, err := compress(opts.Codec, area)
	if err != nil {
		return nil, err
	}
	attrs := uint16(opts.Codec)
	if opts.LogAppendTime {
		attrs |= 0x8
	}
	if opts.Transactional {
		attrs |= 0x10
	}
	if opts.Control {
		attrs |= 0x20
	}
	b := make([]byte, HeaderSize, HeaderSize+len(area))
	be := binary.BigEndian
	be.PutUint64(b[posBaseOffset:], uint64(opts.BaseOffset))
	be.PutUint32(b[posLength:], uint32(HeaderSize-12+len(area)))
	be.PutUint32(b[posLeaderEpoch:], uint32(opts.PartitionLeaderEpoch))
	b[posMagic] = 2
	be.PutUint16(b[posAttributes:], attrs)
	be.PutUint32(b[posLastOffsetDelta:], uint32(len(records)-1))
	be.PutUint64(b[posBaseTimestamp:], uint64(baseTS))
	be.PutUint64(b[posMaxTimestamp:], uint64(maxTS))
	be.PutUint64(b[posProducerID:], uint64(opts.ProducerID))
	be.PutUint16(b[posProducerEpoch:], uint16(opts.ProducerEpoch))
	be.PutUint32(b[posBaseSequence:], uint32(opts.BaseSequence))
	be.PutUint32(b[posNumRecords:], uint32(len(records)))
	b = append(b, area...)
	UpdateCRC(b)
	return b, nil
}

func appendBytes(dst, v []byte) []byte {
	if v == nil {
		return binary.AppendVarint(dst, -1)
	}
	dst = binary.AppendVarint(dst, int64(len(v)))
	return append(dst, v...)
}

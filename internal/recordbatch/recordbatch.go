// Package recordbatch parses and validates Kafka record batches (magic v2),
// the unit the broker stores and serves. Layout (big endian):
//
//	baseOffset int64 | batchLength int32 | partitionLeaderEpoch int32 | magic int8 |
//	crc uint32 (CRC-32C of everything after this field) | attributes int16 |
//	lastOffsetDelta int32 | baseTimestamp int64 | maxTimestamp int64 |
//	producerId int64 | producerEpoch int16 | baseSequence int32 | recordCount int32 | records...
package recordbatch

import "errors"

// HeaderSize is the size of the fixed v2 batch header.
const HeaderSize = 61

// Classified validation errors; the broker maps them to Kafka error codes.
var (
	ErrCorrupt     = errors.New("corrupt record batch")           // CORRUPT_MESSAGE
	ErrTooLarge    = errors.New("record batch too large")         // MESSAGE_TOO_LARGE
	ErrInvalid     = errors.New("invalid record")                 // INVALID_RECORD
	ErrUnsupported = errors.New("unsupported record batch magic") // UNSUPPORTED_FOR_MESSAGE_FORMAT
)

// Codec is the compression type in attributes bits 0-2.
type Codec int8

const (
	CodecNone   Codec = 0
	CodecGzip   Codec = 1
	CodecSnappy Codec = 2
	CodecLZ4    Codec = 3
	CodecZstd   Codec = 4
)

// Header is the decoded fixed header of one batch.
type Header struct {
	BaseOffset           int64
	Length               int32 // batchLength: bytes after the Length field
	PartitionLeaderEpoch int32
	Magic                int8
	CRC                  uint32
	Attributes           int16
	LastOffsetDelta      int32
	BaseTimestamp        int64
	MaxTimestamp         int64
	ProducerID           int64
	ProducerEpoch        int16
	BaseSequence         int32
	NumRecords           int32
}

func (h Header) Codec() Codec        { return Codec(h.Attributes & 0x7) }
func (h Header) LogAppendTime() bool { return h.Attributes&0x8 != 0 }
func (h Header) Transactional() bool { return h.Attributes&0x10 != 0 }
func (h Header) Control() bool       { return h.Attributes&0x20 != 0 }
func (h Header) LastOffset() int64   { return h.BaseOffset + int64(h.LastOffsetDelta) }
func (h Header) TotalSize() int      { return int(h.Length) + 12 }
func (h Header) LastSequence() int32 { return h.BaseSequence + h.LastOffsetDelta } // wraps at int32 as Kafka does
func (h Header) Idempotent() bool    { return h.ProducerID >= 0 }

// Batch is one validated batch: its header and its bytes, aliasing the input.
type Batch struct {
	Header
	Bytes []byte
}

// ValidateOptions bound what a produce request may carry.
type ValidateOptions struct {
	// MaxBatchBytes is max.message.bytes: the largest batch (after compression).
	MaxBatchBytes int
	// Deep decompresses and walks every record (lengths, count, offset and
	// timestamp deltas). Without it only the header, CRC and framing are checked.
	Deep bool
}

// Record is one decoded record of a batch.
type Record struct {
	Offset    int64
	Timestamp int64
	Key       []byte // nil for a null key
	Value     []byte // nil for a null value
	Headers   []RecordHeader
}

// RecordHeader is one record header.
type RecordHeader struct {
	Key   string
	Value []byte
}

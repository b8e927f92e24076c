// Package storage is the local log of every partition on a broker: segments
// in Kafka's on-disk format, sparse offset and time indexes, recovery after a
// crash, retention, idempotent-producer state, and group-committed fsync.
package storage

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/tiercel/tiercel/internal/vfs"
)

// Classified errors; the broker maps them to Kafka error codes.
var (
	ErrOffsetOutOfRange     = errors.New("offset out of range")          // OFFSET_OUT_OF_RANGE
	ErrStorage              = errors.New("storage error")                // KAFKA_STORAGE_ERROR (wraps the cause)
	ErrCorruptLog           = errors.New("corrupt log")                  // a corrupt segment (path and offset in the wrapping message)
	ErrOutOfOrderSequence   = errors.New("out of order sequence number") // OUT_OF_ORDER_SEQUENCE_NUMBER
	ErrInvalidProducerEpoch = errors.New("invalid producer epoch")       // INVALID_PRODUCER_EPOCH
	ErrUnknownProducerID    = errors.New("unknown producer id")          // UNKNOWN_PRODUCER_ID
	ErrClosed               = errors.New("log closed")
	ErrLogExists            = errors.New("log already exists")
)

// FlushPolicy says when appended bytes are fsynced.
type FlushPolicy int

const (
	// FlushOnAck (default, config log.flush.policy=fsync): acks=all is
	// answered only after fsync; the sync loop runs whenever there are
	// unsynced bytes, so concurrent appends share one fsync (group commit).
	// The high watermark is the synced end offset: consumers never see a
	// record a crash could take back.
	FlushOnAck FlushPolicy = iota
	// FlushInterval (log.flush.policy=interval) is Kafka's behaviour: fsync
	// after flush.messages / flush.ms; acks=all is answered after the write.
	FlushInterval
)

// TopicPartition names a partition.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// Config is one log's configuration, resolved from topic and broker configs.
type Config struct {
	SegmentBytes       int64 // segment.bytes
	SegmentMs          int64 // segment.ms
	SegmentIndexBytes  int32 // segment.index.bytes: roll when the offset index would exceed it
	IndexIntervalBytes int32 // index.interval.bytes
	RetentionMs        int64 // retention.ms, -1 = forever
	RetentionBytes     int64 // retention.bytes, -1 = unlimited
	FlushPolicy        FlushPolicy
	FlushMessages      int64 // flush.messages (FlushInterval only)
	FlushMs            int64 // flush.ms (FlushInterval only)
}

// DefaultConfig is Kafka's topic defaults with the fsync-on-ack policy.
func DefaultConfig() Config {
	return Config{
		SegmentBytes:       1 << 30,
		SegmentMs:          7 * 24 * 3600 * 1000,
		SegmentIndexBytes:  10 << 20,
		IndexIntervalBytes: 4096,
		RetentionMs:        7 * 24 * 3600 * 1000,
		RetentionBytes:     -1,
		FlushPolicy:        FlushOnAck,
		FlushMessages:      1<<63 - 1,
		FlushMs:            1<<63 - 1,
	}
}

// ManagerOptions configure a data directory.
type ManagerOptions struct {
	Logger *slog.Logger
	// Now is the wall clock (for segment.ms, retention.ms, LogAppendTime); nil = time.Now.
	Now func() time.Time
	// CheckpointInterval is how often recovery points are written
	// (log.flush.offset.checkpoint.interval.ms).
	CheckpointInterval time.Duration
	// RetentionCheckInterval is log.retention.check.interval.ms.
	RetentionCheckInterval time.Duration
	// OnAdvance is called (outside storage locks) when a log's high
	// watermark advances; fetch long-polls hang off it.
	OnAdvance func(tp TopicPartition, highWatermark int64)
	// Configs returns the current Config for a partition found on disk at
	// open; nil means DefaultConfig.
	Configs func(tp TopicPartition) Config
}

// Manager owns one data directory: it opens (and recovers) every partition
// directory in it, runs the checkpoint, roll-by-age and retention loops, and
// writes a clean-shutdown marker on Close.
type Manager struct{}

// OpenManager opens dir, recovering each partition log found in it.
func OpenManager(fsys vfs.FS, dir string, opts ManagerOptions) (*Manager, error) {
	panic("storage.OpenManager: not implemented")
}

// Logs returns every open log.
func (m *Manager) Logs() []*Log { panic("not implemented") }

// Get returns the log of tp, or nil.
func (m *Manager) Get(tp TopicPartition) *Log { panic("not implemented") }

// Create makes a new empty log (directory <topic>-<partition> with a
// partition.metadata file carrying topicID) and returns it.
func (m *Manager) Create(tp TopicPartition, topicID [16]byte, cfg Config) (*Log, error) {
	panic("not implemented")
}

// Delete closes and removes the log of tp.
func (m *Manager) Delete(tp TopicPartition) error { panic("not implemented") }

// Close syncs every log, writes checkpoints and the clean-shutdown marker.
func (m *Manager) Close() error { panic("not implemented") }

// AppendOptions qualify one append.
type AppendOptions struct {
	LeaderEpoch int32
	// LogAppendTime, when non-zero, stamps every batch with this time (ms)
	// (message.timestamp.type=LogAppendTime).
	LogAppendTime int64
}

// AppendResult is where an append landed.
type AppendResult struct {
	BaseOffset     int64
	LastOffset     int64
	LogStartOffset int64
	// Duplicate is true when the batch repeated one of the producer's last
	// five batches; the offsets are those of the original and nothing was written.
	Duplicate bool
}

// ReadResult is a run of whole batches.
type ReadResult struct {
	Records       []byte
	HighWatermark int64
	StartOffset   int64
	EndOffset     int64
}

// SegmentInfo describes one segment for DescribeLogDirs and the tiering planner.
type SegmentInfo struct {
	BaseOffset   int64
	NextOffset   int64
	SizeBytes    int64
	MaxTimestamp int64
	Active       bool
}

// Log is one partition's log. All methods are safe for concurrent use.
type Log struct{}

// TopicPartition returns which partition this log holds.
func (l *Log) TopicPartition() TopicPartition { panic("not implemented") }

// TopicID returns the topic id stored in partition.metadata.
func (l *Log) TopicID() [16]byte { panic("not implemented") }

// Append writes validated batches (concatenated v2 batches as produced;
// offsets are assigned here, in order). Idempotent batches are checked
// against producer state: a duplicate of one of the last five batches gives
// Duplicate with the original offsets; a gap gives ErrOutOfOrderSequence; an
// older epoch ErrInvalidProducerEpoch. A failed write (e.g. ENOSPC) returns
// ErrStorage and leaves the log as it was before the call.
func (l *Log) Append(records []byte, opts AppendOptions) (AppendResult, error) {
	panic("not implemented")
}

// WaitDurable returns once every offset below endOffset is durable by the
// flush policy (FlushOnAck: fsynced; FlushInterval: written).
func (l *Log) WaitDurable(ctx context.Context, endOffset int64) error { panic("not implemented") }

// Read returns whole batches starting with the one containing offset, at
// most maxBytes unless the first batch alone is larger (it is then returned
// whole, as Kafka does), and none with offsets at or above maxOffset.
func (l *Log) Read(offset int64, maxBytes int32, maxOffset int64) (ReadResult, error) {
	panic("not implemented")
}

// StartOffset is the log start offset.
func (l *Log) StartOffset() int64 { panic("not implemented") }

// EndOffset is the log end offset (next offset to be assigned).
func (l *Log) EndOffset() int64 { panic("not implemented") }

// HighWatermark is the end of what consumers may read.
func (l *Log) HighWatermark() int64 { panic("not implemented") }

// OffsetForTimestamp returns the first offset whose timestamp is >= ts.
func (l *Log) OffsetForTimestamp(ts int64) (offset, timestamp int64, leaderEpoch int32, found bool) {
	panic("not implemented")
}

// MaxTimestamp returns the offset and timestamp of the record with the
// largest timestamp (ListOffsets -3).
func (l *Log) MaxTimestamp() (offset, timestamp int64, leaderEpoch int32, found bool) {
	panic("not implemented")
}

// DeleteRecordsBefore advances the log start offset (DeleteRecords); whole
// segments below it are removed. Returns the new log start offset.
func (l *Log) DeleteRecordsBefore(offset int64) (int64, error) { panic("not implemented") }

// EndOffsetForEpoch answers OffsetForLeaderEpoch: the largest epoch <= the
// requested one and the end offset of that epoch.
func (l *Log) EndOffsetForEpoch(epoch int32) (foundEpoch int32, endOffset int64) {
	panic("not implemented")
}

// SetConfig changes the log's configuration (AlterConfigs).
func (l *Log) SetConfig(cfg Config) { panic("not implemented") }

// Size is the bytes of all segments.
func (l *Log) Size() int64 { panic("not implemented") }

// Segments lists the segments, oldest first.
func (l *Log) Segments() []SegmentInfo { panic("not implemented") }

// Dir is the partition's directory.
func (l *Log) Dir() string { panic("not implemented") }

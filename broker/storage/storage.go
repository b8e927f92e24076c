// Package storage is the local log of every partition on a broker: segments
// in Kafka's on-disk format, sparse offset and time indexes, recovery after a
// crash, retention, idempotent-producer state, and group-committed fsync.
package storage

import (
	"errors"
	"log/slog"
	"time"
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
	ErrSealed               = errors.New("log sealed: its leadership is moving") // NOT_LEADER_OR_FOLLOWER
	ErrLogExists            = errors.New("log already exists")
	ErrNotContiguous        = errors.New("batches do not continue the log") // a follower's fetch that does not start at its log end
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
	// TailCacheBytes bounds the memory of all logs' tail caches (the
	// latest appends, kept for reads at the end of the log); 0 turns the
	// cache off (tiercel.log.tail.cache.bytes).
	TailCacheBytes int64
	// DropBehindBytes, when positive, lets go of the page cache behind
	// each log's end: once fsynced, the bytes of the active segment more
	// than this far before its end are dropped (posix_fadvise DONTNEED).
	// A broker streaming through then reuses the same few pages instead
	// of filling memory with a log nobody rereads soon; 0 leaves the page
	// cache to the kernel (tiercel.log.drop.behind.bytes).
	DropBehindBytes int64
	// OnFlush, when set, is called after each fsync of a log with its
	// duration (Kafka's LogFlushRateAndTimeMs), outside storage locks.
	OnFlush func(time.Duration)
}

// AppendOptions qualify one append.
type AppendOptions struct {
	LeaderEpoch int32
	// LogAppendTime, when non-zero, stamps every batch with this time (ms)
	// (message.timestamp.type=LogAppendTime).
	LogAppendTime int64
	// Retain: the caller never changes records after the append, so the
	// log may keep them in its tail cache and serve reads from them.
	Retain bool
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

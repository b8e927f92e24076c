package storage

import (
	"fmt"
	"sync"

	"github.com/tiercel/tiercel/internal/recordbatch"
	"github.com/tiercel/tiercel/internal/vfs"
)

// Log is one partition's log. All methods are safe for concurrent use.
// Lock order: Manager.mu before Log.mu; Log.mu is never held across a call
// into the Manager except for its immutable fields and callbacks made
// after unlocking.
type Log struct {
	tp      TopicPartition
	topicID [16]byte
	dir     string
	fs      vfs.FS
	m       *Manager

	mu        sync.Mutex
	cfg       Config
	segs      []*segment // oldest first; the last is active
	start     int64      // log start offset
	end       int64      // log end offset
	synced    int64      // offsets below are fsynced
	syncing   bool       // a sync goroutine is running
	syncDone  chan struct{}
	syncErr   error // a failed fsync: nothing after it may be acknowledged
	unflushed int64 // messages since the last flush (FlushInterval)
	lastFlush int64 // wall ms of the last flush (FlushInterval)
	producers *producerState
	epochs    epochCache
	dirty     bool  // changed since the last checkpoint
	lastRP    int64 // the recovery point last recorded for this log
	closed    bool
	// sealed: leader appends are refused (ErrSealed) from the moment a
	// handoff starts flushing the log until the broker leads it again, so
	// no request that looked up the leader before the move can append
	// after the flush it was checked against.
	sealed bool
	// replicated: the high watermark is replHW, set by the replication
	// (SetReplicaHighWatermark), capped by local durability.
	replicated bool
	replHW     int64
	savedHW    int64 // the high watermark checkpointed before a restart, the first one set starts from
	// truncations counts TruncateTo calls, so an fsync that began before
	// one does not mark what was written after it durable.
	truncations int64
	tail        tailCache // the latest leader appends, for reads at the end
}

func (l *Log) active() *segment { return l.segs[len(l.segs)-1] }

// TopicPartition returns which partition this log holds.
func (l *Log) TopicPartition() TopicPartition { return l.tp }

// TopicID returns the topic id stored in partition.metadata.
func (l *Log) TopicID() [16]byte { return l.topicID }

// Dir is the partition's directory.
func (l *Log) Dir() string { return l.dir }

// hw is the high watermark; l.mu held.
func (l *Log) hw() int64 {
	local := l.end
	if l.cfg.FlushPolicy == FlushOnAck {
		local = l.synced
	}
	if l.replicated {
		return min(local, l.replHW)
	}
	return local
}

// Seal refuses leader appends (Append fails with ErrSealed; AppendReplica
// still works) until Unseal; the appends before it have returned.
func (l *Log) Seal() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sealed = true
}

// Unseal takes leader appends again.
func (l *Log) Unseal() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sealed = false
}

// Append writes validated batches, assigning offsets in order. See the
// package documentation of AppendResult for duplicates.
func (l *Log) Append(records []byte, opts AppendOptions) (AppendResult, error) {
	return l.append(records, opts, false)
}

// AppendReplica writes batches a follower fetched from its leader, keeping
// their offsets and leader epochs: they must continue the log exactly.
func (l *Log) AppendReplica(records []byte) (AppendResult, error) {
	return l.append(records, AppendOptions{}, true)
}

func (l *Log) parseHeaders(records []byte, headers []recordbatch.Header) ([]recordbatch.Header, error) {
	for pos := 0; pos < len(records); {
		h, err := recordbatch.ParseHeader(records[pos:])
		if err != nil || h.TotalSize() < recordbatch.HeaderSize || pos+h.TotalSize() > len(records) {
			return nil, fmt.Errorf("storage: append %s-%d: malformed batch at byte %d", l.tp.Topic, l.tp.Partition, pos)
		}
		headers = append(headers, h)
		pos += h.TotalSize()
	}
	if len(headers) == 0 {
		return nil, fmt.Errorf("storage: append %s-%d: no batches", l.tp.Topic, l.tp.Partition)
	}
	return headers, nil
}

func (l *Log) append(records []byte, opts AppendOptions, replica bool) (AppendResult, error) {
	var hdrs [8]recordbatch.Header
	headers, err := l.parseHeaders(records, hdrs[:0])
	if err != nil {
		return AppendResult{}, err
	}

	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return AppendResult{}, ErrClosed
	}
	if l.sealed && !replica {
		l.mu.Unlock()
		return AppendResult{}, fmt.Errorf("%w: %s-%d", ErrSealed, l.tp.Topic, l.tp.Partition)
	}
	if l.syncErr != nil {
		l.mu.Unlock()
		return AppendResult{}, fmt.Errorf("%w: %s-%d: an earlier fsync failed: %v", ErrStorage, l.tp.Topic, l.tp.Partition, l.syncErr)
	}
	if replica {
		// The leader assigned the offsets; they must continue this log.
		next := l.end
		for _, h := range headers {
			if h.BaseOffset != next || h.LastOffsetDelta < 0 {
				l.mu.Unlock()
				return AppendResult{}, fmt.Errorf("%w: replica append %s-%d: batch at offset %d, log ends at %d", ErrNotContiguous, l.tp.Topic, l.tp.Partition, h.BaseOffset, next)
			}
			next = h.LastOffset() + 1
		}
	} else if dup, err := l.checkProducers(headers); err != nil || dup != nil {
		start := l.start
		l.mu.Unlock()
		if err != nil {
			return AppendResult{}, fmt.Errorf("storage: append %s-%d: %w", l.tp.Topic, l.tp.Partition, err)
		}
		return AppendResult{BaseOffset: dup.firstOffset, LastOffset: dup.lastOffset, LogStartOffset: start, Duplicate: true}, nil
	}

	nowMs := l.m.nowMs()
	if err := l.maybeRoll(len(records), nowMs); err != nil {
		l.mu.Unlock()
		return AppendResult{}, err
	}
	off := l.end
	if !replica {
		for i, pos := range batchPositions(headers) {
			b := records[pos : pos+headers[i].TotalSize()]
			recordbatch.SetBaseOffset(b, off)
			recordbatch.SetPartitionLeaderEpoch(b, opts.LeaderEpoch)
			if opts.LogAppendTime != 0 {
				recordbatch.SetLogAppendTime(b, opts.LogAppendTime)
				headers[i].MaxTimestamp = opts.LogAppendTime
			}
			headers[i].BaseOffset = off
			headers[i].PartitionLeaderEpoch = opts.LeaderEpoch
			off = headers[i].LastOffset() + 1
		}
	} else {
		off = headers[len(headers)-1].LastOffset() + 1
	}

	seg := l.active()
	if _, err := seg.file.WriteAt(records, seg.size); err != nil {
		// Undo a short write so the segment ends on a batch boundary; the
		// log stays as it was and later appends can succeed.
		_ = seg.file.Truncate(seg.size)
		l.mu.Unlock()
		return AppendResult{}, fmt.Errorf("%w: append %s-%d: %v", ErrStorage, l.tp.Topic, l.tp.Partition, err)
	}
	if seg.createdMs == 0 {
		seg.createdMs = nowMs
	}
	pos := seg.size
	epochChanged := false
	for _, h := range headers {
		seg.noteBatch(h, pos, int64(h.TotalSize()), int64(l.cfg.IndexIntervalBytes))
		pos += int64(h.TotalSize())
		l.producers.update(h)
		l.unflushed += int64(h.NumRecords)
		epochChanged = l.epochs.assign(h.PartitionLeaderEpoch, h.BaseOffset) || epochChanged
	}
	seg.size = pos
	base := l.end
	l.end = off
	if opts.Retain && !replica {
		l.tail.add(base, off, records, nowMs)
	}
	l.dirty = true
	res := AppendResult{BaseOffset: base, LastOffset: off - 1, LogStartOffset: l.start}
	if epochChanged {
		if err := vfs.WriteFileAtomic(l.fs, l.dir+"/"+leaderEpochCheckpointFile, l.epochs.marshal()); err != nil {
			l.m.logger.Warn("leader epoch checkpoint", "partition", l.tp, "err", err)
		}
	}
	advanced := l.afterWrite(nowMs)
	hw := l.hw()
	l.mu.Unlock()
	if advanced {
		l.m.advance(l.tp, hw)
	}
	return res, nil
}

func batchPositions(hs []recordbatch.Header) []int {
	out := make([]int, len(hs))
	pos := 0
	for i, h := range hs {
		out[i] = pos
		pos += h.TotalSize()
	}
	return out
}

// checkProducers applies the idempotence rules to every batch of one
// append, as if the earlier ones were already written; l.mu held.
func (l *Log) checkProducers(hs []recordbatch.Header) (*batchMeta, error) {
	if len(hs) == 1 {
		if !hs[0].Idempotent() {
			return nil, nil
		}
		return l.producers.check(hs[0])
	}
	scratch := newProducerState()
	for _, h := range hs {
		if !h.Idempotent() {
			continue
		}
		if _, seen := scratch.producers[h.ProducerID]; !seen {
			if e := l.producers.producers[h.ProducerID]; e != nil {
				cp := *e
				cp.batches = append([]batchMeta(nil), e.batches...)
				scratch.producers[h.ProducerID] = &cp
			}
		}
		if dup, err := scratch.check(h); err != nil || dup != nil {
			return dup, err
		}
		scratch.update(h)
	}
	return nil, nil
}

// afterWrite starts the group-commit sync or applies the interval flush
// policy; it reports whether the high watermark moved. l.mu held.
func (l *Log) afterWrite(nowMs int64) bool {
	if l.cfg.FlushPolicy == FlushOnAck {
		l.startSync()
		return false
	}
	if l.unflushed >= l.cfg.FlushMessages || (l.cfg.FlushMs >= 0 && nowMs-l.lastFlush >= l.cfg.FlushMs) {
		l.startSync()
	}
	return true
}

// maybeRoll starts a new segment when the next write would overflow the
// active one, its index is full, or it is older than segment.ms. l.mu held.
func (l *Log) maybeRoll(incoming int, nowMs int64) error {
	seg := l.active()
	if seg.size == 0 {
		return nil
	}
	full := seg.size+int64(incoming) > l.cfg.SegmentBytes
	indexFull := int64(len(seg.index)+1)*8 > int64(l.cfg.SegmentIndexBytes)
	old := seg.createdMs > 0 && nowMs-seg.createdMs >= l.cfg.SegmentMs
	// Offsets relative to the base must fit the index's uint32.
	far := l.end-seg.base > 1<<31
	if !full && !indexFull && !old && !far {
		return nil
	}
	return l.roll()
}

// Roll closes the active segment (if it holds anything) so that it can be
// tiered: a leader handing its partition over uploads everything first.
func (l *Log) Roll() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	if l.active().size == 0 {
		return nil
	}
	return l.roll()
}

// roll closes the active segment durably and opens a new one at the log
// end; l.mu held.
func (l *Log) roll() error {
	seg := l.active()
	if err := seg.file.Sync(); err != nil {
		return fmt.Errorf("%w: roll %s-%d: %v", ErrStorage, l.tp.Topic, l.tp.Partition, err)
	}
	if err := seg.writeIndexes(l.fs); err != nil {
		return fmt.Errorf("%w: roll %s-%d: indexes: %v", ErrStorage, l.tp.Topic, l.tp.Partition, err)
	}
	if l.cfg.FlushPolicy == FlushInterval || l.synced < seg.next {
		// Everything in the closed segment is now durable.
		l.synced = max(l.synced, seg.next)
	}
	f, err := openSegmentFile(l.fs, l.dir, l.end, true)
	if err != nil {
		return fmt.Errorf("%w: roll %s-%d: %v", ErrStorage, l.tp.Topic, l.tp.Partition, err)
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		f.Close()
		_ = l.fs.Remove(segmentName(l.dir, l.end, ".log"))
		return fmt.Errorf("%w: roll %s-%d: %v", ErrStorage, l.tp.Topic, l.tp.Partition, err)
	}
	l.segs = append(l.segs, &segment{dir: l.dir, base: l.end, file: f, next: l.end, maxTS: -1, maxTSOff: -1})
	return nil
}

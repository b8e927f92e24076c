package storage

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/tiercel/tiercel/internal/recordbatch"
	"github.com/tiercel/tiercel/internal/vfs"
)

// SetReplicaHighWatermark makes the log replicated: from now on its high
// watermark (what consumers read up to, and what tiering may upload) is
// the replication's, at most hw and the log end, instead of the local
// end. It never goes back except by truncation.
func (l *Log) SetReplicaHighWatermark(hw int64) {
	l.mu.Lock()
	before := l.hw()
	if !l.replicated {
		// After a restart the checkpointed watermark holds: what was
		// committed stays readable before the replicas report again.
		l.replicated, l.replHW = true, max(l.start, min(l.savedHW, l.end))
	}
	l.replHW = max(l.replHW, min(hw, l.end))
	after := l.hw()
	l.mu.Unlock()
	if after > before {
		l.m.advance(l.tp, after)
	}
}

// durableReplicaHW is the high watermark to checkpoint for a replicated
// log: never above what is durable here.
func (l *Log) durableReplicaHW() (int64, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.replicated {
		return 0, false
	}
	return min(l.replHW, l.synced), true
}

// Replicated reports whether SetReplicaHighWatermark governs the high watermark.
func (l *Log) Replicated() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.replicated
}

// TruncateTo removes every batch whose last offset is at or above offset
// (a whole batch goes if offset falls inside it), as a follower does to a
// tail its new leader does not have (KIP-101). The log end becomes the
// first removed batch's base offset. It is durable before it returns: a
// divergent tail must not come back after a crash. An offset below the
// log start is ErrOffsetOutOfRange (the caller starts the log afresh).
func (l *Log) TruncateTo(offset int64) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	if offset >= l.end {
		l.mu.Unlock()
		return nil
	}
	if offset < l.start {
		l.mu.Unlock()
		return fmt.Errorf("%w: truncating %s-%d to %d, below its start %d", ErrOffsetOutOfRange, l.tp.Topic, l.tp.Partition, offset, l.start)
	}
	// Truncation keeps whole batches: if the batch holding offset began
	// below the log start (DeleteRecords can start a log mid-batch), what
	// would be left ends before the log starts.
	if seg, _ := l.segmentFor(offset); offset > l.start {
		if _, base, err := seg.batchAt(offset); err == nil && base < l.start {
			l.mu.Unlock()
			return fmt.Errorf("%w: truncating %s-%d to %d cuts the batch at %d, below its start %d", ErrOffsetOutOfRange, l.tp.Topic, l.tp.Partition, offset, base, l.start)
		}
	}
	err := l.truncateLocked(offset)
	l.mu.Unlock()
	if err != nil {
		return err
	}
	// The recovery point and producer snapshot follow the shorter log, so
	// recovery never trusts bytes that were removed.
	return l.m.checkpointOne(l)
}

func (l *Log) truncateLocked(offset int64) error {
	removedDir := false
	for len(l.segs) > 1 && l.active().base >= offset {
		l.active().removeFiles(l.fs)
		l.segs = l.segs[:len(l.segs)-1]
		removedDir = true
	}
	seg := l.active()
	pos, end, err := seg.batchAt(offset)
	if err != nil {
		return fmt.Errorf("%w: truncate %s-%d: %v", ErrStorage, l.tp.Topic, l.tp.Partition, err)
	}
	if err := seg.file.Truncate(pos); err != nil {
		return fmt.Errorf("%w: truncate %s-%d: %v", ErrStorage, l.tp.Topic, l.tp.Partition, err)
	}
	if err := seg.file.Sync(); err != nil {
		return fmt.Errorf("%w: truncate %s-%d: %v", ErrStorage, l.tp.Topic, l.tp.Partition, err)
	}
	if removedDir {
		if err := l.fs.SyncDir(l.dir); err != nil {
			return fmt.Errorf("%w: truncate %s-%d: %v", ErrStorage, l.tp.Topic, l.tp.Partition, err)
		}
	}
	seg.size, seg.next = pos, end
	seg.dropped = min(seg.dropped, pos)
	seg.index = trimIndex(seg.index, pos)
	seg.times = trimTimes(seg.times, seg.base, end)
	seg.maxTS, seg.maxTSOff = -1, -1
	if n := len(seg.times); n > 0 {
		seg.maxTS, seg.maxTSOff = seg.times[n-1].ts, seg.base+int64(seg.times[n-1].rel)
	}
	l.end = end
	l.tail.clear()
	l.truncations++
	l.synced = min(l.synced, end)
	l.replHW = min(l.replHW, end)
	l.lastRP = min(l.lastRP, end)
	l.producers.truncate(end)
	l.epochs.truncateFrom(end)
	l.dirty = true
	if err := vfs.WriteFileAtomic(l.fs, filepath.Join(l.dir, leaderEpochCheckpointFile), l.epochs.marshal()); err != nil {
		return fmt.Errorf("%w: truncate %s-%d: leader epochs: %v", ErrStorage, l.tp.Topic, l.tp.Partition, err)
	}
	l.removeSnapshotsAbove(end)
	return nil
}

// batchAt finds the first batch whose last offset is at or above offset:
// its file position and base offset (the segment's size and next offset
// if there is none).
func (s *segment) batchAt(offset int64) (pos, base int64, err error) {
	var hb [recordbatch.HeaderSize]byte
	for pos = s.lookup(offset); pos < s.size; {
		if _, err := s.file.ReadAt(hb[:], pos); err != nil {
			return 0, 0, err
		}
		h, err := recordbatch.ParseHeader(hb[:])
		if err != nil {
			return 0, 0, err
		}
		if h.LastOffset() >= offset {
			return pos, h.BaseOffset, nil
		}
		pos += int64(h.TotalSize())
	}
	return s.size, s.next, nil
}

// removeSnapshotsAbove deletes producer snapshots taken past offset; l.mu held.
func (l *Log) removeSnapshotsAbove(offset int64) {
	entries, err := l.fs.ReadDir(l.dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if n, ok := strings.CutSuffix(e.Name(), ".snapshot"); ok {
			if o, err := strconv.ParseInt(n, 10, 64); err == nil && o > offset {
				_ = l.fs.Remove(filepath.Join(l.dir, e.Name()))
			}
		}
	}
}

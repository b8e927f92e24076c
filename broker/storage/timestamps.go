package storage

import (
	"fmt"

	"github.com/tiercel/tiercel/internal/recordbatch"
)

// OffsetForTimestamp returns the first offset whose timestamp is >= ts.
func (l *Log) OffsetForTimestamp(ts int64) (offset, timestamp int64, leaderEpoch int32, found bool) {
	l.mu.Lock()
	var seg *segment
	for _, s := range l.segs {
		if s.size > 0 && s.maxTS >= ts {
			seg = s
			break
		}
	}
	if seg == nil {
		l.mu.Unlock()
		return -1, -1, -1, false
	}
	pos, limit, file, start, hw := seg.lookupTime(ts), seg.size, seg.file, l.start, l.hw()
	l.mu.Unlock()

	var hdr [recordbatch.HeaderSize]byte
	for pos+recordbatch.HeaderSize <= limit {
		if _, err := file.ReadAt(hdr[:], pos); err != nil {
			return -1, -1, -1, false
		}
		h, _ := recordbatch.ParseHeader(hdr[:])
		if h.BaseOffset >= hw {
			break
		}
		if h.MaxTimestamp >= ts && h.LastOffset() >= start {
			if rec, ok := l.firstRecordAtOrAfter(file, pos, h, ts, start); ok {
				return rec.Offset, rec.Timestamp, h.PartitionLeaderEpoch, true
			}
		}
		pos += int64(h.TotalSize())
	}
	return -1, -1, -1, false
}

// firstRecordAtOrAfter decodes one batch to find its first record at or
// after ts (and at or after the log start).
func (l *Log) firstRecordAtOrAfter(file interface {
	ReadAt([]byte, int64) (int, error)
}, pos int64, h recordbatch.Header, ts, start int64) (recordbatch.Record, bool) {
	buf := make([]byte, h.TotalSize())
	if _, err := file.ReadAt(buf, pos); err != nil {
		return recordbatch.Record{}, false
	}
	recs, err := recordbatch.Records(recordbatch.Batch{Header: h, Bytes: buf})
	if err != nil {
		l.m.logger.Warn("undecodable batch in a timestamp lookup", "partition", l.tp, "position", pos, "err", err)
		return recordbatch.Record{}, false
	}
	for _, r := range recs {
		if r.Timestamp >= ts && r.Offset >= start {
			return r, true
		}
	}
	return recordbatch.Record{}, false
}

// MaxTimestamp returns the offset and timestamp of the record with the
// largest timestamp (ListOffsets -3).
func (l *Log) MaxTimestamp() (offset, timestamp int64, leaderEpoch int32, found bool) {
	l.mu.Lock()
	var best *segment
	for _, s := range l.segs {
		if s.size > 0 && s.maxTSOff >= l.start && (best == nil || s.maxTS > best.maxTS) {
			best = s
		}
	}
	if best == nil {
		l.mu.Unlock()
		return -1, -1, -1, false
	}
	ts, batchLast := best.maxTS, best.maxTSOff
	l.mu.Unlock()
	// The time index records the batch; the exact record is the first one
	// in that batch carrying the maximum timestamp.
	off, rts, epoch, ok := l.OffsetForTimestamp(ts)
	if !ok || off > batchLast {
		return batchLast, ts, -1, true
	}
	return off, rts, epoch, true
}

// DeleteRecordsBefore advances the log start offset (DeleteRecords); whole
// segments below it are removed. Returns the new log start offset.
func (l *Log) DeleteRecordsBefore(offset int64) (int64, error) {
	l.mu.Lock()
	if offset > l.hw() || offset < 0 {
		hw := l.hw()
		l.mu.Unlock()
		return 0, fmt.Errorf("%w: %d is beyond the high watermark %d", ErrOffsetOutOfRange, offset, hw)
	}
	if offset <= l.start {
		start := l.start
		l.mu.Unlock()
		return start, nil
	}
	if len(l.segs) > 1 && l.segs[0].next <= offset {
		// Segments will go: snapshot the producer state first (see
		// checkpointOne).
		l.mu.Unlock()
		if err := l.m.checkpointOne(l); err != nil {
			return 0, fmt.Errorf("%w: checkpoint before dropping segments: %v", ErrStorage, err)
		}
		l.mu.Lock()
		if offset <= l.start {
			start := l.start
			l.mu.Unlock()
			return start, nil
		}
	}
	l.start = offset
	l.dropSegmentsBelowStart()
	l.tail.dropBelow(offset, 0)
	l.dirty = true
	l.mu.Unlock()
	if err := l.m.writeLogStartCheckpoint(); err != nil {
		return 0, fmt.Errorf("%w: log start checkpoint: %v", ErrStorage, err)
	}
	return offset, nil
}

// dropSegmentsBelowStart deletes closed segments wholly below the log
// start; l.mu held.
func (l *Log) dropSegmentsBelowStart() {
	for len(l.segs) > 1 && l.segs[0].next <= l.start {
		l.segs[0].removeFiles(l.fs)
		l.segs = l.segs[1:]
	}
}

// applyRetention deletes the oldest closed segments beyond retention.ms or
// retention.bytes, rolling an expired active segment first, as Kafka does.
func (l *Log) applyRetention(nowMs int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	expired := func(s *segment) bool {
		return l.cfg.RetentionMs >= 0 && s.size > 0 && s.maxTS >= 0 && nowMs-s.maxTS > l.cfg.RetentionMs
	}
	act := l.active()
	if act.size > 0 && (expired(act) || (act.createdMs > 0 && nowMs-act.createdMs >= l.cfg.SegmentMs)) && l.synced >= l.end {
		if err := l.roll(); err != nil {
			l.m.logger.Warn("roll for retention", "partition", l.tp, "err", err)
		}
	}
	var total int64
	for _, s := range l.segs {
		total += s.size
	}
	removed := false
	for len(l.segs) > 1 {
		s := l.segs[0]
		bySize := l.cfg.RetentionBytes >= 0 && total-s.size >= l.cfg.RetentionBytes
		if !expired(s) && !bySize {
			break
		}
		total -= s.size
		s.removeFiles(l.fs)
		l.segs = l.segs[1:]
		l.start = max(l.start, l.segs[0].base)
		removed = true
	}
	if removed {
		l.dirty = true
	}
}

package storage

import (
	"fmt"
	"os"

	"github.com/tiercel/tiercel/internal/recordbatch"
)

// ClosedSegment is what tiering uploads of one closed segment: its log file
// (an open handle, still readable if retention removes the file meanwhile),
// its indexes as Kafka lays them out, and the leader-epoch checkpoint.
type ClosedSegment struct {
	Info SegmentInfo
	Log  interface {
		ReadAt([]byte, int64) (int, error)
	}
	Index     []byte
	TimeIndex []byte
	Epochs    []byte
	// Producers is the idempotent-producer state as of the segment's end
	// (the batches below it that the state still remembers).
	Producers []byte
	close     func() error
}

// Close releases the log file.
func (c *ClosedSegment) Close() error { return c.close() }

// OpenClosedSegment opens the closed segment starting at base.
func (l *Log) OpenClosedSegment(base int64) (*ClosedSegment, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, s := range l.segs {
		if s.base != base {
			continue
		}
		if i == len(l.segs)-1 {
			return nil, fmt.Errorf("storage: segment %d of %s-%d is still active", base, l.tp.Topic, l.tp.Partition)
		}
		f, err := l.fs.OpenFile(s.logPath(), os.O_RDONLY, 0)
		if err != nil {
			return nil, fmt.Errorf("%w: open %s: %v", ErrStorage, s.logPath(), err)
		}
		ps := l.producers.clone()
		ps.truncate(s.next)
		return &ClosedSegment{
			Producers: ps.marshal(),
			Info:      SegmentInfo{BaseOffset: s.base, NextOffset: s.next, SizeBytes: s.size, MaxTimestamp: s.maxTS},
			Log:       f, Index: s.indexBytes(), TimeIndex: s.timeIndexBytes(), Epochs: l.epochs.marshal(),
			close: f.Close,
		}, nil
	}
	for i, s := range l.segs[:len(l.segs)-1] {
		if s.base < base && base < s.next {
			return l.openSegmentSuffix(l.segs[i], base)
		}
	}
	return nil, fmt.Errorf("%w: no segment at %d in %s-%d", ErrOffsetOutOfRange, base, l.tp.Topic, l.tp.Partition)
}

// openSegmentSuffix opens the part of closed segment s from offset from
// (a batch boundary) on as if it were a segment of its own, with indexes
// rebuilt for it: a follower's copy rolls its segments elsewhere than its
// leader did, and once it leads, the remote log continues from the
// middle of one of its segments. l.mu held.
func (l *Log) openSegmentSuffix(s *segment, from int64) (*ClosedSegment, error) {
	pos, first, err := s.batchAt(from)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrStorage, s.logPath(), err)
	}
	if first != from {
		return nil, fmt.Errorf("%w: offset %d is inside a batch of %s", ErrCorruptLog, from, s.logPath())
	}
	f, err := l.fs.OpenFile(s.logPath(), os.O_RDONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: open %s: %v", ErrStorage, s.logPath(), err)
	}
	sub := &segment{dir: s.dir, base: from, next: from, maxTS: -1, maxTSOff: -1}
	var hb [recordbatch.HeaderSize]byte
	for p := pos; p < s.size; {
		if _, err := f.ReadAt(hb[:], p); err != nil {
			f.Close()
			return nil, fmt.Errorf("%w: %s: %v", ErrStorage, s.logPath(), err)
		}
		h, err := recordbatch.ParseHeader(hb[:])
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%w: %s at %d: %v", ErrCorruptLog, s.logPath(), p, err)
		}
		sub.noteBatch(h, p-pos, int64(h.TotalSize()), int64(l.cfg.IndexIntervalBytes))
		p += int64(h.TotalSize())
	}
	sub.size = s.size - pos
	ps := l.producers.clone()
	ps.truncate(s.next)
	return &ClosedSegment{
		Producers: ps.marshal(),
		Info:      SegmentInfo{BaseOffset: from, NextOffset: s.next, SizeBytes: sub.size, MaxTimestamp: sub.maxTS},
		Log:       offsetReader{f, pos}, Index: sub.indexBytes(), TimeIndex: sub.timeIndexBytes(), Epochs: l.epochs.marshal(),
		close: f.Close,
	}, nil
}

// offsetReader reads a file from byte off on.
type offsetReader struct {
	f interface {
		ReadAt([]byte, int64) (int, error)
	}
	off int64
}

func (r offsetReader) ReadAt(p []byte, at int64) (int, error) { return r.f.ReadAt(p, r.off+at) }

// RestoreProducers loads an idempotent-producer snapshot (a tiered
// segment's) into an empty log, so producers carry on across a lost disk.
func (l *Log) RestoreProducers(snapshot []byte) error {
	ps, err := unmarshalProducerState(snapshot)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.end != l.start {
		return fmt.Errorf("storage: %s-%d: producer state restored into a log that is not empty", l.tp.Topic, l.tp.Partition)
	}
	l.producers = ps
	l.dirty = true
	return nil
}

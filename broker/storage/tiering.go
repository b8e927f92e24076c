package storage

import (
	"fmt"
	"os"
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
	return nil, fmt.Errorf("%w: no segment at %d in %s-%d", ErrOffsetOutOfRange, base, l.tp.Topic, l.tp.Partition)
}

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

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
		return &ClosedSegment{
			Info: SegmentInfo{BaseOffset: s.base, NextOffset: s.next, SizeBytes: s.size, MaxTimestamp: s.maxTS},
			Log:  f, Index: s.indexBytes(), TimeIndex: s.timeIndexBytes(), Epochs: l.epochs.marshal(),
			close: f.Close,
		}, nil
	}
	return nil, fmt.Errorf("%w: no segment at %d in %s-%d", ErrOffsetOutOfRange, base, l.tp.Topic, l.tp.Partition)
}

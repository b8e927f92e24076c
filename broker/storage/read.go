package storage

import (
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/tiercel/tiercel/internal/recordbatch"
	"github.com/tiercel/tiercel/internal/vfs"
)

// segmentFor returns the segment holding offset; l.mu held, offset in range.
func (l *Log) segmentFor(offset int64) (*segment, int) {
	i := sort.Search(len(l.segs), func(i int) bool { return l.segs[i].base > offset }) - 1
	if i < 0 {
		i = 0
	}
	return l.segs[i], i
}

// Read returns whole batches starting with the one containing offset, at
// most maxBytes unless the first batch alone is larger (it is then returned
// whole, as Kafka does), and none with offsets at or above maxOffset.
func (l *Log) Read(offset int64, maxBytes int32, maxOffset int64) (ReadResult, error) {
	return l.read(offset, maxBytes, maxOffset, true)
}

// read is Read; fromTail=false always reads the segment (tests compare).
func (l *Log) read(offset int64, maxBytes int32, maxOffset int64, fromTail bool) (ReadResult, error) {
	l.mu.Lock()
	res := ReadResult{HighWatermark: l.hw(), StartOffset: l.start, EndOffset: l.end}
	if offset < l.start || offset > l.end {
		l.mu.Unlock()
		return res, fmt.Errorf("%w: offset %d of %s-%d is outside [%d, %d]", ErrOffsetOutOfRange, offset, l.tp.Topic, l.tp.Partition, res.StartOffset, res.EndOffset)
	}
	if offset >= maxOffset || offset == l.end {
		l.mu.Unlock()
		return res, nil
	}
	if fromTail {
		if records, ok := l.tail.read(offset, maxBytes, maxOffset); ok {
			l.mu.Unlock()
			res.Records = records
			return res, nil
		}
	}
	seg, i := l.segmentFor(offset)
	if offset >= seg.next && i+1 < len(l.segs) {
		seg = l.segs[i+1]
	}
	pos, limit, file := seg.lookup(offset), seg.size, seg.file
	l.mu.Unlock()

	records, err := readBatches(file, pos, limit, offset, maxBytes, maxOffset)
	if err != nil {
		path := seg.logPath() // only now: it allocates, and reads are hot
		if errors.Is(err, ErrCorruptLog) {
			return res, fmt.Errorf("%s: %w", path, err)
		}
		if l.StartOffset() > offset {
			// Retention removed the segment while we read it.
			return res, fmt.Errorf("%w: offset %d was deleted by retention", ErrOffsetOutOfRange, offset)
		}
		return res, fmt.Errorf("%w: read %s: %v", ErrStorage, path, err)
	}
	res.Records = records
	return res, nil
}

// readBatches reads from a segment file between pos and limit: it skips
// batches that end before offset, then returns complete batches up to
// maxBytes (at least one) whose base offset is below maxOffset.
func readBatches(f vfs.File, pos, limit, offset int64, maxBytes int32, maxOffset int64) ([]byte, error) {
	var hdr [recordbatch.HeaderSize]byte
	for {
		if pos >= limit {
			return nil, nil
		}
		if limit-pos < recordbatch.HeaderSize {
			return nil, fmt.Errorf("%w: %d bytes at position %d are not a batch", ErrCorruptLog, limit-pos, pos)
		}
		if _, err := f.ReadAt(hdr[:], pos); err != nil {
			return nil, err
		}
		h, _ := recordbatch.ParseHeader(hdr[:])
		if h.Length < recordbatch.HeaderSize-12 || pos+int64(h.TotalSize()) > limit {
			return nil, fmt.Errorf("%w: batch at position %d has length %d", ErrCorruptLog, pos, h.Length)
		}
		if h.LastOffset() >= offset {
			if h.BaseOffset >= maxOffset {
				return nil, nil
			}
			break
		}
		pos += int64(h.TotalSize())
	}
	n := min(int64(maxBytes), limit-pos)
	if first := int64(recordbatch.HeaderSize); n < first {
		n = first
	}
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, pos); err != nil && !(errors.Is(err, io.EOF) && pos+n <= limit) {
		return nil, err
	}
	end := 0
	for end < len(buf) {
		if len(buf)-end < recordbatch.HeaderSize {
			break
		}
		h, _ := recordbatch.ParseHeader(buf[end:])
		if h.BaseOffset >= maxOffset {
			break
		}
		size := h.TotalSize()
		if end+size > len(buf) {
			if end == 0 && pos+int64(size) <= limit {
				// The first batch is larger than maxBytes: return it whole (KIP-74).
				whole := make([]byte, size)
				if _, err := f.ReadAt(whole, pos); err != nil {
					return nil, err
				}
				if recordbatch.ComputeCRC(whole) != h.CRC {
					return nil, fmt.Errorf("%w: batch at position %d (offset %d) fails its CRC", ErrCorruptLog, pos, h.BaseOffset)
				}
				return whole, nil
			}
			break
		}
		// Corruption is reported, never served: the check costs little
		// next to the copy.
		if recordbatch.ComputeCRC(buf[end:end+size]) != h.CRC {
			if end > 0 {
				break // serve what precedes it; the next read reports it
			}
			return nil, fmt.Errorf("%w: batch at position %d (offset %d) fails its CRC", ErrCorruptLog, pos+int64(end), h.BaseOffset)
		}
		end += size
	}
	return buf[:end], nil
}

// StartOffset is the log start offset.
func (l *Log) StartOffset() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.start
}

// EndOffset is the log end offset (next offset to be assigned).
func (l *Log) EndOffset() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.end
}

// HighWatermark is the end of what consumers may read.
func (l *Log) HighWatermark() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.hw()
}

// Size is the bytes of all segments.
func (l *Log) Size() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var n int64
	for _, s := range l.segs {
		n += s.size
	}
	return n
}

// Segments lists the segments, oldest first.
func (l *Log) Segments() []SegmentInfo {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]SegmentInfo, len(l.segs))
	for i, s := range l.segs {
		out[i] = SegmentInfo{BaseOffset: s.base, NextOffset: s.next, SizeBytes: s.size, MaxTimestamp: s.maxTS, Active: i == len(l.segs)-1}
	}
	return out
}

// EndOffsetForEpoch answers OffsetForLeaderEpoch: the largest epoch <= the
// requested one and the end offset of that epoch.
func (l *Log) EndOffsetForEpoch(epoch int32) (foundEpoch int32, endOffset int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.epochs.endOffsetFor(epoch, l.end)
}

// EpochStart says that leader epoch Epoch began at offset Start.
type EpochStart struct {
	Epoch int32
	Start int64
}

// Epochs is the log's leader-epoch history, oldest first.
func (l *Log) Epochs() []EpochStart {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]EpochStart, len(l.epochs.entries))
	for i, e := range l.epochs.entries {
		out[i] = EpochStart{Epoch: e.epoch, Start: e.startOffset}
	}
	return out
}

// LatestEpoch is the newest leader epoch in the log, or -1.
func (l *Log) LatestEpoch() int32 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.epochs.latest()
}

// SetConfig changes the log's configuration (AlterConfigs).
func (l *Log) SetConfig(cfg Config) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cfg = cfg
}

// Config returns the log's configuration.
func (l *Log) Config() Config {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cfg
}

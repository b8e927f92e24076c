package tiering

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/tiercel/tiercel/objstore"
)

// batchHeaderLen is the part of a record batch header needed to walk
// batches: base offset (8), length (4), partition leader epoch (4), magic
// (1), crc (4), attributes (2), last offset delta (4).
const batchHeaderLen = 27

// indexPosition finds where in the log part to start reading for offset:
// the position of the last offset-index entry at or below it (Kafka's
// .index: relative offset and position, uint32 big endian each).
func indexPosition(index []byte, base, offset int64) int64 {
	lo, hi := 0, len(index)/8 // entries [lo, hi)
	pos := int64(0)
	for lo < hi {
		mid := (lo + hi) / 2
		rel := int64(binary.BigEndian.Uint32(index[mid*8:]))
		if base+rel <= offset {
			pos = int64(binary.BigEndian.Uint32(index[mid*8+4:]))
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return pos
}

// ReadRecords reads whole record batches of a tiered segment starting with
// the one that holds offset: at most maxBytes, unless the first batch alone
// is larger (it is then returned whole, as Kafka and the local log do).
// chunk is the size of each ranged GET; index is the segment's offset-index
// part (nil to scan from the start).
func ReadRecords(ctx context.Context, b objstore.Bucket, seg RemoteSegment, f Footer, index []byte, offset int64, maxBytes, chunk int) ([]byte, error) {
	logPart, ok := f.Part(PartLog)
	if !ok {
		return nil, fmt.Errorf("%s: %w: no log part", seg.Key, ErrCorruptObject)
	}
	fetch := func(ctx context.Context, off, n int64) ([]byte, error) {
		return readRange(ctx, b, seg.Key, int64(logPart.Offset)+off, n)
	}
	return readRecords(ctx, fetch, seg, int64(logPart.Length), index, offset, maxBytes, chunk)
}

// rangeFunc returns n bytes of a segment's log part from off.
type rangeFunc func(ctx context.Context, off, n int64) ([]byte, error)

// readRecords is ReadRecords over any source of log-part bytes; it asks
// fetch for at least chunk bytes at a time.
func readRecords(ctx context.Context, fetch rangeFunc, seg RemoteSegment, end int64, index []byte, offset int64, maxBytes, chunk int) ([]byte, error) {
	if offset < seg.BaseOffset || offset >= seg.NextOffset {
		return nil, fmt.Errorf("tiering: offset %d is not in segment [%d, %d)", offset, seg.BaseOffset, seg.NextOffset)
	}
	pos := indexPosition(index, seg.BaseOffset, offset)
	// The batches returned are contiguous in the log: while they all lie
	// in the buffer they are returned as a view of it ([run, pos)); they
	// are copied out only when the buffer is about to be replaced.
	var out []byte
	run := int64(-1)
	buf := []byte{}
	bufStart := pos
	flush := func() {
		if run >= 0 {
			out = append(out, buf[run-bufStart:pos-bufStart]...)
			run = -1
		}
	}
	taken := func() int {
		if run < 0 {
			return len(out)
		}
		return len(out) + int(pos-run)
	}
	for pos < end {
		// Make sure the batch header at pos, then the whole batch, is buffered.
		need := func(n int64) error {
			have := bufStart + int64(len(buf))
			if pos >= bufStart && pos+n <= have {
				return nil
			}
			if pos+n > end {
				return fmt.Errorf("%s: %w: a batch at %d runs past the log part", seg.Key, ErrCorruptObject, pos)
			}
			flush()
			if pos > have {
				// Skipped past what is buffered: start afresh at pos.
				buf, bufStart, have = buf[:0], pos, pos
			}
			size := min(max(int64(chunk), pos+n-have), end-have)
			more, err := fetch(ctx, have, size)
			if err != nil {
				return err
			}
			// Keep what is not consumed yet, then what was read.
			if keep := buf[pos-bufStart:]; len(keep) == 0 {
				buf = more // fetched bytes are never modified: no copy
			} else {
				buf = append(append(make([]byte, 0, len(keep)+len(more)), keep...), more...)
			}
			bufStart = pos
			return nil
		}
		if err := need(batchHeaderLen); err != nil {
			return nil, err
		}
		h := buf[pos-bufStart:]
		batchBase := int64(binary.BigEndian.Uint64(h))
		size := int64(binary.BigEndian.Uint32(h[8:])) + 12
		last := batchBase + int64(binary.BigEndian.Uint32(h[23:]))
		if size < batchHeaderLen || size > end-pos {
			return nil, fmt.Errorf("%s: %w: batch at %d claims %d bytes", seg.Key, ErrCorruptObject, pos, size)
		}
		if last < offset {
			pos += size
			continue
		}
		if taken() > 0 && taken()+int(size) > maxBytes {
			break
		}
		if err := need(size); err != nil {
			return nil, err
		}
		if run < 0 {
			run = pos
		}
		pos += size
		if taken() >= maxBytes {
			break
		}
	}
	if len(out) == 0 && run >= 0 {
		return buf[run-bufStart : pos-bufStart : pos-bufStart], nil
	}
	flush()
	return out, nil
}

// NextOffset is the offset after the last record of whole batches (-1 if
// there are none).
func NextOffset(records []byte) int64 {
	next := int64(-1)
	for pos := 0; pos+batchHeaderLen <= len(records); {
		size := int(binary.BigEndian.Uint32(records[pos+8:])) + 12
		if size < batchHeaderLen || pos+size > len(records) {
			break
		}
		next = int64(binary.BigEndian.Uint64(records[pos:])) + int64(binary.BigEndian.Uint32(records[pos+23:])) + 1
		pos += size
	}
	return next
}

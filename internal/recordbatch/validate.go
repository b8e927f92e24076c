package recordbatch

import (
	"encoding/binary"
	"fmt"
)

// maxRecordsPerBatch bounds recordCount before anything is sized by it; a
// record takes at least 7 bytes, so a batch of 2^31 bytes cannot hold more.
const minRecordSize = 7

// Validate splits a produce request's records bytes into batches and checks
// each: complete framing, magic 2, CRC-32C, size limit, record count
// consistent with lastOffsetDelta, and (Deep) every record. It never
// allocates in proportion to a length field it has not bounds-checked.
func Validate(records []byte, opts ValidateOptions) ([]Batch, error) {
	return ValidateInto(nil, records, opts)
}

// ValidateInto is Validate appending to dst, so a caller can reuse a slice.
func ValidateInto(dst []Batch, records []byte, opts ValidateOptions) ([]Batch, error) {
	if len(records) == 0 {
		return dst, fmt.Errorf("%w: no record batches", ErrInvalid)
	}
	for pos := 0; pos < len(records); {
		rest := records[pos:]
		if len(rest) < posMagic+1 {
			return dst, fmt.Errorf("%w: %d trailing bytes at byte %d are not a batch", ErrCorrupt, len(rest), pos)
		}
		if magic := int8(rest[posMagic]); magic != 2 {
			return dst, fmt.Errorf("%w: batch at byte %d has magic %d; only record format v2 is supported", ErrUnsupported, pos, magic)
		}
		if len(rest) < HeaderSize {
			return dst, fmt.Errorf("%w: batch at byte %d is cut short (%d bytes)", ErrCorrupt, pos, len(rest))
		}
		length := int64(int32(binary.BigEndian.Uint32(rest[posLength:])))
		total := length + 12
		if total < HeaderSize {
			return dst, fmt.Errorf("%w: batch at byte %d declares length %d, below the header size", ErrCorrupt, pos, length)
		}
		if opts.MaxBatchBytes > 0 && total > int64(opts.MaxBatchBytes) {
			return dst, fmt.Errorf("%w: batch at byte %d is %d bytes, over max.message.bytes %d", ErrTooLarge, pos, total, opts.MaxBatchBytes)
		}
		if total > int64(len(rest)) {
			return dst, fmt.Errorf("%w: batch at byte %d declares %d bytes but only %d remain", ErrCorrupt, pos, total, len(rest))
		}
		b := rest[:total]
		h, _ := ParseHeader(b)
		if got := ComputeCRC(b); got != h.CRC {
			return dst, fmt.Errorf("%w: batch at byte %d: crc mismatch (stored %08x, computed %08x)", ErrCorrupt, pos, h.CRC, got)
		}
		if err := checkHeader(h, len(b)); err != nil {
			return dst, fmt.Errorf("batch at byte %d: %w", pos, err)
		}
		batch := Batch{Header: h, Bytes: b}
		if opts.Deep {
			if _, err := decodeRecords(batch, nil, maxDecompressed(opts)); err != nil {
				return dst, fmt.Errorf("batch at byte %d: %w", pos, err)
			}
		}
		dst = append(dst, batch)
		pos += int(total)
	}
	return dst, nil
}

// checkHeader applies the rules a producer's batch must meet.
func checkHeader(h Header, size int) error {
	if h.NumRecords <= 0 {
		return fmt.Errorf("%w: record count %d", ErrInvalid, h.NumRecords)
	}
	if h.LastOffsetDelta != h.NumRecords-1 {
		return fmt.Errorf("%w: record count %d disagrees with last offset delta %d", ErrInvalid, h.NumRecords, h.LastOffsetDelta)
	}
	if h.Codec() == CodecNone && int64(h.NumRecords)*minRecordSize > int64(size-HeaderSize) {
		return fmt.Errorf("%w: %d records cannot fit in %d bytes", ErrCorrupt, h.NumRecords, size-HeaderSize)
	}
	if h.Codec() > CodecZstd {
		return fmt.Errorf("%w: unknown compression codec %d", ErrInvalid, h.Codec())
	}
	if h.Control() {
		return fmt.Errorf("%w: control batches may not be produced by clients", ErrInvalid)
	}
	return nil
}

func maxDecompressed(opts ValidateOptions) int {
	// Decompressed data may legitimately be much larger than the batch; the
	// bound only keeps a compression bomb from taking the process down.
	limit := 64 << 20
	if opts.MaxBatchBytes > 0 && opts.MaxBatchBytes*32 > limit {
		limit = opts.MaxBatchBytes * 32
	}
	return limit
}

package recordbatch

import (
	"encoding/binary"
	"fmt"
)

// Records decompresses a batch and decodes its records.
func Records(b Batch) ([]Record, error) {
	return decodeRecords(b, make([]Record, 0, min(int(b.NumRecords), 4096)), maxDecompressed(ValidateOptions{MaxBatchBytes: len(b.Bytes)}))
}

// decodeRecords walks every record, checking each length against the bytes
// that remain before using it. With dst nil it only validates.
func decodeRecords(b Batch, dst []Record, limit int) ([]Record, error) {
	if len(b.Bytes) < HeaderSize {
		return nil, fmt.Errorf("%w: batch shorter than its header", ErrCorrupt)
	}
	area, err := decompress(b.Codec(), b.Bytes[HeaderSize:], limit)
	if err != nil {
		return nil, err
	}
	r := reader{b: area}
	for i := int32(0); i < b.NumRecords; i++ {
		rec, err := r.record()
		if err != nil {
			return nil, fmt.Errorf("%w: record %d: %v", ErrInvalid, i, err)
		}
		if rec.offsetDelta != int64(i) {
			return nil, fmt.Errorf("%w: record %d has offset delta %d", ErrInvalid, i, rec.offsetDelta)
		}
		if dst != nil {
			ts := b.BaseTimestamp + rec.timestampDelta
			if b.LogAppendTime() {
				ts = b.MaxTimestamp
			}
			rec.Record.Offset = b.BaseOffset + rec.offsetDelta
			rec.Record.Timestamp = ts
			dst = append(dst, rec.Record)
		}
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the last of %d records", ErrInvalid, len(r.b), b.NumRecords)
	}
	return dst, nil
}

type decoded struct {
	Record
	timestampDelta int64
	offsetDelta    int64
}

type reader struct{ b []byte }

func (r *reader) varint() (int64, error) {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		return 0, fmt.Errorf("bad varint")
	}
	r.b = r.b[n:]
	return v, nil
}

// bytes reads a varint length and that many bytes; -1 is null.
func (r *reader) bytes() ([]byte, error) {
	n, err := r.varint()
	if err != nil {
		return nil, err
	}
	if n == -1 {
		return nil, nil
	}
	if n < 0 || n > int64(len(r.b)) {
		return nil, fmt.Errorf("length %d with %d bytes left", n, len(r.b))
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v, nil
}

func (r *reader) record() (decoded, error) {
	var d decoded
	length, err := r.varint()
	if err != nil {
		return d, err
	}
	if length < 0 || length > int64(len(r.b)) {
		return d, fmt.Errorf("record length %d with %d bytes left", length, len(r.b))
	}
	body := reader{b: r.b[:length]}
	r.b = r.b[length:]
	if len(body.b) < 1 {
		return d, fmt.Errorf("empty record")
	}
	body.b = body.b[1:] // attributes: unused in v2
	if d.timestampDelta, err = body.varint(); err != nil {
		return d, err
	}
	if d.offsetDelta, err = body.varint(); err != nil {
		return d, err
	}
	if d.Key, err = body.bytes(); err != nil {
		return d, err
	}
	if d.Value, err = body.bytes(); err != nil {
		return d, err
	}
	nh, err := body.varint()
	if err != nil {
		return d, err
	}
	// A header takes at least two bytes, which bounds the slice we size.
	if nh < 0 || nh > int64(len(body.b))/2 {
		return d, fmt.Errorf("header count %d with %d bytes left", nh, len(body.b))
	}
	if nh > 0 {
		d.Headers = make([]RecordHeader, 0, nh)
	}
	for j := int64(0); j < nh; j++ {
		k, err := body.bytes()
		if err != nil || k == nil {
			return d, fmt.Errorf("header %d key: bad length", j)
		}
		v, err := body.bytes()
		if err != nil {
			return d, err
		}
		d.Headers = append(d.Headers, RecordHeader{Key: string(k), Value: v})
	}
	if len(body.b) != 0 {
		return d, fmt.Errorf("%d bytes after the record's headers", len(body.b))
	}
	return d, nil
}

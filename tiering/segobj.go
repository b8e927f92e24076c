// Package tiering moves closed segments to the object store and reads them
// back. This file is the format of one tiered segment: a single object
// holding every file of the segment, so an upload is one PUT and a reader
// finds any part with one ranged GET of the footer.
//
// Layout (all integers big endian):
//
//	part bytes, back to back (log first, so offset 0 of the object is the
//	first record batch)
//	footer:
//	  magic "TSG1"
//	  count uint16
//	  count × { name-length uint16, name, offset uint64, length uint64, crc32c uint32 }
//	  footer-length uint32 (bytes from magic to here, excluding this field)
//	  magic "TSG1"
//
// A reader GETs the last FooterProbe bytes, finds the footer length in the
// last 8, and (rarely) GETs the rest of the footer. Each part carries its
// own CRC-32C, checked when the part is read whole.
package tiering

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sort"
)

const segMagic = "TSG1"

// FooterProbe is how many trailing bytes a reader asks for first: enough
// for the footer of a segment with its usual five parts.
const FooterProbe = 512

// maxFooter bounds a footer's declared length, so a corrupt object cannot
// make a reader allocate without limit.
const maxFooter = 1 << 20

// Part names of a segment object.
const (
	PartLog         = "log"
	PartOffsetIndex = "index"
	PartTimeIndex   = "timeindex"
	PartProducers   = "snapshot"
	PartEpochs      = "leader-epoch-checkpoint"
)

// ErrCorruptObject marks a segment object whose footer or part fails its checks.
var ErrCorruptObject = errors.New("tiering: corrupt segment object")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// PartRef locates one part inside a segment object.
type PartRef struct {
	Name   string
	Offset uint64
	Length uint64
	CRC    uint32
}

// Footer is the table of a segment object's parts.
type Footer struct {
	Parts []PartRef
}

// Part finds a part by name.
func (f Footer) Part(name string) (PartRef, bool) {
	for _, p := range f.Parts {
		if p.Name == name {
			return p, true
		}
	}
	return PartRef{}, false
}

// EncodeSegment lays out parts (name → bytes) as one object: the log part
// first, then the others by name, then the footer.
func EncodeSegment(parts map[string][]byte) ([]byte, error) {
	logPart, ok := parts[PartLog]
	if !ok {
		return nil, fmt.Errorf("tiering: a segment object needs a %q part", PartLog)
	}
	rest := make(map[string][]byte, len(parts))
	for n, p := range parts {
		if n != PartLog {
			rest[n] = p
		}
	}
	body, size, _, err := SegmentObject(bytes.NewReader(logPart), int64(len(logPart)), rest)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, size)
	buf := bytes.NewBuffer(out)
	if _, err := io.Copy(buf, body); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// SegmentObject lays out a segment as one object without holding its log
// in memory: the log is read once for its CRC, then streamed in the body.
// parts are the other parts (not the log). The body is seekable, so a
// store can send it in one request and rewind it to retry; its CRC-32C
// comes from the same single pass over the log, so the store need not read
// it again for the checksum it sends.
func SegmentObject(log io.ReaderAt, logSize int64, parts map[string][]byte) (io.ReadSeeker, int64, uint32, error) {
	h := crc32.New(castagnoli)
	if _, err := io.Copy(h, io.NewSectionReader(log, 0, logSize)); err != nil {
		return nil, 0, 0, fmt.Errorf("tiering: reading the log part: %w", err)
	}
	names := make([]string, 0, len(parts))
	for n := range parts {
		if n == PartLog || len(n) == 0 || len(n) > 255 {
			return nil, 0, 0, fmt.Errorf("tiering: part name %q", n)
		}
		names = append(names, n)
	}
	sort.Strings(names)
	f := Footer{Parts: []PartRef{{Name: PartLog, Offset: 0, Length: uint64(logSize), CRC: h.Sum32()}}}
	var tail []byte
	for _, n := range names {
		p := parts[n]
		f.Parts = append(f.Parts, PartRef{Name: n, Offset: uint64(logSize) + uint64(len(tail)), Length: uint64(len(p)), CRC: crc32.Checksum(p, castagnoli)})
		tail = append(tail, p...)
	}
	tail = appendFooter(tail, f)
	total := logSize + int64(len(tail))
	sum := crc32Combine(h.Sum32(), crc32.Checksum(tail, castagnoli), int64(len(tail)))
	return io.NewSectionReader(concatReaderAt{log, logSize, tail}, 0, total), total, sum, nil
}

// crc32Combine is the CRC-32C of A then B from crcA, crcB and B's length,
// without reading A again (zlib's crc32_combine: appending len bytes of
// zeros is a linear map over GF(2), applied by repeated squaring).
func crc32Combine(crcA, crcB uint32, lenB int64) uint32 {
	if lenB <= 0 {
		return crcA
	}
	var even, odd [32]uint32
	odd[0] = 0x82f63b78 // Castagnoli, reflected
	row := uint32(1)
	for n := 1; n < 32; n++ {
		odd[n] = row
		row <<= 1
	}
	gf2Square(&even, &odd) // the operator for two zero bits
	gf2Square(&odd, &even) // four
	for {
		gf2Square(&even, &odd) // one zero byte, then 2^k bytes
		if lenB&1 != 0 {
			crcA = gf2Times(&even, crcA)
		}
		if lenB >>= 1; lenB == 0 {
			break
		}
		gf2Square(&odd, &even)
		if lenB&1 != 0 {
			crcA = gf2Times(&odd, crcA)
		}
		if lenB >>= 1; lenB == 0 {
			break
		}
	}
	return crcA ^ crcB
}

func gf2Times(mat *[32]uint32, vec uint32) uint32 {
	var sum uint32
	for i := 0; vec != 0; i, vec = i+1, vec>>1 {
		if vec&1 != 0 {
			sum ^= mat[i]
		}
	}
	return sum
}

func gf2Square(square, mat *[32]uint32) {
	for n := range 32 {
		square[n] = gf2Times(mat, mat[n])
	}
}

// concatReaderAt reads the first n bytes of head, then tail.
type concatReaderAt struct {
	head io.ReaderAt
	n    int64
	tail []byte
}

func (c concatReaderAt) ReadAt(p []byte, off int64) (int, error) {
	done := 0
	if off < c.n {
		k := min(int64(len(p)), c.n-off)
		m, err := c.head.ReadAt(p[:k], off)
		if m < int(k) {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF // the log file is shorter than it was
			}
			return m, err
		}
		done, off = m, c.n
	}
	if done == len(p) {
		return done, nil
	}
	rel := off - c.n
	if rel >= int64(len(c.tail)) {
		return done, io.EOF
	}
	m := copy(p[done:], c.tail[rel:])
	if done+m < len(p) {
		return done + m, io.EOF
	}
	return done + m, nil
}

func appendFooter(out []byte, f Footer) []byte {
	start := len(out)
	out = append(out, segMagic...)
	out = binary.BigEndian.AppendUint16(out, uint16(len(f.Parts)))
	for _, p := range f.Parts {
		out = binary.BigEndian.AppendUint16(out, uint16(len(p.Name)))
		out = append(out, p.Name...)
		out = binary.BigEndian.AppendUint64(out, p.Offset)
		out = binary.BigEndian.AppendUint64(out, p.Length)
		out = binary.BigEndian.AppendUint32(out, p.CRC)
	}
	out = binary.BigEndian.AppendUint32(out, uint32(len(out)-start))
	return append(out, segMagic...)
}

// FooterLength reads the footer's total size (including the trailing
// length and magic) from an object's last 8 bytes.
func FooterLength(tail []byte) (int, error) {
	if len(tail) < 8 || string(tail[len(tail)-4:]) != segMagic {
		return 0, fmt.Errorf("%w: no trailing magic", ErrCorruptObject)
	}
	n := binary.BigEndian.Uint32(tail[len(tail)-8:])
	if n < 6 || n > maxFooter {
		return 0, fmt.Errorf("%w: footer length %d", ErrCorruptObject, n)
	}
	return int(n) + 8, nil
}

// DecodeFooter parses the footer at the end of tail (which holds at least
// FooterLength bytes of the object's end) for an object of objectSize bytes.
func DecodeFooter(tail []byte, objectSize int64) (Footer, error) {
	total, err := FooterLength(tail)
	if err != nil {
		return Footer{}, err
	}
	if total > len(tail) || int64(total) > objectSize {
		return Footer{}, fmt.Errorf("%w: footer of %d bytes, %d available", ErrCorruptObject, total, len(tail))
	}
	b := tail[len(tail)-total : len(tail)-8]
	if string(b[:4]) != segMagic {
		return Footer{}, fmt.Errorf("%w: no leading footer magic", ErrCorruptObject)
	}
	count := int(binary.BigEndian.Uint16(b[4:]))
	b = b[6:]
	footerStart := uint64(objectSize) - uint64(total)
	var f Footer
	var next uint64
	for i := 0; i < count; i++ {
		if len(b) < 2 {
			return Footer{}, fmt.Errorf("%w: footer cut short", ErrCorruptObject)
		}
		nl := int(binary.BigEndian.Uint16(b))
		if len(b) < 2+nl+20 {
			return Footer{}, fmt.Errorf("%w: footer cut short", ErrCorruptObject)
		}
		p := PartRef{Name: string(b[2 : 2+nl])}
		b = b[2+nl:]
		p.Offset, p.Length, p.CRC = binary.BigEndian.Uint64(b), binary.BigEndian.Uint64(b[8:]), binary.BigEndian.Uint32(b[16:])
		b = b[20:]
		// Parts are back to back from offset 0 and end where the footer starts.
		if p.Offset != next || p.Length > footerStart-p.Offset {
			return Footer{}, fmt.Errorf("%w: part %q at %d+%d", ErrCorruptObject, p.Name, p.Offset, p.Length)
		}
		next = p.Offset + p.Length
		f.Parts = append(f.Parts, p)
	}
	if len(b) != 0 || next != footerStart {
		return Footer{}, fmt.Errorf("%w: footer does not account for the object", ErrCorruptObject)
	}
	return f, nil
}

// CheckPart verifies a part's bytes against the footer's CRC.
func CheckPart(p PartRef, data []byte) error {
	if uint64(len(data)) != p.Length {
		return fmt.Errorf("%w: part %q is %d bytes, footer says %d", ErrCorruptObject, p.Name, len(data), p.Length)
	}
	if got := crc32.Checksum(data, castagnoli); got != p.CRC {
		return fmt.Errorf("%w: part %q crc32c %08x, footer says %08x", ErrCorruptObject, p.Name, got, p.CRC)
	}
	return nil
}

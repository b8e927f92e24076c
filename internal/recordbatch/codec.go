package recordbatch

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// xerialMagic starts a snappy stream framed the way the Java client's
// snappy-java writes it; librdkafka and franz-go send raw blocks instead.
var xerialMagic = []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}

var zstdDecoders = sync.Pool{New: func() any {
	d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
	if err != nil {
		panic(err) // only fails on invalid options
	}
	return d
}}

// decompress returns the decompressed records area, refusing to produce
// more than limit bytes so a compression bomb cannot exhaust memory.
func decompress(c Codec, src []byte, limit int) ([]byte, error) {
	switch c {
	case CodecNone:
		return src, nil
	case CodecGzip:
		r, err := gzip.NewReader(bytes.NewReader(src))
		if err != nil {
			return nil, fmt.Errorf("%w: gzip: %v", ErrCorrupt, err)
		}
		return readLimited(r, limit, "gzip")
	case CodecSnappy:
		if bytes.HasPrefix(src, xerialMagic) {
			return xerialDecode(src, limit)
		}
		return snappyBlock(src, limit)
	case CodecLZ4:
		return readLimited(lz4.NewReader(bytes.NewReader(src)), limit, "lz4")
	case CodecZstd:
		d := zstdDecoders.Get().(*zstd.Decoder)
		defer zstdDecoders.Put(d)
		if err := d.Reset(bytes.NewReader(src)); err != nil {
			return nil, fmt.Errorf("%w: zstd: %v", ErrCorrupt, err)
		}
		return readLimited(d, limit, "zstd")
	}
	return nil, fmt.Errorf("%w: unknown compression codec %d", ErrInvalid, c)
}

func readLimited(r io.Reader, limit int, name string) ([]byte, error) {
	out, err := io.ReadAll(io.LimitReader(r, int64(limit)+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, name, err)
	}
	if len(out) > limit {
		return nil, fmt.Errorf("%w: %s data decompresses past %d bytes", ErrInvalid, name, limit)
	}
	return out, nil
}

func snappyBlock(src []byte, limit int) ([]byte, error) {
	n, err := snappy.DecodedLen(src)
	if err != nil {
		return nil, fmt.Errorf("%w: snappy: %v", ErrCorrupt, err)
	}
	if n > limit {
		return nil, fmt.Errorf("%w: snappy data decompresses past %d bytes", ErrInvalid, limit)
	}
	out, err := snappy.Decode(nil, src)
	if err != nil {
		return nil, fmt.Errorf("%w: snappy: %v", ErrCorrupt, err)
	}
	return out, nil
}

// xerialDecode reads snappy-java's framing: the 8-byte magic, two int32
// versions, then chunks of an int32 length and a raw snappy block.
func xerialDecode(src []byte, limit int) ([]byte, error) {
	if len(src) < 16 {
		return nil, fmt.Errorf("%w: snappy: short xerial header", ErrCorrupt)
	}
	rest := src[16:]
	var out []byte
	for len(rest) > 0 {
		if len(rest) < 4 {
			return nil, fmt.Errorf("%w: snappy: cut-short xerial chunk", ErrCorrupt)
		}
		n := int(binary.BigEndian.Uint32(rest))
		rest = rest[4:]
		if n < 0 || n > len(rest) {
			return nil, fmt.Errorf("%w: snappy: xerial chunk of %d bytes past the end", ErrCorrupt, n)
		}
		block, err := snappyBlock(rest[:n], limit-len(out))
		if err != nil {
			return nil, err
		}
		out = append(out, block...)
		rest = rest[n:]
	}
	return out, nil
}

// compress encodes a records area with codec c (used by Build).
func compress(c Codec, src []byte) ([]byte, error) {
	var buf bytes.Buffer
	switch c {
	case CodecNone:
		return src, nil
	case CodecGzip:
		w := gzip.NewWriter(&buf)
		if _, err := w.Write(src); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
	case CodecSnappy:
		return snappy.Encode(nil, src), nil
	case CodecLZ4:
		w := lz4.NewWriter(&buf)
		if _, err := w.Write(src); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
	case CodecZstd:
		w, err := zstd.NewWriter(&buf, zstd.WithEncoderConcurrency(1))
		if err != nil {
			return nil, err
		}
		if _, err := w.Write(src); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("%w: unknown compression codec %d", ErrInvalid, c)
	}
	return buf.Bytes(), nil
}

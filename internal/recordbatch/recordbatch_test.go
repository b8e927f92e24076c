package recordbatch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

var codecs = []Codec{CodecNone, CodecGzip, CodecSnappy, CodecLZ4, CodecZstd}

func sampleRecords(n int) []Record {
	recs := make([]Record, n)
	for i := range recs {
		recs[i] = Record{
			Timestamp: 1_700_000_000_000 + int64(i*3),
			Key:       []byte(fmt.Sprintf("key-%d", i)),
			Value:     bytes.Repeat([]byte{byte('a' + i%26)}, 10+i),
		}
		if i%3 == 0 {
			recs[i].Headers = []RecordHeader{{Key: "h", Value: []byte("v")}, {Key: "null", Value: nil}}
		}
		if i%5 == 0 {
			recs[i].Key = nil
		}
	}
	return recs
}

func TestBuildValidateRecordsRoundTrip(t *testing.T) {
	for _, c := range codecs {
		t.Run(fmt.Sprint(c), func(t *testing.T) {
			in := sampleRecords(50)
			opts := NoProducer()
			opts.Codec, opts.BaseOffset = c, 100
			b, err := Build(in, opts)
			if err != nil {
				t.Fatal(err)
			}
			batches, err := Validate(b, ValidateOptions{MaxBatchBytes: 1 << 20, Deep: true})
			if err != nil {
				t.Fatal(err)
			}
			if len(batches) != 1 || batches[0].NumRecords != 50 || batches[0].Codec() != c || batches[0].LastOffset() != 149 {
				t.Fatalf("header %+v", batches[0].Header)
			}
			out, err := Records(batches[0])
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range out {
				w := in[i]
				if r.Offset != int64(100+i) || r.Timestamp != w.Timestamp || !bytes.Equal(r.Key, w.Key) || (r.Key == nil) != (w.Key == nil) ||
					!bytes.Equal(r.Value, w.Value) || len(r.Headers) != len(w.Headers) {
					t.Fatalf("record %d: got %+v want %+v", i, r, w)
				}
				for j := range r.Headers {
					if r.Headers[j].Key != w.Headers[j].Key || !bytes.Equal(r.Headers[j].Value, w.Headers[j].Value) || (r.Headers[j].Value == nil) != (w.Headers[j].Value == nil) {
						t.Fatalf("record %d header %d: %+v", i, j, r.Headers[j])
					}
				}
			}
		})
	}
}

// TestAgainstKmsgEncoding checks the parser against batches encoded by
// franz-go's generated kmsg types, an encoder we did not write.
func TestAgainstKmsgEncoding(t *testing.T) {
	var recs []byte
	for i := 0; i < 3; i++ {
		r := kmsg.Record{TimestampDelta64: int64(i), OffsetDelta: int32(i), Key: []byte{byte(i)}, Value: []byte("v"),
			Headers: []kmsg.Header{{Key: "k", Value: []byte("x")}}}
		r.Length = int32(len(r.AppendTo(nil)) - 1) // the body size, without the one-byte varint of 0
		recs = r.AppendTo(recs)
	}
	rb := kmsg.RecordBatch{FirstOffset: 7, Magic: 2, LastOffsetDelta: 2, FirstTimestamp: 1000, MaxTimestamp: 1002,
		ProducerID: 42, ProducerEpoch: 1, FirstSequence: 5, NumRecords: 3, Records: recs}
	raw := rb.AppendTo(nil)
	binary.BigEndian.PutUint32(raw[8:], uint32(len(raw)-12))
	binary.BigEndian.PutUint32(raw[17:], crc32.Checksum(raw[21:], crc32.MakeTable(crc32.Castagnoli)))
	batches, err := Validate(raw, ValidateOptions{Deep: true})
	if err != nil {
		t.Fatal(err)
	}
	h := batches[0].Header
	if h.BaseOffset != 7 || h.ProducerID != 42 || h.ProducerEpoch != 1 || h.BaseSequence != 5 || h.LastSequence() != 7 || h.MaxTimestamp != 1002 {
		t.Fatalf("header %+v", h)
	}
	out, err := Records(batches[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 3 || out[2].Offset != 9 || out[2].Timestamp != 1002 || out[2].Key[0] != 2 || out[1].Headers[0].Key != "k" {
		t.Fatalf("records %+v", out)
	}
}

func TestValidateRejects(t *testing.T) {
	good, _ := Build(sampleRecords(3), NoProducer())
	mutate := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	cases := []struct {
		name string
		in   []byte
		opts ValidateOptions
		want error
	}{
		{"empty", nil, ValidateOptions{}, ErrInvalid},
		{"bad crc", mutate(func(b []byte) []byte { b[len(b)-1] ^= 0xff; return b }), ValidateOptions{}, ErrCorrupt},
		{"cut short", good[:len(good)-1], ValidateOptions{}, ErrCorrupt},
		{"cut in header", good[:30], ValidateOptions{}, ErrCorrupt},
		{"trailing garbage", append(append([]byte(nil), good...), 1, 2, 3), ValidateOptions{}, ErrCorrupt},
		{"magic 1", mutate(func(b []byte) []byte { b[posMagic] = 1; return b }), ValidateOptions{}, ErrUnsupported},
		{"too large", good, ValidateOptions{MaxBatchBytes: len(good) - 1}, ErrTooLarge},
		{"length 2GiB", mutate(func(b []byte) []byte { binary.BigEndian.PutUint32(b[posLength:], 1<<31-1); return b }), ValidateOptions{}, ErrCorrupt},
		{"negative length", mutate(func(b []byte) []byte { binary.BigEndian.PutUint32(b[posLength:], 0xffffffff); return b }), ValidateOptions{}, ErrCorrupt},
		{"count mismatch", mutate(func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[posNumRecords:], 4)
			UpdateCRC(b)
			return b
		}), ValidateOptions{}, ErrInvalid},
		{"count absurd", mutate(func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[posNumRecords:], 1<<30)
			binary.BigEndian.PutUint32(b[posLastOffsetDelta:], 1<<30-1)
			UpdateCRC(b)
			return b
		}), ValidateOptions{}, ErrCorrupt},
		{"control batch", mutate(func(b []byte) []byte {
			binary.BigEndian.PutUint16(b[posAttributes:], 0x20)
			UpdateCRC(b)
			return b
		}), ValidateOptions{}, ErrInvalid},
		{"bad record deep", mutate(func(b []byte) []byte {
			b[HeaderSize] = 0x7f // first record's length varint now overruns
			UpdateCRC(b)
			return b
		}), ValidateOptions{Deep: true}, ErrInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Validate(tc.in, tc.opts)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestCompressionBombBounded(t *testing.T) {
	// Past the 64 MiB bound that applies when max.message.bytes is unset.
	big := []Record{{Value: make([]byte, 80<<20)}}
	for _, c := range []Codec{CodecGzip, CodecZstd, CodecLZ4, CodecSnappy} {
		opts := NoProducer()
		opts.Codec = c
		b, err := Build(big, opts)
		if err != nil {
			t.Fatal(err)
		}
		_, err = Validate(b, ValidateOptions{Deep: true})
		if !errors.Is(err, ErrInvalid) {
			t.Fatalf("codec %d: a %d-byte batch inflating to 80 MiB gave %v, want ErrInvalid", c, len(b), err)
		}
	}
}

func TestSetters(t *testing.T) {
	b, _ := Build(sampleRecords(2), NoProducer())
	SetBaseOffset(b, 1234)
	SetPartitionLeaderEpoch(b, 9)
	if _, err := Validate(b, ValidateOptions{}); err != nil {
		t.Fatalf("offset and epoch are outside the CRC: %v", err)
	}
	SetLogAppendTime(b, 5555)
	batches, err := Validate(b, ValidateOptions{Deep: true})
	if err != nil {
		t.Fatal(err)
	}
	h := batches[0].Header
	if h.BaseOffset != 1234 || h.PartitionLeaderEpoch != 9 || !h.LogAppendTime() || h.MaxTimestamp != 5555 {
		t.Fatalf("header %+v", h)
	}
	recs, _ := Records(batches[0])
	if recs[1].Timestamp != 5555 || recs[1].Offset != 1235 {
		t.Fatalf("records %+v", recs)
	}
}

func TestXerialSnappy(t *testing.T) {
	area := []byte("the quick brown fox jumps over the lazy dog, again and again and again")
	framed := append([]byte(nil), xerialMagic...)
	framed = binary.BigEndian.AppendUint32(framed, 1)
	framed = binary.BigEndian.AppendUint32(framed, 1)
	for _, part := range [][]byte{area[:20], area[20:]} {
		blk, _ := compress(CodecSnappy, part)
		framed = binary.BigEndian.AppendUint32(framed, uint32(len(blk)))
		framed = append(framed, blk...)
	}
	out, err := decompress(CodecSnappy, framed, 1<<20)
	if err != nil || !bytes.Equal(out, area) {
		t.Fatalf("got %q, %v", out, err)
	}
	if _, err := decompress(CodecSnappy, framed[:len(framed)-3], 1<<20); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("cut-short xerial stream: %v", err)
	}
}

func BenchmarkValidate(b *testing.B) {
	recs := make([]Record, 16)
	for i := range recs {
		recs[i] = Record{Value: make([]byte, 1024)}
	}
	batch, _ := Build(recs, NoProducer())
	var dst []Batch
	b.SetBytes(int64(len(batch)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		dst, _ = ValidateInto(dst[:0], batch, ValidateOptions{MaxBatchBytes: 1 << 20})
	}
}

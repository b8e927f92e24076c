package tiering

import (
	"bytes"
	"errors"
	"testing"
)

func sampleParts() map[string][]byte {
	return map[string][]byte{
		PartLog:         bytes.Repeat([]byte("batch"), 1000),
		PartOffsetIndex: []byte("0123456789abcdef"),
		PartTimeIndex:   []byte("timeindex-bytes"),
		PartProducers:   {},
		PartEpochs:      []byte("0\n1\n0 0\n"),
	}
}

func TestSegmentObjectRoundTrip(t *testing.T) {
	parts := sampleParts()
	obj, err := EncodeSegment(parts)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(obj, parts[PartLog]) {
		t.Fatal("the log part does not start the object")
	}
	tail := obj[max(0, len(obj)-FooterProbe):]
	n, err := FooterLength(tail)
	if err != nil || n > FooterProbe {
		t.Fatalf("footer of %d bytes (%v) does not fit the probe", n, err)
	}
	f, err := DecodeFooter(tail, int64(len(obj)))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Parts) != len(parts) || f.Parts[0].Name != PartLog {
		t.Fatalf("footer %+v", f)
	}
	for name, want := range parts {
		p, ok := f.Part(name)
		if !ok {
			t.Fatalf("part %q missing", name)
		}
		got := obj[p.Offset : p.Offset+p.Length]
		if !bytes.Equal(got, want) || CheckPart(p, got) != nil {
			t.Fatalf("part %q: %q", name, got)
		}
	}
	p, _ := f.Part(PartOffsetIndex)
	bad := append([]byte(nil), obj[p.Offset:p.Offset+p.Length]...)
	bad[3] ^= 1
	if err := CheckPart(p, bad); !errors.Is(err, ErrCorruptObject) {
		t.Fatalf("a flipped bit passed: %v", err)
	}
	if _, err := EncodeSegment(map[string][]byte{PartOffsetIndex: nil}); err == nil {
		t.Fatal("a segment object without a log part")
	}
}

// TestFooterRejectsDamage: every truncation and every single flipped byte
// of the footer is refused with ErrCorruptObject, never a panic or a
// footer that points outside the object.
func TestFooterRejectsDamage(t *testing.T) {
	obj, _ := EncodeSegment(sampleParts())
	n, _ := FooterLength(obj)
	footerStart := len(obj) - n
	for cut := 1; cut < n; cut++ {
		short := obj[:len(obj)-cut]
		if _, err := DecodeFooter(short, int64(len(short))); err == nil {
			t.Fatalf("an object cut by %d bytes decoded", cut)
		}
	}
	for i := footerStart; i < len(obj); i++ {
		bad := append([]byte(nil), obj...)
		bad[i] ^= 0x40
		f, err := DecodeFooter(bad, int64(len(bad)))
		if err == nil {
			// A flipped CRC is only caught when the part is read.
			for _, p := range f.Parts {
				if p.Offset+p.Length > uint64(footerStart) {
					t.Fatalf("byte %d: part %q reaches past the parts", i, p.Name)
				}
			}
			continue
		}
		if !errors.Is(err, ErrCorruptObject) {
			t.Fatalf("byte %d: %v", i, err)
		}
	}
}

func FuzzDecodeFooter(f *testing.F) {
	obj, _ := EncodeSegment(sampleParts())
	f.Add(obj[len(obj)-200:], int64(len(obj)))
	f.Add([]byte("TSG1\x00\x00\x00\x00\x00\x06TSG1"), int64(14))
	f.Fuzz(func(t *testing.T, tail []byte, size int64) {
		if size < int64(len(tail)) {
			size = int64(len(tail))
		}
		fo, err := DecodeFooter(tail, size)
		if err != nil {
			return
		}
		var end uint64
		for _, p := range fo.Parts {
			end = p.Offset + p.Length
		}
		if end > uint64(size) {
			t.Fatalf("parts end at %d in an object of %d", end, size)
		}
	})
}

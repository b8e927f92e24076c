package tiering

import (
	"bytes"
	"hash/crc32"
	"io"
	"math/rand"
	"testing"
)

// TestCRC32Combine: the combined CRC of two pieces is the CRC of both,
// for lengths from 0 up past many powers of two.
func TestCRC32Combine(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for _, n := range [][2]int{{0, 0}, {1, 0}, {0, 1}, {1, 1}, {3, 7}, {1000, 1}, {1, 1000}, {4096, 65536}, {12345, 1 << 20}} {
		a, b := make([]byte, n[0]), make([]byte, n[1])
		rng.Read(a)
		rng.Read(b)
		want := crc32.Checksum(append(append([]byte(nil), a...), b...), castagnoli)
		if got := crc32Combine(crc32.Checksum(a, castagnoli), crc32.Checksum(b, castagnoli), int64(len(b))); got != want {
			t.Errorf("lengths %v: %08x, want %08x", n, got, want)
		}
	}
}

// TestSegmentObjectChecksum: the CRC-32C SegmentObject reports is the
// CRC-32C of the body it returns, which stores send and servers check.
func TestSegmentObjectChecksum(t *testing.T) {
	log := bytes.Repeat([]byte("batch bytes "), 10000)
	body, size, sum, err := SegmentObject(bytes.NewReader(log), int64(len(log)), map[string][]byte{PartOffsetIndex: []byte("index"), PartEpochs: []byte("0\n1\n0 0\n")})
	if err != nil {
		t.Fatal(err)
	}
	all, err := io.ReadAll(body)
	if err != nil || int64(len(all)) != size {
		t.Fatalf("body: %d bytes of %d, %v", len(all), size, err)
	}
	if want := crc32.Checksum(all, castagnoli); sum != want {
		t.Fatalf("reported CRC-32C %08x, body's %08x", sum, want)
	}
}

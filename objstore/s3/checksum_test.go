package s3

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"io"
	"testing"

	"github.com/tiercel/tiercel/objstore"
)

func TestVerifyingReader(t *testing.T) {
	data := []byte("the stored bytes")
	corrupt := []byte("the stored bytez")
	sum := md5.Sum(data)
	etag := `"` + hex.EncodeToString(sum[:]) + `"`
	crc, err := contentCRC32C(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	// With a CRC32C the SDK hashes the body; its mismatch error is renamed.
	sdkErr := errors.New("checksum did not match: algorithm CRC32C, expect x, actual y")
	_, err = io.ReadAll(verifying(io.NopCloser(&failingReader{err: sdkErr}), crc, etag, "k"))
	if !errors.Is(err, errChecksum) || !errors.Is(err, objstore.ErrRetriable) {
		t.Fatalf("the SDK's checksum mismatch: %v", err)
	}
	for _, c := range []struct{ name, crc, etag string }{{"md5", "", etag}} {
		got, err := io.ReadAll(verifying(io.NopCloser(bytes.NewReader(data)), c.crc, c.etag, "k"))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%s, matching bytes: %v", c.name, err)
		}
		_, err = io.ReadAll(verifying(io.NopCloser(bytes.NewReader(corrupt)), c.crc, c.etag, "k"))
		if !errors.Is(err, errChecksum) || !errors.Is(err, objstore.ErrRetriable) {
			t.Fatalf("%s, corrupted bytes: %v", c.name, err)
		}
	}
	if _, ok := singlePartMD5(`"0123456789abcdef0123456789abcdef-3"`); ok {
		t.Fatal("a multipart ETag was taken for an MD5")
	}
	if _, ok := fullObjectCRC32C("AAAAAA==-3"); ok {
		t.Fatal("a multipart (composite) checksum was taken for the object's")
	}
	// Nothing to check against: the bytes pass through.
	if got, err := io.ReadAll(verifying(io.NopCloser(bytes.NewReader(corrupt)), "", `"x-2"`, "k")); err != nil || !bytes.Equal(got, corrupt) {
		t.Fatalf("unverifiable object: %v", err)
	}
}

type failingReader struct{ err error }

func (f *failingReader) Read([]byte) (int, error) { return 0, f.err }

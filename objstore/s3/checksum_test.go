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
	sum := md5.Sum(data)
	etag := `"` + hex.EncodeToString(sum[:]) + `"`
	got, err := io.ReadAll(verifying(io.NopCloser(bytes.NewReader(data)), etag, "k"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("matching bytes: %v", err)
	}
	_, err = io.ReadAll(verifying(io.NopCloser(bytes.NewReader([]byte("the stored bytez"))), etag, "k"))
	if !errors.Is(err, errChecksum) || !errors.Is(err, objstore.ErrRetriable) {
		t.Fatalf("corrupted bytes: %v", err)
	}
	if _, ok := singlePartMD5(`"0123456789abcdef0123456789abcdef-3"`); ok {
		t.Fatal("a multipart ETag was taken for an MD5")
	}
}

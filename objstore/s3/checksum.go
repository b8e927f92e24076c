package s3

import (
	"crypto/md5"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"strings"

	"github.com/tiercel/tiercel/objstore"
)

// singlePartMD5 returns the MD5 an ETag states, if it is a single-part
// upload's (multipart ETags have a "-N" suffix and are not content hashes).
func singlePartMD5(etag string) ([]byte, bool) {
	e := strings.Trim(etag, `"`)
	if len(e) != 32 || strings.Contains(e, "-") {
		return nil, false
	}
	b, err := hex.DecodeString(e)
	return b, err == nil
}

// castagnoli is CRC-32C, which S3 calls CRC32C; hardware-accelerated, so
// checking every byte costs little next to the network.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// contentCRC32C hashes a seekable body and rewinds it, for the
// x-amz-checksum-crc32c header: the server checks it against what it
// received, stores it, and returns it on GET with checksum mode on.
func contentCRC32C(body io.ReadSeeker) (string, error) {
	start, err := body.Seek(0, io.SeekCurrent)
	if err != nil {
		return "", err
	}
	h := crc32.New(castagnoli)
	if _, err := io.Copy(h, body); err != nil {
		return "", err
	}
	if _, err := body.Seek(start, io.SeekStart); err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(h.Sum(nil)), nil
}

// crcText is a CRC-32C as S3's header carries it: base64 of its 4 big-endian bytes.
func crcText(c uint32) string {
	return base64.StdEncoding.EncodeToString(binary.BigEndian.AppendUint32(nil, c))
}

// fullObjectCRC32C decodes a GET's x-amz-checksum-crc32c when it covers
// the whole object (a multipart upload's is a checksum of part checksums,
// written "…-N", and cannot be checked against the bytes).
func fullObjectCRC32C(v string) ([]byte, bool) {
	if v == "" || strings.Contains(v, "-") {
		return nil, false
	}
	b, err := base64.StdEncoding.DecodeString(v)
	return b, err == nil && len(b) == 4
}

// verifyingReader checks a whole object's bytes against its MD5 at EOF.
type verifyingReader struct {
	io.ReadCloser
	h    hash.Hash
	algo string
	want []byte
	key  string
}

var errChecksum = objstore.ErrCorrupt

func (v *verifyingReader) Read(p []byte) (int, error) {
	n, err := v.ReadCloser.Read(p)
	v.h.Write(p[:n])
	if err == io.EOF {
		if got := v.h.Sum(nil); string(got) != string(v.want) {
			return n, objstore.Errorf(objstore.ErrRetriable, "get", "", v.key, fmt.Errorf("%w (%s %x, want %x)", errChecksum, v.algo, got, v.want))
		}
	}
	return n, err
}

// sdkChecked is a body the SDK checks against the CRC32C the server
// returned (GetObject with checksum mode on does that as the bytes stream);
// it only names a mismatch the way objstore classifies errors, so the bytes
// are hashed once.
type sdkChecked struct {
	io.ReadCloser
	key string
}

func (s *sdkChecked) Read(p []byte) (int, error) {
	n, err := s.ReadCloser.Read(p)
	if err != nil && err != io.EOF && strings.HasPrefix(err.Error(), "checksum did not match") {
		err = objstore.Errorf(objstore.ErrRetriable, "get", "", s.key, fmt.Errorf("%w (%v)", errChecksum, err))
	}
	return n, err
}

// verifying wraps a whole object's body: the SDK checks the CRC-32C the
// server returned for the whole object (everything Tiercel writes); else the
// MD5 a single-part ETag states is checked here; else there is nothing to
// check against.
func verifying(rc io.ReadCloser, crc32c, etag, key string) io.ReadCloser {
	if _, ok := fullObjectCRC32C(crc32c); ok {
		return &sdkChecked{ReadCloser: rc, key: key}
	}
	want, ok := singlePartMD5(etag)
	if !ok {
		return rc
	}
	return &verifyingReader{ReadCloser: rc, h: md5.New(), algo: "md5", want: want, key: key}
}

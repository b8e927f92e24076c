package s3

import (
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"

	"github.com/tiercel/tiercel/objstore"
)

// contentMD5 hashes a seekable body and rewinds it: S3 checks the
// Content-MD5 header against what it received and refuses a mismatch.
func contentMD5(body io.ReadSeeker) (string, error) {
	start, err := body.Seek(0, io.SeekCurrent)
	if err != nil {
		return "", err
	}
	h := md5.New()
	if _, err := io.Copy(h, body); err != nil {
		return "", err
	}
	if _, err := body.Seek(start, io.SeekStart); err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(h.Sum(nil)), nil
}

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

// verifyingReader checks a whole object's bytes against its MD5 at EOF.
type verifyingReader struct {
	io.ReadCloser
	h    hash.Hash
	want []byte
	key  string
}

var errChecksum = errors.New("checksum mismatch: the bytes read are not the bytes stored")

func (v *verifyingReader) Read(p []byte) (int, error) {
	n, err := v.ReadCloser.Read(p)
	v.h.Write(p[:n])
	if err == io.EOF {
		if got := v.h.Sum(nil); string(got) != string(v.want) {
			return n, objstore.Errorf(objstore.ErrRetriable, "get", "", v.key, fmt.Errorf("%w (md5 %x, want %x)", errChecksum, got, v.want))
		}
	}
	return n, err
}

func verifying(rc io.ReadCloser, etag, key string) io.ReadCloser {
	want, ok := singlePartMD5(etag)
	if !ok {
		return rc
	}
	return &verifyingReader{ReadCloser: rc, h: md5.New(), want: want, key: key}
}

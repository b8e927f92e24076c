package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/tiercel/tiercel/internal/testservers"
	"github.com/tiercel/tiercel/objstore"
	"github.com/tiercel/tiercel/objstore/objstoretest"
)

var bucketSeq atomic.Int64

// suite runs the acceptance suite with payloads signed (the default over
// plain HTTP) and unsigned (the default over HTTPS).
func suite(t *testing.T, srv testservers.S3, caps objstoretest.Capabilities) {
	for _, unsigned := range []bool{false, true} {
		t.Run(map[bool]string{false: "signed", true: "unsigned-payload"}[unsigned], func(t *testing.T) { suiteWith(t, srv, caps, unsigned) })
	}
}

func suiteWith(t *testing.T, srv testservers.S3, caps objstoretest.Capabilities, unsigned bool) {
	objstoretest.Run(t, func(t *testing.T) objstore.Bucket {
		b, err := New(context.Background(), Config{Bucket: fmt.Sprintf("tiercel-%d", bucketSeq.Add(1)), Prefix: "p/", Endpoint: srv.Endpoint, PathStyle: true, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, UnsignedPayload: unsigned})
		if err != nil {
			t.Fatal(err)
		}
		if err := b.CreateBucket(context.Background()); err != nil {
			t.Fatal(err)
		}
		return b
	}, caps)
}

func TestVersityGW(t *testing.T) {
	suite(t, testservers.StartVersityGW(t), objstoretest.Capabilities{})
}

func TestMinIO(t *testing.T) { suite(t, testservers.StartMinIO(t), objstoretest.Capabilities{}) }

// TestErrorsNamePlainly: a missing bucket and wrong credentials are
// permanent errors that say what is wrong.
func TestErrorsNamePlainly(t *testing.T) {
	srv := testservers.StartVersityGW(t)
	ctx := context.Background()
	missing, _ := New(ctx, Config{Bucket: "no-such-bucket", Endpoint: srv.Endpoint, PathStyle: true, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey})
	if _, err := missing.Head(ctx, "k"); err == nil {
		t.Fatal("head in a missing bucket succeeded")
	}
	if err := missing.List(ctx, "", objstore.ListOptions{}, func(objstore.ObjectInfo) error { return nil }); err == nil || !errors.Is(err, objstore.ErrPermanent) {
		t.Fatalf("list of a missing bucket: %v", err)
	}
	wrong, _ := New(ctx, Config{Bucket: "b", Endpoint: srv.Endpoint, PathStyle: true, AccessKey: srv.AccessKey, SecretKey: "wrong"})
	if err := wrong.List(ctx, "", objstore.ListOptions{}, func(objstore.ObjectInfo) error { return nil }); err == nil || !errors.Is(err, objstore.ErrPermanent) {
		t.Fatalf("wrong credentials: %v", err)
	}
	unreachable, _ := New(ctx, Config{Bucket: "b", Endpoint: "http://127.0.0.1:1", PathStyle: true, AccessKey: "a", SecretKey: "b"})
	if _, err := unreachable.Head(ctx, "k"); err == nil || !errors.Is(err, objstore.ErrRetriable) {
		t.Fatalf("unreachable endpoint: %v", err)
	}
}

// TestStoredChecksums: what Tiercel puts carries a CRC-32C the server
// checked and keeps, and a whole-object GET gets it back to verify against
// (on both servers), so reads are checked end to end without MD5's cost.
func TestStoredChecksums(t *testing.T) {
	for name, start := range map[string]func(testing.TB) testservers.S3{"versitygw": testservers.StartVersityGW, "minio": testservers.StartMinIO} {
		t.Run(name, func(t *testing.T) {
			srv := start(t)
			ctx := context.Background()
			b, err := New(ctx, Config{Bucket: fmt.Sprintf("sum-%d", bucketSeq.Add(1)), Endpoint: srv.Endpoint, PathStyle: true, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey})
			if err != nil {
				t.Fatal(err)
			}
			if err := b.CreateBucket(ctx); err != nil {
				t.Fatal(err)
			}
			data := bytes.Repeat([]byte("tiercel "), 4096)
			if _, err := b.Put(ctx, "k", bytes.NewReader(data), objstore.PutOptions{Size: int64(len(data))}); err != nil {
				t.Fatal(err)
			}
			out, err := b.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &b.cfg.Bucket, Key: aws.String(b.key("k")), ChecksumMode: types.ChecksumModeEnabled})
			if err != nil {
				t.Fatal(err)
			}
			out.Body.Close()
			want, _ := contentCRC32C(bytes.NewReader(data))
			if got := aws.ToString(out.ChecksumCRC32C); got != want {
				t.Fatalf("stored CRC32C %q, want %q", got, want)
			}
			rc, _, err := b.Get(ctx, "k", 0, -1)
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			if _, ok := rc.(*sdkChecked); !ok {
				t.Fatalf("a whole-object read is not verified (%T)", rc)
			}
			if srv.Root == "" {
				return
			}
			// Flip bytes of the stored file behind the server's back (versitygw
			// keeps objects as plain files): the read must fail, classified.
			path := filepath.Join(srv.Root, b.cfg.Bucket, "k")
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt([]byte("TIERCEL"), 100); err != nil {
				t.Fatal(err)
			}
			f.Close()
			rc2, _, err := b.Get(ctx, "k", 0, -1)
			if err == nil {
				_, err = io.ReadAll(rc2)
				rc2.Close()
			}
			if !errors.Is(err, errChecksum) || !errors.Is(err, objstore.ErrRetriable) {
				t.Fatalf("reading a corrupted object: %v", err)
			}
		})
	}
}

// TestFromURL: payloads go unsigned by default only over HTTPS (AWS's
// default endpoint included), and the URL can say otherwise.
func TestFromURL(t *testing.T) {
	for _, c := range []struct {
		url      string
		unsigned bool
		path     bool
	}{
		{"s3://b/prefix", true, false},
		{"s3://b?endpoint=https://s3.example.com", true, true},
		{"s3://b?endpoint=http://127.0.0.1:9000", false, true},
		{"s3://b?endpoint=http://127.0.0.1:9000&unsigned_payload=true", true, true},
		{"s3://b?unsigned_payload=false", false, false},
	} {
		u, err := url.Parse(c.url)
		if err != nil {
			t.Fatal(err)
		}
		if cfg := FromURL(u); cfg.UnsignedPayload != c.unsigned || cfg.PathStyle != c.path || cfg.Bucket != "b" {
			t.Errorf("%s: %+v", c.url, cfg)
		}
	}
}

// TestCallerCRC32C: a checksum the caller passes is what the server
// checks: right, the object is stored; wrong, the Put fails and nothing is.
func TestCallerCRC32C(t *testing.T) {
	srv := testservers.StartVersityGW(t)
	ctx := context.Background()
	b, err := New(ctx, Config{Bucket: "crc", Endpoint: srv.Endpoint, PathStyle: true, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.CreateBucket(ctx); err != nil {
		t.Fatal(err)
	}
	data := []byte("tiered segment bytes")
	good := crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli))
	if _, err := b.Put(ctx, "good", bytes.NewReader(data), objstore.PutOptions{Size: int64(len(data)), CRC32C: &good}); err != nil {
		t.Fatalf("put with the right CRC-32C: %v", err)
	}
	bad := good ^ 1
	if _, err := b.Put(ctx, "bad", bytes.NewReader(data), objstore.PutOptions{Size: int64(len(data)), CRC32C: &bad}); err == nil {
		t.Fatal("put with a wrong CRC-32C succeeded")
	}
	if _, err := b.Head(ctx, "bad"); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("after a refused put: %v", err)
	}
}

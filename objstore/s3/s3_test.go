package s3

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/tiercel/tiercel/internal/testservers"
	"github.com/tiercel/tiercel/objstore"
	"github.com/tiercel/tiercel/objstore/objstoretest"
)

var bucketSeq atomic.Int64

func suite(t *testing.T, srv testservers.S3, caps objstoretest.Capabilities) {
	objstoretest.Run(t, func(t *testing.T) objstore.Bucket {
		b, err := New(context.Background(), Config{Bucket: fmt.Sprintf("tiercel-%d", bucketSeq.Add(1)), Prefix: "p/", Endpoint: srv.Endpoint, PathStyle: true, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey})
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

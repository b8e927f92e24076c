package objstore_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/tiercel/tiercel/objstore"
	"github.com/tiercel/tiercel/objstore/faulty"
	"github.com/tiercel/tiercel/objstore/mem"
)

var fastRetries = objstore.RetryPolicy{Attempts: 30, Base: time.Millisecond, Max: 2 * time.Millisecond}

// TestRetriesThroughFaults: with transient errors, throttling-like
// failures and streams cut short on a third of operations, every read and
// write still completes with the right bytes, and faults did happen.
func TestRetriesThroughFaults(t *testing.T) {
	inner := mem.New("faults")
	f := faulty.Wrap(inner, 42, faulty.Faults{Retriable: 0.3, CutRead: 0.3})
	b := objstore.WithRetries(f, fastRetries)
	ctx := context.Background()
	for i := 0; i < 50; i++ {
		data := make([]byte, 1000+i*37)
		_, _ = rand.Read(data)
		key := fmt.Sprintf("k%d", i)
		if _, err := b.Put(ctx, key, bytes.NewReader(data), objstore.PutOptions{Size: int64(len(data))}); err != nil {
			t.Fatalf("put %s: %v", key, err)
		}
		got, _, err := objstore.ReadAll(ctx, b, key)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("get %s: %d bytes, %v", key, len(got), err)
		}
		rc, _, err := b.Get(ctx, key, 100, 500)
		if err != nil {
			t.Fatal(err)
		}
		part, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(part, data[100:600]) {
			t.Fatalf("range of %s: %d bytes, %v", key, len(part), err)
		}
	}
	if f.Count("retriable") == 0 || f.Count("cut") == 0 {
		t.Fatalf("faults injected: %v; the test proved nothing", f.Injected)
	}
}

// TestResumeRefusesAChangedObject: a read that breaks and finds a new
// version is an error, never half of each.
func TestResumeRefusesAChangedObject(t *testing.T) {
	inner := mem.New("changed")
	ctx := context.Background()
	inner.Put(ctx, "k", bytes.NewReader(bytes.Repeat([]byte("a"), 10000)), objstore.PutOptions{})
	f := faulty.Wrap(inner, 1, faulty.Faults{CutRead: 1})
	b := objstore.WithRetries(f, fastRetries)
	rc, _, err := b.Get(ctx, "k", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	inner.Put(ctx, "k", bytes.NewReader(bytes.Repeat([]byte("b"), 10000)), objstore.PutOptions{})
	_, err = io.ReadAll(rc)
	if !errors.Is(err, objstore.ErrPrecondition) {
		t.Fatalf("reading across a change: %v", err)
	}
}

// corruptAtEOF is a bucket whose reads end with a checksum mismatch.
type corruptAtEOF struct{ objstore.Bucket }

func (c corruptAtEOF) Get(ctx context.Context, key string, off, n int64) (io.ReadCloser, objstore.Attrs, error) {
	rc, attrs, err := c.Bucket.Get(ctx, key, off, n)
	if err != nil || off != 0 {
		return rc, attrs, err
	}
	return io.NopCloser(io.MultiReader(rc, &errAfter{err: objstore.Errorf(objstore.ErrRetriable, "get", "c", key, objstore.ErrCorrupt)})), attrs, nil
}

type errAfter struct{ err error }

func (e *errAfter) Read([]byte) (int, error) { return 0, e.err }

// TestCorruptReadIsNotResumed: a checksum failure at the end of a stream
// reaches the reader; resuming "the rest" would hide it behind bytes that
// were already handed out.
func TestCorruptReadIsNotResumed(t *testing.T) {
	inner := mem.New("corrupt")
	ctx := context.Background()
	inner.Put(ctx, "k", bytes.NewReader(bytes.Repeat([]byte("a"), 1000)), objstore.PutOptions{})
	b := objstore.WithRetries(corruptAtEOF{inner}, fastRetries)
	rc, _, err := b.Get(ctx, "k", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := io.ReadAll(rc); !errors.Is(err, objstore.ErrCorrupt) {
		t.Fatalf("a corrupt read was accepted: %v", err)
	}
}

// TestNoRetryOfPermanentErrors: a permanent error is returned at once.
func TestNoRetryOfPermanentErrors(t *testing.T) {
	f := faulty.Wrap(mem.New("perm"), 7, faulty.Faults{Permanent: 1})
	b := objstore.WithRetries(f, fastRetries)
	if _, err := b.Head(context.Background(), "k"); !errors.Is(err, objstore.ErrPermanent) {
		t.Fatalf("head: %v", err)
	}
	if n := f.Count("permanent"); n != 1 {
		t.Fatalf("a permanent error was tried %d times", n)
	}
}

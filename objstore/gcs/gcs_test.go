package gcs

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/tiercel/tiercel/internal/testservers"
	"github.com/tiercel/tiercel/objstore"
	"github.com/tiercel/tiercel/objstore/objstoretest"
)

var seq atomic.Int64

func TestFakeGCS(t *testing.T) {
	t.Setenv("STORAGE_EMULATOR_HOST", testservers.StartFakeGCS(t))
	objstoretest.Run(t, func(t *testing.T) objstore.Bucket {
		b, err := New(context.Background(), fmt.Sprintf("tiercel-%d", seq.Add(1)), "p")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		if err := b.CreateBucket(context.Background(), "test"); err != nil {
			t.Fatal(err)
		}
		return b
	}, objstoretest.Capabilities{})
}

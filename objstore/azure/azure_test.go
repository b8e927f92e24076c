package azure

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

func TestAzurite(t *testing.T) {
	conn := testservers.StartAzurite(t)
	objstoretest.Run(t, func(t *testing.T) objstore.Bucket {
		b, err := NewFromConnectionString(conn, fmt.Sprintf("tiercel-%d", seq.Add(1)), "p")
		if err != nil {
			t.Fatal(err)
		}
		if err := b.CreateContainer(context.Background()); err != nil {
			t.Fatal(err)
		}
		return b
	}, objstoretest.Capabilities{})
}

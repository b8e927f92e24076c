package objstore_test

import (
	"context"
	"testing"

	"github.com/tiercel/tiercel/objstore"
	_ "github.com/tiercel/tiercel/objstore/all"
	"github.com/tiercel/tiercel/objstore/fs"
	"github.com/tiercel/tiercel/objstore/mem"
	"github.com/tiercel/tiercel/objstore/objstoretest"
)

func TestMem(t *testing.T) {
	objstoretest.Run(t, func(t *testing.T) objstore.Bucket { return mem.New(t.Name()) }, objstoretest.Capabilities{})
}

func TestFS(t *testing.T) {
	objstoretest.Run(t, func(t *testing.T) objstore.Bucket {
		b, err := fs.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return b
	}, objstoretest.Capabilities{})
}

func TestOpenURL(t *testing.T) {
	dir := t.TempDir()
	for _, u := range []string{"file://" + dir, "mem://x"} {
		b, err := objstore.Open(context.Background(), u)
		if err != nil {
			t.Fatalf("%s: %v", u, err)
		}
		b.Close()
	}
	for _, u := range []string{"ftp://x/y", "file://host/path", "::"} {
		if _, err := objstore.Open(context.Background(), u); err == nil {
			t.Errorf("%s opened", u)
		}
	}
}

package tiering

import (
	"bytes"
	"context"
	"sort"
	"testing"

	"github.com/tiercel/tiercel/objstore"
	"github.com/tiercel/tiercel/objstore/mem"
)

// TestCollectOrphans: objects the manifest names stay; orphans go only
// after the grace period; the listing after collection is exactly the
// manifest's objects plus the manifest and the young orphan.
func TestCollectOrphans(t *testing.T) {
	ctx := context.Background()
	b := mem.New("gc")
	store := ManifestStore{Bucket: b}
	put := func(key string) {
		if _, err := b.Put(ctx, key, bytes.NewReader([]byte("x")), objstore.PutOptions{Size: 1}); err != nil {
			t.Fatal(err)
		}
	}
	var named []string
	for i := int64(0); i < 3; i++ {
		k := SegmentKey("g", 0, i*10, 1, 1_000)
		put(k)
		named = append(named, k)
		if _, err := store.Update(ctx, "g", 0, 1, func(m *Manifest) error {
			_, err := m.Add(RemoteSegment{Key: k, BaseOffset: i * 10, NextOffset: i*10 + 10, Size: 1})
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	old := SegmentKey("g", 0, 30, 1, 1_000)    // a crash between upload and manifest update
	young := SegmentKey("g", 0, 30, 2, 99_000) // an upload whose manifest update is in flight
	other := SegmentKey("g", 1, 0, 1, 1_000)   // another partition's: not this listing's
	put(old)
	put(young)
	put(other)
	got, err := Collect(ctx, b, store, "g", 0, 100_000, 10_000, true)
	if err != nil || len(got) != 1 || got[0] != old {
		t.Fatalf("dry run: %v %v", got, err)
	}
	if _, err := b.Head(ctx, old); err != nil {
		t.Fatal("a dry run deleted")
	}
	if got, err = Collect(ctx, b, store, "g", 0, 100_000, 10_000, false); err != nil || len(got) != 1 {
		t.Fatalf("collect: %v %v", got, err)
	}
	var left []string
	b.List(ctx, PartitionPrefix("g", 0), objstore.ListOptions{}, func(o objstore.ObjectInfo) error {
		left = append(left, o.Key)
		return nil
	})
	want := append(append([]string(nil), named...), young, ManifestKey("g", 0))
	sort.Strings(left)
	sort.Strings(want)
	if len(left) != len(want) {
		t.Fatalf("left %v, want %v", left, want)
	}
	for i := range want {
		if left[i] != want[i] {
			t.Fatalf("left %v, want %v", left, want)
		}
	}
	if _, err := b.Head(ctx, other); err != nil {
		t.Fatal("another partition's object was collected")
	}
}

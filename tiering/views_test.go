package tiering

import (
	"context"
	"testing"
	"time"

	"github.com/tiercel/tiercel/objstore/mem"
)

// TestManifestViews: a follower's copy of a manifest answers from memory
// while it is young and reaches the offsets asked about; it is read again
// when the caller needs offsets it does not reach, when it is too old, and
// after Forget (retention moved the log start).
func TestManifestViews(t *testing.T) {
	ctx := context.Background()
	store := ManifestStore{Bucket: mem.New("views")}
	add := func(base, next int64) {
		t.Helper()
		_, err := store.Update(ctx, "T", 0, 1, func(m *Manifest) error {
			_, err := m.Add(RemoteSegment{Key: SegmentKey("T", 0, base, 1, 0), BaseOffset: base, NextOffset: next, Size: 1})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	now := time.Unix(0, 0)
	v := NewManifestViews(store, time.Minute)
	v.now = func() time.Time { return now }
	if _, _, found, err := v.Find(ctx, "T", 0, 0, 0); err != nil || found {
		t.Fatalf("nothing tiered: found %v, %v", found, err)
	}
	add(0, 10)
	if _, _, found, _ := v.Find(ctx, "T", 0, 5, 0); found {
		t.Fatal("a copy that reaches what was asked was read again before its time")
	}
	if seg, start, found, err := v.Find(ctx, "T", 0, 5, 10); err != nil || !found || seg.BaseOffset != 0 || start != 0 {
		t.Fatalf("a copy that does not reach offset 10 was not read again: %+v %d %v %v", seg, start, found, err)
	}
	add(10, 20)
	if _, ok := v.Cached("T", 0, 15); ok {
		t.Fatal("the cached copy knows a segment added after it was read")
	}
	now = now.Add(2 * time.Minute)
	if seg, _, found, _ := v.Find(ctx, "T", 0, 15, 0); !found || seg.BaseOffset != 10 {
		t.Fatalf("an old copy was not read again: %+v %v", seg, found)
	}
	if _, ok := v.Cached("T", 0, 15); !ok {
		t.Fatal("the copy read last is not cached")
	}
	if _, err := store.Update(ctx, "T", 0, 1, func(m *Manifest) error { m.DropBefore(10); return nil }); err != nil {
		t.Fatal(err)
	}
	v.Forget("T", 0)
	if _, start, found, err := v.Find(ctx, "T", 0, 5, 0); err != nil || found || start != 10 {
		t.Fatalf("after retention: start %d found %v %v, want offset 5 gone and the log start at 10", start, found, err)
	}
}

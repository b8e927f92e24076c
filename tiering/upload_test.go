package tiering_test

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"github.com/tiercel/tiercel/broker/storage"
	"github.com/tiercel/tiercel/internal/recordbatch"
	"github.com/tiercel/tiercel/internal/vfs"
	"github.com/tiercel/tiercel/objstore"
	"github.com/tiercel/tiercel/objstore/faulty"
	"github.com/tiercel/tiercel/objstore/mem"
	"github.com/tiercel/tiercel/tiering"
)

// TestUploadRealSegments rolls real segments in the storage layer, uploads
// the closed ones as the planner says (through a store that fails and
// loses answers), and reads every part back from the bucket: the log part
// is byte for byte the segment file, its batches validate, the indexes are
// the segment's, and the manifest is contiguous.
func TestUploadRealSegments(t *testing.T) {
	dir := t.TempDir()
	mgr, err := storage.OpenManager(vfs.Default, dir, storage.ManagerOptions{Now: time.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer mgr.Close()
	cfg := storage.DefaultConfig()
	cfg.SegmentBytes = 4096
	l, err := mgr.Create(storage.TopicPartition{Topic: "t", Partition: 0}, [16]byte{1}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		b, err := recordbatch.Build([]recordbatch.Record{{Timestamp: int64(1000 + i), Key: []byte{byte(i)}, Value: bytes.Repeat([]byte{'v'}, 100)}}, recordbatch.NoProducer())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.Append(b, storage.AppendOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	inner := mem.New("tier")
	f := faulty.Wrap(inner, 11, faulty.Faults{Retriable: 0.2, LostResponse: 0.2})
	bucket := objstore.WithRetries(f, objstore.RetryPolicy{Attempts: 30, Base: time.Millisecond, Max: 2 * time.Millisecond})
	store := tiering.ManifestStore{Bucket: bucket}
	ctx := context.Background()
	m, _, err := store.Load(ctx, "tid", 0)
	if err != nil {
		t.Fatal(err)
	}
	var local []tiering.LocalSegment
	for _, s := range l.Segments() {
		local = append(local, tiering.LocalSegment{BaseOffset: s.BaseOffset, NextOffset: s.NextOffset, Size: s.SizeBytes, MaxTimestamp: s.MaxTimestamp, Active: s.Active})
	}
	plan := tiering.MakePlan(local, &m, tiering.Retention{LocalMs: -1, LocalBytes: -1, Ms: -1, Bytes: -1}, 0)
	if len(plan.Upload) < 3 {
		t.Fatalf("only %d closed segments to upload", len(plan.Upload))
	}
	for _, u := range plan.Upload {
		cs, err := l.OpenClosedSegment(u.BaseOffset)
		if err != nil {
			t.Fatal(err)
		}
		added, err := tiering.Upload(ctx, bucket, store, "tid", 0, 1, tiering.Segment{Info: u, Log: cs.Log, Parts: map[string][]byte{
			tiering.PartOffsetIndex: cs.Index, tiering.PartTimeIndex: cs.TimeIndex, tiering.PartEpochs: cs.Epochs,
		}}, 0)
		cs.Close()
		if err != nil || !added {
			t.Fatalf("upload [%d, %d): %v %v", u.BaseOffset, u.NextOffset, added, err)
		}
	}
	m, _, err = store.Load(ctx, "tid", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Segments) != len(plan.Upload) || m.End() != plan.Upload[len(plan.Upload)-1].NextOffset {
		t.Fatalf("manifest %+v after %d uploads", m, len(plan.Upload))
	}
	for _, rs := range m.Segments {
		footer, err := tiering.ReadFooter(ctx, bucket, rs.Key, rs.Size)
		if err != nil {
			t.Fatal(err)
		}
		logBytes, err := tiering.ReadPart(ctx, bucket, rs.Key, footer, tiering.PartLog)
		if err != nil {
			t.Fatal(err)
		}
		cs, err := l.OpenClosedSegment(rs.BaseOffset)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := io.ReadAll(io.NewSectionReader(cs.Log, 0, cs.Info.SizeBytes))
		index, _ := tiering.ReadPart(ctx, bucket, rs.Key, footer, tiering.PartOffsetIndex)
		cs.Close()
		if !bytes.Equal(logBytes, want) || !bytes.Equal(index, cs.Index) {
			t.Fatalf("segment %d: the object's parts differ from the local files", rs.BaseOffset)
		}
		batches, err := recordbatch.Validate(logBytes, recordbatch.ValidateOptions{Deep: true})
		if err != nil || batches[0].BaseOffset != rs.BaseOffset || batches[len(batches)-1].LastOffset()+1 != rs.NextOffset {
			t.Fatalf("segment %d: batches %v", rs.BaseOffset, err)
		}
	}
	if f.Count("lost") == 0 && f.Count("retriable") == 0 {
		t.Fatal("no fault was injected: the test proved less than it says")
	}
}

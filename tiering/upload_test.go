package tiering_test

import (
	"bytes"
	"context"
	"io"
	"math/rand"
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
		_, added, err := tiering.Upload(ctx, bucket, store, "tid", 0, 1, tiering.Segment{Info: u, Log: cs.Log, Parts: map[string][]byte{
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

// TestRemoteReadsMatchLocal: reading any offset of an uploaded segment from
// the bucket gives byte for byte what the local log gives for the same
// offset and size limit.
func TestRemoteReadsMatchLocal(t *testing.T) {
	dir := t.TempDir()
	mgr, err := storage.OpenManager(vfs.Default, dir, storage.ManagerOptions{Now: time.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer mgr.Close()
	cfg := storage.DefaultConfig()
	cfg.SegmentBytes = 64 << 10
	cfg.IndexIntervalBytes = 1024
	l, err := mgr.Create(storage.TopicPartition{Topic: "r", Partition: 0}, [16]byte{2}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 600 {
		n := 1 + i%7 // batches of varying record counts and sizes
		var recs []recordbatch.Record
		for j := range n {
			recs = append(recs, recordbatch.Record{Timestamp: int64(i), Value: bytes.Repeat([]byte{byte(j)}, 50+i%300)})
		}
		b, _ := recordbatch.Build(recs, recordbatch.NoProducer())
		if _, err := l.Append(b, storage.AppendOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	bucket := mem.New("reads")
	store := tiering.ManifestStore{Bucket: bucket}
	ctx := context.Background()
	for _, s := range l.Segments() {
		if s.Active {
			continue
		}
		cs, err := l.OpenClosedSegment(s.BaseOffset)
		if err != nil {
			t.Fatal(err)
		}
		info := tiering.LocalSegment{BaseOffset: s.BaseOffset, NextOffset: s.NextOffset, Size: s.SizeBytes, MaxTimestamp: s.MaxTimestamp}
		if _, _, err := tiering.Upload(ctx, bucket, store, "rid", 0, 1, tiering.Segment{Info: info, Log: cs.Log, Parts: map[string][]byte{tiering.PartOffsetIndex: cs.Index}}, 0); err != nil {
			t.Fatal(err)
		}
		cs.Close()
	}
	m, _, err := store.Load(ctx, "rid", 0)
	if err != nil || len(m.Segments) < 3 {
		t.Fatalf("manifest: %v, %d segments", err, len(m.Segments))
	}
	var readers []*tiering.Reader
	for _, c := range []int64{512, 4096, 1 << 20} {
		cache, err := tiering.NewChunkCache(t.TempDir(), 64<<10) // small: evictions happen
		if err != nil {
			t.Fatal(err)
		}
		readers = append(readers, tiering.NewReader(tiering.ReaderOptions{Bucket: bucket, Cache: cache, ChunkBytes: c, ReadAhead: 2, MemoryBytes: 16 << 10}))
	}
	defer func() {
		var hits, misses int64
		for _, r := range readers {
			st := r.Stats()
			hits, misses = hits+st.ChunkHits, misses+st.ChunkMisses
		}
		if hits == 0 || misses == 0 {
			t.Errorf("chunk cache: %d hits, %d misses; both paths should be exercised", hits, misses)
		}
	}()
	rng := newRand(7)
	for i := 0; i < 300; i++ {
		offset := m.LogStart + rng.Int63n(m.End()-m.LogStart)
		maxBytes := 1 + rng.Intn(40000)
		seg, ok := m.Find(offset)
		if !ok {
			t.Fatalf("offset %d not in the manifest", offset)
		}
		footer, err := tiering.ReadFooter(ctx, bucket, seg.Key, seg.Size)
		if err != nil {
			t.Fatal(err)
		}
		index, err := tiering.ReadPart(ctx, bucket, seg.Key, footer, tiering.PartOffsetIndex)
		if err != nil {
			t.Fatal(err)
		}
		chunk := []int{512, 4096, 1 << 20}[i%3]
		got, err := tiering.ReadRecords(ctx, bucket, seg, footer, index, offset, maxBytes, chunk)
		if err != nil {
			t.Fatal(err)
		}
		want, err := l.Read(offset, int32(maxBytes), seg.NextOffset)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want.Records) {
			t.Fatalf("offset %d, max %d, chunk %d: remote %d bytes, local %d bytes", offset, maxBytes, chunk, len(got), len(want.Records))
		}
		viaReader, err := readers[i%3].Read(ctx, seg, offset, maxBytes)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(viaReader, want.Records) {
			t.Fatalf("offset %d, max %d, chunk %d: the cached reader gave %d bytes, local %d bytes", offset, maxBytes, chunk, len(viaReader), len(want.Records))
		}
	}
}

func newRand(seed int64) *rand.Rand { return rand.New(rand.NewSource(seed)) }

// loseManifestAnswer loses the answer of the first manifest write (the
// write happens) and fails the read that would settle it, so the retry
// layer reports a lost race and the update runs again on a manifest that
// already names the upload.
type loseManifestAnswer struct {
	objstore.Bucket
	lost, failedRead bool
}

func (b *loseManifestAnswer) Put(ctx context.Context, key string, r io.Reader, o objstore.PutOptions) (objstore.Attrs, error) {
	a, err := b.Bucket.Put(ctx, key, r, o)
	if err == nil && !b.lost && bytes.HasSuffix([]byte(key), []byte("/manifest")) {
		b.lost = true
		return objstore.Attrs{}, objstore.Errorf(objstore.ErrRetriable, "put", "test", key, io.ErrUnexpectedEOF)
	}
	return a, err
}

func (b *loseManifestAnswer) Get(ctx context.Context, key string, off, n int64) (io.ReadCloser, objstore.Attrs, error) {
	if b.lost && !b.failedRead {
		b.failedRead = true
		return nil, objstore.Attrs{}, objstore.Errorf(objstore.ErrPermanent, "get", "test", key, io.ErrUnexpectedEOF)
	}
	return b.Bucket.Get(ctx, key, off, n)
}

// TestUploadKeepsItsObjectAfterALostAnswer: an upload whose manifest write
// landed unseen must not delete its object, which the manifest names.
func TestUploadKeepsItsObjectAfterALostAnswer(t *testing.T) {
	ctx := context.Background()
	inner := mem.New("lost")
	b := objstore.WithRetries(&loseManifestAnswer{Bucket: inner}, objstore.RetryPolicy{Attempts: 3, Base: time.Millisecond, Max: time.Millisecond})
	store := tiering.ManifestStore{Bucket: b}
	logBytes, _ := recordbatch.Build([]recordbatch.Record{{Value: []byte("v")}}, recordbatch.NoProducer())
	seg := tiering.Segment{Info: tiering.LocalSegment{BaseOffset: 0, NextOffset: 1, Size: int64(len(logBytes))}, Log: bytes.NewReader(logBytes)}
	m, _, err := tiering.Upload(ctx, b, store, "tid", 0, 0, seg, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Segments) != 1 {
		t.Fatalf("manifest %+v", m)
	}
	if _, err := inner.Head(ctx, m.Segments[0].Key); err != nil {
		t.Fatalf("the object the manifest names is gone: %v", err)
	}
}

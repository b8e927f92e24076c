package storage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tiercel/tiercel/internal/vfs"
)

func TestAppendReadRestart(t *testing.T) {
	e := newEnv(vfs.Default, t.TempDir(), DefaultConfig())
	m := e.open(t)
	l, err := m.Create(tp0, [16]byte{1, 2, 3}, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	r1 := mustAppend(t, l, batch(t, "a", "b", "c"))
	r2 := mustAppend(t, l, batch(t, "d"))
	if r1.BaseOffset != 0 || r1.LastOffset != 2 || r2.BaseOffset != 3 {
		t.Fatalf("offsets %+v %+v", r1, r2)
	}
	if got := readAll(t, l, 0); !reflect.DeepEqual(got, []string{"a", "b", "c", "d"}) {
		t.Fatalf("read %v", got)
	}
	if got := readAll(t, l, 3); !reflect.DeepEqual(got, []string{"d"}) {
		t.Fatalf("read from 3: %v", got)
	}
	if _, err := l.Read(5, 100, 10); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("read past the end: %v", err)
	}
	if res, err := l.Read(4, 100, 10); err != nil || len(res.Records) != 0 {
		t.Fatalf("read at the end: %v %d bytes", err, len(res.Records))
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	meta, _ := os.ReadFile(filepath.Join(e.dir, "t-0", "partition.metadata"))
	if !strings.HasPrefix(string(meta), "version: 0\ntopic_id: AQID") {
		t.Fatalf("partition.metadata %q", meta)
	}
	m = e.open(t)
	defer m.Close()
	l = m.Get(tp0)
	if l == nil || l.TopicID() != [16]byte{1, 2, 3} {
		t.Fatal("log not reopened with its topic id")
	}
	if got := readAll(t, l, 0); !reflect.DeepEqual(got, []string{"a", "b", "c", "d"}) {
		t.Fatalf("after restart: %v", got)
	}
	if r := mustAppend(t, l, batch(t, "e")); r.BaseOffset != 4 {
		t.Fatalf("append after restart at %d", r.BaseOffset)
	}
}

func TestRollIndexesAndReadAcrossSegments(t *testing.T) {
	cfg := DefaultConfig()
	cfg.SegmentBytes = 4096
	cfg.IndexIntervalBytes = 256
	e := newEnv(vfs.Default, t.TempDir(), cfg)
	m := e.open(t)
	l, _ := m.Create(tp0, [16]byte{}, cfg)
	var want []string
	for i := 0; i < 200; i++ {
		v := strings.Repeat("x", 50) + string(rune('a'+i%26))
		want = append(want, v)
		mustAppend(t, l, batch(t, v))
	}
	segs := l.Segments()
	if len(segs) < 3 {
		t.Fatalf("%d segments; expected rolls at 4 KiB", len(segs))
	}
	for i := range segs[:len(segs)-1] {
		if segs[i].NextOffset != segs[i+1].BaseOffset || segs[i].Active {
			t.Fatalf("segment %d: %+v next %+v", i, segs[i], segs[i+1])
		}
	}
	for _, from := range []int64{0, 1, 57, 63, 64, 150, 199} {
		got := readAll(t, l, from)
		if !reflect.DeepEqual(got, want[from:]) {
			t.Fatalf("read from %d: %d values, first %q", from, len(got), got[0])
		}
	}
	m.Close()
	if _, err := os.Stat(filepath.Join(e.dir, "t-0", "00000000000000000000.index")); err != nil {
		t.Fatalf("rolled segment lacks its index: %v", err)
	}
	m = e.open(t)
	defer m.Close()
	if got := readAll(t, m.Get(tp0), 37); !reflect.DeepEqual(got, want[37:]) {
		t.Fatal("read after reopen differs")
	}
}

func TestMaxBytesAndFirstBatchWhole(t *testing.T) {
	e := newEnv(vfs.Default, t.TempDir(), DefaultConfig())
	m := e.open(t)
	defer m.Close()
	l, _ := m.Create(tp0, [16]byte{}, DefaultConfig())
	mustAppend(t, l, batch(t, strings.Repeat("a", 1000)))
	mustAppend(t, l, batch(t, "b"))
	res, err := l.Read(0, 10, 100)
	if err != nil || len(values(t, res.Records)) != 1 {
		t.Fatalf("a batch larger than maxBytes must come whole: %v %v", err, values(t, res.Records))
	}
	res, _ = l.Read(0, 1<<20, 1)
	if got := values(t, res.Records); len(got) != 1 {
		t.Fatalf("maxOffset 1 returned %v", got)
	}
}

func TestProducerIdempotence(t *testing.T) {
	e := newEnv(vfs.Default, t.TempDir(), DefaultConfig())
	m := e.open(t)
	l, _ := m.Create(tp0, [16]byte{}, DefaultConfig())
	r0 := mustAppend(t, l, idemBatch(t, 7, 0, 0, "a", "b"))
	r1 := mustAppend(t, l, idemBatch(t, 7, 0, 2, "c"))
	dup, err := l.Append(idemBatch(t, 7, 0, 0, "a", "b"), AppendOptions{})
	if err != nil || !dup.Duplicate || dup.BaseOffset != r0.BaseOffset || dup.LastOffset != r0.LastOffset {
		t.Fatalf("duplicate: %+v %v", dup, err)
	}
	if _, err := l.Append(idemBatch(t, 7, 0, 5, "gap"), AppendOptions{}); !errors.Is(err, ErrOutOfOrderSequence) {
		t.Fatalf("gap: %v", err)
	}
	if _, err := l.Append(idemBatch(t, 7, 1, 3, "new epoch not at 0"), AppendOptions{}); !errors.Is(err, ErrOutOfOrderSequence) {
		t.Fatalf("new epoch: %v", err)
	}
	mustAppend(t, l, idemBatch(t, 7, 1, 0, "epoch 1"))
	if _, err := l.Append(idemBatch(t, 7, 0, 3, "old epoch"), AppendOptions{}); !errors.Is(err, ErrInvalidProducerEpoch) {
		t.Fatalf("old epoch: %v", err)
	}
	// Sequence numbers wrap at int32 max.
	mustAppend(t, l, idemBatch(t, 9, 0, 2147483646, "x", "y"))
	mustAppend(t, l, idemBatch(t, 9, 0, 0, "wrapped"))
	if l.EndOffset() != 7 {
		t.Fatalf("end offset %d", l.EndOffset())
	}
	_ = r1
	// State survives a clean restart and a crash (snapshot + replay).
	m.Close()
	m = e.open(t)
	l = m.Get(tp0)
	if d, err := l.Append(idemBatch(t, 7, 1, 0, "epoch 1"), AppendOptions{}); err != nil || !d.Duplicate || d.BaseOffset != 3 {
		t.Fatalf("duplicate after restart: %+v %v", d, err)
	}
	m.Close()
}

func TestFullDiskThenSpaceReturns(t *testing.T) {
	mem := vfs.NewMem()
	faulty := vfs.NewFaulty(mem)
	e := newEnv(faulty, "/data", DefaultConfig())
	m := e.open(t)
	l, _ := m.Create(tp0, [16]byte{}, DefaultConfig())
	mustAppend(t, l, batch(t, "before"))
	faulty.SetFull(true)
	if _, err := l.Append(batch(t, "lost"), AppendOptions{}); !errors.Is(err, ErrStorage) {
		t.Fatalf("append on a full disk: %v", err)
	}
	if l.EndOffset() != 1 {
		t.Fatalf("end offset moved to %d on a failed append", l.EndOffset())
	}
	faulty.SetFull(false)
	mustAppend(t, l, batch(t, "after"))
	if got := readAll(t, l, 0); !reflect.DeepEqual(got, []string{"before", "after"}) {
		t.Fatalf("read %v", got)
	}
	// After a crash the log holds exactly the acknowledged records.
	e.fs = mem.Crash(nil)
	m2 := e.open(t)
	defer m2.Close()
	if got := readAll(t, m2.Get(tp0), 0); !reflect.DeepEqual(got, []string{"before", "after"}) {
		t.Fatalf("after crash %v", got)
	}
}

func TestFsyncFailureIsNeverAcknowledged(t *testing.T) {
	faulty := vfs.NewFaulty(vfs.NewMem())
	e := newEnv(faulty, "/data", DefaultConfig())
	m := e.open(t)
	defer m.Close()
	l, _ := m.Create(tp0, [16]byte{}, DefaultConfig())
	faulty.Inject(func(op vfs.Op, name string) error {
		if op == vfs.OpSync && strings.HasSuffix(name, ".log") {
			return errors.New("EIO")
		}
		return nil
	})
	res, err := l.Append(batch(t, "x"), AppendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := l.WaitDurable(ctx, res.LastOffset+1); !errors.Is(err, ErrStorage) {
		t.Fatalf("WaitDurable after a failed fsync: %v", err)
	}
	if l.HighWatermark() != 0 {
		t.Fatal("a record whose fsync failed became visible")
	}
	if _, err := l.Append(batch(t, "y"), AppendOptions{}); !errors.Is(err, ErrStorage) {
		t.Fatalf("append after a failed fsync: %v", err)
	}
}

func TestRetentionAndDeleteRecords(t *testing.T) {
	cfg := DefaultConfig()
	cfg.SegmentBytes = 200
	cfg.RetentionBytes = 500
	e := newEnv(vfs.Default, t.TempDir(), cfg)
	m := e.open(t)
	defer m.Close()
	l, _ := m.Create(tp0, [16]byte{}, cfg)
	for i := 0; i < 20; i++ {
		mustAppend(t, l, timedBatch(t, e.now, strings.Repeat("v", 60)))
	}
	m.ApplyRetention()
	if l.Size() > 500+200 || l.StartOffset() == 0 {
		t.Fatalf("size %d start %d after retention.bytes=500", l.Size(), l.StartOffset())
	}
	if _, err := l.Read(0, 100, 100); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("read below the start: %v", err)
	}
	start, err := l.DeleteRecordsBefore(17)
	if err != nil || start != 17 || l.StartOffset() != 17 {
		t.Fatalf("DeleteRecordsBefore: %d %v", start, err)
	}
	if _, err := l.DeleteRecordsBefore(100); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("delete past the high watermark: %v", err)
	}
	if got := readAll(t, l, 17); len(got) != 3 {
		t.Fatalf("after delete-records: %d records", len(got))
	}
	// Time retention: everything older than retention.ms goes, active included.
	l.SetConfig(Config{SegmentBytes: 200, SegmentMs: 1 << 40, SegmentIndexBytes: 1 << 20, IndexIntervalBytes: 4096, RetentionMs: 1000, RetentionBytes: -1, FlushMessages: 1 << 62, FlushMs: 1 << 62})
	e.now += 5000
	m.ApplyRetention()
	if l.StartOffset() != 20 || l.EndOffset() != 20 {
		t.Fatalf("after time retention start %d end %d", l.StartOffset(), l.EndOffset())
	}
	m.Close()
	m2 := e.open(t)
	defer m2.Close()
	if s := m2.Get(tp0).StartOffset(); s != 20 {
		t.Fatalf("log start after restart %d", s)
	}
}

func TestOffsetForTimestamp(t *testing.T) {
	e := newEnv(vfs.Default, t.TempDir(), DefaultConfig())
	m := e.open(t)
	defer m.Close()
	l, _ := m.Create(tp0, [16]byte{}, DefaultConfig())
	for i, ts := range []int64{100, 200, 200, 150, 300} {
		mustAppend(t, l, timedBatch(t, ts, string(rune('a'+i))))
	}
	for _, c := range []struct{ ts, off int64 }{{50, 0}, {100, 0}, {101, 1}, {200, 1}, {250, 4}, {300, 4}} {
		off, _, _, ok := l.OffsetForTimestamp(c.ts)
		if !ok || off != c.off {
			t.Errorf("timestamp %d: offset %d (%v), want %d", c.ts, off, ok, c.off)
		}
	}
	if _, _, _, ok := l.OffsetForTimestamp(301); ok {
		t.Error("a timestamp past every record found an offset")
	}
	if off, ts, _, ok := l.MaxTimestamp(); !ok || off != 4 || ts != 300 {
		t.Errorf("max timestamp %d at %d", ts, off)
	}
}

func TestEpochCache(t *testing.T) {
	e := newEnv(vfs.Default, t.TempDir(), DefaultConfig())
	m := e.open(t)
	l, _ := m.Create(tp0, [16]byte{}, DefaultConfig())
	for _, ep := range []int32{0, 0, 2, 2, 5} {
		if _, err := l.Append(batch(t, "x"), AppendOptions{LeaderEpoch: ep}); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		ask, epoch int32
		end        int64
	}{{0, 0, 2}, {1, 0, 2}, {2, 2, 4}, {4, 2, 4}, {5, 5, 5}, {9, 5, 5}, {-1, -1, -1}} {
		ep, end := l.EndOffsetForEpoch(c.ask)
		if ep != c.epoch || end != c.end {
			t.Errorf("epoch %d: (%d, %d), want (%d, %d)", c.ask, ep, end, c.epoch, c.end)
		}
	}
	m.Close()
	m = e.open(t)
	defer m.Close()
	if ep, end := m.Get(tp0).EndOffsetForEpoch(3); ep != 2 || end != 4 {
		t.Errorf("after restart: (%d, %d)", ep, end)
	}
}

func TestDeleteLog(t *testing.T) {
	e := newEnv(vfs.Default, t.TempDir(), DefaultConfig())
	m := e.open(t)
	l, _ := m.Create(tp0, [16]byte{}, DefaultConfig())
	mustAppend(t, l, batch(t, "x"))
	if err := m.Delete(tp0); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(e.dir, "t-0")); !os.IsNotExist(err) {
		t.Fatalf("directory still there: %v", err)
	}
	if _, err := m.Create(tp0, [16]byte{}, DefaultConfig()); err != nil {
		t.Fatalf("re-create after delete: %v", err)
	}
	m.Close()
}

// TestCorruptionBelowCheckpointIsReported flips a byte in a batch that a
// checkpoint already covers: recovery trusts it, so the read must catch it
// and name the file and position rather than serve it.
func TestCorruptionBelowCheckpointIsReported(t *testing.T) {
	e := newEnv(vfs.Default, t.TempDir(), DefaultConfig())
	m := e.open(t)
	l, _ := m.Create(tp0, [16]byte{}, DefaultConfig())
	mustAppend(t, l, batch(t, "first"))
	mustAppend(t, l, batch(t, "second"))
	if err := m.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	m.closeLogs() // a crash after the checkpoint: no clean-shutdown marker
	seg := filepath.Join(e.dir, "t-0", "00000000000000000000.log")
	data, _ := os.ReadFile(seg)
	data[len(data)-2] ^= 0xff // inside the second batch
	os.WriteFile(seg, data, 0o644)

	m = e.open(t)
	defer m.Close()
	l = m.Get(tp0)
	if l.EndOffset() != 2 {
		t.Fatalf("a checkpointed batch was truncated: end %d", l.EndOffset())
	}
	res, err := l.Read(0, 1<<20, 2)
	if err != nil || len(values(t, res.Records)) != 1 {
		t.Fatalf("the good batch before the corrupt one: %v %v", err, values(t, res.Records))
	}
	_, err = l.Read(1, 1<<20, 2)
	if !errors.Is(err, ErrCorruptLog) || !strings.Contains(err.Error(), seg) || !strings.Contains(err.Error(), "position") {
		t.Fatalf("corrupt batch: %v", err)
	}
}

// TestTornTailTruncated appends garbage after the last batch, as a torn
// write would leave, and checks that recovery cuts exactly there.
func TestTornTailTruncated(t *testing.T) {
	e := newEnv(vfs.Default, t.TempDir(), DefaultConfig())
	m := e.open(t)
	l, _ := m.Create(tp0, [16]byte{}, DefaultConfig())
	mustAppend(t, l, batch(t, "kept"))
	m.closeLogs()
	seg := filepath.Join(e.dir, "t-0", "00000000000000000000.log")
	good, _ := os.ReadFile(seg)
	half := batch(t, "torn")
	os.WriteFile(seg, append(append([]byte(nil), good...), half[:len(half)/2]...), 0o644)
	m = e.open(t)
	defer m.Close()
	if got := readAll(t, m.Get(tp0), 0); !reflect.DeepEqual(got, []string{"kept"}) {
		t.Fatalf("after recovery: %v", got)
	}
	if st, _ := os.Stat(seg); st.Size() != int64(len(good)) {
		t.Fatalf("segment is %d bytes, want %d", st.Size(), len(good))
	}
	if r := mustAppend(t, m.Get(tp0), batch(t, "next")); r.BaseOffset != 1 {
		t.Fatalf("append after truncation at %d", r.BaseOffset)
	}
}

// TestSegmentMsAfterRestart: an active segment that gets no more appends
// after a restart still rolls by segment.ms (counted from the reopening),
// so idle partitions keep rolling and tiering.
func TestSegmentMsAfterRestart(t *testing.T) {
	cfg := DefaultConfig()
	cfg.SegmentMs = 1000
	e := newEnv(vfs.Default, t.TempDir(), cfg)
	m := e.open(t)
	l, _ := m.Create(tp0, [16]byte{}, cfg)
	mustAppend(t, l, batch(t, "a"))
	m.Close()
	m2 := e.open(t)
	defer m2.Close()
	l = m2.Get(tp0)
	l.SetConfig(cfg)
	e.now += 5000
	m2.ApplyRetention()
	if segs := l.Segments(); len(segs) != 2 || segs[0].Active || segs[0].NextOffset != 1 {
		t.Fatalf("segments after segment.ms passed since the restart: %+v", segs)
	}
}

// TestProducerStateSurvivesDroppedSegmentsAndCrash: segments dropped from
// the front of the log (tiering trims the local copy) after the last
// producer snapshot take their batches out of what recovery replays; a
// crash then must not forget the producer, or a retried batch is appended
// a second time. Dropping segments checkpoints the producer state first.
func TestProducerStateSurvivesDroppedSegmentsAndCrash(t *testing.T) {
	mem := vfs.NewMem()
	cfg := DefaultConfig()
	cfg.SegmentBytes = 200 // a segment per batch or two
	e := newEnv(mem, "/data", cfg)
	m := e.open(t)
	l, err := m.Create(tp0, [16]byte{}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Checkpoint(); err != nil { // a snapshot of an empty state at 0
		t.Fatal(err)
	}
	var sent [][]byte
	for i := range 8 {
		b := idemBatch(t, 7, 0, int32(i), fmt.Sprintf("v%d-%s", i, strings.Repeat("x", 120)))
		sent = append(sent, b)
		mustAppend(t, l, b)
	}
	// Keep only the last segment, as a local trim after tiering would.
	segs := l.Segments()
	if len(segs) < 3 {
		t.Fatalf("only %d segments", len(segs))
	}
	if _, err := l.DeleteRecordsBefore(segs[len(segs)-1].BaseOffset); err != nil {
		t.Fatal(err)
	}
	end := l.EndOffset()
	// kill -9: the process ends without closing anything; what the kernel
	// holds stays, deleted files included (the manager is abandoned).
	m2 := e.open(t)
	defer m2.Close()
	l2 := m2.Get(tp0)
	// The producer retries its last two batches: both are duplicates.
	for _, b := range sent[6:] {
		res, err := l2.Append(b, AppendOptions{})
		if err != nil {
			t.Fatalf("retried batch after the crash: %v", err)
		}
		if !res.Duplicate {
			t.Fatalf("a retried batch was appended again at %d (log end was %d)", res.BaseOffset, end)
		}
	}
	if l2.EndOffset() != end {
		t.Fatalf("log end %d after retries, want %d", l2.EndOffset(), end)
	}
}

// TestTruncateDuringFsync: a truncation that removes the segment the
// group-commit fsync is syncing closes its file under the fsync; the log
// must go on (it once failed the partition with "bad file descriptor").
func TestTruncateDuringFsync(t *testing.T) {
	cfg := DefaultConfig()
	cfg.SegmentBytes = 1024
	faulty := vfs.NewFaulty(vfs.Default)
	e := newEnv(faulty, t.TempDir(), cfg)
	m := e.open(t)
	defer m.Close()
	l, _ := m.Create(tp0, [16]byte{}, cfg)
	value := strings.Repeat("v", 600)
	mustAppend(t, l, batch(t, value))
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	faulty.Inject(func(op vfs.Op, name string) error {
		if op == vfs.OpSync && strings.HasSuffix(name, "00000000000000000001.log") {
			once.Do(func() { close(entered); <-release })
		}
		return nil
	})
	if _, err := l.Append(batch(t, value), AppendOptions{}); err != nil { // rolls to segment 1
		t.Fatal(err)
	}
	<-entered // the group commit is about to fsync segment 1
	if err := l.TruncateTo(1); err != nil {
		t.Fatal(err)
	}
	close(release)
	if _, err := l.Append(batch(t, "after"), AppendOptions{}); err != nil {
		t.Fatalf("append after the truncation: %v", err)
	}
	if err := l.Flush(); err != nil {
		t.Fatalf("the log failed after a truncation during its fsync: %v", err)
	}
	if got := readAll(t, l, 0); len(got) != 2 || got[1] != "after" {
		t.Fatalf("read %d values", len(got))
	}
}

// TestTruncateIntoBatchBelowStart: a log started mid-batch (DeleteRecords)
// truncated at an offset of that batch is out of range (the follower
// starts its copy again there) rather than left ending before its start.
func TestTruncateIntoBatchBelowStart(t *testing.T) {
	e := newEnv(vfs.Default, t.TempDir(), DefaultConfig())
	m := e.open(t)
	defer m.Close()
	l, _ := m.Create(tp0, [16]byte{}, DefaultConfig())
	mustAppend(t, l, batch(t, "a", "b", "c", "d")) // offsets 0-3
	mustAppend(t, l, batch(t, "e"))                // offset 4
	if _, err := l.DeleteRecordsBefore(2); err != nil {
		t.Fatal(err)
	}
	if err := l.TruncateTo(3); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("truncate into the batch holding the log start: %v, want ErrOffsetOutOfRange", err)
	}
	if start, end := l.StartOffset(), l.EndOffset(); start != 2 || end != 5 {
		t.Fatalf("log %d-%d after the refused truncation, want 2-5", start, end)
	}
	if err := l.TruncateTo(4); err != nil || l.EndOffset() != 4 {
		t.Fatalf("truncate at a batch boundary: %v, end %d", err, l.EndOffset())
	}
}

// TestSealRefusesLeaderAppends: a sealed log (its leadership moving away)
// refuses appends as a leader but takes a follower's, until unsealed.
func TestSealRefusesLeaderAppends(t *testing.T) {
	e := newEnv(vfs.Default, t.TempDir(), DefaultConfig())
	m := e.open(t)
	defer m.Close()
	l, _ := m.Create(tp0, [16]byte{}, DefaultConfig())
	l.Seal()
	if _, err := l.Append(batch(t, "a"), AppendOptions{}); !errors.Is(err, ErrSealed) {
		t.Fatalf("append to a sealed log: %v, want ErrSealed", err)
	}
	if _, err := l.AppendReplica(batch(t, "a")); err != nil || l.EndOffset() != 1 {
		t.Fatalf("a follower's append to a sealed log: %v, end %d", err, l.EndOffset())
	}
	l.Unseal()
	if res, err := l.Append(batch(t, "b"), AppendOptions{}); err != nil || res.BaseOffset != 1 {
		t.Fatalf("append after unsealing: %+v %v", res, err)
	}
}

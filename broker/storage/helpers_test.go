package storage

import (
	"fmt"
	"testing"
	"time"

	"github.com/tiercel/tiercel/internal/recordbatch"
	"github.com/tiercel/tiercel/internal/vfs"
)

var tp0 = TopicPartition{Topic: "t", Partition: 0}

// batch builds a plain batch of n records whose values are the strings given.
func batch(t testing.TB, values ...string) []byte {
	t.Helper()
	recs := make([]recordbatch.Record, len(values))
	for i, v := range values {
		recs[i] = recordbatch.Record{Timestamp: 1000 + int64(i), Value: []byte(v)}
	}
	b, err := recordbatch.Build(recs, recordbatch.NoProducer())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func idemBatch(t testing.TB, pid int64, epoch int16, seq int32, values ...string) []byte {
	t.Helper()
	recs := make([]recordbatch.Record, len(values))
	for i, v := range values {
		recs[i] = recordbatch.Record{Timestamp: 1000, Value: []byte(v)}
	}
	b, err := recordbatch.Build(recs, recordbatch.BuildOptions{ProducerID: pid, ProducerEpoch: epoch, BaseSequence: seq})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func timedBatch(t testing.TB, ts int64, value string) []byte {
	t.Helper()
	b, err := recordbatch.Build([]recordbatch.Record{{Timestamp: ts, Value: []byte(value)}}, recordbatch.NoProducer())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// values decodes every record value of a read.
func values(t testing.TB, records []byte) []string {
	t.Helper()
	var out []string
	batches, err := recordbatch.Validate(records, recordbatch.ValidateOptions{})
	if err != nil && len(records) > 0 {
		t.Fatalf("read returned invalid batches: %v", err)
	}
	for _, b := range batches {
		recs, err := recordbatch.Records(b)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			out = append(out, string(r.Value))
		}
	}
	return out
}

// readAll reads a log from offset to its high watermark.
func readAll(t testing.TB, l *Log, from int64) []string {
	t.Helper()
	var out []string
	for off := from; off < l.HighWatermark(); {
		res, err := l.Read(off, 1<<20, l.HighWatermark())
		if err != nil {
			t.Fatalf("read at %d: %v", off, err)
		}
		if len(res.Records) == 0 {
			t.Fatalf("empty read at %d below the high watermark %d", off, l.HighWatermark())
		}
		batches, _ := recordbatch.Validate(res.Records, recordbatch.ValidateOptions{})
		for _, b := range batches {
			recs, _ := recordbatch.Records(b)
			for _, r := range recs {
				if r.Offset >= off {
					out = append(out, string(r.Value))
				}
			}
			off = b.LastOffset() + 1
		}
	}
	return out
}

type env struct {
	fs   vfs.FS
	dir  string
	now  int64
	opts ManagerOptions
}

func newEnv(fsys vfs.FS, dir string, cfg Config) *env {
	e := &env{fs: fsys, dir: dir, now: 1_000_000}
	e.opts = ManagerOptions{
		Now:                    func() time.Time { return time.UnixMilli(e.now) },
		CheckpointInterval:     time.Hour,
		RetentionCheckInterval: time.Hour,
		Configs:                func(TopicPartition) Config { return cfg },
	}
	return e
}

func (e *env) open(t testing.TB) *Manager {
	t.Helper()
	m, err := OpenManager(e.fs, e.dir, e.opts)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func mustAppend(t testing.TB, l *Log, b []byte) AppendResult {
	t.Helper()
	res, err := l.Append(b, AppendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.WaitDurable(t.Context(), res.LastOffset+1); err != nil {
		t.Fatal(err)
	}
	return res
}

func seq(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return out
}

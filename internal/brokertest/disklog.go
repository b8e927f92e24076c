package brokertest

import (
	"testing"

	"github.com/tiercel/tiercel/broker/storage"
	"github.com/tiercel/tiercel/internal/recordbatch"
	"github.com/tiercel/tiercel/internal/vfs"
)

// DiskLog reads partition p of topic from the data directory of a stopped
// broker: the copy's start offset and the value of every record it holds,
// whatever its high watermark (replicas are compared this way).
func DiskLog(t testing.TB, dir, topic string, p int32) (int64, []string) {
	t.Helper()
	m, err := storage.OpenManager(vfs.Default, dir, storage.ManagerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	l := m.Get(storage.TopicPartition{Topic: topic, Partition: p})
	if l == nil {
		return 0, nil
	}
	var out []string
	start := l.StartOffset()
	for off := start; off < l.EndOffset(); {
		res, err := l.Read(off, 1<<20, l.EndOffset())
		if err != nil {
			t.Fatal(err)
		}
		batches, err := recordbatch.Validate(res.Records, recordbatch.ValidateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range batches {
			recs, err := recordbatch.Records(b)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				if r.Offset >= off {
					out = append(out, string(r.Value))
				}
			}
			off = b.LastOffset() + 1
		}
	}
	return start, out
}

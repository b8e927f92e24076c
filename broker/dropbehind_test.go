package broker_test

import (
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tiercel/tiercel/internal/brokertest"
	"github.com/tiercel/tiercel/internal/vfs"
)

// TestDropBehindKeepsOnlyTheTailCached: with tiercel.log.drop.behind.bytes
// set, what producers wrote and the broker fsynced leaves the page cache
// once it is that far behind the log end (seen with mincore on the segment
// file), and consumers still read everything; with the default (0) the
// same writes stay cached, as in Kafka.
func TestDropBehindKeepsOnlyTheTailCached(t *testing.T) {
	for _, tc := range []struct {
		name    string
		sets    []string
		dropped bool
	}{{"default", nil, false}, {"1MiB", []string{"tiercel.log.drop.behind.bytes=1048576"}, true}} {
		t.Run(tc.name, func(t *testing.T) {
			b := brokertest.Start(t, tc.sets...)
			create(t, admin(t, b.Addr()), "db", 1, nil)
			cl := client(t, b.Addr(), kgo.DefaultProduceTopic("db"), kgo.ProducerBatchMaxBytes(256<<10), kgo.ProducerBatchCompression(kgo.NoCompression()))
			value := []byte(strings.Repeat("x", 10000))
			const n = 1200 // 12 MB
			for range n {
				cl.Produce(ctx(t), &kgo.Record{Value: value}, func(_ *kgo.Record, err error) {
					if err != nil {
						t.Error(err)
					}
				})
			}
			if err := cl.Flush(ctx(t)); err != nil {
				t.Fatal(err)
			}
			seg := segmentFile(t, b.DataDir(), "db-0")
			pages, err := vfs.ResidentPages(seg)
			if err != nil {
				t.Fatal(err)
			}
			// The first 4 MiB are well behind the end (1 MiB to keep, up
			// to 1 MiB more before a drop is worth a call).
			head := 4 << 20 / 4096
			if len(pages) < 2*head {
				t.Fatalf("segment has %d pages, want at least %d", len(pages), 2*head)
			}
			cached := 0
			for _, in := range pages[:head] {
				if in {
					cached++
				}
			}
			if tc.dropped && cached != 0 {
				t.Fatalf("%d of the first %d pages still cached with drop-behind on", cached, head)
			}
			if !tc.dropped && cached < head*9/10 {
				t.Fatalf("only %d of the first %d pages cached with drop-behind off (the premise of the test)", cached, head)
			}
			if got := consume(t, b.Addr(), "db", n); len(got) != n {
				t.Fatalf("consumed %d records, want %d", len(got), n)
			}
		})
	}
}

// segmentFile finds the first segment of a partition directory under dir.
func segmentFile(t *testing.T, dir, partition string) string {
	t.Helper()
	var found string
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && filepath.Base(filepath.Dir(path)) == partition && d.Name() == "00000000000000000000.log" {
			found = path
		}
		return nil
	})
	if found == "" {
		t.Fatalf("no first segment of %s under %s", partition, dir)
	}
	return found
}

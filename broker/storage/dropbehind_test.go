package storage

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/tiercel/tiercel/internal/vfs"
)

// TestDropBehindLetsGoOfSyncedBytes: with DropBehindBytes set, the log
// drops from the page cache what it fsynced more than that far behind its
// end, page-aligned, in steps of at least dropStepBytes; never a byte it
// has not synced (FlushInterval: nothing until a flush); and after a
// truncation it goes on from the shorter segment.
func TestDropBehindLetsGoOfSyncedBytes(t *testing.T) {
	const behind = 256 << 10
	value := strings.Repeat("v", 64000)
	for _, tc := range []struct {
		name   string
		behind int64
		policy FlushPolicy
	}{{"fsync", behind, FlushOnAck}, {"interval", behind, FlushInterval}, {"off", 0, FlushOnAck}} {
		t.Run(tc.name, func(t *testing.T) {
			mem := vfs.NewMem()
			cfg := DefaultConfig()
			cfg.FlushPolicy = tc.policy
			e := newEnv(mem, "/data", cfg)
			e.opts.DropBehindBytes = tc.behind
			if err := mem.MkdirAll("/data", 0o755); err != nil {
				t.Fatal(err)
			}
			m := e.open(t)
			defer m.Close()
			l, err := m.Create(tp0, [16]byte{}, cfg)
			if err != nil {
				t.Fatal(err)
			}
			name := filepath.Join("/data", "t-0", segmentName("", 0, ".log"))
			var size int64
			appendN := func(n int) {
				for range n {
					b := batch(t, value)
					mustAppend(t, l, b)
					size += int64(len(b))
				}
			}
			check := func(when string) {
				t.Helper()
				end, dirty := mem.Dropped(name)
				if dirty {
					t.Fatalf("%s: dropped bytes that were not synced", when)
				}
				if tc.behind == 0 || tc.policy == FlushInterval {
					if end != 0 {
						t.Fatalf("%s: dropped up to %d, want nothing", when, end)
					}
					return
				}
				lo := size - behind - dropStepBytes - pageBytes
				if end%pageBytes != 0 || end > size-behind || end < lo {
					t.Fatalf("%s: dropped up to %d of %d bytes, want a page boundary in [%d, %d]", when, end, size, lo, size-behind)
				}
			}
			appendN(64) // about 4 MiB
			check("after 4 MiB")

			if tc.policy == FlushInterval {
				if err := l.Flush(); err != nil {
					t.Fatal(err)
				}
				if end, dirty := mem.Dropped(name); dirty || end < size-behind-dropStepBytes-pageBytes {
					t.Fatalf("after a flush: dropped up to %d of %d (dirty %v)", end, size, dirty)
				}
				return
			}
			// Back to 1 MiB, then 2 MiB more: the drop follows the new end.
			if err := l.TruncateTo(16); err != nil {
				t.Fatal(err)
			}
			size = 0
			for range 16 {
				size += int64(len(batch(t, value)))
			}
			appendN(32)
			check("after a truncation and 2 MiB more")
			if got := readAll(t, l, 0); len(got) != 48 {
				t.Fatalf("read %d records, want 48", len(got))
			}
		})
	}
}

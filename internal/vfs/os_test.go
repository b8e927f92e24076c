package vfs

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestDropCacheEvictsSyncedPages checks with mincore that DropCache takes
// synced pages out of the page cache, only in its range, and that it
// reports a closed file.
func TestDropCacheEvictsSyncedPages(t *testing.T) {
	dir := t.TempDir()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	if st.Type == unix.TMPFS_MAGIC {
		t.Skip("the temporary directory is tmpfs, whose pages are the file itself")
	}
	const half = 4 << 20
	f, err := Default.OpenFile(filepath.Join(dir, "f"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 2*half)
	for i := range data {
		data[i] = byte(i)
	}
	if _, err := f.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	resident := func() (first, second int) {
		pages, err := ResidentPages(filepath.Join(dir, "f"))
		if err != nil {
			t.Fatal(err)
		}
		for i, in := range pages {
			if in && i < len(pages)/2 {
				first++
			} else if in {
				second++
			}
		}
		return first, second
	}
	pagesPerHalf := half / os.Getpagesize()
	if first, second := resident(); first != pagesPerHalf || second != pagesPerHalf {
		t.Fatalf("before: %d and %d of %d pages resident, want all (the premise of the test)", first, second, pagesPerHalf)
	}
	if err := f.DropCache(0, half); err != nil {
		t.Fatal(err)
	}
	if first, second := resident(); first != 0 || second != pagesPerHalf {
		t.Fatalf("after dropping the first half: %d and %d of %d pages resident, want none and all", first, second, pagesPerHalf)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.DropCache(0, half); !errors.Is(err, fs.ErrClosed) {
		t.Fatalf("DropCache on a closed file: %v, want fs.ErrClosed", err)
	}
}

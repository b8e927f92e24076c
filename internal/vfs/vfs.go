// Package vfs is the narrow filesystem interface the log is written through,
// so that tests can inject errors (ENOSPC, EIO) and simulate a crash that
// keeps only the bytes that were synced (pebble's vfs is the model).
package vfs

import (
	"io"
	"io/fs"
	"os"
)

// File is an open file. Writes go through WriteAt or Write (append).
type File interface {
	io.ReaderAt
	io.Writer
	io.WriterAt
	io.Closer
	Sync() error
	// DropCache advises that bytes [off, off+n) will not be read soon, so
	// the page cache may let them go (posix_fadvise DONTNEED). Advisory:
	// it never changes the file, and fails only on a closed file or a
	// negative range.
	DropCache(off, n int64) error
	Truncate(size int64) error
	Stat() (fs.FileInfo, error)
	Name() string
}

// FS is the set of filesystem operations the log uses.
type FS interface {
	// OpenFile opens name with os.O_* flags.
	OpenFile(name string, flag int, perm os.FileMode) (File, error)
	Remove(name string) error
	RemoveAll(name string) error
	Rename(oldname, newname string) error
	MkdirAll(path string, perm os.FileMode) error
	ReadDir(name string) ([]fs.DirEntry, error)
	Stat(name string) (fs.FileInfo, error)
	// SyncDir makes directory entries (creates, renames, removes) durable.
	SyncDir(dir string) error
}

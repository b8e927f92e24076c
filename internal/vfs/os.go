package vfs

import (
	"errors"
	"io/fs"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ErrLocked is LockDir's error for a directory another process holds.
var ErrLocked = errors.New("locked by another process")

// Default is the operating system's filesystem.
var Default FS = osFS{}

type osFS struct{}

func (osFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

// osFile syncs with fdatasync: the log needs its bytes and size durable,
// not its modification time, and skipping that journal write is cheaper.
type osFile struct{ *os.File }

// Sync is fdatasync.
func (f osFile) Sync() error {
	var serr error
	if err := f.withFd("sync", func(fd int) {
		for {
			if serr = syscall.Fdatasync(fd); serr != syscall.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	return serr
}

// withFd runs fn with the file's descriptor through SyscallConn, so that
// it stays valid during the call if the file is closed meanwhile (a
// truncation removing the segment): Fd would hand out a number that may
// already be closed, or be another file's. A closed file is fs.ErrClosed
// (poll's own error does not match it).
func (f osFile) withFd(op string, fn func(fd int)) error {
	rc, err := f.SyscallConn()
	if err == nil {
		err = rc.Control(func(fd uintptr) { fn(int(fd)) })
	}
	if err != nil {
		return &fs.PathError{Op: op, Path: f.Name(), Err: fs.ErrClosed}
	}
	return nil
}

// DropCache is posix_fadvise(DONTNEED): the kernel drops the range's clean
// pages (and starts writing back dirty ones, which it keeps).
func (f osFile) DropCache(off, n int64) error {
	var ferr error
	if err := f.withFd("fadvise", func(fd int) { ferr = unix.Fadvise(fd, off, n, unix.FADV_DONTNEED) }); err != nil {
		return err
	}
	if ferr != nil {
		return &fs.PathError{Op: "fadvise", Path: f.Name(), Err: ferr}
	}
	return nil
}

// ResidentPages reports, page by page, which of a file's bytes are in the
// page cache (mincore over a read-only mapping, which faults nothing in);
// tests check the drop-behind with it.
func ResidentPages(name string) ([]bool, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.Size() == 0 {
		return nil, err
	}
	m, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, &fs.PathError{Op: "mmap", Path: name, Err: err}
	}
	defer unix.Munmap(m)
	page := os.Getpagesize()
	vec := make([]byte, (len(m)+page-1)/page)
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		return nil, &fs.PathError{Op: "mincore", Path: name, Err: errno}
	}
	out := make([]bool, len(vec))
	for i, v := range vec {
		out[i] = v&1 != 0
	}
	return out, nil
}

func (osFS) Remove(name string) error                     { return os.Remove(name) }
func (osFS) RemoveAll(name string) error                  { return os.RemoveAll(name) }
func (osFS) Rename(oldname, newname string) error         { return os.Rename(oldname, newname) }
func (osFS) MkdirAll(path string, perm os.FileMode) error { return os.MkdirAll(path, perm) }
func (osFS) ReadDir(name string) ([]fs.DirEntry, error)   { return os.ReadDir(name) }
func (osFS) Stat(name string) (fs.FileInfo, error)        { return os.Stat(name) }

func (osFS) SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// WriteFileAtomic replaces name with data durably: a temporary file is
// written and synced, renamed over name, and the directory synced, so a
// crash leaves either the old or the new contents, never a mix.
func WriteFileAtomic(fsys FS, name string, data []byte) error {
	tmp := name + ".tmp"
	f, err := fsys.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := fsys.Rename(tmp, name); err != nil {
		return err
	}
	return fsys.SyncDir(dirOf(name))
}

// ReadFile reads a whole file through fsys.
func ReadFile(fsys FS, name string) ([]byte, error) {
	f, err := fsys.OpenFile(name, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	buf := make([]byte, st.Size())
	n, err := f.ReadAt(buf, 0)
	if n == len(buf) {
		return buf, nil
	}
	return buf[:n], err
}

func dirOf(name string) string {
	for i := len(name) - 1; i >= 0; i-- {
		if name[i] == '/' {
			if i == 0 {
				return "/"
			}
			return name[:i]
		}
	}
	return "."
}

// LockDir takes an exclusive lock on dir for as long as the process lives
// (or until release): a second process on the same data directory fails
// here instead of corrupting it, and a process that holds the lock knows
// that every earlier process on the directory has exited. Only the
// operating system's filesystem is locked; the others (in memory, for
// tests) belong to one process by construction.
func LockDir(fsys FS, dir string) (release func(), err error) {
	if _, ok := fsys.(osFS); !ok {
		return func() {}, nil
	}
	f, err := os.OpenFile(dir+"/.lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if err == syscall.EWOULDBLOCK {
			return nil, ErrLocked
		}
		return nil, err
	}
	return func() { f.Close() }, nil
}

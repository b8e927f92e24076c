package vfs

import (
	"io/fs"
	"os"
	"sync/atomic"
	"syscall"
)

// Op names an operation the Faulty FS may fail.
type Op int

const (
	OpWrite  Op = iota // Write, WriteAt, and growing Truncate
	OpSync             // File.Sync and SyncDir
	OpCreate           // OpenFile with O_CREATE, Rename, MkdirAll
)

// Faulty wraps an FS and fails operations on demand: a full disk (writes
// fail with ENOSPC after writing half the bytes, as a real short write
// may), or any error chosen by Inject.
type Faulty struct {
	FS
	full   atomic.Bool
	inject atomic.Pointer[func(op Op, name string) error]
}

// NewFaulty wraps inner.
func NewFaulty(inner FS) *Faulty { return &Faulty{FS: inner} }

// SetFull makes the disk full (true) or gives the space back (false).
func (f *Faulty) SetFull(full bool) { f.full.Store(full) }

// Inject sets a function consulted before every operation; a non-nil
// error is returned instead of doing it. nil clears it.
func (f *Faulty) Inject(fn func(op Op, name string) error) {
	if fn == nil {
		f.inject.Store(nil)
		return
	}
	f.inject.Store(&fn)
}

func (f *Faulty) fault(op Op, name string) error {
	if p := f.inject.Load(); p != nil {
		if err := (*p)(op, name); err != nil {
			return err
		}
	}
	if f.full.Load() && (op == OpWrite || op == OpCreate) {
		return &fs.PathError{Op: "write", Path: name, Err: syscall.ENOSPC}
	}
	return nil
}

func (f *Faulty) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	if flag&os.O_CREATE != 0 {
		if err := f.fault(OpCreate, name); err != nil {
			return nil, err
		}
	}
	inner, err := f.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &faultyFile{File: inner, fs: f}, nil
}

func (f *Faulty) Rename(oldname, newname string) error {
	if err := f.fault(OpCreate, newname); err != nil {
		return err
	}
	return f.FS.Rename(oldname, newname)
}

func (f *Faulty) MkdirAll(path string, perm os.FileMode) error {
	if err := f.fault(OpCreate, path); err != nil {
		return err
	}
	return f.FS.MkdirAll(path, perm)
}

func (f *Faulty) SyncDir(dir string) error {
	if err := f.fault(OpSync, dir); err != nil {
		return err
	}
	return f.FS.SyncDir(dir)
}

type faultyFile struct {
	File
	fs *Faulty
}

func (h *faultyFile) Write(p []byte) (int, error) {
	if err := h.fs.fault(OpWrite, h.Name()); err != nil {
		n, _ := h.File.Write(p[:len(p)/2])
		return n, err
	}
	return h.File.Write(p)
}

func (h *faultyFile) WriteAt(p []byte, off int64) (int, error) {
	if err := h.fs.fault(OpWrite, h.Name()); err != nil {
		n, _ := h.File.WriteAt(p[:len(p)/2], off)
		return n, err
	}
	return h.File.WriteAt(p, off)
}

func (h *faultyFile) Sync() error {
	if err := h.fs.fault(OpSync, h.Name()); err != nil {
		return err
	}
	return h.File.Sync()
}

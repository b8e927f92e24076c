package vfs

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"math/rand"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
	"time"
)

// Mem is an in-memory FS that remembers what was made durable: file bytes
// by File.Sync, directory entries by SyncDir. Crash returns the FS a
// machine would find after power loss. Directories themselves are always
// durable (a simplification: the log creates them once, before use).
type Mem struct {
	mu      sync.Mutex
	files   map[string]*memFile // the namespace now
	durable map[string]*memFile // the namespace as last synced, per directory
	dirs    map[string]bool
}

type memFile struct {
	data   []byte
	synced []byte
	// dropped is the end of the furthest range given to DropCache, and
	// droppedDirty whether any dropped range held unsynced bytes: tests
	// check that the log lets go of what it synced, and only of that.
	dropped      int64
	droppedDirty bool
}

// NewMem returns an empty in-memory FS.
func NewMem() *Mem {
	return &Mem{files: map[string]*memFile{}, durable: map[string]*memFile{}, dirs: map[string]bool{"/": true, ".": true}}
}

// Crash returns what survives a power loss: durable entries, each with its
// synced bytes. With rng non-nil, a file whose unsynced bytes extend its
// synced ones keeps a random prefix of them, as a torn write would.
func (m *Mem) Crash(rng *rand.Rand) *Mem {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := NewMem()
	for d := range m.dirs {
		out.dirs[d] = true
	}
	copied := map[*memFile]*memFile{}
	for name, f := range m.durable {
		nf, ok := copied[f]
		if !ok {
			keep := append([]byte(nil), f.synced...)
			if rng != nil && len(f.data) > len(f.synced) && bytes.HasPrefix(f.data, f.synced) {
				extra := rng.Intn(len(f.data) - len(f.synced) + 1)
				keep = append(keep, f.data[len(f.synced):len(f.synced)+extra]...)
			}
			nf = &memFile{data: keep, synced: append([]byte(nil), keep...)}
			copied[f] = nf
		}
		out.files[name] = nf
		out.durable[name] = nf
	}
	return out
}

func clean(name string) string { return path.Clean(name) }

func (m *Mem) OpenFile(name string, flag int, _ os.FileMode) (File, error) {
	name = clean(name)
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.dirs[path.Dir(name)] {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	f, ok := m.files[name]
	switch {
	case !ok && flag&os.O_CREATE == 0:
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	case ok && flag&os.O_CREATE != 0 && flag&os.O_EXCL != 0:
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrExist}
	case !ok:
		f = &memFile{}
		m.files[name] = f
	}
	if flag&os.O_TRUNC != 0 {
		f.data = f.data[:0:0]
	}
	return &memHandle{fs: m, f: f, name: name, append: flag&os.O_APPEND != 0}, nil
}

func (m *Mem) Remove(name string) error {
	name = clean(name)
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.files[name]; ok {
		delete(m.files, name)
		return nil
	}
	if m.dirs[name] {
		for p := range m.files {
			if strings.HasPrefix(p, name+"/") {
				return &fs.PathError{Op: "remove", Path: name, Err: errors.New("directory not empty")}
			}
		}
		delete(m.dirs, name)
		return nil
	}
	return &fs.PathError{Op: "remove", Path: name, Err: fs.ErrNotExist}
}

func (m *Mem) RemoveAll(name string) error {
	name = clean(name)
	m.mu.Lock()
	defer m.mu.Unlock()
	for p := range m.files {
		if p == name || strings.HasPrefix(p, name+"/") {
			delete(m.files, p)
		}
	}
	for d := range m.dirs {
		if d == name || strings.HasPrefix(d, name+"/") {
			delete(m.dirs, d)
		}
	}
	return nil
}

func (m *Mem) Rename(oldname, newname string) error {
	oldname, newname = clean(oldname), clean(newname)
	m.mu.Lock()
	defer m.mu.Unlock()
	if f, ok := m.files[oldname]; ok {
		delete(m.files, oldname)
		m.files[newname] = f
		return nil
	}
	if !m.dirs[oldname] {
		return &fs.PathError{Op: "rename", Path: oldname, Err: fs.ErrNotExist}
	}
	// A directory rename moves its whole subtree, durably once the parent is synced.
	for p, f := range m.files {
		if strings.HasPrefix(p, oldname+"/") {
			delete(m.files, p)
			m.files[newname+strings.TrimPrefix(p, oldname)] = f
		}
	}
	for p, f := range m.durable {
		if strings.HasPrefix(p, oldname+"/") {
			delete(m.durable, p)
			m.durable[newname+strings.TrimPrefix(p, oldname)] = f
		}
	}
	for d := range m.dirs {
		if d == oldname || strings.HasPrefix(d, oldname+"/") {
			delete(m.dirs, d)
			m.dirs[newname+strings.TrimPrefix(d, oldname)] = true
		}
	}
	return nil
}

func (m *Mem) MkdirAll(p string, _ os.FileMode) error {
	p = clean(p)
	m.mu.Lock()
	defer m.mu.Unlock()
	for d := p; ; d = path.Dir(d) {
		m.dirs[d] = true
		if d == "/" || d == "." {
			return nil
		}
	}
}

func (m *Mem) ReadDir(name string) ([]fs.DirEntry, error) {
	name = clean(name)
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.dirs[name] {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrNotExist}
	}
	var out []fs.DirEntry
	for p, f := range m.files {
		if path.Dir(p) == name {
			out = append(out, memInfo{name: path.Base(p), size: int64(len(f.data))})
		}
	}
	for d := range m.dirs {
		if d != name && path.Dir(d) == name {
			out = append(out, memInfo{name: path.Base(d), dir: true})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
	return out, nil
}

func (m *Mem) Stat(name string) (fs.FileInfo, error) {
	name = clean(name)
	m.mu.Lock()
	defer m.mu.Unlock()
	if f, ok := m.files[name]; ok {
		return memInfo{name: path.Base(name), size: int64(len(f.data))}, nil
	}
	if m.dirs[name] {
		return memInfo{name: path.Base(name), dir: true}, nil
	}
	return nil, &fs.PathError{Op: "stat", Path: name, Err: fs.ErrNotExist}
}

func (m *Mem) SyncDir(dir string) error {
	dir = clean(dir)
	m.mu.Lock()
	defer m.mu.Unlock()
	for p := range m.durable {
		if path.Dir(p) == dir {
			if _, ok := m.files[p]; !ok {
				delete(m.durable, p)
			}
		}
	}
	for p, f := range m.files {
		if path.Dir(p) == dir {
			m.durable[p] = f
		}
	}
	return nil
}

type memHandle struct {
	fs     *Mem
	f      *memFile
	name   string
	pos    int64
	append bool
	closed bool
}

func (h *memHandle) Name() string { return h.name }

func (h *memHandle) ReadAt(p []byte, off int64) (int, error) {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if off >= int64(len(h.f.data)) {
		return 0, io.EOF
	}
	n := copy(p, h.f.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (h *memHandle) Write(p []byte) (int, error) {
	h.fs.mu.Lock()
	if h.append {
		h.pos = int64(len(h.f.data))
	}
	off := h.pos
	h.fs.mu.Unlock()
	n, err := h.WriteAt(p, off)
	h.pos += int64(n)
	return n, err
}

func (h *memHandle) WriteAt(p []byte, off int64) (int, error) {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if h.closed {
		return 0, os.ErrClosed
	}
	if end := off + int64(len(p)); end > int64(len(h.f.data)) {
		grown := make([]byte, end)
		copy(grown, h.f.data)
		h.f.data = grown
	}
	copy(h.f.data[off:], p)
	return len(p), nil
}

func (h *memHandle) Close() error { h.closed = true; return nil }

// DropCache has no cache to act on; it remembers how far it reached.
func (h *memHandle) DropCache(off, n int64) error {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if h.closed {
		return &fs.PathError{Op: "fadvise", Path: h.name, Err: fs.ErrClosed}
	}
	if off < 0 || n < 0 {
		return &fs.PathError{Op: "fadvise", Path: h.name, Err: fs.ErrInvalid}
	}
	end := min(off+n, int64(len(h.f.data)))
	if off >= end {
		return nil
	}
	h.f.dropped = max(h.f.dropped, end)
	if end > int64(len(h.f.synced)) || !bytes.Equal(h.f.data[off:end], h.f.synced[off:end]) {
		h.f.droppedDirty = true
	}
	return nil
}

// Dropped reports how far DropCache reached in name, and whether any range
// it was given held bytes not yet synced.
func (m *Mem) Dropped(name string) (end int64, dirty bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f, ok := m.files[clean(name)]
	if !ok {
		return 0, false
	}
	return f.dropped, f.droppedDirty
}

func (h *memHandle) Sync() error {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	h.f.synced = append(h.f.synced[:0:0], h.f.data...)
	return nil
}

func (h *memHandle) Truncate(size int64) error {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if size <= int64(len(h.f.data)) {
		h.f.data = h.f.data[:size:size]
		h.f.dropped = min(h.f.dropped, size)
	} else {
		h.f.data = append(h.f.data, make([]byte, size-int64(len(h.f.data)))...)
	}
	return nil
}

func (h *memHandle) Stat() (fs.FileInfo, error) {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	return memInfo{name: path.Base(h.name), size: int64(len(h.f.data))}, nil
}

type memInfo struct {
	name string
	size int64
	dir  bool
}

func (i memInfo) Name() string { return i.name }
func (i memInfo) Size() int64  { return i.size }
func (i memInfo) Mode() fs.FileMode {
	if i.dir {
		return fs.ModeDir | 0o755
	}
	return 0o644
}
func (i memInfo) ModTime() time.Time         { return time.Time{} }
func (i memInfo) IsDir() bool                { return i.dir }
func (i memInfo) Sys() any                   { return nil }
func (i memInfo) Type() fs.FileMode          { return i.Mode().Type() }
func (i memInfo) Info() (fs.FileInfo, error) { return i, nil }

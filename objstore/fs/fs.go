// Package fs is an object store in a local directory: the embedded default
// for a single broker, and a real store for tests. Writes are atomic (a
// temporary file, fsync, rename, directory fsync). Create-only and
// compare-and-swap Puts hold an flock on the bucket's lock file around the
// check and the rename, so they are correct across goroutines and across
// processes on one host. A version is the file's inode, modification time
// and size: every Put renames a new file into place, so it changes.
package fs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/tiercel/tiercel/objstore"
)

const (
	tmpDir   = ".tmp"
	lockFile = ".lock"
)

// Bucket is a directory holding objects as files.
type Bucket struct{ root string }

// New opens (creating) a bucket at root.
func New(root string) (*Bucket, error) {
	if err := os.MkdirAll(filepath.Join(root, tmpDir), 0o755); err != nil {
		return nil, objstore.Errorf(objstore.ErrPermanent, "open", root, "", err)
	}
	return &Bucket{root: root}, nil
}

func (b *Bucket) Name() string { return "file://" + b.root }
func (b *Bucket) Close() error { return nil }

func (b *Bucket) path(op, key string) (string, error) {
	if key == "" || strings.HasPrefix(key, "/") || strings.HasPrefix(key, ".") || strings.Contains(key, "/.") || strings.HasSuffix(key, "/") {
		return "", objstore.Errorf(objstore.ErrPermanent, op, b.root, key, errors.New("invalid key: empty, absolute, a directory, or a path element starting with '.'"))
	}
	return filepath.Join(b.root, filepath.FromSlash(key)), nil
}

func version(st os.FileInfo) string {
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return fmt.Sprintf("%d-%d-%d", s.Ino, st.ModTime().UnixNano(), st.Size())
	}
	return fmt.Sprintf("%d-%d", st.ModTime().UnixNano(), st.Size())
}

func (b *Bucket) classify(op, key string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return objstore.Errorf(objstore.ErrNotFound, op, b.root, key, nil)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return objstore.Errorf(objstore.ErrRetriable, op, b.root, key, err)
	}
	return objstore.Errorf(objstore.ErrPermanent, op, b.root, key, err)
}

func (b *Bucket) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, objstore.Attrs, error) {
	p, err := b.path("get", key)
	if err != nil {
		return nil, objstore.Attrs{}, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, objstore.Attrs{}, b.classify("get", key, err)
	}
	st, err := f.Stat()
	if err != nil || st.IsDir() {
		f.Close()
		return nil, objstore.Attrs{}, objstore.Errorf(objstore.ErrNotFound, "get", b.root, key, err)
	}
	size := st.Size()
	offset = min(max(offset, 0), size)
	n := size - offset
	if length >= 0 && length < n {
		n = length
	}
	return struct {
		io.Reader
		io.Closer
	}{io.NewSectionReader(f, offset, n), f}, objstore.Attrs{Size: size, Version: version(st)}, nil
}

func (b *Bucket) Head(ctx context.Context, key string) (objstore.Attrs, error) {
	p, err := b.path("head", key)
	if err != nil {
		return objstore.Attrs{}, err
	}
	st, err := os.Stat(p)
	if err != nil {
		return objstore.Attrs{}, b.classify("head", key, err)
	}
	if st.IsDir() {
		return objstore.Attrs{}, objstore.Errorf(objstore.ErrNotFound, "head", b.root, key, nil)
	}
	return objstore.Attrs{Size: st.Size(), Version: version(st)}, nil
}

func (b *Bucket) Put(ctx context.Context, key string, r io.Reader, opts objstore.PutOptions) (objstore.Attrs, error) {
	p, err := b.path("put", key)
	if err != nil {
		return objstore.Attrs{}, err
	}
	tmp, err := os.CreateTemp(filepath.Join(b.root, tmpDir), "put-*")
	if err != nil {
		return objstore.Attrs{}, b.classify("put", key, err)
	}
	defer os.Remove(tmp.Name())
	_, err = io.Copy(tmp, readerCtx{ctx, r})
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return objstore.Attrs{}, b.classify("put", key, err)
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return objstore.Attrs{}, b.classify("put", key, err)
	}
	if opts.IfNotExists || opts.IfVersion != "" {
		unlock, err := b.lock()
		if err != nil {
			return objstore.Attrs{}, b.classify("put", key, err)
		}
		defer unlock()
		st, err := os.Stat(p)
		exists := err == nil
		if opts.IfNotExists && exists || opts.IfVersion != "" && (!exists || version(st) != opts.IfVersion) {
			return objstore.Attrs{}, objstore.Errorf(objstore.ErrPrecondition, "put", b.root, key, nil)
		}
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		return objstore.Attrs{}, b.classify("put", key, err)
	}
	if err := syncDir(filepath.Dir(p)); err != nil {
		return objstore.Attrs{}, b.classify("put", key, err)
	}
	st, err := os.Stat(p)
	if err != nil {
		return objstore.Attrs{}, b.classify("put", key, err)
	}
	return objstore.Attrs{Size: st.Size(), Version: version(st)}, nil
}

// lock takes the bucket's flock; a new descriptor each time, so goroutines
// of one process exclude each other as processes do.
func (b *Bucket) lock() (func(), error) {
	f, err := os.OpenFile(filepath.Join(b.root, lockFile), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func (b *Bucket) Delete(ctx context.Context, key string) error {
	p, err := b.path("delete", key)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return b.classify("delete", key, err)
	}
	return nil
}

func (b *Bucket) List(ctx context.Context, prefix string, opts objstore.ListOptions, fn func(objstore.ObjectInfo) error) error {
	var infos []objstore.ObjectInfo
	err := filepath.WalkDir(b.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(b.root, p)
		key := filepath.ToSlash(rel)
		if d.IsDir() {
			if key != "." && (strings.HasPrefix(d.Name(), ".") || !strings.HasPrefix(key+"/", prefix) && !strings.HasPrefix(prefix, key+"/")) {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasPrefix(d.Name(), ".") || !strings.HasPrefix(key, prefix) || key <= opts.StartAfter {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil // removed while listing
		}
		infos = append(infos, objstore.ObjectInfo{Key: key, Size: info.Size()})
		return nil
	})
	if err != nil {
		return b.classify("list", prefix, err)
	}
	sort.Slice(infos, func(i, j int) bool { return infos[i].Key < infos[j].Key })
	for _, info := range infos {
		if err := ctx.Err(); err != nil {
			return objstore.Errorf(objstore.ErrRetriable, "list", b.root, prefix, err)
		}
		if err := fn(info); err != nil {
			return err
		}
	}
	return nil
}

// readerCtx stops a copy when its context ends.
type readerCtx struct {
	ctx context.Context
	r   io.Reader
}

func (r readerCtx) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}

// Package mem is an in-memory object store for unit tests.
package mem

import (
	"bytes"
	"context"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/tiercel/tiercel/objstore"
)

type object struct {
	data    []byte
	version string
}

// Bucket is an in-memory bucket.
type Bucket struct {
	name string
	mu   sync.Mutex
	objs map[string]object
	gen  int64
}

// New returns an empty bucket.
func New(name string) *Bucket { return &Bucket{name: name, objs: map[string]object{}} }

func (b *Bucket) Name() string { return "mem://" + b.name }
func (b *Bucket) Close() error { return nil }

func (b *Bucket) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, objstore.Attrs, error) {
	if err := ctx.Err(); err != nil {
		return nil, objstore.Attrs{}, objstore.Errorf(objstore.ErrRetriable, "get", b.name, key, err)
	}
	b.mu.Lock()
	o, ok := b.objs[key]
	b.mu.Unlock()
	if !ok {
		return nil, objstore.Attrs{}, objstore.Errorf(objstore.ErrNotFound, "get", b.name, key, nil)
	}
	data := clip(o.data, offset, length)
	return io.NopCloser(bytes.NewReader(data)), objstore.Attrs{Size: int64(len(o.data)), Version: o.version}, nil
}

func clip(data []byte, offset, length int64) []byte {
	if offset > int64(len(data)) {
		offset = int64(len(data))
	}
	end := int64(len(data))
	if length >= 0 && offset+length < end {
		end = offset + length
	}
	return data[offset:end]
}

func (b *Bucket) Head(ctx context.Context, key string) (objstore.Attrs, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	o, ok := b.objs[key]
	if !ok {
		return objstore.Attrs{}, objstore.Errorf(objstore.ErrNotFound, "head", b.name, key, nil)
	}
	return objstore.Attrs{Size: int64(len(o.data)), Version: o.version}, nil
}

func (b *Bucket) Put(ctx context.Context, key string, r io.Reader, opts objstore.PutOptions) (objstore.Attrs, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return objstore.Attrs{}, objstore.Errorf(objstore.ErrPermanent, "put", b.name, key, err)
	}
	if err := ctx.Err(); err != nil {
		return objstore.Attrs{}, objstore.Errorf(objstore.ErrRetriable, "put", b.name, key, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	cur, exists := b.objs[key]
	if opts.IfNotExists && exists || opts.IfVersion != "" && (!exists || cur.version != opts.IfVersion) {
		return objstore.Attrs{}, objstore.Errorf(objstore.ErrPrecondition, "put", b.name, key, nil)
	}
	b.gen++
	o := object{data: data, version: strconv.FormatInt(b.gen, 10)}
	b.objs[key] = o
	return objstore.Attrs{Size: int64(len(data)), Version: o.version}, nil
}

func (b *Bucket) Delete(ctx context.Context, key string) error {
	b.mu.Lock()
	delete(b.objs, key)
	b.mu.Unlock()
	return nil
}

func (b *Bucket) List(ctx context.Context, prefix string, opts objstore.ListOptions, fn func(objstore.ObjectInfo) error) error {
	b.mu.Lock()
	var keys []string
	sizes := map[string]int64{}
	for k, o := range b.objs {
		if strings.HasPrefix(k, prefix) && k > opts.StartAfter {
			keys = append(keys, k)
			sizes[k] = int64(len(o.data))
		}
	}
	b.mu.Unlock()
	sort.Strings(keys)
	for _, k := range keys {
		if err := ctx.Err(); err != nil {
			return objstore.Errorf(objstore.ErrRetriable, "list", b.name, prefix, err)
		}
		if err := fn(objstore.ObjectInfo{Key: k, Size: sizes[k]}); err != nil {
			return err
		}
	}
	return nil
}

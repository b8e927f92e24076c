package tiering

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// ChunkCache keeps recently read chunks of segment objects in files under a
// directory, least recently used first out when over its size. It is a
// cache: emptied at start, never fsynced, and a file that cannot be read is
// a miss.
type ChunkCache struct {
	dir string
	mu  sync.Mutex
	lru *lru[string, struct{}]
}

// NewChunkCache empties dir and keeps at most maxBytes of chunks in it.
func NewChunkCache(dir string, maxBytes int64) (*ChunkCache, error) {
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("chunk cache %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("chunk cache %s: %w", dir, err)
	}
	c := &ChunkCache{dir: dir}
	c.lru = newLRU(maxBytes, func(name string, _ struct{}) { _ = os.Remove(filepath.Join(dir, name)) })
	return c, nil
}

func chunkName(key string, index int64) string {
	h := sha256.Sum256([]byte(key))
	return fmt.Sprintf("%s-%d", hex.EncodeToString(h[:12]), index)
}

// Get returns a cached chunk.
func (c *ChunkCache) Get(key string, index int64) ([]byte, bool) {
	name := chunkName(key, index)
	c.mu.Lock()
	_, ok := c.lru.get(name)
	c.mu.Unlock()
	if !ok {
		return nil, false
	}
	data, err := os.ReadFile(filepath.Join(c.dir, name))
	return data, err == nil && len(data) > 0
}

// Has reports whether a chunk is cached (without reading it).
func (c *ChunkCache) Has(key string, index int64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.lru.entries[chunkName(key, index)]
	return ok
}

// Put stores a chunk; a write error only means it is not cached.
func (c *ChunkCache) Put(key string, index int64, data []byte) {
	name := chunkName(key, index)
	// Written aside and renamed: a chunk fetched again while a reader has
	// its file open must never be seen truncated (os.WriteFile truncates
	// first; under the race detector a reader once got 0 bytes). Not
	// vfs.WriteFileAtomic: its one fixed temporary name would mix two
	// concurrent Puts of a chunk, and a cache needs no fsync.
	tmp, err := os.CreateTemp(c.dir, name+".tmp-*")
	if err != nil {
		return
	}
	_, werr := tmp.Write(data)
	if cerr := tmp.Close(); werr != nil || cerr != nil || os.Rename(tmp.Name(), filepath.Join(c.dir, name)) != nil {
		_ = os.Remove(tmp.Name())
		return
	}
	c.mu.Lock()
	c.lru.put(name, struct{}{}, int64(len(data)))
	c.mu.Unlock()
}

// Bytes is how much the cache holds.
func (c *ChunkCache) Bytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.size
}

package tiering

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tiercel/tiercel/objstore"
)

// Reader serves record reads from tiered segments: aligned chunks of each
// object's log part fetched with ranged GETs, kept in a ChunkCache, shared
// between concurrent readers of the same chunk, and fetched ahead for
// sequential consumers. A segment's footer and offset index are fetched
// once and kept in memory.
type Reader struct {
	bucket    objstore.Bucket
	cache     *ChunkCache
	chunk     int64
	readAhead int
	fetchTime time.Duration // bound on one chunk fetch, independent of the asking reader

	slots     chan struct{} // bounds chunk GETs in flight
	mu        sync.Mutex
	meta      *lru[string, *segmentMeta]
	recent    *lru[chunkID, []byte] // chunks just fetched, in memory, before the disk cache
	inflight  map[chunkID]*chunkCall
	metaCalls map[string]*metaCall

	hits, misses, fetchedBytes atomic.Int64
}

// ReaderOptions configure a Reader.
type ReaderOptions struct {
	Bucket     objstore.Bucket
	Cache      *ChunkCache
	ChunkBytes int64 // size of one ranged GET
	ReadAhead  int   // chunks fetched past the last one read
	MetaBytes  int64 // bound on cached footers and indexes
	// MemoryBytes bounds the chunks kept in memory after a fetch, so a
	// sequential reader takes them without a file read.
	MemoryBytes int64
	// Fetchers bounds the chunk GETs in flight (read-ahead included).
	Fetchers int
	// FetchTimeout bounds one chunk fetch. Fetches run detached from the
	// reader that asked, so a consumer whose fetch deadline passed still
	// finds the chunk in the cache when it asks again.
	FetchTimeout time.Duration
}

type segmentMeta struct {
	footer Footer
	log    PartRef
	index  []byte
}

type chunkID struct {
	key   string
	index int64
}

type chunkCall struct {
	done chan struct{}
	data []byte
	err  error
}

// NewReader returns a Reader.
func NewReader(o ReaderOptions) *Reader {
	if o.ChunkBytes <= 0 {
		o.ChunkBytes = 4 << 20
	}
	if o.MetaBytes <= 0 {
		o.MetaBytes = 64 << 20
	}
	if o.FetchTimeout <= 0 {
		o.FetchTimeout = 30 * time.Second
	}
	if o.Fetchers <= 0 {
		o.Fetchers = 32
	}
	if o.MemoryBytes <= 0 {
		o.MemoryBytes = 64 << 20
	}
	return &Reader{
		bucket: o.Bucket, cache: o.Cache, chunk: o.ChunkBytes, readAhead: o.ReadAhead, fetchTime: o.FetchTimeout,
		meta: newLRU[string, *segmentMeta](o.MetaBytes, nil), inflight: map[chunkID]*chunkCall{}, metaCalls: map[string]*metaCall{}, slots: make(chan struct{}, o.Fetchers),
		recent: newLRU[chunkID, []byte](o.MemoryBytes, nil),
	}
}

// ReaderStats are cumulative counts since start.
type ReaderStats struct {
	ChunkHits, ChunkMisses, FetchedBytes int64
}

// Stats returns the cache hit and fetch counts.
func (r *Reader) Stats() ReaderStats {
	return ReaderStats{ChunkHits: r.hits.Load(), ChunkMisses: r.misses.Load(), FetchedBytes: r.fetchedBytes.Load()}
}

// Read returns whole batches of seg from the one holding offset, at most
// maxBytes unless the first batch is larger (see ReadRecords).
func (r *Reader) Read(ctx context.Context, seg RemoteSegment, offset int64, maxBytes int) ([]byte, error) {
	m, err := r.segmentMeta(ctx, seg)
	if err != nil {
		return nil, err
	}
	// Start every chunk the read will need (and the read-ahead) at once,
	// so a large read is parallel GETs rather than one after another.
	from := indexPosition(m.index, seg.BaseOffset, offset) / r.chunk
	r.prefetch(seg.Key, m.log, from-1, (int64(maxBytes)+r.chunk-1)/r.chunk+int64(r.readAhead))
	var last int64 = -1
	fetch := func(ctx context.Context, off, n int64) ([]byte, error) {
		if i := off / r.chunk; (off+n-1)/r.chunk == i {
			// Within one chunk: a view of it, no copy.
			data, err := r.chunkData(ctx, seg.Key, m.log, i)
			if err != nil {
				return nil, err
			}
			from := off - i*r.chunk
			if from+n > int64(len(data)) {
				return nil, fmt.Errorf("%s: %w: chunk %d is %d bytes", seg.Key, ErrCorruptObject, i, len(data))
			}
			last = i
			return data[from : from+n : from+n], nil
		}
		out := make([]byte, 0, n)
		for pos := off; pos < off+n; {
			i := pos / r.chunk
			data, err := r.chunkData(ctx, seg.Key, m.log, i)
			if err != nil {
				return nil, err
			}
			from := pos - i*r.chunk
			to := min(int64(len(data)), off+n-i*r.chunk)
			if from >= to {
				return nil, fmt.Errorf("%s: %w: chunk %d is %d bytes", seg.Key, ErrCorruptObject, i, len(data))
			}
			out = append(out, data[from:to]...)
			pos = i*r.chunk + to
			last = i
		}
		return out, nil
	}
	out, err := readRecords(ctx, fetch, seg, int64(m.log.Length), m.index, offset, maxBytes, int(r.chunk))
	if err == nil && last >= 0 {
		r.prefetch(seg.Key, m.log, last, int64(r.readAhead))
	}
	return out, err
}

// Prefetch starts fetching a segment's footer, index and first chunks
// without waiting: for a consumer about to cross into it.
func (r *Reader) Prefetch(seg RemoteSegment) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), r.fetchTime)
		defer cancel()
		if m, err := r.segmentMeta(ctx, seg); err == nil {
			r.prefetch(seg.Key, m.log, -1, 1+int64(r.readAhead))
		}
	}()
}

// prefetch starts fetching the n chunks after last that are neither
// cached nor in flight; it never waits.
func (r *Reader) prefetch(key string, log PartRef, last, n int64) {
	chunks := (int64(log.Length) + r.chunk - 1) / r.chunk
	for i := last + 1; i <= last+n && i < chunks; i++ {
		r.mu.Lock()
		_, inMemory := r.recent.entries[chunkID{key, i}]
		r.mu.Unlock()
		if inMemory || r.cache != nil && r.cache.Has(key, i) {
			continue
		}
		r.start(chunkID{key, i}, log)
	}
}

// chunkData returns chunk i of a log part from the cache or the bucket; one
// fetch per chunk at a time, shared by everyone who asks meanwhile.
func (r *Reader) chunkData(ctx context.Context, key string, log PartRef, i int64) ([]byte, error) {
	r.mu.Lock()
	data, ok := r.recent.get(chunkID{key, i})
	r.mu.Unlock()
	if ok {
		r.hits.Add(1)
		return data, nil
	}
	if r.cache != nil {
		if data, ok := r.cache.Get(key, i); ok {
			r.hits.Add(1)
			return data, nil
		}
	}
	call := r.start(chunkID{key, i}, log)
	select {
	case <-call.done:
		return call.data, call.err
	case <-ctx.Done():
		return nil, objstore.Errorf(objstore.ErrRetriable, "get", r.bucket.Name(), key, ctx.Err())
	}
}

// start returns the fetch of a chunk in flight, starting it if there is none.
func (r *Reader) start(id chunkID, log PartRef) *chunkCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	call, ok := r.inflight[id]
	if !ok {
		call = &chunkCall{done: make(chan struct{})}
		r.inflight[id] = call
		r.misses.Add(1)
		go r.fetchChunk(id, log, call)
	}
	return call
}

func (r *Reader) fetchChunk(id chunkID, log PartRef, call *chunkCall) {
	r.slots <- struct{}{}
	defer func() { <-r.slots }()
	ctx, cancel := context.WithTimeout(context.Background(), r.fetchTime)
	defer cancel()
	start := id.index * r.chunk
	n := min(r.chunk, int64(log.Length)-start)
	if n <= 0 {
		call.err = fmt.Errorf("%s: %w: chunk %d past the log part", id.key, ErrCorruptObject, id.index)
	} else {
		call.data, call.err = readRange(ctx, r.bucket, id.key, int64(log.Offset)+start, n)
	}
	r.mu.Lock()
	if call.err == nil {
		r.recent.put(id, call.data, int64(len(call.data)))
	}
	delete(r.inflight, id)
	r.mu.Unlock()
	close(call.done)
	if call.err == nil {
		r.fetchedBytes.Add(int64(len(call.data)))
		if r.cache != nil {
			r.cache.Put(id.key, id.index, call.data) // after the waiters have it
		}
	}
}

// segmentMeta returns the footer and offset index of a segment object,
// fetching them on first use: once, detached from the asking reader (like
// chunks), so a slow store still gets them cached for the next try.
func (r *Reader) segmentMeta(ctx context.Context, seg RemoteSegment) (*segmentMeta, error) {
	r.mu.Lock()
	if m, ok := r.meta.get(seg.Key); ok {
		r.mu.Unlock()
		return m, nil
	}
	call, ok := r.metaCalls[seg.Key]
	if !ok {
		call = &metaCall{done: make(chan struct{})}
		r.metaCalls[seg.Key] = call
		go r.fetchMeta(seg, call)
	}
	r.mu.Unlock()
	select {
	case <-call.done:
		return call.meta, call.err
	case <-ctx.Done():
		return nil, objstore.Errorf(objstore.ErrRetriable, "get", r.bucket.Name(), seg.Key, ctx.Err())
	}
}

type metaCall struct {
	done chan struct{}
	meta *segmentMeta
	err  error
}

func (r *Reader) fetchMeta(seg RemoteSegment, call *metaCall) {
	ctx, cancel := context.WithTimeout(context.Background(), r.fetchTime)
	defer cancel()
	call.meta, call.err = loadSegmentMeta(ctx, r.bucket, seg)
	r.mu.Lock()
	if call.err == nil {
		r.meta.put(seg.Key, call.meta, int64(len(call.meta.index))+256)
	}
	delete(r.metaCalls, seg.Key)
	r.mu.Unlock()
	close(call.done)
}

// metaProbe is how much of a segment object's tail the Reader GETs first:
// the footer and, for segments of up to some tens of MiB, the offset index
// with it, in one request.
const metaProbe = 64 << 10

func loadSegmentMeta(ctx context.Context, b objstore.Bucket, seg RemoteSegment) (*segmentMeta, error) {
	f, tail, tailStart, err := readTail(ctx, b, seg.Key, seg.Size, metaProbe)
	if err != nil {
		return nil, err
	}
	logPart, ok := f.Part(PartLog)
	if !ok {
		return nil, fmt.Errorf("%s: %w: no log part", seg.Key, ErrCorruptObject)
	}
	var index []byte
	if p, ok := f.Part(PartOffsetIndex); ok {
		if start := int64(p.Offset) - tailStart; start >= 0 && start+int64(p.Length) <= int64(len(tail)) {
			index = tail[start : start+int64(p.Length)]
			if err := CheckPart(p, index); err != nil {
				return nil, fmt.Errorf("%s: %w", seg.Key, err)
			}
		} else if index, err = ReadPart(ctx, b, seg.Key, f, PartOffsetIndex); err != nil {
			return nil, err
		}
	}
	return &segmentMeta{footer: f, log: logPart, index: index}, nil
}

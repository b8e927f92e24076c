package storage

import (
	"sync/atomic"

	"github.com/tiercel/tiercel/internal/recordbatch"
)

// The tail cache keeps the record sets of a leader's latest appends in
// memory, exactly as written to the segment, so that followers and
// consumers reading at the end of the log are answered without a read
// system call, a fresh buffer or a CRC pass: at three replicas the leader
// otherwise reads every byte back twice right after writing it.
//
// It holds references to the producers' request buffers (an append with
// AppendOptions.Retain promises not to change them), never copies. Entries
// are contiguous in offsets; a truncation empties the cache, a moved log
// start drops what is below it. Memory is bounded per log
// (tailCacheLogBytes) and per Manager (ManagerOptions.TailCacheBytes), and
// entries older than tailCacheMaxAgeMs are dropped by the Manager's loop so
// that idle partitions do not hold the budget.
const (
	tailCacheLogBytes = 16 << 20
	tailCacheMaxAgeMs = 30_000
)

type tailChunk struct {
	base, end int64 // offsets [base, end)
	data      []byte
	addedMs   int64
}

type tailCache struct {
	budget   *atomic.Int64 // the Manager's bytes left; nil: no caching
	logLimit int64         // bytes this log may hold; 0: tailCacheLogBytes
	chunks   []tailChunk
	bytes    int64
}

// add records an append of records holding offsets [base, end); l.mu held.
func (c *tailCache) add(base, end int64, records []byte, nowMs int64) {
	if c.budget == nil {
		return
	}
	if n := len(c.chunks); n > 0 && c.chunks[n-1].end != base {
		c.clear()
	}
	limit := c.logLimit
	if limit == 0 {
		limit = tailCacheLogBytes
	}
	size := int64(len(records))
	for c.bytes+size > limit && len(c.chunks) > 0 {
		c.dropFirst()
	}
	if size > limit || c.budget.Add(-size) < 0 {
		c.budget.Add(size)
		// The cache must stay contiguous: what is kept ends before base.
		c.clear()
		return
	}
	c.chunks = append(c.chunks, tailChunk{base: base, end: end, data: records, addedMs: nowMs})
	c.bytes += size
}

func (c *tailCache) dropFirst() {
	size := int64(len(c.chunks[0].data))
	c.budget.Add(size)
	c.bytes -= size
	c.chunks[0] = tailChunk{}
	c.chunks = c.chunks[1:]
}

// clear empties the cache (a truncation, a closed log); l.mu held.
func (c *tailCache) clear() {
	if c.budget != nil {
		c.budget.Add(c.bytes)
	}
	clear(c.chunks)
	c.chunks, c.bytes = c.chunks[:0], 0
}

// dropBelow releases entries wholly below offset (the log start moved) or
// added before minMs; l.mu held.
func (c *tailCache) dropBelow(offset, minMs int64) {
	for len(c.chunks) > 0 && (c.chunks[0].end <= offset || c.chunks[0].addedMs < minMs) {
		c.dropFirst()
	}
}

// read answers Log.Read from the cache when offset is in it: whole batches
// from the one containing offset, at most maxBytes unless the first batch
// alone is larger, none at or above maxOffset. ok=false: read the segment.
// One entry is returned as it is; several are copied into one buffer.
func (c *tailCache) read(offset int64, maxBytes int32, maxOffset int64) (records []byte, ok bool) {
	i := len(c.chunks) - 1
	for i >= 0 && c.chunks[i].base > offset {
		i--
	}
	if i < 0 || offset >= c.chunks[i].end {
		return nil, false
	}
	// Skip the batches of the first entry that end before offset.
	first := c.chunks[i].data
	for len(first) > 0 {
		h, err := recordbatch.ParseHeader(first)
		if err != nil {
			return nil, false
		}
		if h.LastOffset() >= offset {
			break
		}
		first = first[h.TotalSize():]
	}
	var parts [][]byte
	total := 0
	data := first
	for {
		n := takeBatches(data, maxBytes-int32(total), maxOffset, total == 0)
		if n > 0 {
			parts = append(parts, data[:n])
			total += n
		}
		i++
		if n < len(data) || i == len(c.chunks) {
			break
		}
		data = c.chunks[i].data
	}
	switch len(parts) {
	case 0:
		return nil, true
	case 1:
		return parts[0], true
	}
	out := make([]byte, 0, total)
	for _, p := range parts {
		out = append(out, p...)
	}
	return out, true
}

// takeBatches is how many leading bytes of data are whole batches within
// limit (the first batch is taken whatever its size when first) and below
// maxOffset.
func takeBatches(data []byte, limit int32, maxOffset int64, first bool) int {
	n := 0
	for n < len(data) {
		h, err := recordbatch.ParseHeader(data[n:])
		if err != nil || h.BaseOffset >= maxOffset {
			break
		}
		size := h.TotalSize()
		if int64(n+size) > int64(limit) && !(first && n == 0) {
			break
		}
		n += size
	}
	return n
}

package storage

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/tiercel/tiercel/internal/recordbatch"
	"github.com/tiercel/tiercel/internal/vfs"
)

// indexEntry is one sparse offset-index entry: Kafka's .index layout is the
// relative offset and the file position, both uint32 big endian.
type indexEntry struct {
	rel uint32
	pos uint32
}

// timeEntry is one time-index entry: Kafka's .timeindex layout is the
// timestamp int64 and the relative offset uint32, big endian.
type timeEntry struct {
	ts  int64
	rel uint32
}

// segment is one .log file with its in-memory indexes. Its fields are
// guarded by the owning Log's mutex.
type segment struct {
	dir       string
	base      int64
	file      vfs.File
	size      int64
	next      int64 // offset after the last batch
	index     []indexEntry
	times     []timeEntry
	maxTS     int64
	maxTSOff  int64
	sinceIdx  int64 // bytes appended since the last index entry
	createdMs int64 // wall time of the first append, for segment.ms
	dropped   int64 // bytes before this were dropped from the page cache
}

func segmentName(dir string, base int64, ext string) string {
	return filepath.Join(dir, fmt.Sprintf("%020d%s", base, ext))
}

func (s *segment) logPath() string { return segmentName(s.dir, s.base, ".log") }

// noteBatch updates the indexes for a batch written at pos.
func (s *segment) noteBatch(h recordbatch.Header, pos int64, size int64, indexInterval int64) {
	if s.sinceIdx >= indexInterval || len(s.index) == 0 && pos > 0 {
		s.index = append(s.index, indexEntry{rel: uint32(h.BaseOffset - s.base), pos: uint32(pos)})
		s.sinceIdx = 0
	}
	s.sinceIdx += size
	if h.MaxTimestamp > s.maxTS || s.maxTSOff < 0 {
		s.maxTS, s.maxTSOff = h.MaxTimestamp, h.LastOffset()
		s.times = append(s.times, timeEntry{ts: h.MaxTimestamp, rel: uint32(h.LastOffset() - s.base)})
	}
	s.next = h.LastOffset() + 1
}

// lookup returns the file position of the last index entry at or below offset.
func (s *segment) lookup(offset int64) int64 {
	rel := offset - s.base
	i := sort.Search(len(s.index), func(i int) bool { return int64(s.index[i].rel) > rel })
	if i == 0 {
		return 0
	}
	return int64(s.index[i-1].pos)
}

// lookupTime returns a position from which to scan for the first batch
// whose max timestamp is >= ts.
func (s *segment) lookupTime(ts int64) int64 {
	i := sort.Search(len(s.times), func(i int) bool { return s.times[i].ts >= ts })
	if i == 0 {
		return 0
	}
	// Batches before the entry's offset can still hold a larger timestamp
	// only if they were indexed earlier; start at the previous entry.
	return s.lookup(s.base + int64(s.times[i-1].rel))
}

// indexBytes encodes the offset index in Kafka's format.
func (s *segment) indexBytes() []byte {
	b := make([]byte, 0, 8*len(s.index))
	for _, e := range s.index {
		b = binary.BigEndian.AppendUint32(b, e.rel)
		b = binary.BigEndian.AppendUint32(b, e.pos)
	}
	return b
}

// timeIndexBytes encodes the time index in Kafka's format.
func (s *segment) timeIndexBytes() []byte {
	b := make([]byte, 0, 12*len(s.times))
	for _, e := range s.times {
		b = binary.BigEndian.AppendUint64(b, uint64(e.ts))
		b = binary.BigEndian.AppendUint32(b, e.rel)
	}
	return b
}

// writeIndexes persists both indexes (used when a segment is closed).
func (s *segment) writeIndexes(fsys vfs.FS) error {
	if err := vfs.WriteFileAtomic(fsys, segmentName(s.dir, s.base, ".index"), s.indexBytes()); err != nil {
		return err
	}
	return vfs.WriteFileAtomic(fsys, segmentName(s.dir, s.base, ".timeindex"), s.timeIndexBytes())
}

// loadIndexes reads index files written at close; false if absent or
// inconsistent with the segment (then the caller rebuilds by scanning).
func (s *segment) loadIndexes(fsys vfs.FS) bool {
	ib, err := vfs.ReadFile(fsys, segmentName(s.dir, s.base, ".index"))
	if err != nil || len(ib)%8 != 0 {
		return false
	}
	tb, err := vfs.ReadFile(fsys, segmentName(s.dir, s.base, ".timeindex"))
	if err != nil || len(tb)%12 != 0 {
		return false
	}
	s.index = s.index[:0]
	var lastPos, lastRel uint32
	for i := 0; i < len(ib); i += 8 {
		e := indexEntry{rel: binary.BigEndian.Uint32(ib[i:]), pos: binary.BigEndian.Uint32(ib[i+4:])}
		if int64(e.pos) >= s.size || (i > 0 && (e.pos <= lastPos || e.rel <= lastRel)) {
			return false
		}
		lastPos, lastRel = e.pos, e.rel
		s.index = append(s.index, e)
	}
	s.times = s.times[:0]
	for i := 0; i < len(tb); i += 12 {
		s.times = append(s.times, timeEntry{ts: int64(binary.BigEndian.Uint64(tb[i:])), rel: binary.BigEndian.Uint32(tb[i+8:])})
	}
	return true
}

// removeFiles deletes the segment's files.
func (s *segment) removeFiles(fsys vfs.FS) {
	if s.file != nil {
		s.file.Close()
	}
	for _, ext := range []string{".log", ".index", ".timeindex"} {
		_ = fsys.Remove(segmentName(s.dir, s.base, ext))
	}
}

func openSegmentFile(fsys vfs.FS, dir string, base int64, create bool) (vfs.File, error) {
	flag := os.O_RDWR
	if create {
		flag |= os.O_CREATE | os.O_EXCL
	}
	return fsys.OpenFile(segmentName(dir, base, ".log"), flag, 0o644)
}

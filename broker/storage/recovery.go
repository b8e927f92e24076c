package storage

import (
	"bufio"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/tiercel/tiercel/internal/recordbatch"
	"github.com/tiercel/tiercel/internal/vfs"
)

// partitionMetadata is Kafka's partition.metadata: the topic id in
// Kafka's Uuid text form (URL-safe base64 without padding).
func partitionMetadata(topicID [16]byte) []byte {
	return []byte("version: 0\ntopic_id: " + base64.RawURLEncoding.EncodeToString(topicID[:]) + "\n")
}

func parsePartitionMetadata(b []byte) ([16]byte, error) {
	var id [16]byte
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "topic_id: "); ok {
			raw, err := base64.RawURLEncoding.DecodeString(strings.TrimSpace(v))
			if err != nil || len(raw) != 16 {
				return id, fmt.Errorf("partition.metadata: bad topic id %q", v)
			}
			copy(id[:], raw)
			return id, nil
		}
	}
	return id, fmt.Errorf("partition.metadata: no topic_id")
}

// recoveryInfo is what the data directory's checkpoints say about a log.
type recoveryInfo struct {
	clean         bool  // the broker shut down cleanly: trust everything
	recoveryPoint int64 // offsets below were durable and checkpointed
	logStart      int64
	highWatermark int64 // the replicated high watermark last checkpointed (0: none)
}

// openLog opens an existing partition directory, scanning and truncating
// only the tail after the recovery point.
func (m *Manager) openLog(tp TopicPartition, dir string, cfg Config, ri recoveryInfo) (*Log, error) {
	l := &Log{tp: tp, dir: dir, fs: m.fs, m: m, cfg: cfg, producers: newProducerState(), syncDone: make(chan struct{}), savedHW: ri.highWatermark, tail: tailCache{budget: m.tailBudget}}
	if b, err := vfs.ReadFile(m.fs, filepath.Join(dir, partitionMetadataFile)); err == nil {
		if id, err := parsePartitionMetadata(b); err == nil {
			l.topicID = id
		} else {
			return nil, fmt.Errorf("%w: %s: %v", ErrCorruptLog, dir, err)
		}
	}
	entries, err := m.fs.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var bases []int64
	snapshots := map[int64]bool{}
	for _, e := range entries {
		name := e.Name()
		switch {
		case strings.HasSuffix(name, ".tmp"):
			_ = m.fs.Remove(filepath.Join(dir, name))
		case strings.HasSuffix(name, ".log"):
			if b, err := strconv.ParseInt(strings.TrimSuffix(name, ".log"), 10, 64); err == nil {
				bases = append(bases, b)
			}
		case strings.HasSuffix(name, ".snapshot"):
			if b, err := strconv.ParseInt(strings.TrimSuffix(name, ".snapshot"), 10, 64); err == nil {
				snapshots[b] = true
			}
		}
	}
	sort.Slice(bases, func(i, j int) bool { return bases[i] < bases[j] })
	if len(bases) == 0 {
		f, err := openSegmentFile(m.fs, dir, ri.logStart, true)
		if err != nil {
			return nil, err
		}
		l.segs = []*segment{{dir: dir, base: ri.logStart, file: f, next: ri.logStart, maxTS: -1, maxTSOff: -1}}
		l.start, l.end, l.synced = ri.logStart, ri.logStart, ri.logStart
		return l, m.fs.SyncDir(dir)
	}
	for _, b := range bases {
		f, err := openSegmentFile(m.fs, dir, b, false)
		if err != nil {
			return nil, err
		}
		st, err := f.Stat()
		if err != nil {
			return nil, err
		}
		l.segs = append(l.segs, &segment{dir: dir, base: b, file: f, size: st.Size(), next: b, maxTS: -1, maxTSOff: -1})
	}
	if eb, err := vfs.ReadFile(m.fs, filepath.Join(dir, leaderEpochCheckpointFile)); err == nil {
		if c, err := unmarshalEpochs(eb); err == nil {
			l.epochs = c
		}
	}

	// Segments wholly below the recovery point (or all, after a clean
	// shutdown) keep their indexes; the rest is scanned and verified.
	rp := ri.recoveryPoint
	if ri.clean {
		rp = 1<<63 - 1
	}
	snap, snapAt := m.loadSnapshot(dir, snapshots, rp)
	if snap != nil {
		l.producers = snap
	}
	replayFrom := snapAt // batches at or above it update producer state
	for i, s := range l.segs {
		last := i == len(l.segs)-1
		nextBase := int64(1<<63 - 1)
		if !last {
			nextBase = l.segs[i+1].base
		}
		trusted := nextBase <= rp || (ri.clean && s.loadIndexes(m.fs))
		if trusted && !last && s.loadIndexes(m.fs) {
			s.next = nextBase
			if n := len(s.times); n > 0 {
				s.maxTS, s.maxTSOff = s.times[n-1].ts, s.base+int64(s.times[n-1].rel)
			}
			if replayFrom < nextBase {
				// Producer state after the snapshot comes from the batch headers.
				if _, err := l.scan(s, 0, 1<<63-1, replayFrom); err != nil {
					return nil, err
				}
			}
			continue
		}
		from := int64(0)
		if ri.clean || (rp > s.base && rp < nextBase) {
			if s.loadIndexes(m.fs) {
				from = s.lookup(rp)
				s.index = trimIndex(s.index, from)
				s.times = trimTimes(s.times, s.base, rp)
				if n := len(s.times); n > 0 {
					s.maxTS, s.maxTSOff = s.times[n-1].ts, s.base+int64(s.times[n-1].rel)
				}
			}
		}
		if from == 0 {
			s.index, s.times, s.maxTS, s.maxTSOff = nil, nil, -1, -1
		}
		// Batches below the recovery point were durable and checked when
		// written; only what follows it can be torn. Reads verify the rest.
		verifyFrom := rp
		if ri.clean {
			verifyFrom = 1<<63 - 1
		}
		valid, err := l.scan(s, from, verifyFrom, replayFrom)
		if err != nil {
			return nil, err
		}
		if valid < s.size {
			if s.next < rp && !ri.clean {
				m.logger.Error("unreadable framing below the recovery point: acknowledged data is lost", "path", s.logPath(), "position", valid, "offset", s.next)
			}
			m.logger.Warn("truncating a torn or corrupt log tail", "path", s.logPath(), "position", valid, "dropped_bytes", s.size-valid)
			if err := s.file.Truncate(valid); err != nil {
				return nil, err
			}
			s.size = valid
			for _, later := range l.segs[i+1:] {
				m.logger.Warn("removing a segment after a corrupt tail", "path", later.logPath())
				later.removeFiles(m.fs)
			}
			l.segs = l.segs[:i+1]
			break
		}
	}
	for i, s := range l.segs {
		if i+1 < len(l.segs) && s.next < l.segs[i+1].base {
			s.next = l.segs[i+1].base
		}
	}
	// Bytes we found may be only in the page cache (after kill -9): make
	// them durable before anything is built on them.
	if !ri.clean {
		if err := l.active().file.Sync(); err != nil {
			return nil, err
		}
	}
	l.end = l.active().next
	if l.end < l.active().base {
		l.end = l.active().base
	}
	l.start = max(ri.logStart, l.segs[0].base)
	if l.start > l.end {
		l.start = l.end
	}
	l.synced = l.end
	l.lastRP = min(ri.recoveryPoint, l.end)
	if ri.clean {
		l.lastRP = l.end
	}
	l.producers.truncate(l.end)
	l.epochs.truncateFrom(l.end)
	if act := l.active(); act.size > 0 {
		// segment.ms counts from the first append, which a restart forgets:
		// count from the reopening, or a segment that gets no more appends
		// would never roll (and never tier).
		act.createdMs = m.nowMs()
	}
	return l, nil
}

func trimIndex(idx []indexEntry, pos int64) []indexEntry {
	for len(idx) > 0 && int64(idx[len(idx)-1].pos) > pos {
		idx = idx[:len(idx)-1]
	}
	return idx
}

func trimTimes(ts []timeEntry, base, rp int64) []timeEntry {
	for len(ts) > 0 && base+int64(ts[len(ts)-1].rel) >= rp {
		ts = ts[:len(ts)-1]
	}
	return ts
}

// scan walks the batches of s from position from, rebuilding its indexes
// and (for batches at or above replayFrom) producer state, verifying the
// CRCs of batches at or above verifyFrom. It returns the position where
// valid data ends.
func (l *Log) scan(s *segment, from int64, verifyFrom int64, replayFrom int64) (int64, error) {
	if from >= s.size {
		return from, nil // nothing to read (a new or empty segment)
	}
	// Up to 1 MiB at a time, no bigger than what there is: opening
	// thousands of small or empty logs must not allocate a MiB each.
	r := bufio.NewReaderSize(io.NewSectionReader(s.file, from, s.size-from), int(min(1<<20, s.size-from)))
	pos := from
	var hdr [recordbatch.HeaderSize]byte
	var body []byte
	for pos < s.size {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return pos, nil // torn header
		}
		h, _ := recordbatch.ParseHeader(hdr[:])
		size := int64(h.TotalSize())
		if h.Magic != 2 || size < recordbatch.HeaderSize || pos+size > s.size || h.BaseOffset < s.base || h.LastOffsetDelta < 0 {
			return pos, nil
		}
		if h.BaseOffset >= verifyFrom {
			if cap(body) < int(size) {
				body = make([]byte, size)
			}
			body = body[:size]
			copy(body, hdr[:])
			if _, err := io.ReadFull(r, body[recordbatch.HeaderSize:]); err != nil {
				return pos, nil
			}
			if recordbatch.ComputeCRC(body) != h.CRC {
				return pos, nil
			}
		} else if _, err := r.Discard(int(size) - recordbatch.HeaderSize); err != nil {
			return pos, nil
		}
		if h.BaseOffset < s.next && pos > from {
			return pos, nil // offsets must increase
		}
		s.noteBatch(h, pos, size, int64(l.cfg.IndexIntervalBytes))
		if h.BaseOffset >= replayFrom {
			l.producers.update(h)
			l.epochs.assign(h.PartitionLeaderEpoch, h.BaseOffset)
		}
		pos += size
	}
	return pos, nil
}

// loadSnapshot loads the newest producer snapshot at or below rp and
// returns it with its offset; with none, replay starts at 0.
func (m *Manager) loadSnapshot(dir string, snaps map[int64]bool, rp int64) (*producerState, int64) {
	var offs []int64
	for o := range snaps {
		offs = append(offs, o)
	}
	sort.Slice(offs, func(i, j int) bool { return offs[i] > offs[j] })
	for _, o := range offs {
		if o > rp {
			continue
		}
		b, err := vfs.ReadFile(m.fs, filepath.Join(dir, fmt.Sprintf("%020d.snapshot", o)))
		if err != nil {
			continue
		}
		ps, err := unmarshalProducerState(b)
		if err != nil {
			m.logger.Warn("ignoring a corrupt producer snapshot", "dir", dir, "offset", o, "err", err)
			continue
		}
		return ps, o
	}
	return nil, 0
}

// createLog makes a new partition directory with an empty first segment.
func (m *Manager) createLog(tp TopicPartition, dir string, topicID [16]byte, cfg Config, start int64) (*Log, error) {
	if _, err := m.fs.Stat(dir); err == nil {
		return nil, fmt.Errorf("%w: %s", ErrLogExists, dir)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	tmp := dir + ".creating"
	_ = m.fs.RemoveAll(tmp)
	if err := m.fs.MkdirAll(tmp, 0o755); err != nil {
		return nil, err
	}
	if err := vfs.WriteFileAtomic(m.fs, filepath.Join(tmp, partitionMetadataFile), partitionMetadata(topicID)); err != nil {
		return nil, err
	}
	f, err := openSegmentFile(m.fs, tmp, start, true)
	if err != nil {
		return nil, err
	}
	f.Close()
	if err := m.fs.SyncDir(tmp); err != nil {
		return nil, err
	}
	// The directory appears whole or not at all.
	if err := m.fs.Rename(tmp, dir); err != nil {
		return nil, err
	}
	if err := m.fs.SyncDir(m.dir); err != nil {
		return nil, err
	}
	return m.openLog(tp, dir, cfg, recoveryInfo{clean: true, logStart: start})
}

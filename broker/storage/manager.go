package storage

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tiercel/tiercel/internal/vfs"
)

// Manager owns one data directory: it opens (and recovers) every partition
// directory in it, runs the checkpoint, roll-by-age and retention loop, and
// writes a clean-shutdown marker on Close.
//
// Lock order: ckMu, then mu, then a Log's mu.
type Manager struct {
	fs     vfs.FS
	dir    string
	opts   ManagerOptions
	logger *slog.Logger

	ckMu sync.Mutex // serializes checkpoint file writes
	mu   sync.Mutex
	logs map[TopicPartition]*Log

	stop chan struct{}
	done chan struct{}

	// cleanStart: the directory held the clean-shutdown marker when it
	// was opened (a new directory does not).
	cleanStart bool

	tailBudget *atomic.Int64 // bytes the tail caches may still take; nil: off
}

// CleanStart reports whether the previous process shut down cleanly: its
// logs hold everything they held (a new data directory did not).
func (m *Manager) CleanStart() bool { return m.cleanStart }

// OpenManager opens dir, recovering each partition log found in it.
func OpenManager(fsys vfs.FS, dir string, opts ManagerOptions) (*Manager, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.CheckpointInterval <= 0 {
		opts.CheckpointInterval = 10 * time.Second
	}
	if opts.RetentionCheckInterval <= 0 {
		opts.RetentionCheckInterval = 5 * time.Minute
	}
	if opts.Configs == nil {
		opts.Configs = func(TopicPartition) Config { return DefaultConfig() }
	}
	m := &Manager{fs: fsys, dir: dir, opts: opts, logger: opts.Logger, logs: map[TopicPartition]*Log{}, stop: make(chan struct{}), done: make(chan struct{})}
	if opts.TailCacheBytes > 0 {
		m.tailBudget = new(atomic.Int64)
		m.tailBudget.Store(opts.TailCacheBytes)
	}
	if err := fsys.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("storage: data directory %s: %w", dir, err)
	}
	_, cleanErr := fsys.Stat(filepath.Join(dir, cleanShutdownFile))
	clean := cleanErr == nil
	m.cleanStart = clean
	recovery := m.readOffsets(recoveryCheckpointFile)
	starts := m.readOffsets(logStartCheckpointFile)
	hws := m.readOffsets(replicationCheckpointFile)

	entries, err := fsys.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	began := time.Now()
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		name := e.Name()
		full := filepath.Join(dir, name)
		if strings.HasSuffix(name, "-delete") || strings.HasSuffix(name, ".creating") {
			// An interrupted delete or create: finish it.
			_ = fsys.RemoveAll(full)
			continue
		}
		tp, ok := parsePartitionDir(name)
		if !ok {
			continue
		}
		ri := recoveryInfo{clean: clean, recoveryPoint: recovery[tp], logStart: starts[tp], highWatermark: hws[tp]}
		l, err := m.openLog(tp, full, opts.Configs(tp), ri)
		if err != nil {
			m.closeLogs()
			return nil, fmt.Errorf("storage: open %s: %w", full, err)
		}
		m.logs[tp] = l
	}
	m.logger.Info("logs loaded", "partitions", len(m.logs), "clean_shutdown", clean, "took", time.Since(began))
	if clean {
		// From now on a crash must not be mistaken for a clean shutdown.
		if err := fsys.Remove(filepath.Join(dir, cleanShutdownFile)); err != nil {
			m.closeLogs()
			return nil, err
		}
		if err := fsys.SyncDir(dir); err != nil {
			m.closeLogs()
			return nil, err
		}
	} else if err := m.Checkpoint(); err != nil {
		m.closeLogs()
		return nil, err
	}
	go m.loop()
	return m, nil
}

// parsePartitionDir splits "<topic>-<partition>".
func parsePartitionDir(name string) (TopicPartition, bool) {
	i := strings.LastIndexByte(name, '-')
	if i <= 0 {
		return TopicPartition{}, false
	}
	p, err := strconv.ParseInt(name[i+1:], 10, 32)
	if err != nil || p < 0 {
		return TopicPartition{}, false
	}
	return TopicPartition{Topic: name[:i], Partition: int32(p)}, true
}

func (m *Manager) readOffsets(file string) map[TopicPartition]int64 {
	b, err := vfs.ReadFile(m.fs, filepath.Join(m.dir, file))
	if err != nil {
		return map[TopicPartition]int64{}
	}
	offs, err := unmarshalOffsets(b)
	if err != nil {
		m.logger.Warn("ignoring an unreadable checkpoint; logs will be scanned in full", "file", file, "err", err)
		return map[TopicPartition]int64{}
	}
	return offs
}

func (m *Manager) nowMs() int64 { return m.opts.Now().UnixMilli() }

func (m *Manager) advance(tp TopicPartition, hw int64) {
	if m.opts.OnAdvance != nil {
		m.opts.OnAdvance(tp, hw)
	}
}

// Logs returns every open log.
func (m *Manager) Logs() []*Log {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*Log, 0, len(m.logs))
	for _, l := range m.logs {
		out = append(out, l)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].tp.Topic != out[j].tp.Topic {
			return out[i].tp.Topic < out[j].tp.Topic
		}
		return out[i].tp.Partition < out[j].tp.Partition
	})
	return out
}

// Get returns the log of tp, or nil.
func (m *Manager) Get(tp TopicPartition) *Log {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.logs[tp]
}

// Create makes a new empty log (directory <topic>-<partition> with a
// partition.metadata file carrying topicID) and returns it.
func (m *Manager) Create(tp TopicPartition, topicID [16]byte, cfg Config) (*Log, error) {
	return m.CreateAt(tp, topicID, cfg, 0)
}

// CreateAt makes a new empty log that starts at offset start: the local
// log of a partition whose earlier offsets are only in the bucket.
func (m *Manager) CreateAt(tp TopicPartition, topicID [16]byte, cfg Config, start int64) (*Log, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.logs[tp]; ok {
		return nil, fmt.Errorf("%w: %s-%d", ErrLogExists, tp.Topic, tp.Partition)
	}
	l, err := m.createLog(tp, filepath.Join(m.dir, fmt.Sprintf("%s-%d", tp.Topic, tp.Partition)), topicID, cfg, start)
	if err != nil {
		return nil, fmt.Errorf("%w: create %s-%d: %v", ErrStorage, tp.Topic, tp.Partition, err)
	}
	m.logs[tp] = l
	return l, nil
}

// Delete closes and removes the log of tp. The directory is first renamed
// to a -delete name, so a crash part way is finished on the next open.
func (m *Manager) Delete(tp TopicPartition) error {
	m.mu.Lock()
	l := m.logs[tp]
	delete(m.logs, tp)
	m.mu.Unlock()
	if l == nil {
		return nil
	}
	l.close()
	gone := fmt.Sprintf("%s.%d-delete", l.dir, time.Now().UnixNano())
	if err := m.fs.Rename(l.dir, gone); err != nil {
		return fmt.Errorf("%w: delete %s: %v", ErrStorage, l.dir, err)
	}
	if err := m.fs.SyncDir(m.dir); err != nil {
		return fmt.Errorf("%w: delete %s: %v", ErrStorage, l.dir, err)
	}
	return m.fs.RemoveAll(gone)
}

// Close syncs every log, writes checkpoints and the clean-shutdown marker.
func (m *Manager) Close() error {
	select {
	case <-m.stop:
		return nil
	default:
	}
	close(m.stop)
	<-m.done
	err := m.Checkpoint()
	m.closeLogs()
	if err != nil {
		return err
	}
	f, err := m.fs.OpenFile(filepath.Join(m.dir, cleanShutdownFile), os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	f.Close()
	return m.fs.SyncDir(m.dir)
}

func (m *Manager) closeLogs() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, l := range m.logs {
		l.close()
	}
}

// close stops the log and releases its files; waiters are woken.
func (l *Log) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	l.closed = true
	l.tail.clear()
	for _, s := range l.segs {
		s.file.Close()
	}
	close(l.syncDone)
	l.syncDone = make(chan struct{})
}

// loop is the one background goroutine of the data directory: periodic
// checkpoints, retention and age-based rolls, and interval flushes.
func (m *Manager) loop() {
	defer close(m.done)
	ck := time.NewTicker(m.opts.CheckpointInterval)
	ret := time.NewTicker(m.opts.RetentionCheckInterval)
	flush := time.NewTicker(time.Second)
	defer ck.Stop()
	defer ret.Stop()
	defer flush.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-ck.C:
			if err := m.Checkpoint(); err != nil {
				m.logger.Warn("checkpoint failed", "err", err)
			}
		case <-ret.C:
			m.ApplyRetention()
		case <-flush.C:
			m.tick()
		}
	}
}

// tick runs the interval flushes that are due and drops tail cache
// entries below a moved log start or past their age.
func (m *Manager) tick() {
	now := m.nowMs()
	for _, l := range m.Logs() {
		l.mu.Lock()
		if l.cfg.FlushPolicy == FlushInterval && l.synced < l.end && now-l.lastFlush >= l.cfg.FlushMs {
			l.startSync()
		}
		l.tail.dropBelow(l.start, now-tailCacheMaxAgeMs)
		l.mu.Unlock()
	}
}

// ApplyRetention runs retention and age-based rolls on every log now.
func (m *Manager) ApplyRetention() {
	now := m.nowMs()
	changed := false
	for _, l := range m.Logs() {
		before := l.StartOffset()
		l.applyRetention(now)
		changed = changed || l.StartOffset() != before
	}
	if changed {
		if err := m.writeLogStartCheckpoint(); err != nil {
			m.logger.Warn("log start checkpoint", "err", err)
		}
	}
}

// Checkpoint makes every changed log durable to its end, snapshots its
// producer state there, and records that end as its recovery point, so a
// crash later scans only what comes after.
func (m *Manager) Checkpoint() error {
	m.ckMu.Lock()
	defer m.ckMu.Unlock()
	points := map[TopicPartition]int64{}
	for _, l := range m.Logs() {
		rp, err := l.checkpoint()
		if err != nil {
			return fmt.Errorf("checkpoint %s-%d: %w", l.tp.Topic, l.tp.Partition, err)
		}
		points[l.tp] = rp
	}
	if err := vfs.WriteFileAtomic(m.fs, filepath.Join(m.dir, recoveryCheckpointFile), marshalOffsets(points)); err != nil {
		return err
	}
	hws := map[TopicPartition]int64{}
	for _, l := range m.Logs() {
		if hw, ok := l.durableReplicaHW(); ok {
			hws[l.tp] = hw
		}
	}
	if err := vfs.WriteFileAtomic(m.fs, filepath.Join(m.dir, replicationCheckpointFile), marshalOffsets(hws)); err != nil {
		return err
	}
	return m.writeStartsLocked()
}

func (m *Manager) writeLogStartCheckpoint() error {
	m.ckMu.Lock()
	defer m.ckMu.Unlock()
	return m.writeStartsLocked()
}

func (m *Manager) writeStartsLocked() error {
	starts := map[TopicPartition]int64{}
	for _, l := range m.Logs() {
		starts[l.tp] = l.StartOffset()
	}
	return vfs.WriteFileAtomic(m.fs, filepath.Join(m.dir, logStartCheckpointFile), marshalOffsets(starts))
}

// checkpointOne checkpoints one log (with a producer snapshot at its end
// even if nothing changed) and rewrites the recovery points: done before
// the log drops segments, because recovery rebuilds producer state from
// the newest snapshot at or below the recovery point plus the segments
// after it, and a dropped segment above that snapshot would take its
// batches' producer state with it (a retried batch would then be appended
// twice).
func (m *Manager) checkpointOne(l *Log) error {
	m.ckMu.Lock()
	defer m.ckMu.Unlock()
	if _, err := l.checkpointAt(true); err != nil {
		return err
	}
	points := map[TopicPartition]int64{}
	for _, x := range m.Logs() {
		x.mu.Lock()
		points[x.tp] = x.lastRP
		x.mu.Unlock()
	}
	return vfs.WriteFileAtomic(m.fs, filepath.Join(m.dir, recoveryCheckpointFile), marshalOffsets(points))
}

// checkpoint returns the log's recovery point, first making it the end of
// the log if anything changed since the last checkpoint.
func (l *Log) checkpoint() (int64, error) { return l.checkpointAt(false) }

func (l *Log) checkpointAt(force bool) (int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || (!l.dirty && !force) {
		l.lastRP = l.synced
		return l.synced, nil
	}
	seg := l.active()
	if err := seg.file.Sync(); err != nil {
		return 0, err
	}
	l.synced = l.end
	l.wakeSyncWaiters() // waiters for a sync loop that may find nothing left to do
	if err := seg.writeIndexes(l.fs); err != nil {
		return 0, err
	}
	name := filepath.Join(l.dir, fmt.Sprintf("%020d.snapshot", l.end))
	if err := vfs.WriteFileAtomic(l.fs, name, l.producers.marshal()); err != nil {
		return 0, err
	}
	l.pruneSnapshots()
	l.dirty = false
	l.lastRP = l.end
	return l.end, nil
}

// pruneSnapshots keeps the two newest producer snapshots; l.mu held.
func (l *Log) pruneSnapshots() {
	entries, err := l.fs.ReadDir(l.dir)
	if err != nil {
		return
	}
	var offs []int64
	for _, e := range entries {
		if n, ok := strings.CutSuffix(e.Name(), ".snapshot"); ok {
			if o, err := strconv.ParseInt(n, 10, 64); err == nil {
				offs = append(offs, o)
			}
		}
	}
	sort.Slice(offs, func(i, j int) bool { return offs[i] > offs[j] })
	for i := 2; i < len(offs); i++ {
		_ = l.fs.Remove(filepath.Join(l.dir, fmt.Sprintf("%020d.snapshot", offs[i])))
	}
}

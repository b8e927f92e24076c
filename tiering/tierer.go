package tiering

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/tiercel/tiercel/objstore"
)

// The Tierer drives tiering for the partitions a broker leads: one loop
// goroutine plans every partition from its local segments and its cached
// manifest (no object-store request unless there is work), and a bounded
// pool of jobs uploads segments, moves the remote log start for retention
// and DeleteRecords, and trims the local log once segments are tiered.
//
// Locks: Tierer.mu guards the partition map and every partition's state
// fields; it is never held across I/O. partition.writeMu serialises the
// manifest writes of one partition (a job and a DeleteRecords) and is held
// across their I/O; it is taken before Tierer.mu, never after.

// LocalLog is what the Tierer needs of a partition's local log.
type LocalLog interface {
	// LocalSegments lists the local segments, oldest first.
	LocalSegments() []LocalSegment
	// OpenSegment opens a closed segment for upload; close releases it.
	OpenSegment(base int64) (s Segment, close func() error, err error)
	// LocalStart is the local log start offset.
	LocalStart() int64
	// DropBefore moves the local log start to offset, deleting whole
	// segments below it.
	DropBefore(offset int64) error
}

// PartitionConfig names a partition and its retention.
type PartitionConfig struct {
	TopicID   string
	Partition int32
	Epoch     int32 // leader epoch written into the manifest
	Retention Retention
}

// TiererOptions configure a Tierer.
type TiererOptions struct {
	Bucket   objstore.Bucket
	Logger   *slog.Logger
	Now      func() time.Time
	Interval time.Duration // how often every partition is planned (remote.log.manager.task.interval.ms)
	Jobs     int           // concurrent uploads and retention jobs (remote.log.manager.copier.thread.pool.size)
	// OnUpload is told of every segment added to a manifest.
	OnUpload func(bytes int64)
	// OnDelete is told of every object deleted by retention, DeleteRecords or topic deletion.
	OnDelete func(objects int)
	// MayWrite, if set, is asked immediately before every manifest write:
	// false (the broker's lease lapsed) makes the write fail with
	// ErrNotLeading, to be retried later.
	MayWrite func() bool
}

// ErrNotLeading is a manifest write refused because the broker may not act
// as a leader now.
var ErrNotLeading = errors.New("tiering: this broker may not act as leader now (its lease lapsed)")

func (t *Tierer) mayWrite() error {
	if t.o.MayWrite != nil && !t.o.MayWrite() {
		return ErrNotLeading
	}
	return nil
}

// Tierer tiers a broker's partitions.
type Tierer struct {
	o     TiererOptions
	store ManifestStore

	mu    sync.Mutex
	parts map[partKey]*partition

	jobs    chan struct{} // a token per running job
	wake    chan struct{} // plan every partition
	wakeOne chan struct{} // plan the partitions in replan
	replan  []*partition  // guarded by mu: partitions whose job just ended
	starved bool          // guarded by mu: a pass found the pool full
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

type partKey struct {
	topicID   string
	partition int32
}

type partition struct {
	cfg     PartitionConfig
	local   LocalLog
	writeMu sync.Mutex

	// Guarded by Tierer.mu.
	manifest   Manifest
	busy       bool
	removed    bool
	lastUpload time.Time
	lastErr    error
	failures   int
	retryAt    time.Time
}

// NewTierer starts a Tierer's loop.
func NewTierer(o TiererOptions) *Tierer {
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Interval <= 0 {
		o.Interval = 30 * time.Second
	}
	if o.Jobs <= 0 {
		o.Jobs = 4
	}
	ctx, cancel := context.WithCancel(context.Background())
	t := &Tierer{
		o: o, store: ManifestStore{Bucket: o.Bucket, MayWrite: o.MayWrite}, parts: map[partKey]*partition{},
		jobs: make(chan struct{}, o.Jobs), wake: make(chan struct{}, 1), wakeOne: make(chan struct{}, 1), ctx: ctx, cancel: cancel,
	}
	t.wg.Add(1)
	go t.loop()
	return t
}

// Close stops the loop and waits for running jobs; an upload cut short is
// repeated after the next start.
func (t *Tierer) Close() {
	t.cancel()
	t.wg.Wait()
}

// LoadManifest reads a partition's manifest (for a broker deciding where
// an empty local log must start).
func (t *Tierer) LoadManifest(ctx context.Context, topicID string, partition int32) (Manifest, error) {
	m, _, err := t.store.Load(ctx, topicID, partition)
	return m, err
}

// Add starts tiering a partition whose manifest is m (from LoadManifest,
// or an empty one for a new partition).
func (t *Tierer) Add(cfg PartitionConfig, local LocalLog, m Manifest) {
	t.mu.Lock()
	t.parts[partKey{cfg.TopicID, cfg.Partition}] = &partition{cfg: cfg, local: local, manifest: m}
	t.mu.Unlock()
	t.Kick()
}

// EmptyManifest is the manifest of a partition with nothing tiered.
func EmptyManifest(topicID string, partition int32) Manifest {
	return Manifest{Format: manifestFormat, TopicID: topicID, Partition: partition}
}

// SetRetention changes a partition's retention.
func (t *Tierer) SetRetention(topicID string, partition int32, r Retention) {
	t.mu.Lock()
	if p := t.parts[partKey{topicID, partition}]; p != nil {
		p.cfg.Retention = r
	}
	t.mu.Unlock()
	t.Kick()
}

// Kick plans every partition now (after a roll, a config change).
func (t *Tierer) Kick() {
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// Range is the tiered offsets of a partition: [start, end), and whether
// any segment is in the bucket.
func (t *Tierer) Range(topicID string, partition int32) (start, end int64, tiered bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.parts[partKey{topicID, partition}]
	if p == nil {
		return 0, 0, false
	}
	return p.manifest.LogStart, p.manifest.End(), len(p.manifest.Segments) > 0
}

// Find returns the tiered segment holding offset.
func (t *Tierer) Find(topicID string, partition int32, offset int64) (RemoteSegment, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.parts[partKey{topicID, partition}]
	if p == nil {
		return RemoteSegment{}, false
	}
	return p.manifest.Find(offset)
}

// Segments returns a copy of the tiered segments of a partition.
func (t *Tierer) Segments(topicID string, partition int32) []RemoteSegment {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.parts[partKey{topicID, partition}]
	if p == nil {
		return nil
	}
	return append([]RemoteSegment(nil), p.manifest.Segments...)
}

// PartitionStatus is one partition's tiering state.
type PartitionStatus struct {
	TopicID        string
	Partition      int32
	LocalStart     int64
	LocalEnd       int64
	RemoteStart    int64
	RemoteEnd      int64
	RemoteSegments int
	RemoteBytes    int64
	PendingBytes   int64 // closed local segments not yet tiered
	PendingSince   int64 // max timestamp (ms) of the oldest pending segment, -1 if none
	LastUpload     time.Time
	LastError      string
}

// Status reports every partition, in no particular order.
func (t *Tierer) Status() []PartitionStatus {
	t.mu.Lock()
	parts := make([]*partition, 0, len(t.parts))
	for _, p := range t.parts {
		parts = append(parts, p)
	}
	t.mu.Unlock()
	out := make([]PartitionStatus, 0, len(parts))
	for _, p := range parts {
		local := p.local.LocalSegments()
		t.mu.Lock()
		st := PartitionStatus{
			TopicID: p.cfg.TopicID, Partition: p.cfg.Partition, RemoteStart: p.manifest.LogStart, RemoteEnd: p.manifest.End(),
			RemoteSegments: len(p.manifest.Segments), LastUpload: p.lastUpload, PendingSince: -1,
		}
		for _, s := range p.manifest.Segments {
			st.RemoteBytes += s.Size
		}
		if p.lastErr != nil {
			st.LastError = p.lastErr.Error()
		}
		t.mu.Unlock()
		if len(local) > 0 {
			st.LocalStart, st.LocalEnd = local[0].BaseOffset, local[len(local)-1].NextOffset
		}
		for _, s := range local {
			if !s.Active && s.NextOffset > st.RemoteEnd {
				st.PendingBytes += s.Size
				if st.PendingSince < 0 {
					st.PendingSince = s.MaxTimestamp
				}
			}
		}
		out = append(out, st)
	}
	return out
}

// loop plans every partition at each tick and Kick, and after a job only
// the partition it was for (a full pass per finished job would cost
// partitions × uploads), unless the pool was full during a pass and other
// partitions wait for a slot.
func (t *Tierer) loop() {
	defer t.wg.Done()
	tick := time.NewTicker(t.o.Interval)
	defer tick.Stop()
	full := true
	for {
		if full {
			t.plan(t.idle())
		}
		select {
		case <-t.ctx.Done():
			return
		case <-tick.C:
			full = true
		case <-t.wake:
			full = true
		case <-t.wakeOne:
			t.mu.Lock()
			ps := t.replan
			t.replan = nil
			t.mu.Unlock()
			full = false
			t.plan(ps)
		}
	}
}

// idle lists the partitions that may start a job.
func (t *Tierer) idle() []*partition {
	now := t.o.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	parts := make([]*partition, 0, len(t.parts))
	for _, p := range t.parts {
		if !p.busy && !p.removed && !now.Before(p.retryAt) {
			parts = append(parts, p)
		}
	}
	return parts
}

// plan starts a job for every partition of parts with work, as far as the
// job pool allows; when it is full the rest wait for a slot (starved).
func (t *Tierer) plan(parts []*partition) {
	now := t.o.Now()
	for _, p := range parts {
		local := p.local.LocalSegments()
		t.mu.Lock()
		if p.busy || p.removed || now.Before(p.retryAt) {
			t.mu.Unlock()
			continue
		}
		plan := MakePlan(local, &p.manifest, p.cfg.Retention, now.UnixMilli())
		work := len(plan.Upload) > 0 || plan.RemoteStart > p.manifest.LogStart || plan.LocalStart > localStart(local)
		if !work {
			t.mu.Unlock()
			continue
		}
		select {
		case t.jobs <- struct{}{}:
		default:
			t.starved = true
			t.mu.Unlock()
			return // pool full: a finishing job plans everything again
		}
		p.busy = true
		t.mu.Unlock()
		t.wg.Add(1)
		go t.runJob(p)
	}
}

// runJob does one step of a partition's plan: remote retention first (it
// may make uploads moot), then one upload, then local trimming.
func (t *Tierer) runJob(p *partition) {
	defer t.wg.Done()
	err := t.step(p)
	now := t.o.Now()
	t.mu.Lock()
	p.busy = false
	if err != nil && t.ctx.Err() == nil {
		p.failures++
		p.lastErr = err
		p.retryAt = now.Add(min(time.Duration(1<<min(p.failures, 6))*100*time.Millisecond, 30*time.Second))
	} else if err == nil {
		p.failures, p.lastErr = 0, nil
	}
	failures := p.failures
	t.mu.Unlock()
	<-t.jobs
	if err != nil && t.ctx.Err() == nil {
		t.o.Logger.Warn("tiering", "topic_id", p.cfg.TopicID, "partition", p.cfg.Partition, "failures", failures, "err", err)
		if errors.Is(err, ErrFenced) {
			t.o.Logger.Error("tiering: a newer leader wrote this partition's manifest; stopping", "topic_id", p.cfg.TopicID, "partition", p.cfg.Partition)
			t.mu.Lock()
			p.removed = true
			t.mu.Unlock()
		}
	}
	t.mu.Lock()
	starved := t.starved
	t.starved = false
	if !starved {
		t.replan = append(t.replan, p)
	}
	t.mu.Unlock()
	if starved {
		t.Kick()
		return
	}
	select {
	case t.wakeOne <- struct{}{}:
	default:
	}
}

func (t *Tierer) step(p *partition) error {
	p.writeMu.Lock()
	defer p.writeMu.Unlock()
	ctx := t.ctx
	local := p.local.LocalSegments()
	t.mu.Lock()
	m := p.manifest
	cfg := p.cfg
	t.mu.Unlock()
	now := t.o.Now()
	plan := MakePlan(local, &m, cfg.Retention, now.UnixMilli())

	if plan.RemoteStart > m.LogStart {
		return t.dropRemote(ctx, p, plan.RemoteStart) // then replan with the new manifest
	}
	if len(plan.Upload) > 0 {
		return t.upload(ctx, p, cfg, plan.Upload[0], now)
	}
	if plan.LocalStart > localStart(local) {
		return p.local.DropBefore(plan.LocalStart)
	}
	return nil
}

// upload puts one local segment into the bucket and the manifest;
// p.writeMu held.
func (t *Tierer) upload(ctx context.Context, p *partition, cfg PartitionConfig, s LocalSegment, now time.Time) error {
	if err := t.mayWrite(); err != nil {
		return err
	}
	seg, closeSeg, err := p.local.OpenSegment(s.BaseOffset)
	if err != nil {
		return err
	}
	nm, added, err := Upload(ctx, t.o.Bucket, t.store, cfg.TopicID, cfg.Partition, cfg.Epoch, seg, now.UnixMilli())
	_ = closeSeg()
	if err != nil {
		return err
	}
	t.setManifest(p, nm)
	if added && t.o.OnUpload != nil {
		t.o.OnUpload(s.Size)
	}
	t.mu.Lock()
	p.lastUpload = now
	t.mu.Unlock()
	return nil
}

// Fence stamps a partition's manifest with leader epoch epoch and returns
// it: a broker that has just become the partition's leader does this
// before opening it, so that a write of the previous leader that was still
// on its way either landed before (and the new leader starts after it) or
// fails with ErrFenced.
func (t *Tierer) Fence(ctx context.Context, topicID string, partition int32, epoch int32) (Manifest, error) {
	return t.store.Update(ctx, topicID, partition, epoch, func(*Manifest) error { return nil })
}

// Flush uploads every closed local segment of a partition that the
// manifest lacks, now, and returns the manifest's end offset: a leader
// handing the partition to another broker rolls its active segment, then
// flushes, so the new leader finds every record in the bucket.
func (t *Tierer) Flush(ctx context.Context, topicID string, partition int32) (int64, error) {
	t.mu.Lock()
	p := t.parts[partKey{topicID, partition}]
	t.mu.Unlock()
	if p == nil {
		return 0, fmt.Errorf("tiering: partition %s-%d is not tiered here", topicID, partition)
	}
	p.writeMu.Lock()
	defer p.writeMu.Unlock()
	for {
		local := p.local.LocalSegments()
		t.mu.Lock()
		m, cfg, removed := p.manifest, p.cfg, p.removed
		t.mu.Unlock()
		if removed {
			return 0, fmt.Errorf("tiering: partition %s-%d stopped tiering here", topicID, partition)
		}
		now := t.o.Now()
		plan := MakePlan(local, &m, cfg.Retention, now.UnixMilli())
		if len(plan.Upload) == 0 {
			return m.End(), nil
		}
		if err := t.upload(ctx, p, cfg, plan.Upload[0], now); err != nil {
			return 0, err
		}
	}
}

func (t *Tierer) setManifest(p *partition, m Manifest) {
	t.mu.Lock()
	p.manifest = m
	t.mu.Unlock()
}

// dropRemote moves the remote log start to offset in the manifest, then
// deletes the objects of the segments that fell below it, and keeps the
// local log from starting below the remote start. p.writeMu held.
func (t *Tierer) dropRemote(ctx context.Context, p *partition, offset int64) error {
	if err := t.mayWrite(); err != nil {
		return err
	}
	var dropped []RemoteSegment
	m, err := t.store.Update(ctx, p.cfg.TopicID, p.cfg.Partition, p.cfg.Epoch, func(m *Manifest) error {
		dropped = m.DropBefore(offset)
		return nil
	})
	if err != nil {
		return err
	}
	t.setManifest(p, m)
	if p.local.LocalStart() < m.LogStart {
		if err := p.local.DropBefore(m.LogStart); err != nil {
			return err
		}
	}
	deleted := 0
	for _, s := range dropped {
		// A failed delete leaves an orphan for garbage collection.
		if err := t.o.Bucket.Delete(ctx, s.Key); err == nil || errors.Is(err, objstore.ErrNotFound) {
			deleted++
		}
	}
	if deleted > 0 && t.o.OnDelete != nil {
		t.o.OnDelete(deleted)
	}
	return nil
}

// DeleteRecords moves a partition's remote log start to offset (Kafka's
// DeleteRecords) and deletes the objects below it; the caller then moves
// the local log start. A partition the Tierer does not know is not tiered.
func (t *Tierer) DeleteRecords(ctx context.Context, topicID string, partition int32, offset int64) error {
	t.mu.Lock()
	p := t.parts[partKey{topicID, partition}]
	t.mu.Unlock()
	if p == nil {
		return nil
	}
	p.writeMu.Lock()
	defer p.writeMu.Unlock()
	t.mu.Lock()
	start := p.manifest.LogStart
	t.mu.Unlock()
	if offset <= start {
		return nil
	}
	return t.dropRemote(ctx, p, offset)
}

// Remove stops tiering a partition (its topic is deleted or it moved away),
// waiting for its running job.
func (t *Tierer) Remove(topicID string, partition int32) {
	t.mu.Lock()
	p := t.parts[partKey{topicID, partition}]
	delete(t.parts, partKey{topicID, partition})
	if p != nil {
		p.removed = true
	}
	t.mu.Unlock()
	if p != nil {
		p.writeMu.Lock() // wait for a manifest write in flight
		p.writeMu.Unlock()
	}
}

// DeletePartition deletes everything a partition has in the bucket: its
// segment objects, then its manifest. Objects left by a crash midway are
// orphans for garbage collection.
func DeletePartition(ctx context.Context, b objstore.Bucket, topicID string, partition int32) (int, error) {
	var keys []string
	err := b.List(ctx, PartitionPrefix(topicID, partition), objstore.ListOptions{}, func(o objstore.ObjectInfo) error {
		keys = append(keys, o.Key)
		return nil
	})
	if err != nil {
		return 0, err
	}
	manifest := ManifestKey(topicID, partition)
	sort.SliceStable(keys, func(i, j int) bool { return keys[i] != manifest && keys[j] == manifest }) // the manifest last
	n := 0
	for _, k := range keys {
		if err := b.Delete(ctx, k); err != nil && !errors.Is(err, objstore.ErrNotFound) {
			return n, fmt.Errorf("tiering: deleting %s: %w", k, err)
		}
		n++
	}
	return n, nil
}

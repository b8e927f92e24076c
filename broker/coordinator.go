package broker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf16"

	"github.com/tiercel/tiercel/broker/group"
	"github.com/tiercel/tiercel/broker/storage"
	"github.com/tiercel/tiercel/internal/recordbatch"
	"github.com/tiercel/tiercel/internal/telemetry"
	"github.com/tiercel/tiercel/tiering"
)

// offsetsTopic holds group and offset state, in Kafka's record format.
const offsetsTopic = "__consumer_offsets"

// coordinatorTick bounds how late a session expiry or rebalance timeout
// is noticed.
const coordinatorTick = 100 * time.Millisecond

var (
	errCoordinatorClosed = errors.New("group coordinator is shutting down")
	errNotCoordinator    = errors.New("the group's offsets partition is led by another broker")
)

// coordinator drives one group.Shard per partition of __consumer_offsets,
// each owned by its own goroutine (shardRunner). The topic is created on
// first use, as Kafka does.
type coordinator struct {
	b *Broker

	mu      sync.Mutex // guards runners and closed; taken before meta.mu
	runners []*shardRunner
	closed  bool
}

func newCoordinator(b *Broker) *coordinator {
	c := &coordinator{b: b}
	if t := b.getTopic(offsetsTopic); t != nil {
		c.startLocked(t)
	}
	return c
}

// shards returns the runners, creating the offsets topic if needed.
func (c *coordinator) shards() ([]*shardRunner, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, errCoordinatorClosed
	}
	if c.runners != nil {
		return c.runners, nil
	}
	t := c.b.getTopic(offsetsTopic)
	if t == nil {
		var err error
		t, err = c.b.createTopic(offsetsTopic, int32(c.b.cfg.Int64("offsets.topic.num.partitions")), 1, nil, map[string]string{
			"cleanup.policy": "compact",
			"segment.bytes":  c.b.cfg.Get("offsets.topic.segment.bytes"),
			"retention.ms":   "-1", // the coordinator compacts it (see compact)
		}, false)
		if err != nil && !errors.Is(err, errTopicExists) {
			return nil, fmt.Errorf("creating %s: %w", offsetsTopic, err)
		}
		if t == nil {
			t = c.b.getTopic(offsetsTopic)
		}
		if t == nil {
			return nil, fmt.Errorf("%s exists but is not open here yet", offsetsTopic)
		}
	}
	c.startLocked(t)
	return c.runners, nil
}

func (c *coordinator) startLocked(t *topic) {
	// One slot per partition of the topic; only the partitions this broker
	// leads get a runner, the others' groups are coordinated elsewhere.
	c.runners = make([]*shardRunner, len(t.logs))
	for p, l := range t.logs {
		if l != nil {
			c.runners[p] = c.startRunner(t, int32(p), l)
		}
	}
}

// startRunner starts the runner of partition p, led here with log l.
func (c *coordinator) startRunner(t *topic, p int32, l *storage.Log) *shardRunner {
	r := &shardRunner{
		c: c, partition: p, log: l, topicID: t.meta.ID, epoch: t.meta.Leaders[p].Epoch, shard: group.NewShard(c.b.groupConfig()),
		in: make(chan func(time.Time), 256), waits: map[group.ReplyTo]chan any{}, quit: make(chan struct{}),
		persisted: make(chan func(), 256), compactMin: c.b.cfg.Int64("tiercel.offsets.compact.bytes"),
	}
	r.syncCond = sync.NewCond(&r.syncMu)
	if c.b.logStart(t, p, l) == l.EndOffset() {
		// Nothing to replay (a new topic): serve at once.
		r.shard.Loaded(time.Now())
		r.loaded.Store(true)
	}
	r.wg.Add(2)
	go r.run()
	go r.syncLoop()
	return r
}

// refresh matches the runners to the offsets partitions led here after
// leadership changed: a partition that moved away stops its runner (its
// groups get NOT_COORDINATOR and find the new leader), one that was
// adopted starts a runner that replays it. A partition being handed over
// is left alone: its runner was stopped for the handoff. Reconcile calls
// it on its own goroutine (it holds meta.mu, which comes after c.mu).
func (c *coordinator) refresh() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.runners == nil {
		return // not started here yet: shards starts it from the topic
	}
	t := c.b.getTopic(offsetsTopic)
	if t == nil {
		return
	}
	for i, r := range c.runners {
		p := int32(i)
		var l *storage.Log
		if i < len(t.logs) {
			l = t.logs[i]
		}
		if r != nil && (r.log != l || r.epoch != t.meta.Leaders[p].Epoch) {
			r.halt()
			c.runners[i] = nil
		}
		if l != nil && c.runners[i] == nil && !c.b.isMoving(offsetsTopic, p) {
			c.runners[i] = c.startRunner(t, p, l)
		}
	}
}

// release stops partition p's runner before its handoff: its writes are
// in the log, and its groups get NOT_COORDINATOR until the new leader has
// replayed the partition.
func (c *coordinator) release(p int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if int(p) < len(c.runners) && c.runners[p] != nil {
		c.runners[p].halt()
		c.runners[p] = nil
	}
}

// shardFor returns the runner of a group: Kafka's partitionFor, so a group
// lands on the same partition number as in Kafka.
func (c *coordinator) shardFor(groupID string) (*shardRunner, error) {
	rs, err := c.shards()
	if err != nil {
		return nil, err
	}
	r := rs[partitionFor(groupID, len(rs))]
	if r == nil {
		return nil, errNotCoordinator
	}
	return r, nil
}

// coordinatorOf is the broker that coordinates groupID: the leader of its
// partition of the offsets topic (created if needed).
func (c *coordinator) coordinatorOf(groupID string) (int32, error) {
	if _, err := c.shards(); err != nil {
		return -1, err
	}
	t := c.b.getTopic(offsetsTopic)
	if t == nil {
		return -1, fmt.Errorf("%s is not open yet", offsetsTopic)
	}
	return t.meta.Leaders[partitionFor(groupID, int(t.meta.Partitions))].Broker, nil
}

// partitionFor is abs(String.hashCode) % n, Java's hash of UTF-16 units.
func partitionFor(id string, n int) int {
	var h int32
	for _, r := range id {
		if r >= 0x10000 {
			a, b := utf16.EncodeRune(r)
			h = 31*h + int32(a)
			h = 31*h + int32(b)
			continue
		}
		h = 31*h + int32(r)
	}
	return int(h&0x7fffffff) % n
}

// close stops every runner; waiting requests get NOT_COORDINATOR.
func (c *coordinator) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.closed = true
	for _, r := range c.runners {
		if r != nil {
			r.halt()
		}
	}
}

// halt stops the runner's goroutines and waits for them.
func (r *shardRunner) halt() {
	r.quitOnce.Do(func() { close(r.quit) })
	r.syncMu.Lock()
	r.syncCond.Broadcast()
	r.syncMu.Unlock()
	r.wg.Wait()
}

// groupConfig maps broker configs onto the coordinator's.
func (b *Broker) groupConfig() group.Config {
	ms := func(name string) time.Duration { return time.Duration(b.cfg.Int64(name)) * time.Millisecond }
	return group.Config{
		MinSessionTimeout:         ms("group.min.session.timeout.ms"),
		MaxSessionTimeout:         ms("group.max.session.timeout.ms"),
		InitialRebalanceDelay:     ms("group.initial.rebalance.delay.ms"),
		MaxSize:                   int(b.cfg.Int64("group.max.size")),
		MaxMetadataBytes:          int(b.cfg.Int64("offset.metadata.max.bytes")),
		OffsetsRetention:          time.Duration(b.cfg.Int64("offsets.retention.minutes")) * time.Minute,
		MaxRecordBytes:            int(b.cfg.Int64("message.max.bytes")),
		ConsumerSessionTimeout:    ms("group.consumer.session.timeout.ms"),
		ConsumerHeartbeatInterval: ms("group.consumer.heartbeat.interval.ms"),
		ConsumerMaxSize:           int(b.cfg.Int64("group.consumer.max.size")),
		ConsumerAssignors:         b.cfg.List("group.consumer.assignors"),
		Topics:                    brokerTopics{b},
		NewMemberID:               func(clientID string) string { return clientID + "-" + uuidString(newUUID()) },
	}
}

// brokerTopics answers the coordinator's questions about topics.
type brokerTopics struct{ b *Broker }

func (t brokerTopics) Partitions(name string) int32 {
	if tp := t.b.getTopic(name); tp != nil {
		return int32(len(tp.logs))
	}
	return -1
}

func (t brokerTopics) TopicID(name string) ([16]byte, bool) {
	if tp := t.b.getTopic(name); tp != nil {
		return tp.id, true
	}
	return [16]byte{}, false
}

func (t brokerTopics) TopicName(id [16]byte) (string, bool) {
	if tp := t.b.getTopicByID(id); tp != nil {
		return tp.meta.Name, true
	}
	return "", false
}

// shardRunner owns one shard: every input runs on its goroutine, and its
// writes go to one partition of __consumer_offsets.
type shardRunner struct {
	c         *coordinator
	partition int32
	topicID   string
	log       *storage.Log
	quit      chan struct{} // closed by halt
	quitOnce  sync.Once
	wg        sync.WaitGroup
	epoch     int32 // the leader epoch its writes carry
	shard     *group.Shard
	in        chan func(time.Time)
	loaded    atomic.Bool

	// Owned by the run goroutine.
	waits      map[group.ReplyTo]chan any
	nextTo     uint64
	ticking    bool
	appended   int64 // bytes appended since the last compaction
	lastSnap   int64 // bytes of the last compaction's rewrite
	compactMin int64 // tiercel.offsets.compact.bytes, read once
	compacting bool  // waiting for in-flight writes before compacting
	persisted  chan func()

	// Appended writes waiting for durability, in log order.
	syncMu   sync.Mutex
	syncCond *sync.Cond
	syncQ    []pendingSync
}

type pendingSync struct {
	ids []uint64 // writes appended together
	end int64
}

// submit queues fn for the shard's goroutine now, so requests of one
// connection reach the shard in the order they were read. The returned
// channel receives the reply fn's shard addresses to `to` (which may come
// after later inputs, e.g. for a JoinGroup).
func (r *shardRunner) submit(ctx context.Context, fn func(s *group.Shard, now time.Time, to group.ReplyTo)) (chan any, error) {
	ch := make(chan any, 1)
	input := func(now time.Time) {
		r.nextTo++
		to := group.ReplyTo(r.nextTo)
		r.waits[to] = ch
		fn(r.shard, now, to)
	}
	select {
	case r.in <- input:
		return ch, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-r.quit:
		return nil, errCoordinatorClosed
	}
}

// submitValue is submit for an input that answers at once with fn's value.
func (r *shardRunner) submitValue(ctx context.Context, fn func(s *group.Shard, now time.Time) any) (chan any, error) {
	return r.submit(ctx, func(s *group.Shard, now time.Time, to group.ReplyTo) { r.deliver(to, fn(s, now)) })
}

// existing returns the runners if the offsets topic exists, without creating it.
func (c *coordinator) existing() []*shardRunner {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	var local []*shardRunner
	for _, r := range c.runners {
		if r != nil {
			local = append(local, r)
		}
	}
	return local
}

func (r *shardRunner) deliver(to group.ReplyTo, v any) {
	if ch := r.waits[to]; ch != nil {
		delete(r.waits, to)
		ch <- v
	}
}

func (r *shardRunner) run() {
	defer r.wg.Done()
	if !r.loaded.Load() {
		start := time.Now()
		if err := r.load(); err != nil {
			r.c.b.logger.Error("loading group state", "partition", r.partition, "err", err)
		}
		r.shard.Loaded(time.Now())
		r.loaded.Store(true)
		r.c.b.logger.Debug("group state loaded", "partition", r.partition, "took", time.Since(start))
	}

	tick := time.NewTicker(coordinatorTick)
	tick.Stop()
	expiry := time.NewTicker(time.Duration(r.c.b.cfg.Int64("offsets.retention.check.interval.ms")) * time.Millisecond)
	defer expiry.Stop()
	for {
		if r.compacting {
			// Only completions until every write is applied: the rewrite
			// must see them all.
			select {
			case f := <-r.persisted:
				f()
			case <-r.quit:
				return
			}
			r.flush()
			continue
		}
		select {
		case f := <-r.in:
			now := time.Now()
			f(now)
			// Take what else is queued before writing: one append and one
			// durability wait for all of it.
		more:
			for range 255 {
				select {
				case f := <-r.in:
					f(now)
				default:
					break more
				}
			}
			if !r.ticking {
				r.ticking = true
				tick.Reset(coordinatorTick)
			}
		case f := <-r.persisted:
			f()
		case <-tick.C:
			if r.shard.Tick(time.Now()).IsZero() {
				r.ticking = false
				tick.Stop()
			}
		case <-expiry.C:
			r.shard.ExpireOffsets(time.Now())
		case <-r.quit:
			tick.Stop()
			return
		}
		r.flush()
	}
}

// flush delivers replies and appends writes until the shard is quiet, then
// compacts the partition when enough was appended since the last time.
func (r *shardRunner) flush() {
	for {
		replies, writes := r.shard.Take()
		if len(replies) == 0 && len(writes) == 0 {
			if r.appended > max(2*r.lastSnap, r.compactMin) {
				r.compacting = true
				if r.shard.Pending() == 0 {
					r.compact()
				}
			}
			return
		}
		for _, rp := range replies {
			r.deliver(rp.To, rp.Resp)
		}
		if len(writes) == 0 {
			continue
		}
		// One append (one write syscall) for everything this step produced.
		ids := make([]uint64, len(writes))
		for i, w := range writes {
			ids[i] = w.ID
		}
		end, err := r.append(writes...)
		if err != nil {
			r.c.b.logger.Error("group state write failed", "partition", r.partition, "err", err)
			for _, id := range ids {
				r.shard.Persisted(id, err)
			}
			continue
		}
		r.syncMu.Lock()
		r.syncQ = append(r.syncQ, pendingSync{ids, end})
		r.syncCond.Signal()
		r.syncMu.Unlock()
	}
}

// append writes each Write as one batch (so each stays atomic), all in one
// Append, and returns the end offset.
func (r *shardRunner) append(writes ...group.Write) (int64, error) {
	ts := time.Now().UnixMilli()
	var batch []byte
	for _, w := range writes {
		recs := make([]recordbatch.Record, len(w.Records))
		for i, rec := range w.Records {
			recs[i] = recordbatch.Record{Timestamp: ts, Key: rec.Key, Value: rec.Value}
		}
		b, err := recordbatch.Build(recs, recordbatch.NoProducer())
		if err != nil {
			return 0, err
		}
		batch = append(batch, b...)
	}
	res, err := r.log.Append(batch, storage.AppendOptions{LeaderEpoch: r.epoch})
	if err != nil {
		return 0, err
	}
	r.appended += int64(len(batch))
	return res.LastOffset + 1, nil
}

// compact rewrites the shard's live state at the end of its partition and
// moves the log start to the rewrite, so older records (superseded values,
// tombstones) are dropped with their segments. Runs with no write in
// flight, on the run goroutine, so nothing interleaves with the rewrite.
func (r *shardRunner) compact() {
	r.compacting = false
	start, before := time.Now(), r.appended
	fail := func(err error) {
		r.c.b.logger.Error("compacting group state", "partition", r.partition, "err", err)
		r.lastSnap = r.appended // try again after as much again
	}
	recs := r.shard.Snapshot()
	base := r.log.EndOffset()
	var size int64
	for len(recs) > 0 {
		// Batches of at most a thousand records keep each under max.message.bytes.
		n := min(len(recs), 1000)
		end, err := r.append(group.Write{Records: recs[:n]})
		if err != nil {
			fail(err)
			return
		}
		size += int64(n)
		recs = recs[n:]
		if len(recs) == 0 {
			if err := r.log.WaitDurable(context.Background(), end); err != nil {
				fail(err)
				return
			}
		}
	}
	if r.c.b.tierer != nil {
		// The bucket's log start first: trimming the local log past
		// segments not uploaded yet would leave a gap no upload continues.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := r.c.b.tierer.DeleteRecords(ctx, r.topicID, r.partition, base)
		cancel()
		if err != nil {
			fail(err)
			return
		}
	}
	if _, err := r.log.DeleteRecordsBefore(base); err != nil {
		fail(err)
		return
	}
	r.lastSnap, r.appended = r.appended-before, 0
	r.c.b.logger.Debug("compacted group state", "partition", r.partition, "records", size, "bytes", r.lastSnap, "took", time.Since(start))
}

// syncLoop reports writes durable in order, so a shard applies them in the
// order it made them.
func (r *shardRunner) syncLoop() {
	defer r.wg.Done()
	for {
		r.syncMu.Lock()
		for len(r.syncQ) == 0 {
			select {
			case <-r.quit:
				r.syncMu.Unlock()
				return
			default:
			}
			r.syncCond.Wait()
		}
		// Everything queued waits on one durability point (group commit).
		batch := r.syncQ
		r.syncQ = nil
		r.syncMu.Unlock()
		err := r.log.WaitDurable(context.Background(), batch[len(batch)-1].end)
		done := func() {
			for _, p := range batch {
				for _, id := range p.ids {
					r.shard.Persisted(id, err)
				}
			}
		}
		select {
		case r.persisted <- done:
		case <-r.quit:
			return
		}
	}
}

// load replays the partition into the shard: first what lies in the
// bucket below the local log (all of it on a broker that adopted the
// partition with an empty disk), then the local log. A failed bucket read
// is retried until the runner stops: serving without it would forget
// committed offsets.
func (r *shardRunner) load() error {
	now := time.Now()
	b := r.c.b
	localStart := r.log.StartOffset()
	off := localStart
	if t := b.getTopic(offsetsTopic); t != nil && t.meta.ID == r.topicID {
		off = b.logStart(t, r.partition, r.log)
	}
	for _, seg := range b.tieredSegments(r.topicID, r.partition) {
		for off < min(seg.NextOffset, localStart) {
			off = max(off, seg.BaseOffset)
			data, err := r.readRemote(seg, off)
			if err != nil {
				return err
			}
			next, err := r.replay(now, data, off)
			if err != nil {
				return err
			}
			if next == off {
				next = seg.NextOffset // nothing readable left in it
			}
			off = next
		}
	}
	off = max(off, localStart)
	for {
		res, err := r.log.Read(off, 1<<20, r.log.HighWatermark())
		if err != nil {
			return err
		}
		if len(res.Records) == 0 {
			return nil
		}
		if off, err = r.replay(now, res.Records, off); err != nil {
			return err
		}
	}
}

// readRemote reads a tiered segment from offset, retrying until it works
// or the runner stops.
func (r *shardRunner) readRemote(seg tiering.RemoteSegment, offset int64) ([]byte, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-r.quit:
			cancel()
		case <-ctx.Done():
		}
	}()
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		data, err := r.c.b.remote.Read(ctx, seg, offset, 1<<20)
		if err == nil {
			return data, nil
		}
		r.c.b.logger.Warn("replaying group state from the bucket; retrying", "partition", r.partition, "offset", offset, "err", err)
		select {
		case <-r.quit:
			return nil, errCoordinatorClosed
		case <-time.After(wait):
		}
	}
}

// replay loads the records of batches at or after off into the shard and
// returns the offset after the last batch.
func (r *shardRunner) replay(now time.Time, batches []byte, off int64) (int64, error) {
	bts, err := recordbatch.Validate(batches, recordbatch.ValidateOptions{})
	if err != nil {
		return off, fmt.Errorf("offset %d: %w", off, err)
	}
	for _, bt := range bts {
		recs, err := recordbatch.Records(bt)
		if err != nil {
			return off, fmt.Errorf("offset %d: %w", bt.BaseOffset, err)
		}
		for _, rec := range recs {
			if rec.Offset < off {
				continue
			}
			if err := r.shard.Load(now, rec.Key, rec.Value); err != nil {
				r.c.b.logger.Warn("skipping an unreadable group record", "partition", r.partition, "offset", rec.Offset, "err", err)
			}
		}
		off = bt.LastOffset() + 1
	}
	return off, nil
}

// stats gathers every shard's Stats on its own goroutine, for a metrics
// scrape; a shard that does not answer within a second is left out.
func (c *coordinator) stats() telemetry.GroupStats {
	out := telemetry.GroupStats{Groups: map[[2]string]int{}}
	for _, r := range c.existing() {
		if !r.loaded.Load() {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		ch, err := r.submitValue(ctx, func(s *group.Shard, _ time.Time) any { return s.Stats() })
		if err == nil {
			select {
			case v := <-ch:
				st := v.(group.Stats)
				for k, n := range st.Groups {
					out.Groups[k] += n
				}
				out.Rebalances += int64(st.Rebalances)
				out.Commits += int64(st.Commits)
			case <-ctx.Done():
			case <-r.quit:
			}
		}
		cancel()
	}
	return out
}

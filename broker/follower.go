package broker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tiercel/tiercel/broker/storage"
	"github.com/tiercel/tiercel/internal/replica"
)

// A follower copies the partitions it follows from their leaders with
// Kafka's Fetch (its broker id as the replica id), one fetcher per leader
// broker for all of them, as Kafka's replica fetcher threads do. When a
// partition's leader epoch changes, the fetcher first truncates the local
// log where it diverges from the new leader's (OffsetForLeaderEpoch rounds,
// replica.TruncationOffset), then appends what it fetches at the leader's
// offsets and takes the leader's high watermark.

// followed is one partition a fetcher copies.
type followed struct {
	key       partitionKey
	topicID   [16]byte
	epoch     int32
	log       *storage.Log
	truncated bool // the truncation for this epoch is done
}

// fetcher copies every partition this broker follows from one leader. Its
// parts are set by syncFetchers; its loop alone uses them otherwise.
type fetcher struct {
	b      *Broker
	leader int32
	mu     sync.Mutex
	parts  map[partitionKey]*followed
	kick   chan struct{}
	stop   chan struct{}
	done   chan struct{}
	cl     *kgo.Client  // OffsetForLeaderEpoch
	conn   *replicaConn // Fetch; used by run's goroutine only
	addr   string
}

// syncFetchers makes the fetchers match the partitions followed here, after
// every reconcile; the caller holds no lock.
func (b *Broker) syncFetchers() {
	want := map[int32]map[partitionKey]*followed{}
	b.mu.RLock()
	for _, t := range b.topics {
		for p, l := range t.followers {
			if l == nil {
				continue
			}
			leader := t.meta.Leaders[p]
			if leader.Broker < 0 {
				continue // parked or offline: nothing to copy from
			}
			if want[leader.Broker] == nil {
				want[leader.Broker] = map[partitionKey]*followed{}
			}
			k := partitionKey{t.meta.Name, int32(p)}
			want[leader.Broker][k] = &followed{key: k, topicID: t.id, epoch: leader.Epoch, log: l}
		}
	}
	b.mu.RUnlock()
	addrs := map[int32]string{}
	for _, lb := range b.liveBrokers() {
		addrs[lb.id] = net.JoinHostPort(lb.host, strconv.Itoa(int(lb.port)))
	}

	var stopped []*fetcher
	defer func() {
		// Closed after repl.mu is released: a fetcher may be waiting for
		// b.mu, held by a reconcile that waits for repl.mu.
		for _, f := range stopped {
			f.close()
		}
	}()
	b.repl.mu.Lock()
	defer b.repl.mu.Unlock()
	if b.repl.fetchers == nil {
		b.repl.fetchers = map[int32]*fetcher{}
	}
	for id, f := range b.repl.fetchers {
		if len(want[id]) == 0 || addrs[id] != "" && addrs[id] != f.addr {
			stopped = append(stopped, f)
			delete(b.repl.fetchers, id)
		}
	}
	for id, parts := range want {
		f := b.repl.fetchers[id]
		if f == nil {
			if addrs[id] == "" || b.draining.Load() || b.movingOut.Load() {
				continue // not live (the next reconcile after it joins starts it), or shutting down
			}
			f = b.newFetcher(id, addrs[id])
			if f == nil {
				continue
			}
			b.repl.fetchers[id] = f
		}
		f.set(parts)
	}
}

// stopFetchers stops every fetcher (shutdown).
func (b *Broker) stopFetchers() {
	b.repl.mu.Lock()
	fs := b.repl.fetchers
	b.repl.fetchers = nil
	b.repl.mu.Unlock()
	for _, f := range fs {
		f.close()
	}
}

func (b *Broker) newFetcher(leader int32, addr string) *fetcher {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ClientID(fmt.Sprintf("tiercel-replica-%d", b.nodeID)),
		kgo.RetryBackoffFn(func(int) time.Duration { return 100 * time.Millisecond }))
	if err != nil {
		b.logger.Error("starting a replica fetcher", "leader", leader, "err", err)
		return nil
	}
	f := &fetcher{b: b, leader: leader, parts: map[partitionKey]*followed{}, kick: make(chan struct{}, 1),
		stop: make(chan struct{}), done: make(chan struct{}), cl: cl, addr: addr,
		conn: newReplicaConn(addr, fmt.Sprintf("tiercel-replica-%d", b.nodeID),
			max(b.cfg.Int64("socket.request.max.bytes"), 2*b.cfg.Int64("replica.fetch.response.max.bytes")))}
	go f.run()
	return f
}

// set replaces the partitions to copy; one whose epoch changed truncates again.
func (f *fetcher) set(parts map[partitionKey]*followed) {
	f.mu.Lock()
	for k, p := range parts {
		if old := f.parts[k]; old != nil && old.epoch == p.epoch && old.log == p.log {
			parts[k] = old
		}
	}
	f.parts = parts
	f.mu.Unlock()
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

func (f *fetcher) close() {
	close(f.stop)
	<-f.done
	f.cl.Close()
	f.conn.close()
}

func (f *fetcher) snapshot() []*followed {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]*followed, 0, len(f.parts))
	for _, p := range f.parts {
		out = append(out, p)
	}
	return out
}

// current reports whether p is still copied at its epoch (set may have replaced it).
func (f *fetcher) current(p *followed) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.parts[p.key] == p
}

func (f *fetcher) run() {
	defer close(f.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-f.stop
		cancel()
	}()
	backoff := time.Duration(f.b.cfg.Int64("replica.fetch.backoff.ms")) * time.Millisecond
	for ctx.Err() == nil {
		parts := f.snapshot()
		if len(parts) == 0 {
			select {
			case <-f.kick:
			case <-ctx.Done():
			}
			continue
		}
		var ready []*followed
		for _, p := range parts {
			if !p.truncated {
				if err := f.truncate(ctx, p); err != nil {
					if ctx.Err() == nil {
						f.b.logger.Debug("follower truncation", "topic", p.key.topic, "partition", p.key.partition, "leader", f.leader, "err", err)
					}
					continue
				}
			}
			ready = append(ready, p)
		}
		if k := f.b.knob().FollowerFetch; k != nil {
			k(f.b.nodeID, f.leader)
		}
		ok := len(ready) > 0 && f.fetch(ctx, ready)
		if !ok {
			select {
			case <-time.After(backoff):
			case <-f.kick:
			case <-ctx.Done():
			}
		}
	}
}

// truncate runs KIP-279's rounds against the leader for p's epoch.
func (f *fetcher) truncate(ctx context.Context, p *followed) error {
	for round := 0; round < 64; round++ {
		latest := p.log.LatestEpoch()
		if latest < 0 || p.log.EndOffset() == p.log.StartOffset() {
			p.truncated = true
			return nil
		}
		req := kmsg.NewPtrOffsetForLeaderEpochRequest()
		req.ReplicaID = f.b.nodeID
		rt := kmsg.NewOffsetForLeaderEpochRequestTopic()
		rt.Topic = p.key.topic
		rp := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
		rp.Partition, rp.CurrentLeaderEpoch, rp.LeaderEpoch = p.key.partition, p.epoch, latest
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		raw, err := f.cl.Broker(int(f.leader)).Request(rctx, req)
		cancel()
		if err != nil {
			return err
		}
		resp := raw.(*kmsg.OffsetForLeaderEpochResponse)
		if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
			return fmt.Errorf("OffsetForLeaderEpoch: %d topics in the answer", len(resp.Topics))
		}
		sp := resp.Topics[0].Partitions[0]
		if err := kerr.ErrorForCode(sp.ErrorCode); err != nil {
			return fmt.Errorf("OffsetForLeaderEpoch: %w", err)
		}
		if !f.current(p) {
			return errors.New("the partition's leader changed meanwhile")
		}
		var epochs []replica.EpochStart
		for _, e := range p.log.Epochs() {
			epochs = append(epochs, replica.EpochStart{Epoch: e.Epoch, StartOffset: e.Start})
		}
		off, done := replica.TruncationOffset(epochs, p.log.EndOffset(), p.log.HighWatermark(), sp.LeaderEpoch, sp.EndOffset)
		if off < p.log.EndOffset() {
			f.b.logger.Info("follower truncating a divergent tail", "topic", p.key.topic, "partition", p.key.partition,
				"from", p.log.EndOffset(), "to", off, "leader", f.leader, "epoch", p.epoch)
			if err := f.truncateFollower(p, off); err != nil {
				return err
			}
		}
		if done {
			p.truncated = true
			return nil
		}
	}
	return errors.New("truncation did not converge")
}

// truncateFollower truncates a followed log, or starts it afresh at off
// when off is below its start.
func (f *fetcher) truncateFollower(p *followed, off int64) error {
	err := p.log.TruncateTo(off)
	if errors.Is(err, storage.ErrOffsetOutOfRange) {
		return f.restartAt(p, off)
	}
	return err
}

// restartAt replaces a followed log with an empty one starting at off
// (the leader no longer has what it needs: its log starts later).
func (f *fetcher) restartAt(p *followed, off int64) error {
	b := f.b
	var producers []byte
	if t := b.getTopic(p.key.topic); t != nil && b.tierer != nil && b.tiered(t.meta) && off > 0 {
		// The copy starts without the batches below off: take the
		// producer state as of off from the bucket, read before b.mu is
		// taken.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		var err error
		producers, err = b.producersBefore(ctx, t.meta.ID, p.key.partition, off)
		cancel()
		if err != nil {
			return fmt.Errorf("producer state before %d from the object store: %w", off, err)
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	t := b.topics[p.key.topic]
	if t == nil || t.id != p.topicID || int(p.key.partition) >= len(t.followers) || t.followers[p.key.partition] != p.log {
		return errors.New("the partition is no longer followed here")
	}
	tp := p.log.TopicPartition()
	if err := b.mgr.Delete(tp); err != nil {
		return err
	}
	l, err := b.mgr.CreateAt(tp, t.id, b.storageConfig(t.meta.Configs), off)
	if err != nil {
		t.followers[p.key.partition] = nil
		return err
	}
	if producers != nil {
		if err := l.RestoreProducers(producers); err != nil {
			b.logger.Warn("restoring the producer state of a follower's copy", "topic", p.key.topic, "partition", p.key.partition, "err", err)
		}
	}
	l.SetReplicaHighWatermark(off)
	t.followers[p.key.partition] = l
	f.mu.Lock()
	p.log = l
	f.mu.Unlock()
	b.logger.Info("follower starts its copy at the leader's log start", "topic", p.key.topic, "partition", p.key.partition, "offset", off)
	return nil
}

// fetch sends one Fetch for parts and applies the answer; false means
// back off.
func (f *fetcher) fetch(ctx context.Context, parts []*followed) bool {
	cfg := f.b.cfg
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID = f.b.nodeID
	req.ReplicaState.ID = f.b.nodeID
	req.ReplicaState.Epoch = f.b.brokerEpoch.Load()
	req.MaxWaitMillis = int32(cfg.Int64("replica.fetch.wait.max.ms"))
	req.MinBytes = 1
	req.MaxBytes = int32(cfg.Int64("replica.fetch.response.max.bytes"))
	req.SessionEpoch = -1 // no session: every fetch names every partition
	byKey := map[partitionKey]*followed{}
	idx := map[string]int{}
	for _, p := range parts {
		byKey[p.key] = p
		i, ok := idx[p.key.topic]
		if !ok {
			rt := kmsg.NewFetchRequestTopic()
			rt.Topic, rt.TopicID = p.key.topic, p.topicID
			req.Topics = append(req.Topics, rt)
			i = len(req.Topics) - 1
			idx[p.key.topic] = i
		}
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition, rp.CurrentLeaderEpoch, rp.FetchOffset = p.key.partition, p.epoch, p.log.EndOffset()
		rp.LastFetchedEpoch, rp.LogStartOffset = -1, p.log.StartOffset()
		rp.PartitionMaxBytes = int32(cfg.Int64("replica.fetch.max.bytes"))
		req.Topics[i].Partitions = append(req.Topics[i].Partitions, rp)
	}
	rctx, cancel := context.WithTimeout(ctx, time.Duration(req.MaxWaitMillis)*time.Millisecond+10*time.Second)
	resp, err := f.conn.fetch(rctx, req)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			f.b.logger.Debug("follower fetch", "leader", f.leader, "err", err)
		}
		return false
	}
	// resp's record sets live in f.conn's buffer until the next fetch:
	// everything below is done with them before this returns.
	if resp.ErrorCode != 0 {
		return false
	}
	// Each partition with records is appended and, under flush.policy
	// fsync, made durable on a goroutine of its own (the next fetch reports
	// these log ends to the leader as held): one partition's fsync overlaps
	// another's append, and a round costs the slowest partition rather
	// than the sum of their appends.
	var wg sync.WaitGroup
	var failed atomic.Bool
	for _, rt := range resp.Topics {
		for i := range rt.Partitions {
			rp := &rt.Partitions[i]
			name := rt.Topic
			if name == "" {
				if t := f.b.getTopicByID(rt.TopicID); t != nil {
					name = t.meta.Name
				}
			}
			key := partitionKey{name, rp.Partition}
			p := byKey[key]
			delete(byKey, key) // a partition named twice is applied once
			if p == nil || !f.current(p) {
				continue
			}
			step := func() {
				ok, wrote := f.apply(p, rp)
				if wrote {
					if err := p.log.WaitDurable(ctx, p.log.EndOffset()); err != nil {
						f.b.logger.Warn("follower flush", "topic", p.key.topic, "partition", p.key.partition, "err", err)
						ok = false
					}
				}
				if !ok {
					failed.Store(true)
				}
			}
			if len(rp.RecordBatches) == 0 {
				step()
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				step()
			}()
		}
	}
	wg.Wait()
	return !failed.Load()
}

// apply appends one partition's fetched batches (wrote: some) and takes
// the leader's high watermark; false means back off.
func (f *fetcher) apply(p *followed, rp *kmsg.FetchResponseTopicPartition) (ok, wrote bool) {
	switch rp.ErrorCode {
	case 0:
	case kerr.OffsetOutOfRange.Code:
		if end := p.log.EndOffset(); rp.LogStartOffset > end {
			if err := f.restartAt(p, rp.LogStartOffset); err != nil {
				f.b.logger.Warn("restarting a follower's copy", "topic", p.key.topic, "partition", p.key.partition, "err", err)
			}
			return true, false
		}
		p.truncated = false // past the leader's end: truncate again
		return false, false
	default:
		// An epoch or leadership error: the metadata will say who leads.
		return false, false
	}
	if len(rp.RecordBatches) > 0 {
		if _, err := p.log.AppendReplica(rp.RecordBatches); err != nil {
			if errors.Is(err, storage.ErrNotContiguous) {
				p.truncated = false
			} else {
				f.b.logger.Warn("follower append", "topic", p.key.topic, "partition", p.key.partition, "err", err)
			}
			return false, false
		}
		wrote = true
	}
	p.log.SetReplicaHighWatermark(rp.HighWatermark)
	// The copy starts where the leader's local log does: what is below it
	// was deleted (retention, DeleteRecords) or is in the bucket (local
	// retention trims a leader's log only after the upload).
	if start := min(rp.LogStartOffset, p.log.HighWatermark()); start > p.log.StartOffset() {
		if _, err := p.log.DeleteRecordsBefore(start); err != nil {
			f.b.logger.Warn("follower log start", "topic", p.key.topic, "partition", p.key.partition, "err", err)
		}
	}
	return true, wrote
}

// replicaIDOf is the broker id of a follower's fetch, or -1 for a consumer.
func replicaIDOf(req *kmsg.FetchRequest) int32 {
	if req.Version >= 15 {
		return req.ReplicaState.ID
	}
	return req.ReplicaID
}

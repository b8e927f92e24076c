package broker

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/tiercel/tiercel/broker/storage"
	"github.com/tiercel/tiercel/internal/metalog"
	"github.com/tiercel/tiercel/internal/replica"
	"github.com/tiercel/tiercel/internal/telemetry"
)

// Replication (docs/design.md "Replication"): the leader of a replicated
// partition keeps a replica.Leader fed by its appends and its followers'
// fetches; the high watermark it computes caps what consumers read, what
// acks=all waits for and what is tiered (storage.Log.SetReplicaHighWatermark).
// ISR changes are proposed by the leader and take effect when the metadata
// log commits them. Followers copy with Kafka's Fetch (follower.go).

// replication holds this broker's replication state. Lock order: b.mu,
// then replication.mu, then a leaderRepl's mu; none is held across a
// metadata append or a network call.
type replication struct {
	mu       sync.Mutex
	leaders  map[partitionKey]*leaderRepl
	fetchers map[int32]*fetcher // by leader broker (follower.go)
	epoch    time.Time          // replica.Leader's clock counts from here
}

// leaderRepl is one partition led here with more than one replica.
type leaderRepl struct {
	key     partitionKey
	topicID string
	log     *storage.Log

	mu      sync.Mutex
	st      *replica.Leader
	leader  metalog.Leader
	metaISR []int32 // the ISR exactly as the metadata log holds it (SetISR expects it)
	// replicas are the partition's replicas as the metadata log holds
	// them (a reassignment changes them within an epoch).
	replicas []int32
	// partitionEpoch is the partition epoch of metaISR and replicas
	// (SetISR expects it).
	partitionEpoch int32
}

func (b *Broker) replNow() time.Duration { return time.Since(b.repl.epoch) }

func (b *Broker) replConfig(m *topicMeta) replica.Config {
	return replica.Config{
		LagTime: time.Duration(b.cfg.Int64("replica.lag.time.max.ms")) * time.Millisecond,
		MinISR:  int(b.cfg.TopicInt64(m.Configs, "min.insync.replicas")),
	}
}

// leadReplicated starts or updates the leader state of partition p, led
// here with log l; the caller holds b.mu. A new epoch starts afresh, as a
// new Kafka leader does; the same epoch takes the committed ISR.
func (b *Broker) leadReplicated(m *topicMeta, p int32, l *storage.Log) {
	key := partitionKey{m.Name, p}
	leader, isr := m.Leaders[p], m.ISR[p]
	b.repl.mu.Lock()
	defer b.repl.mu.Unlock()
	if b.repl.leaders == nil {
		b.repl.leaders = map[partitionKey]*leaderRepl{}
	}
	lr := b.repl.leaders[key]
	if lr != nil && lr.log == l && lr.leader == leader && lr.topicID == m.ID {
		lr.mu.Lock()
		if !slices.Equal(lr.metaISR, isr) {
			lr.metaISR = slices.Clone(isr)
			lr.st.Committed(isr)
		}
		if !slices.Equal(lr.replicas, m.Replicas[p]) {
			lr.replicas = slices.Clone(m.Replicas[p])
			lr.st.SetReplicas(lr.replicas, b.replNow())
		}
		lr.partitionEpoch = m.PartitionEpochs[p]
		hw := lr.st.HighWatermark()
		lr.mu.Unlock()
		l.SetReplicaHighWatermark(hw)
		return
	}
	if !l.Replicated() {
		l.SetReplicaHighWatermark(l.StartOffset()) // from the watermark checkpointed before a restart
	}
	hw := l.HighWatermark()
	st := replica.NewLeader(b.replConfig(m), b.nodeID, leader.Epoch, m.Replicas[p], isr, l.EndOffset(), hw, b.replNow())
	st.Appended(l.EndOffset())
	b.repl.leaders[key] = &leaderRepl{key: key, topicID: m.ID, log: l, st: st, leader: leader, metaISR: slices.Clone(isr),
		replicas: slices.Clone(m.Replicas[p]), partitionEpoch: m.PartitionEpochs[p]}
	l.SetReplicaHighWatermark(st.HighWatermark())
}

// stopLeading forgets the leader state of partitions no longer led here;
// the caller holds b.mu.
func (b *Broker) stopLeading(name string, p int32) {
	b.repl.mu.Lock()
	delete(b.repl.leaders, partitionKey{name, p})
	b.repl.mu.Unlock()
}

// leaderState is the leader state of a replicated partition led here, or nil.
func (b *Broker) leaderState(name string, p int32) *leaderRepl {
	b.repl.mu.Lock()
	defer b.repl.mu.Unlock()
	return b.repl.leaders[partitionKey{name, p}]
}

// checkProduce refuses an acks=all produce when the ISR is smaller than
// min.insync.replicas (NOT_ENOUGH_REPLICAS, before appending).
func (lr *leaderRepl) checkProduce() int16 {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	if errors.Is(lr.st.CheckProduce(), replica.ErrNotEnoughReplicas) {
		return kerr.NotEnoughReplicas.Code
	}
	return 0
}

// underMinISR reports an ISR below min.insync.replicas now.
func (lr *leaderRepl) underMinISR() bool {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	return lr.st.CheckProduce() != nil
}

// appended moves the high watermark after an append (an ISR of one).
func (lr *leaderRepl) appended() {
	lr.mu.Lock()
	lr.st.Appended(lr.log.EndOffset())
	hw := lr.st.HighWatermark()
	lr.mu.Unlock()
	lr.log.SetReplicaHighWatermark(hw)
}

// fetched records a follower's fetch from offset, by its process
// registered at brokerEpoch, and returns the high watermark to send it.
func (lr *leaderRepl) fetched(follower int32, brokerEpoch, offset int64, now time.Duration) (int64, error) {
	lr.mu.Lock()
	lr.st.Appended(lr.log.EndOffset())
	err := lr.st.FetchedAs(follower, brokerEpoch, offset, now)
	hw := lr.st.HighWatermark()
	lr.mu.Unlock()
	lr.log.SetReplicaHighWatermark(hw)
	return hw, err
}

// highWatermark is the high watermark after the latest appends.
func (lr *leaderRepl) highWatermark() int64 {
	lr.mu.Lock()
	lr.st.Appended(lr.log.EndOffset())
	hw := lr.st.HighWatermark()
	lr.mu.Unlock()
	lr.log.SetReplicaHighWatermark(hw)
	return hw
}

// watchISR proposes ISR changes of the partitions led here, every
// tiercel.replica.isr.check.ms, until stop.
func (b *Broker) watchISR(stop <-chan struct{}) {
	every := time.Duration(b.cfg.Int64("tiercel.replica.isr.check.ms")) * time.Millisecond
	repeat(stop, nil, every, func() (time.Duration, bool) {
		b.proposeISRs()
		b.driveReassignments()
		return every, true
	})
}

func (b *Broker) proposeISRs() {
	if !b.leading() {
		// Its lease lapsed or was revoked (fenced): another broker may be
		// electing from the ISR, which this one must not shrink.
		return
	}
	b.repl.mu.Lock()
	leaders := make([]*leaderRepl, 0, len(b.repl.leaders))
	for _, lr := range b.repl.leaders {
		leaders = append(leaders, lr)
	}
	b.repl.mu.Unlock()
	now := b.replNow()
	for _, lr := range leaders {
		lr.mu.Lock()
		isr, ok := lr.st.Propose(now)
		pe := lr.partitionEpoch
		op := metalog.SetISR{Topic: lr.key.topic, ID: lr.topicID, Partition: lr.key.partition, Expect: lr.leader, ExpectISR: slices.Clone(lr.metaISR), ISR: isr,
			ExpectPartitionEpoch: &pe, AddedEpochs: lr.st.Epochs(without(isr, lr.metaISR))}
		lr.mu.Unlock()
		if !ok {
			continue
		}
		done, err := b.commitMeta(metalog.Op{SetISR: &op})
		lr.mu.Lock()
		switch {
		case err == nil && done[0]:
			// reconcile (leadReplicated) applied it already; this is for
			// a state it replaced meanwhile.
			if lr.st.Pending() != nil {
				lr.st.Committed(isr)
				lr.metaISR = slices.Clone(isr)
			}
			b.logger.Info("ISR changed", "topic", op.Topic, "partition", op.Partition, "from", op.ExpectISR, "to", isr)
		default:
			if lr.st.Pending() != nil {
				lr.st.Rejected()
			}
			if err != nil && !errors.Is(err, metalog.ErrStale) {
				b.logger.Warn("committing an ISR change", "topic", op.Topic, "partition", op.Partition, "isr", isr, "err", err)
			}
		}
		hw := lr.st.HighWatermark()
		lr.mu.Unlock()
		lr.log.SetReplicaHighWatermark(hw)
	}
}

// waitReplicated returns once the high watermark of l reaches end (every
// in-sync replica holds the records, durably by the flush policy), or ctx ends.
func (b *Broker) waitReplicated(ctx context.Context, l *storage.Log, end int64) error {
	var err error
	b.waiters.await(ctx, []storage.TopicPartition{l.TopicPartition()}, time.Time{}, func() bool {
		switch {
		case l.HighWatermark() >= end:
			err = nil
		case l.EndOffset() < end:
			err = storage.ErrClosed // truncated: this broker lost the leadership
		case b.draining.Load():
			err = context.Canceled
		case ctx.Err() != nil:
			err = ctx.Err()
		default:
			return false
		}
		return true
	})
	return err
}

// handoffWait bounds how long a leader letting go of a replicated
// partition (handoff, park) waits for its followers to fetch the tail.
const handoffWait = 5 * time.Second

// waitFollowersCaughtUp waits, at most handoffWait, until the high
// watermark of l reaches its end: produces are stopped, and the in-sync
// followers fetch the last records.
func (b *Broker) waitFollowersCaughtUp(ctx context.Context, l *storage.Log) error {
	ctx, cancel := context.WithTimeout(ctx, handoffWait)
	defer cancel()
	return b.waitReplicated(ctx, l, l.EndOffset())
}

// replicatedHandoff is the leader change that moves a replicated partition
// led here to m.to, or to another live in-sync replica if m.to is not one
// (Kafka's controlled shutdown): nothing is uploaded, since the new leader
// holds every committed record. Produces are stopped already; it waits a
// little for the followers to fetch the last records, so that even acks=1
// records survive a clean handoff. A broker shutting down also leaves the
// ISR. Nil when no in-sync replica is live: the partition stays.
func (b *Broker) replicatedHandoff(ctx context.Context, m partitionMove) *metalog.Op {
	isr := m.t.meta.ISROf(m.p)
	live := b.liveBrokerIDs()
	to := int32(-1)
	switch {
	case m.to != b.nodeID && slices.Contains(isr, m.to) && live[m.to]:
		to = m.to
	case !b.movingOut.Load():
		// A requested move (ElectLeaders, a reassignment) goes to its
		// target or nowhere: it waits until the target is back in sync.
		b.logger.Warn("requested move: the target is not a live in-sync replica; the partition stays here until it is",
			"topic", m.t.meta.Name, "partition", m.p, "target", m.to, "isr", isr)
		return nil
	default: // shutting down: any live in-sync replica
		for _, r := range isr {
			if r != b.nodeID && live[r] {
				to = r
				break
			}
		}
	}
	if to < 0 {
		b.logger.Warn("handoff: no live in-sync replica to lead a partition; it stays here", "topic", m.t.meta.Name, "partition", m.p, "isr", isr)
		return nil
	}
	l := m.t.logs[m.p]
	if err := b.waitFollowersCaughtUp(ctx, l); err != nil {
		b.logger.Warn("handoff: followers did not fetch the last records in time; records not acknowledged to acks=all may be lost",
			"topic", m.t.meta.Name, "partition", m.p, "end", l.EndOffset(), "high_watermark", l.HighWatermark())
	}
	op := metalog.SetLeader{Topic: m.t.meta.Name, Partition: m.p, Leader: to, Expect: m.t.meta.Leaders[m.p]}
	if b.movingOut.Load() {
		op.ISR = slices.DeleteFunc(slices.Clone(isr), func(r int32) bool { return r == b.nodeID })
	}
	return &metalog.Op{SetLeader: &op}
}

// leaveISRs takes this broker out of the ISR of every partition it follows
// when it shuts down (Kafka's controller does this for a controlled
// shutdown), so that leaders need not wait replica.lag.time.max.ms before
// acks=all stops waiting for it. A change that raced another is skipped:
// the leader then drops it when it lags.
func (b *Broker) leaveISRs(ctx context.Context) {
	var ops []metalog.Op
	b.mu.RLock()
	for _, t := range b.topics {
		for p, l := range t.followers {
			isr := t.meta.ISROf(int32(p))
			if l == nil || !slices.Contains(isr, b.nodeID) || t.meta.Leaders[p].Broker < 0 {
				continue // parked partitions keep their ISR for the adoption
			}
			next := slices.DeleteFunc(slices.Clone(isr), func(r int32) bool { return r == b.nodeID })
			pe := t.meta.PartitionEpochs[int32(p)]
			ops = append(ops, metalog.Op{SetISR: &metalog.SetISR{Topic: t.meta.Name, ID: t.meta.ID, Partition: int32(p),
				Expect: t.meta.Leaders[p], ExpectISR: slices.Clone(isr), ISR: next, ExpectPartitionEpoch: &pe}})
		}
	}
	b.mu.RUnlock()
	if len(ops) == 0 {
		return
	}
	n, err := b.appendOps(ctx, ops)
	if err != nil {
		b.logger.Warn("leaving the ISRs at shutdown; the leaders will drop this broker when it lags", "err", err)
		return
	}
	b.logger.Info("left the ISRs of the partitions followed here", "partitions", n)
}

// without is ids without the members of drop, in order.
func without(ids, drop []int32) []int32 {
	return slices.DeleteFunc(slices.Clone(ids), func(r int32) bool { return slices.Contains(drop, r) })
}

// replicationStats counts this broker's replicated partitions by health
// for the metrics (telemetry.ReplicationStats).
func (b *Broker) replicationStats() telemetry.ReplicationStats {
	var st telemetry.ReplicationStats
	lbs := b.liveBrokers()
	live, reportOffline := idsOf(lbs), lbs[0].id == b.nodeID
	b.mu.RLock()
	defer b.mu.RUnlock()
	for _, t := range b.topics {
		minISR := int(b.cfg.TopicInt64(t.meta.Configs, "min.insync.replicas"))
		for p := range t.meta.Partitions {
			leader := t.meta.Leaders[p].Broker
			if reportOffline && leader != metalog.Parked && !live[leader] {
				st.Offline++
			}
			if leader != b.nodeID || !t.meta.replicated() {
				continue
			}
			isr := len(t.meta.ISROf(p))
			if isr < len(t.meta.ReplicasOf(p)) {
				st.UnderReplicated++
			}
			switch {
			case isr < minISR:
				st.UnderMinISR++
			case isr == minISR:
				st.AtMinISR++
			}
		}
	}
	return st
}

// preferredReadReplica is the replica a consumer in rack should read
// partition p from (KIP-392, RackAwareReplicaSelector): -1 for the leader
// (it is in that rack, no in-sync replica is, or the selector is off), or
// the lowest-id live in-sync follower there. Followers serve tiered
// offsets from the bucket too; offsets below the local log of a topic that
// is not tiered stay with the leader, which answers OFFSET_OUT_OF_RANGE.
func (b *Broker) preferredReadReplica(t *topic, p int32, l *storage.Log, offset int64, rack string) int32 {
	if b.cfg.Get("replica.selector.class") == "" || b.cfg.Get("broker.rack") == rack || offset < l.StartOffset() && !b.tiered(t.meta) {
		return -1
	}
	best := int32(-1)
	for _, lb := range b.liveBrokers() {
		if lb.id != b.nodeID && lb.rack != nil && *lb.rack == rack && slices.Contains(t.meta.ISROf(p), lb.id) && (best < 0 || lb.id < best) {
			best = lb.id
		}
	}
	return best
}

// readAsFollower serves a consumer's fetch from this broker's follower
// copy of p (KIP-392), up to the high watermark the leader last sent. An
// offset past it gets no records yet (the copy catches up); one below the
// copy's start is read from the bucket if the topic is tiered (the job
// returned), and otherwise gets NOT_LEADER_OR_FOLLOWER, sending the
// consumer back to the leader. It reports an error.
func (b *Broker) readAsFollower(ctx context.Context, p fetchPart, r *partResult, remaining int32) (bool, *remoteJob) {
	b.mu.RLock()
	t := b.topics[p.topic]
	var l *storage.Log
	code := kerr.NotLeaderForPartition.Code
	if t != nil && p.part >= 0 && p.part < t.meta.Partitions && t.followers != nil {
		l = t.followers[p.part]
		code = epochError(p.epoch, t.meta.Leaders[p.part].Epoch)
	}
	b.mu.RUnlock()
	if l == nil {
		r.code = kerr.NotLeaderForPartition.Code
		return true, nil
	}
	if code != 0 {
		r.code = code
		return true, nil
	}
	r.hw, r.start = l.HighWatermark(), l.StartOffset()
	if p.offset < r.start {
		return b.tieredAsFollower(ctx, t, l, p, r, remaining)
	}
	if p.offset >= r.hw || remaining <= 0 {
		return false, nil
	}
	res, err := l.Read(p.offset, min(p.maxBytes, remaining), r.hw)
	if err != nil {
		r.code = errorCode(err)
		return true, nil
	}
	r.records = res.Records
	return false, nil
}

// tieredAsFollower finds where in the bucket a consumer's offset below the
// local copy of a followed partition is, from this broker's copy of the
// manifest (read again when it does not reach the local copy).
func (b *Broker) tieredAsFollower(ctx context.Context, t *topic, l *storage.Log, p fetchPart, r *partResult, remaining int32) (bool, *remoteJob) {
	if b.views == nil || !b.tiered(t.meta) {
		r.code = kerr.NotLeaderForPartition.Code
		return true, nil
	}
	seg, start, found, err := b.views.Find(ctx, t.meta.ID, p.part, p.offset, l.StartOffset())
	switch {
	case err != nil:
		b.logger.Warn("reading a followed partition's manifest", "topic", p.topic, "partition", p.part, "err", err)
		r.code = kerr.KafkaStorageError.Code
		return true, nil
	case p.offset < start:
		r.code, r.start = kerr.OffsetOutOfRange.Code, start
		return true, nil
	case !found:
		r.code = kerr.NotLeaderForPartition.Code // a gap this copy cannot explain: the leader can
		return true, nil
	}
	r.start = start
	if remaining <= 0 {
		return false, nil
	}
	return false, &remoteJob{topicID: t.meta.ID, partition: p.part, seg: seg, offset: p.offset, maxBytes: int(min(p.maxBytes, remaining)), followed: true}
}

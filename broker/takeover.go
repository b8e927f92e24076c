package broker

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/tiercel/tiercel/internal/lease"
	"github.com/tiercel/tiercel/internal/metalog"
	"github.com/tiercel/tiercel/objstore"
)

// With replication factor 1 a crashed broker's partitions wait for it, as
// Kafka's do, unless unclean.leader.election.enable is set: then, once its
// lease has not changed for TTL plus margin (gossip missing it only starts
// the watch; it never shortens it), a live broker revokes the lease by a
// compare-and-swap on exactly the version it watched and, only if that
// succeeds, commits new leaders at epoch + 1. The revoke is what keeps a
// paused broker from waking up, renewing, and acknowledging again: its next
// renewal fails and it stops leading for good. Each new leader stamps the
// manifest with its epoch before opening the partition at the manifest's
// end (Tierer.Fence), so everything after the last tiered segment of the
// crashed broker is lost, and the new leader's log says from which offset.

// leaseWatch is what this broker knows of the other brokers' leases: a
// Watcher per broker, fed by the versions they gossip after each renewal
// (no bucket request) and by reads of the lease while one is missing.
type leaseWatch struct {
	mu           sync.Mutex
	watchers     map[int32]*lease.Watcher
	lastRead     map[int32]time.Duration // when the lease was last read, on the lease clock
	missingSince map[int32]time.Duration // when a broker leading partitions was first seen missing from gossip
	missingAt    map[int32]string        // its lease version at the first read after it went missing, to tell renewals from a crash
	seenLive     map[int32]string        // the incarnation of each broker last seen live in gossip
}

// heardLease records a lease version another broker gossiped. The wait
// counts from now, when the version reached this broker, after it was
// written: the same rule as a read's answer.
func (b *Broker) heardLease(broker int32, version string) {
	if b.lease == nil {
		return
	}
	w := &b.leaseWatch
	w.mu.Lock()
	defer w.mu.Unlock()
	w.watcher(broker, b.lease.cfg).Observe(version, false, b.lease.now())
}

// makeMaps makes the maps on first use; the caller holds w.mu.
func (w *leaseWatch) makeMaps() {
	if w.watchers == nil {
		w.watchers, w.lastRead, w.missingSince = map[int32]*lease.Watcher{}, map[int32]time.Duration{}, map[int32]time.Duration{}
		w.missingAt, w.seenLive = map[int32]string{}, map[int32]string{}
	}
}

// watcher returns the Watcher of a broker's lease, made on first use; the
// caller holds w.mu.
func (w *leaseWatch) watcher(broker int32, cfg lease.Config) *lease.Watcher {
	w.makeMaps()
	lw := w.watchers[broker]
	if lw == nil {
		lw = lease.NewWatcher(cfg)
		w.watchers[broker] = lw
	}
	return lw
}

// watchLeases runs the takeover and adoption checks every second until stop.
func (b *Broker) watchLeases(stop <-chan struct{}) {
	every := min(time.Second, b.lease.cfg.TTL/3)
	repeat(stop, nil, every, func() (time.Duration, bool) {
		b.takeOverOrphans()
		b.adoptParked()
		b.syncFetchers() // a leader that joined gossip since the last reconcile
		return every, true
	})
}

// orphans lists, by broker, the partitions of tiered topics whose leader
// gossip does not know as live (only the lease decides when they move).
func (b *Broker) orphans(live map[int32]bool) map[int32][]metalog.SetLeader {
	b.mu.RLock()
	defer b.mu.RUnlock()
	unclean := b.cfg.Bool("unclean.leader.election.enable")
	out := map[int32][]metalog.SetLeader{}
	for _, t := range b.topics {
		if !t.meta.replicated() && (!unclean || !b.tiered(t.meta)) {
			// One replica: it moves only by an unclean election, and only
			// if tiered (else its offsets would restart at 0).
			continue
		}
		for p, l := range t.meta.Leaders {
			if !live[l.Broker] && l.Broker != metalog.Parked {
				out[l.Broker] = append(out[l.Broker], metalog.SetLeader{Topic: t.meta.Name, Partition: int32(p), Expect: l})
			}
		}
	}
	return out
}

// takeOverOrphans moves the partitions of brokers that lead partitions,
// are not live, and whose lease expired. Only the live broker with the
// lowest id acts (others would lose the revoke race anyway). The wait
// usually starts from the last lease version the missing broker gossiped;
// the lease is read once per TTL/3 while a broker is missing (a version
// never heard starts the wait) and once more to revoke it, so idle
// clusters pay nothing.
func (b *Broker) takeOverOrphans() {
	b.noteLiveIncarnations()
	// Cheap checks first: this runs every second on every broker, and
	// orphans walks every partition.
	live := b.liveBrokers()
	if live[0].id != b.nodeID {
		return
	}
	orphans := b.orphans(idsOf(live))
	if len(orphans) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.lease.cfg.TTL)
	defer cancel()
	lw := &b.leaseWatch
	majority := 2*len(live) > b.registeredBrokers()
	lw.mu.Lock()
	for id := range lw.missingSince {
		if _, ok := orphans[id]; !ok {
			delete(lw.missingSince, id) // back, or leads nothing now
			delete(lw.missingAt, id)
		}
	}
	lw.mu.Unlock()
	for id, parts := range orphans {
		lw.mu.Lock()
		w := lw.watcher(id, b.lease.cfg)
		now := b.lease.now()
		if _, ok := lw.missingSince[id]; !ok {
			// The version it renews from is taken from the bucket below,
			// not from gossip: a broker killed just after a renewal it had
			// not gossiped yet would look like one that keeps renewing,
			// and be fenced (its partitions moving a TTL later).
			lw.missingSince[id], lw.missingAt[id] = now, ""
		}
		// Missing from gossip for a whole TTL while this side holds a
		// majority of the registered brokers: fenced even if it renews
		// its lease (cut off from the other brokers, not from the bucket).
		fence := majority && now-lw.missingSince[id] >= b.lease.cfg.TTL
		read, heard := lw.lastRead[id], w.Version() != ""
		expired := w.Expired(now)
		lw.mu.Unlock()
		if heard && !expired && now-read < b.lease.cfg.TTL/3 && !fence {
			continue // waiting; nothing to ask the bucket yet
		}
		data, attrs, err := objstore.ReadAll(ctx, b.bucket, leaseKey(id))
		lw.mu.Lock()
		lw.lastRead[id] = b.lease.now()
		lw.mu.Unlock()
		var rec leaseRecord
		switch {
		case errors.Is(err, objstore.ErrNotFound):
			rec.Released = true // it never held a lease: nothing to wait for
		case err != nil:
			b.logger.Warn("reading the lease of a broker that is not live", "broker", id, "err", err)
			continue
		default:
			if err := json.Unmarshal(data, &rec); err != nil {
				b.logger.Warn("the lease of a broker that is not live is corrupt", "broker", id, "err", err)
				continue
			}
		}
		lw.mu.Lock()
		// A new version restarts the wait; so does a fence: its broker may
		// hold the lease valid until a TTL after its last renewal.
		w.Observe(attrs.Version, rec.Released && !rec.Fenced, b.lease.now())
		expired = w.Expired(b.lease.now())
		if lw.missingAt[id] == "" {
			lw.missingAt[id] = attrs.Version
		}
		renewing := attrs.Version != lw.missingAt[id] // a crashed broker's lease stays as it was
		// Only the process this broker saw live and then lost is fenced: a
		// restarted one that gossip has not shown yet is not.
		seen := lw.seenLive[id] == rec.Incarnation
		lw.mu.Unlock()
		if !expired {
			if fence && renewing && seen && !rec.Released {
				b.fence(ctx, id, rec, attrs.Version)
			}
			continue
		}
		if !rec.Released {
			revoked := leaseRecord{Broker: id, Incarnation: rec.Incarnation, Counter: rec.Counter + 1, Released: true, RevokedBy: b.nodeID}
			if _, err := b.lease.put(ctx, revoked, objstore.PutOptions{IfVersion: attrs.Version}); err != nil {
				// Renewed meanwhile (it is alive) or revoked by another
				// broker: watch again from what the next read finds.
				b.forgetLease(id)
				continue
			}
		}
		for i := range parts {
			parts[i].ExpectIncarnation = rec.Incarnation // skipped if it registered again since
		}
		b.moveOrphans(ctx, id, parts, spread(inRegion(live, b.regionOf(id))))
		b.forgetLease(id)
	}
}

func (b *Broker) forgetLease(id int32) {
	b.leaseWatch.mu.Lock()
	delete(b.leaseWatch.watchers, id)
	delete(b.leaseWatch.lastRead, id)
	delete(b.leaseWatch.missingSince, id)
	delete(b.leaseWatch.missingAt, id)
	b.leaseWatch.mu.Unlock()
}

// fence revokes the lease of a broker that renews it but that a majority
// of the brokers cannot reach by gossip: a compare-and-swap on the version
// just read, so its next renewal fails and it stops leading (and exits).
// Its partitions move only after a further TTL + margin: until then it
// may still hold the lease valid by its own clock.
func (b *Broker) fence(ctx context.Context, id int32, rec leaseRecord, version string) {
	fenced := leaseRecord{Broker: id, Incarnation: rec.Incarnation, Counter: rec.Counter + 1, Released: true, RevokedBy: b.nodeID, Fenced: true}
	attrs, err := b.lease.put(ctx, fenced, objstore.PutOptions{IfVersion: version})
	if err != nil {
		return // renewed meanwhile: the next tick reads it again
	}
	lw := &b.leaseWatch
	lw.mu.Lock()
	lw.watcher(id, b.lease.cfg).Observe(attrs.Version, false, b.lease.now())
	lw.mu.Unlock()
	b.logger.Warn("fencing a broker that renews its lease but that a majority of the brokers cannot reach: its lease is revoked, and its partitions move once it has lapsed",
		"broker", id, "wait", b.lease.cfg.TTL+b.lease.cfg.Margin)
}

// noteLiveIncarnations records the incarnation of every broker gossip
// shows live.
func (b *Broker) noteLiveIncarnations() {
	if b.gossip == nil {
		return
	}
	members := b.gossip.Members()
	lw := &b.leaseWatch
	lw.mu.Lock()
	defer lw.mu.Unlock()
	lw.makeMaps()
	for _, m := range members {
		if m.Incarnation != "" {
			lw.seenLive[m.BrokerID] = m.Incarnation
		}
	}
}

// registeredBrokers is how many broker ids have registered in the metadata
// log (the cluster's size for the majority a fence needs).
func (b *Broker) registeredBrokers() int {
	b.meta.mu.Lock()
	defer b.meta.mu.Unlock()
	return len(b.meta.log.Peek().Brokers)
}

func (b *Broker) lowestLive() int32 {
	ids := b.liveBrokers()
	return ids[0].id
}

// moveOrphans commits new leaders for a gone broker's partitions: an
// in-sync replica for a replicated partition (electFromISR), a live
// broker in turn for the others.
func (b *Broker) moveOrphans(ctx context.Context, gone int32, parts []metalog.SetLeader, targets []int32) {
	ops := make([]metalog.Op, 0, len(parts))
	unclean := 0
	for i := range parts {
		t := b.getTopic(parts[i].Topic)
		if t != nil && t.meta.replicated() {
			if !b.electFromISR(t.meta, &parts[i], targets) {
				continue
			}
			ops = append(ops, metalog.Op{SetLeader: &parts[i]})
			continue
		}
		parts[i].Leader = targets[unclean%len(targets)]
		unclean++
		ops = append(ops, metalog.Op{SetLeader: &parts[i]})
	}
	if len(ops) == 0 {
		return
	}
	moved, err := b.appendOps(ctx, ops)
	if err != nil {
		b.logger.Error("leader election: committing new leaders failed; trying again", "broker", gone, "err", err)
		return
	}
	if unclean > 0 {
		b.logger.Warn("unclean leader election: a broker's lease expired; its partitions resume from the object store on live brokers, and what it had not tiered is lost",
			"broker", gone, "partitions", moved, "to", targets)
		return
	}
	b.logger.Info("leader election: a broker's lease expired; in-sync replicas lead its partitions", "broker", gone, "partitions", moved)
}

// electFromISR chooses the new leader of a replicated partition whose
// leader is gone: the first live in-sync replica in the order of live
// (the preferred region first), which leaves the gone leader out of the
// ISR. With none live, unclean.leader.election.enable elects any live
// replica (losing what it lacks) with an ISR of itself; otherwise the
// partition waits, offline, as Kafka's does.
func (b *Broker) electFromISR(m *topicMeta, op *metalog.SetLeader, live []int32) bool {
	isr, replicas := m.ISROf(op.Partition), m.ReplicasOf(op.Partition)
	live = append(slices.Clone(live), spread(b.liveBrokers())...) // the region's first, then any
	for _, id := range live {
		if id != op.Expect.Broker && slices.Contains(isr, id) {
			op.Leader = id
			op.ISR = slices.DeleteFunc(slices.Clone(isr), func(r int32) bool { return r == op.Expect.Broker })
			return true
		}
	}
	if !b.cfg.Bool("unclean.leader.election.enable") {
		b.logger.Warn("no live in-sync replica: the partition stays offline until one returns", "topic", op.Topic, "partition", op.Partition, "isr", isr)
		return false
	}
	for _, id := range live {
		if id != op.Expect.Broker && slices.Contains(replicas, id) {
			op.Leader, op.ISR = id, []int32{id}
			b.logger.Warn("unclean leader election of an out-of-sync replica: records it lacks are lost", "topic", op.Topic, "partition", op.Partition, "leader", id)
			return true
		}
	}
	return false
}

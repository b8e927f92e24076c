package broker

import (
	"context"
	"encoding/json"
	"errors"
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

// watchLeases runs the takeover checks every TTL/3 until stop.
func (b *Broker) watchLeases(stop <-chan struct{}) {
	t := time.NewTicker(b.lease.cfg.TTL / 3)
	defer t.Stop()
	watchers := map[int32]*lease.Watcher{}
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		b.takeOverOrphans(watchers)
	}
}

// orphans lists, by broker, the partitions of tiered topics whose leader
// gossip does not know as live, or suspects (watching sooner never
// shortens the wait: only the lease decides).
func (b *Broker) orphans() map[int32][]metalog.SetLeader {
	live := map[int32]bool{}
	for _, lb := range b.brokersUp(false) {
		live[lb.id] = true
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	out := map[int32][]metalog.SetLeader{}
	for _, t := range b.topics {
		if !b.tiered(t.meta) {
			continue // moving it would restart its offsets at 0
		}
		for p, l := range t.meta.Leaders {
			if !live[l.Broker] {
				out[l.Broker] = append(out[l.Broker], metalog.SetLeader{Topic: t.meta.Name, Partition: int32(p), Expect: l})
			}
		}
	}
	return out
}

// takeOverOrphans watches the leases of brokers that lead partitions and
// are not live, and moves the partitions of those whose lease expired.
// Only the live broker with the lowest id acts (others would lose the
// revoke race anyway), so idle clusters pay nothing and a crash costs one
// GET per TTL/3 until it is handled.
func (b *Broker) takeOverOrphans(watchers map[int32]*lease.Watcher) {
	orphans := b.orphans()
	targets := rackAlternating(b.liveBrokers())
	if !b.cfg.Bool("unclean.leader.election.enable") || len(orphans) == 0 || b.lowestLive() != b.nodeID {
		clear(watchers)
		return
	}
	for id := range watchers {
		if _, ok := orphans[id]; !ok {
			delete(watchers, id) // back, or handled
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.lease.cfg.TTL)
	defer cancel()
	for id, parts := range orphans {
		w := watchers[id]
		if w == nil {
			w = lease.NewWatcher(b.lease.cfg)
			watchers[id] = w
		}
		data, attrs, err := objstore.ReadAll(ctx, b.bucket, leaseKey(id))
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
		w.Observe(attrs.Version, rec.Released, b.lease.now())
		if !w.Expired(b.lease.now()) {
			continue
		}
		if !rec.Released {
			revoked := leaseRecord{Broker: id, Incarnation: rec.Incarnation, Counter: rec.Counter + 1, Released: true, RevokedBy: b.nodeID}
			if _, err := b.lease.put(ctx, revoked, objstore.PutOptions{IfVersion: attrs.Version}); err != nil {
				// Renewed meanwhile (it is alive) or revoked by another
				// broker: watch again from the new version.
				delete(watchers, id)
				continue
			}
		}
		b.moveOrphans(ctx, id, parts, targets)
		delete(watchers, id)
	}
}

func (b *Broker) lowestLive() int32 {
	ids := b.liveBrokers()
	return ids[0].id
}

// moveOrphans commits new leaders for a gone broker's partitions.
func (b *Broker) moveOrphans(ctx context.Context, gone int32, parts []metalog.SetLeader, targets []int32) {
	ops := make([]metalog.Op, len(parts))
	for i := range parts {
		parts[i].Leader = targets[i%len(targets)]
		ops[i] = metalog.Op{SetLeader: &parts[i]}
	}
	b.meta.mu.Lock()
	defer b.meta.mu.Unlock()
	done, err := b.appendMeta(ctx, ops...)
	if err != nil {
		b.logger.Error("unclean leader election: committing new leaders failed; trying again", "broker", gone, "err", err)
		return
	}
	moved := 0
	for _, d := range done {
		if d {
			moved++
		}
	}
	b.logger.Warn("unclean leader election: a broker's lease expired; its partitions resume from the object store on live brokers, and what it had not tiered is lost",
		"broker", gone, "partitions", moved, "to", targets)
}

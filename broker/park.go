package broker

import (
	"slices"
	"time"

	"github.com/tiercel/tiercel/internal/metalog"
)

// Pause and resume (scale to zero, docs/design.md "Pause"). Setting the
// cluster-wide dynamic config tiercel.cluster.paused (tiercel cluster
// pause, or any Kafka tool's AlterConfigs on the default broker resource)
// makes every leader hand each tiered partition it leads over to nobody:
// the handoff of handoff.go with metalog.Parked as the target, so the
// partition lives only in the bucket and its broker may be stopped and its
// disk dropped. Clearing the config (tiercel cluster resume, or any broker
// starting, see resumeAtStart) lets live brokers adopt the parked
// partitions at epoch + 1: each broker takes those it is the preferred
// leader of at once; the lowest live broker gives the rest, whose
// preferred leader has not come back within tiercel.leader.rebalance.
// join.delay.ms, to the live brokers, racks alternating.

func (b *Broker) paused() bool { return b.cfg.Bool("tiercel.cluster.paused") }

// parkMoves lists every tiered partition led here, to be parked.
func (b *Broker) parkMoves() []partitionMove {
	var moves []partitionMove
	for _, t := range b.ledTopics() {
		if !b.tiered(t.meta) {
			// Not tiered: its offsets would restart at 0 elsewhere; it
			// stays led here.
			continue
		}
		for p, l := range t.logs {
			if l != nil {
				moves = append(moves, partitionMove{t: t, p: int32(p), to: metalog.Parked})
			}
		}
	}
	return moves
}

// resumeAtStart clears tiercel.cluster.paused when a broker starts on a
// paused cluster: starting brokers is how a paused cluster comes back.
func (b *Broker) resumeAtStart() {
	if !b.paused() {
		return
	}
	values := b.cfg.Dynamic()
	delete(values, "tiercel.cluster.paused")
	if err := b.setBrokerConfigs(values); err != nil {
		b.logger.Error("resuming the paused cluster failed; run tiercel cluster resume", "err", err)
		return
	}
	b.logger.Info("the cluster was paused; resumed it")
}

// adoptParked commits this broker as the leader of the parked partitions
// it is the preferred leader of, and, on the lowest live broker, spreads
// the parked partitions whose preferred leader stayed away for the join
// delay over the live brokers of that leader's region (all, if none). It
// runs on the lease-watch goroutine, which alone touches
// b.parkedOrphansSince.
func (b *Broker) adoptParked() {
	if b.paused() || !b.leading() || b.movingOut.Load() {
		b.parkedOrphansSince = time.Time{}
		return
	}
	up := b.liveBrokers() // ordered by id
	live, lowest := idsOf(up), up[0].id == b.nodeID
	var mine, orphans []metalog.SetLeader
	var preferred []int32 // of each orphan
	var inSync [][]int32  // of each orphan: its live in-sync replicas, for a replicated partition (else nil)
	b.mu.RLock()
	for _, t := range b.topics {
		for p, l := range t.meta.Leaders {
			if l.Broker != metalog.Parked {
				continue
			}
			sl := metalog.SetLeader{Topic: t.meta.Name, Partition: int32(p), Leader: b.nodeID, Expect: l}
			pref := t.meta.Preferred[p]
			var candidates []int32
			if t.meta.replicated() {
				// Only an in-sync replica may lead it (its copy is the
				// log's; it was fully uploaded when parked).
				for _, r := range t.meta.ISR[p] {
					if live[r] {
						candidates = append(candidates, r)
					}
				}
				if !slices.Contains(candidates, pref) {
					pref = -1 // wait for the join delay, then the first live in-sync replica
				}
				if len(candidates) == 0 {
					continue // no in-sync replica is up yet
				}
			}
			switch {
			case pref == b.nodeID:
				mine = append(mine, sl)
			case lowest && !live[pref]:
				orphans = append(orphans, sl)
				preferred = append(preferred, t.meta.Preferred[p])
				inSync = append(inSync, candidates)
			}
		}
	}
	b.mu.RUnlock()

	if len(orphans) == 0 {
		b.parkedOrphansSince = time.Time{}
	} else if b.parkedOrphansSince.IsZero() {
		b.parkedOrphansSince = time.Now()
	}
	joinDelay := time.Duration(b.cfg.Int64("tiercel.leader.rebalance.join.delay.ms")) * time.Millisecond
	if len(orphans) > 0 && time.Since(b.parkedOrphansSince) >= joinDelay {
		targets := map[string][]int32{} // by region: leaders stay in their preferred leader's region
		for i := range orphans {
			if inSync[i] != nil {
				orphans[i].Leader = inSync[i][0]
				continue
			}
			region := b.regionOf(preferred[i])
			if targets[region] == nil {
				targets[region] = spread(inRegion(up, region))
			}
			orphans[i].Leader = targets[region][i%len(targets[region])]
		}
		mine = append(mine, orphans...)
		b.parkedOrphansSince = time.Time{}
	}
	if len(mine) == 0 {
		return
	}
	ops := make([]metalog.Op, len(mine))
	for i := range mine {
		ops[i] = metalog.Op{SetLeader: &mine[i]}
	}
	done, err := b.commitMeta(ops...)
	if err != nil {
		b.logger.Warn("adopting parked partitions; trying again", "err", err)
		return
	}
	n := applied(done)
	b.logger.Info("adopted parked partitions from the bucket", "partitions", n)
}

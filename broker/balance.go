package broker

import (
	"time"

	"github.com/tiercel/tiercel/internal/metalog"
)

// Preferred-leader balancing (Kafka's auto.leader.rebalance.enable): every
// leader.imbalance.check.interval.seconds, and tiercel.leader.rebalance.
// join.delay.ms after a broker joins, the live broker with the lowest id
// requests a move back for every partition whose preferred leader is live
// and not leading it (tiered topics, no move already pending). The leaders
// carry the moves out as handoffs. So a broker that was stopped (its
// partitions handed over) or crashed and came back gets its partitions
// back, and a new topic's spread survives restarts.

// balanceLeaders runs the checks until stop.
func (b *Broker) balanceLeaders(stop <-chan struct{}) {
	if !b.cfg.Bool("auto.leader.rebalance.enable") {
		return
	}
	every := time.Duration(b.cfg.Int64("leader.imbalance.check.interval.seconds")) * time.Second
	joinDelay := time.Duration(b.cfg.Int64("tiercel.leader.rebalance.join.delay.ms")) * time.Millisecond
	repeat(stop, b.joined, every, func() (time.Duration, bool) {
		if b.justJoined.Swap(false) {
			// Let the broker that joined settle (and others see it) first.
			select {
			case <-stop:
				return 0, false
			case <-time.After(joinDelay):
			}
		}
		b.requestPreferredMoves()
		return every, true
	})
}

// noteMembershipChange wakes the balancer when gossip reports a change.
func (b *Broker) noteMembershipChange() {
	b.kickMover()
	b.justJoined.Store(true)
	select {
	case b.joined <- struct{}{}:
	default:
	}
}

// requestPreferredMoves appends moves back to live preferred leaders.
func (b *Broker) requestPreferredMoves() {
	if b.lowestLive() != b.nodeID || !b.leading() {
		return
	}
	live := b.liveBrokerIDs()
	var ops []metalog.Op
	b.mu.RLock()
	for _, t := range b.topics {
		if !b.tiered(t.meta) {
			continue
		}
		for p := range t.meta.Partitions {
			pref, cur := t.meta.Preferred[p], t.meta.Leaders[p]
			if _, pending := t.meta.Moves[p]; pending || pref == cur.Broker || !live[pref] || !live[cur.Broker] {
				continue // placed, moving, or someone is missing
			}
			ops = append(ops, metalog.Op{RequestMove: &metalog.RequestMove{Topic: t.meta.Name, ID: t.meta.ID, Partition: p, To: pref, Expect: cur}})
		}
	}
	b.mu.RUnlock()
	if len(ops) == 0 {
		return
	}
	if _, err := b.commitMeta(ops...); err != nil {
		b.logger.Warn("requesting moves back to preferred leaders; the next check tries again", "err", err)
		return
	}
	b.logger.Info("moving partitions back to their preferred leaders", "partitions", len(ops))
}

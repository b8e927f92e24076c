package broker

import (
	"errors"
	"slices"

	"github.com/tiercel/tiercel/internal/metalog"
)

// A replicated partition's replicas move the way Kafka's do (KIP-455):
// AlterPartitionReassignments records the target, which widens the
// replicas to target ∪ original (metalog/reassign.go); the adding replicas
// copy from the leader as any follower does (follower.go) and the leader
// takes them into the ISR once caught up. When every target replica is in
// sync, the leader completes the reassignment, or, if it is not a target
// replica itself, first hands the leadership to one (the mover, as for a
// clean shutdown: produces stop, the followers fetch the tail, epoch + 1).
// The leaving replicas then delete their copies (reconcile, deleteCopy).

// readyReassignment is a reassignment of a partition led here whose
// target replicas are all in sync.
type readyReassignment struct {
	t *topic
	p int32
	r metalog.Reassignment
}

// readyReassignments lists the reassignments of partitions led here whose
// target replicas are all in the ISR.
func (b *Broker) readyReassignments() []readyReassignment {
	var out []readyReassignment
	for _, t := range b.ledTopics() {
		for p, r := range t.meta.Reassigning {
			if t.logs[p] != nil && allIn(r.Target, t.meta.ISR[p]) {
				out = append(out, readyReassignment{t, p, r})
			}
		}
	}
	return out
}

// driveReassignments completes the ready reassignments of partitions led
// here by a target replica, and kicks the mover for those that must
// change leader first. It runs with the ISR checks.
func (b *Broker) driveReassignments() {
	if !b.leading() {
		return
	}
	var ops []metalog.Op
	handOver := false
	for _, ready := range b.readyReassignments() {
		if !slices.Contains(ready.r.Target, b.nodeID) {
			handOver = true
			continue
		}
		m := ready.t.meta
		ops = append(ops, metalog.Op{CompleteReassignment: &metalog.CompleteReassignment{
			Topic: m.Name, ID: m.ID, Partition: ready.p, Expect: m.Leaders[ready.p], ExpectISR: slices.Clone(m.ISR[ready.p])}})
	}
	if handOver {
		b.kickMover()
	}
	if len(ops) == 0 {
		return
	}
	done, err := b.commitMeta(ops...)
	if err != nil && !errors.Is(err, metalog.ErrStale) {
		b.logger.Warn("completing reassignments", "err", err)
		return
	}
	for i, op := range ops {
		if err == nil && done[i] {
			c := op.CompleteReassignment
			b.logger.Info("reassignment done", "topic", c.Topic, "partition", c.Partition)
		}
	}
}

// reassignmentHandovers are the ready reassignments whose leader, this
// broker, is not a target replica: each goes to its first live target
// replica.
func (b *Broker) reassignmentHandovers(live map[int32]bool) []partitionMove {
	var moves []partitionMove
	for _, ready := range b.readyReassignments() {
		if slices.Contains(ready.r.Target, b.nodeID) {
			continue
		}
		for _, to := range ready.r.Target {
			if live[to] {
				moves = append(moves, partitionMove{t: ready.t, p: ready.p, to: to})
				break
			}
		}
	}
	return moves
}

func allIn(members, set []int32) bool {
	return !slices.ContainsFunc(members, func(r int32) bool { return !slices.Contains(set, r) })
}

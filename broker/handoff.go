package broker

import (
	"context"
	"fmt"
	"time"

	"github.com/tiercel/tiercel/internal/metalog"
)

// partitionMove is one partition led here to hand to broker to.
type partitionMove struct {
	t  *topic
	p  int32
	to int32
}

type partitionKey struct {
	topic     string
	partition int32
}

// handOff moves every partition this broker leads to the other live
// brokers when it shuts down: see handOffPartitions. Partitions of topics
// that are not tiered, and __consumer_offsets (its coordinator replays
// from the local log), stay, offline until the broker returns.
func (b *Broker) handOff(ctx context.Context) {
	targets := b.handoffTargets()
	if len(targets) == 0 || !b.leading() {
		return // alone, or replaced already (its lease lost)
	}
	// No produce is taken from here on, and no replica fetcher starts.
	b.movingOut.Store(true)
	// Stop copying, then leave the ISRs of the partitions followed here
	// (Kafka's controlled shutdown): a fetch after the leave would show
	// their leaders this broker caught up again, and they would take it
	// back in. The partitions handed over below leave with their handoff.
	b.stopFetchers()
	b.leaveISRs(ctx)
	var moves []partitionMove
	for _, t := range b.ledTopics() {
		if !b.tiered(t.meta) && !t.meta.replicated() {
			continue
		}
		for p, l := range t.logs {
			if l != nil {
				moves = append(moves, partitionMove{t: t, p: int32(p), to: targets[len(moves)%len(targets)]})
			}
		}
	}
	b.handOffPartitions(ctx, moves)
}

// handOffPartitions moves partitions led here to other brokers without
// losing a record, even with replication factor 1: it stops taking
// produces for them, waits for the appends in flight, rolls each one's
// active segment and uploads everything the bucket lacks, checks that the
// manifest ends where the log ends, and only then commits the new leaders
// (epoch + 1) in one metadata entry. The new leader fences the manifest
// and opens the partition at its end with the producer state of its last
// segment. A partition that cannot be flushed stays led here.
func (b *Broker) handOffPartitions(ctx context.Context, moves []partitionMove) {
	// One handoff at a time: a shutdown's and a requested move's of the
	// same partition would each flush it and one would find it gone.
	b.handoffMu.Lock()
	defer b.handoffMu.Unlock()
	if k := b.knob().HandoffDone; k != nil {
		defer k()
	}
	moves = b.stillLedHere(moves)
	if len(moves) == 0 {
		return
	}
	start := time.Now()
	for _, m := range moves {
		b.moving.Store(partitionKey{m.t.meta.Name, m.p}, true)
	}
	groups := false
	defer func() {
		for _, m := range moves {
			// What stayed led here (a failed flush or commit) takes
			// appends again; what moved stays sealed until led here again.
			if _, l := b.topicLog(m.t.meta.Name, m.p); l != nil {
				l.Unseal()
			}
			b.moving.Delete(partitionKey{m.t.meta.Name, m.p})
		}
		if groups {
			b.coord.refresh() // restarts the runners of partitions that stayed
		}
	}()
	b.produceGate.Lock() // the appends in flight are done
	b.produceGate.Unlock()
	// A produce that looked the partition up before the move began may
	// still be on its way to the log; sealed, the log refuses it, so the
	// flush below holds every record that was or will be acknowledged.
	for _, m := range moves {
		m.t.logs[m.p].Seal()
	}
	for _, m := range moves {
		if m.t.meta.Name == offsetsTopic {
			b.coord.release(m.p) // its group writes are done
			groups = true
		}
	}

	var ops []metalog.Op
	for _, m := range moves {
		if m.t.meta.replicated() && m.to != metalog.Parked {
			if op := b.replicatedHandoff(ctx, m); op != nil {
				ops = append(ops, *op)
			}
			continue
		}
		l := m.t.logs[m.p]
		var err error
		if m.t.meta.replicated() {
			// Parked: only records below the high watermark are uploaded,
			// so let the followers fetch the last ones first.
			err = b.waitFollowersCaughtUp(ctx, l)
		}
		if err == nil {
			err = l.Roll()
		}
		var end int64
		if err == nil {
			end, err = b.tierer.Flush(ctx, m.t.meta.ID, m.p)
		}
		if err == nil && end != l.EndOffset() {
			err = fmt.Errorf("the bucket holds offsets up to %d, the log up to %d", end, l.EndOffset())
		}
		if err != nil {
			b.logger.Error("handoff: keeping a partition that could not be uploaded whole",
				"topic", m.t.meta.Name, "partition", m.p, "err", err)
			continue
		}
		if k := b.knob().HandoffFlushed; k != nil {
			k(m.t.meta.Name, m.p)
		}
		ops = append(ops, metalog.Op{SetLeader: &metalog.SetLeader{Topic: m.t.meta.Name, Partition: m.p, Leader: m.to, Expect: m.t.meta.Leaders[m.p]}})
	}
	if len(ops) == 0 {
		return
	}
	moved, err := b.appendOps(ctx, ops)
	if err != nil {
		b.logger.Error("handoff: committing the new leaders failed; the partitions stay here", "err", err)
		return
	}
	b.logger.Info("handed partitions over to other brokers", "partitions", moved, "took", time.Since(start).Round(time.Millisecond))
}

// moveRequested carries out the moves requested in the metadata
// (AlterPartitionReassignments, ElectLeaders) for partitions led here, or
// parks every one of them while the cluster is paused, whenever reconcile
// or a membership change kicks it.
func (b *Broker) moveRequested(stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case <-b.moverKick:
		}
		if b.paused() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			b.handOffPartitions(ctx, b.parkMoves())
			cancel()
			continue
		}
		live := b.liveBrokerIDs()
		var moves []partitionMove
		for _, t := range b.ledTopics() {
			for p, to := range t.meta.Moves {
				if t.logs[p] == nil || !live[to] {
					continue // not ours, or its target is not up (yet)
				}
				if !b.tiered(t.meta) && !t.meta.replicated() {
					b.logger.Warn("cannot move a partition of a topic that is not tiered", "topic", t.meta.Name, "partition", p)
					continue
				}
				moves = append(moves, partitionMove{t: t, p: p, to: to})
			}
		}
		moves = append(moves, b.reassignmentHandovers(live)...)
		b.logger.Debug("requested moves", "moves", len(moves))
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		b.handOffPartitions(ctx, moves)
		cancel()
	}
}

// stillLedHere keeps the moves of partitions this broker still leads, with
// their topics' current metadata: moves listed before an earlier handoff
// finished may name partitions it moved.
func (b *Broker) stillLedHere(moves []partitionMove) []partitionMove {
	out := moves[:0:0]
	for _, m := range moves {
		if t, l := b.topicLog(m.t.meta.Name, m.p); l != nil && t.meta.ID == m.t.meta.ID {
			m.t = t
			out = append(out, m)
		}
	}
	return out
}

func (b *Broker) isMoving(topic string, p int32) bool {
	_, ok := b.moving.Load(partitionKey{topic, p})
	return ok
}

func (b *Broker) kickMover() {
	select {
	case b.moverKick <- struct{}{}:
	default:
	}
}

// handoffTargets are the other live brokers of this broker's region (all
// the others if it has none), spread over racks.
func (b *Broker) handoffTargets() []int32 {
	var others []liveBroker
	for _, lb := range b.liveBrokers() {
		if lb.id != b.nodeID {
			others = append(others, lb)
		}
	}
	return spread(inRegion(others, b.cfg.Get("tiercel.region")))
}

// ledTopics is a snapshot of the topics with a partition led here.
func (b *Broker) ledTopics() []*topic {
	b.mu.RLock()
	defer b.mu.RUnlock()
	var out []*topic
	for _, t := range b.topics {
		for _, l := range t.logs {
			if l != nil {
				out = append(out, t)
				break
			}
		}
	}
	return out
}

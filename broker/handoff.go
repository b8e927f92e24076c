package broker

import (
	"context"
	"fmt"
	"time"

	"github.com/tiercel/tiercel/internal/metalog"
)

// handOff moves every partition this broker leads to the other live
// brokers without losing a record, even with replication factor 1: it
// stops taking produces, waits for the appends in flight, rolls each
// partition's active segment and uploads everything the bucket lacks,
// checks that the manifest ends where the log ends, and only then commits
// the new leaders (epoch + 1) in one metadata entry. The new leader opens
// the partition at the manifest's end with the producer state of its last
// segment. A partition that cannot be flushed stays led here (and offline
// while this broker is down): moving it would lose its untiered tail.
// Partitions of topics that are not tiered, and __consumer_offsets (its
// coordinator replays from the local log), stay too.
func (b *Broker) handOff(ctx context.Context) {
	targets := b.handoffTargets()
	if len(targets) == 0 || !b.leading() {
		return // alone, or replaced already (its lease lost)
	}
	start := time.Now()
	b.movingOut.Store(true)
	b.produceGate.Lock() // the appends in flight are done
	b.produceGate.Unlock()

	var ops []metalog.Op
	next := 0
	for _, t := range b.ledTopics() {
		if !b.tiered(t.meta) {
			continue
		}
		for p, l := range t.logs {
			if l == nil {
				continue
			}
			err := l.Roll()
			var end int64
			if err == nil {
				end, err = b.tierer.Flush(ctx, t.meta.ID, int32(p))
			}
			if err == nil && end != l.EndOffset() {
				err = fmt.Errorf("the bucket holds offsets up to %d, the log up to %d", end, l.EndOffset())
			}
			if err != nil {
				b.logger.Error("handoff: keeping a partition that could not be uploaded whole; it is offline until this broker returns",
					"topic", t.meta.Name, "partition", p, "err", err)
				continue
			}
			to := targets[next%len(targets)]
			next++
			ops = append(ops, metalog.Op{SetLeader: &metalog.SetLeader{Topic: t.meta.Name, Partition: int32(p), Leader: to, Expect: t.meta.Leaders[p]}})
		}
	}
	if len(ops) == 0 {
		return
	}
	b.meta.mu.Lock()
	defer b.meta.mu.Unlock()
	done, err := b.appendMeta(ctx, ops...)
	if err != nil {
		b.logger.Error("handoff: committing the new leaders failed; the partitions stay here", "err", err)
		return
	}
	moved := 0
	for _, d := range done {
		if d {
			moved++
		}
	}
	b.logger.Info("handed partitions over to other brokers", "partitions", moved, "to", targets, "took", time.Since(start).Round(time.Millisecond))
}

// handoffTargets are the other live brokers, racks alternating.
func (b *Broker) handoffTargets() []int32 {
	var others []liveBroker
	for _, lb := range b.liveBrokers() {
		if lb.id != b.nodeID {
			others = append(others, lb)
		}
	}
	return rackAlternating(others)
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

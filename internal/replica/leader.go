// Package replica is the replication state machine of one partition (the
// replication issue, docs/design.md "Replication"): what the leader knows
// of its followers, the in-sync replica set (ISR) it proposes to the
// metadata log, the high watermark, and where a follower truncates its log
// when a leader changes. Pure: no I/O, no clock (times are given), so it is
// tested against a model of the log over thousands of seeds.
package replica

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// Config is a partition's replication settings.
type Config struct {
	LagTime time.Duration // replica.lag.time.max.ms
	MinISR  int           // min.insync.replicas
}

var (
	// ErrNotEnoughReplicas is NOT_ENOUGH_REPLICAS: an acks=all produce
	// refused before appending because the ISR is below min.insync.replicas.
	ErrNotEnoughReplicas = errors.New("replica: fewer in-sync replicas than min.insync.replicas")
	// ErrUnknownReplica is a fetch from a broker that is not a replica.
	ErrUnknownReplica = errors.New("replica: not a replica of the partition")
	// ErrOffsetOutOfRange is a follower fetching past the leader's log end.
	ErrOffsetOutOfRange = errors.New("replica: fetch offset past the leader's log end")
)

// follower is what the leader knows of one follower, from its fetches.
type follower struct {
	epoch            int64 // its broker epoch (registration) as of its fetches, -1 unknown
	leo              int64 // the offset it fetched from last: its log end offset
	lastCaughtUp     time.Duration
	lastFetch        time.Duration
	lastFetchLeaderE int64 // the leader's log end offset at that fetch
}

// Leader is a partition's replication state on its leader, for one
// leader epoch. The committed ISR is what the metadata log says; a change
// the leader proposed and that is not committed yet is pending, and the
// high watermark is computed over the union of both (Kafka's "maximal
// ISR"): a replica being removed still holds the watermark back until its
// removal is committed, because until then it may be elected.
type Leader struct {
	cfg        Config
	self       int32
	epoch      int32
	epochStart int64 // the log end when this epoch began: followers must pass it to join the ISR
	leo        int64
	hw         int64
	isr        []int32
	pending    []int32 // the ISR proposed and not committed yet, or nil
	followers  map[int32]*follower

	// hwFromProposal computes the watermark over the proposal alone: the
	// broken rule TestModelFindsABrokenRule must catch.
	hwFromProposal bool
}

// NewLeader is the state of a broker that became the leader at epoch,
// with its log ending at leo, the high watermark it knew (hw), the
// partition's replicas and the committed ISR. Followers count as caught up
// now, as Kafka does for a new leader.
func NewLeader(cfg Config, self, epoch int32, replicas, isr []int32, leo, hw int64, now time.Duration) *Leader {
	l := &Leader{cfg: cfg, self: self, epoch: epoch, epochStart: leo, leo: leo, hw: min(hw, leo), isr: sorted(isr), followers: map[int32]*follower{}}
	for _, r := range replicas {
		if r != self {
			l.followers[r] = &follower{epoch: -1, leo: -1, lastCaughtUp: now, lastFetch: now}
		}
	}
	return l
}

// Epoch is the leader epoch this state is for.
func (l *Leader) Epoch() int32 { return l.epoch }

// HighWatermark is the offset below which every record is on every replica
// of the (maximal) ISR: what consumers may read and acks=all waits for.
func (l *Leader) HighWatermark() int64 { return l.hw }

// ISR is the committed in-sync replica set.
func (l *Leader) ISR() []int32 { return slices.Clone(l.isr) }

// Pending is the ISR proposed and not committed yet (nil if none).
func (l *Leader) Pending() []int32 { return slices.Clone(l.pending) }

// CheckProduce refuses an acks=all produce before it is appended when the
// committed ISR is smaller than min.insync.replicas.
func (l *Leader) CheckProduce() error {
	if len(l.isr) < l.cfg.MinISR {
		return fmt.Errorf("%w: %d in sync, %d required", ErrNotEnoughReplicas, len(l.isr), l.cfg.MinISR)
	}
	return nil
}

// Appended records the leader's new log end offset.
func (l *Leader) Appended(leo int64) {
	l.leo = max(l.leo, leo)
	l.advance()
}

// Fetched records a follower's fetch from offset (its log end offset) at
// time now, as Kafka does: it has caught up if it reached the leader's log
// end, or the log end of its previous fetch (then as of that fetch).
func (l *Leader) Fetched(replica int32, offset int64, now time.Duration) error {
	return l.FetchedAs(replica, -1, offset, now)
}

// FetchedAs is Fetched by the follower's process registered at broker
// epoch brokerEpoch (-1: unknown). A new epoch is a restarted broker: what
// its previous process held counts for nothing, and a proposal naming it
// carries the epoch it caught up as (Epochs), so that the metadata log can
// refuse it if the broker restarted again meanwhile (KIP-903).
func (l *Leader) FetchedAs(replica int32, brokerEpoch int64, offset int64, now time.Duration) error {
	f := l.followers[replica]
	if f == nil {
		return fmt.Errorf("%w: broker %d", ErrUnknownReplica, replica)
	}
	if offset > l.leo {
		return fmt.Errorf("%w: %d > %d", ErrOffsetOutOfRange, offset, l.leo)
	}
	if brokerEpoch >= 0 && f.epoch != brokerEpoch {
		if f.epoch >= 0 {
			f.leo, f.lastCaughtUp, f.lastFetchLeaderE = -1, l.neverCaughtUp(), -1
		}
		f.epoch = brokerEpoch
	}
	switch {
	case offset < f.leo:
		// Its log went back within one epoch: it lost records it held
		// (restarted on an empty disk, or lost unsynced writes), some of
		// them maybe committed. Out of the ISR at the next proposal: it
		// must not be elected before it has them again.
		f.lastCaughtUp = l.neverCaughtUp()
	case offset >= l.leo:
		f.lastCaughtUp = now
	case offset >= f.lastFetchLeaderE:
		f.lastCaughtUp = max(f.lastCaughtUp, f.lastFetch)
	}
	f.leo, f.lastFetch, f.lastFetchLeaderE = offset, now, l.leo
	l.advance()
	return nil
}

// advance moves the high watermark to the smallest log end offset of the
// maximal ISR; it never goes back.
func (l *Leader) advance() {
	members := l.maximalISR()
	if l.hwFromProposal && l.pending != nil {
		members = l.pending
	}
	hw := l.leo
	for _, r := range members {
		if r == l.self {
			continue
		}
		f := l.followers[r]
		if f == nil {
			continue
		}
		hw = min(hw, f.leo)
	}
	l.hw = max(l.hw, hw)
}

func (l *Leader) maximalISR() []int32 {
	out := slices.Clone(l.isr)
	for _, r := range l.pending {
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out
}

// Propose returns the ISR to commit to the metadata log at time now, if it
// should change: followers in it that have not caught up for LagTime
// leave, followers out of it whose log reached the high watermark and the
// start of this epoch join. One proposal at a time: nothing while one is
// pending.
func (l *Leader) Propose(now time.Duration) ([]int32, bool) {
	if l.pending != nil {
		return nil, false
	}
	var next []int32
	for _, r := range l.isr {
		if f := l.followers[r]; r == l.self || f != nil && now-f.lastCaughtUp <= l.cfg.LagTime {
			next = append(next, r)
		}
	}
	for r, f := range l.followers {
		if !slices.Contains(l.isr, r) && f.leo >= l.hw && f.leo >= l.epochStart && now-f.lastCaughtUp <= l.cfg.LagTime {
			next = append(next, r)
		}
	}
	next = sorted(next)
	if slices.Equal(next, l.isr) {
		return nil, false
	}
	l.pending = next
	return slices.Clone(next), true
}

// Committed records that the metadata log holds isr (the proposal, or a
// change made by someone else: the leader takes the log's word).
func (l *Leader) Committed(isr []int32) {
	if l.pending != nil && slices.Equal(sorted(isr), l.isr) {
		// Nothing changed (the log was applied again): the proposal may
		// still be committed, so its members keep holding the watermark.
		return
	}
	for _, r := range l.maximalISR() {
		if f := l.followers[r]; f != nil && !slices.Contains(isr, r) {
			// Out by the log's word (a broker that left the ISR as it shut
			// down): it rejoins only after catching up again, not on the
			// strength of its fetches from before.
			f.lastCaughtUp = l.neverCaughtUp()
		}
	}
	l.isr, l.pending = sorted(isr), nil
	l.advance()
}

// neverCaughtUp is a last caught-up time that keeps a follower out of the
// ISR until a fetch of its own catches up again.
func (l *Leader) neverCaughtUp() time.Duration { return -l.cfg.LagTime - 1<<40 }

// Epochs is the broker epochs of the given followers as of their last
// fetches (those known).
func (l *Leader) Epochs(ids []int32) map[int32]int64 {
	out := map[int32]int64{}
	for _, r := range ids {
		if f := l.followers[r]; f != nil && f.epoch >= 0 {
			out[r] = f.epoch
		}
	}
	return out
}

// SetReplicas changes the partition's replicas (a reassignment), after
// the ISR that goes with them is Committed: a new replica is tracked from
// now, as every follower is when an epoch starts; one that is no longer a
// replica is forgotten.
func (l *Leader) SetReplicas(replicas []int32, now time.Duration) {
	for r := range l.followers {
		if !slices.Contains(replicas, r) {
			delete(l.followers, r)
		}
	}
	for _, r := range replicas {
		if r != l.self && l.followers[r] == nil {
			l.followers[r] = &follower{epoch: -1, leo: -1, lastCaughtUp: now, lastFetch: now}
		}
	}
	l.advance()
}

// Rejected records that the proposal was not committed (it may propose
// again).
func (l *Leader) Rejected() {
	l.pending = nil
	l.advance()
}

func sorted(ids []int32) []int32 {
	out := slices.Clone(ids)
	slices.Sort(out)
	return out
}

package broker

// Knobs are hooks for tests that hold a request or a handoff at a chosen
// point, to force a race that timing alone makes rare (as pebble's and
// CockroachDB's testing knobs do). Every hook is optional; production
// leaves Options.Knobs nil.
type Knobs struct {
	// ProduceLookedUp runs in a produce request after it looked up the
	// partition's topic and before it checks who leads the partition.
	ProduceLookedUp func(topic string, partition int32)
	// HandoffFlushed runs in a handoff after a partition's log was flushed
	// to the bucket and before the new leader is committed.
	HandoffFlushed func(topic string, partition int32)
	// HandoffDone runs when a handoff has finished, moved or not.
	HandoffDone func()
	// FollowerFetch runs in broker node's fetcher before each fetch from
	// leader: a hook that sleeps holds the follower back.
	FollowerFetch func(node, leader int32)
	// GossipLeaving runs in a shutdown just before the broker leaves the
	// gossip (which can take seconds): a hook that sleeps widens that
	// window.
	GossipLeaving func()
}

// knob returns the knobs, never nil.
func (b *Broker) knob() *Knobs {
	if b.knobs == nil {
		return &noKnobs
	}
	return b.knobs
}

var noKnobs Knobs

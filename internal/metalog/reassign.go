package metalog

import (
	"fmt"
	"slices"
)

// Reassigning a replicated partition's replicas (KIP-455, done the way
// Kafka's controller does it): ReassignReplicas records the target and
// widens the replica set to target ∪ original, so the adding replicas
// start copying; the leader commits CompleteReassignment once every target
// replica is in the ISR and it is one of them (it hands the leadership to
// a target replica first otherwise), which narrows the replicas to the
// target and the ISR to its members. A reassignment back to the original
// replicas cancels one in progress.

// Reassignment is a replicated partition's reassignment in progress.
type Reassignment struct {
	Target   []int32 `json:"target"`
	Original []int32 `json:"original"`
}

// Adding is the target replicas that were not replicas before.
func (r Reassignment) Adding() []int32 { return without(r.Target, r.Original) }

// Removing is the original replicas that are not in the target.
func (r Reassignment) Removing() []int32 { return without(r.Original, r.Target) }

// ReassignReplicas starts, replaces or (Target equal to the original
// replicas) cancels partition Partition's reassignment, if its replicas
// are still ExpectReplicas.
type ReassignReplicas struct {
	Topic          string  `json:"topic"`
	ID             string  `json:"id"`
	Partition      int32   `json:"partition"`
	ExpectReplicas []int32 `json:"expectReplicas"`
	Target         []int32 `json:"target"`
}

// CompleteReassignment ends a reassignment whose target replicas are all
// in sync, committed by its leader Expect (a target replica) against the
// ISR it knows (ExpectISR).
type CompleteReassignment struct {
	Topic     string  `json:"topic"`
	ID        string  `json:"id"`
	Partition int32   `json:"partition"`
	Expect    Leader  `json:"expect"`
	ExpectISR []int32 `json:"expectIsr"`
}

// CloneReassignments is a deep copy (nil for nil).
func CloneReassignments(rs map[int32]Reassignment) map[int32]Reassignment {
	if rs == nil {
		return nil
	}
	out := make(map[int32]Reassignment, len(rs))
	for p, r := range rs {
		out[p] = Reassignment{Target: slices.Clone(r.Target), Original: slices.Clone(r.Original)}
	}
	return out
}

// ReassigningOf is partition p's reassignment in progress, if any.
func (t *Topic) ReassigningOf(p int32) (Reassignment, bool) {
	r, ok := t.Reassigning[p]
	return r, ok
}

func (s *State) checkReassign(c *ReassignReplicas) error {
	t := s.Topics[c.Topic]
	if t == nil || t.ID != c.ID || c.Partition < 0 || c.Partition >= t.Partitions() || len(t.Replicas) == 0 {
		return fmt.Errorf("%w: replicated partition %s-%d", ErrNotFound, c.Topic, c.Partition)
	}
	if !slices.Equal(t.Replicas[c.Partition], c.ExpectReplicas) {
		return fmt.Errorf("%w: %s-%d has replicas %v, not %v", ErrStale, c.Topic, c.Partition, t.Replicas[c.Partition], c.ExpectReplicas)
	}
	if len(c.Target) == 0 || hasDuplicates(c.Target) || slices.ContainsFunc(c.Target, func(r int32) bool { return r < 0 }) {
		return fmt.Errorf("%w: replicas %v for %s-%d", ErrInvalid, c.Target, c.Topic, c.Partition)
	}
	r, inProgress := t.Reassigning[c.Partition]
	next, _, _ := NextReplicas(t.Replicas[c.Partition], r, inProgress, c.Target)
	if leader := t.Leaders[c.Partition].Broker; leader >= 0 && !slices.Contains(next, leader) {
		return fmt.Errorf("%w: %s-%d is led by broker %d, which would no longer be a replica", ErrInvalid, c.Topic, c.Partition, leader)
	}
	return nil
}

// NextReplicas is a partition's replicas once target is requested, given
// its replicas now and the reassignment in progress (r, if inProgress):
// the target first, then the original replicas leaving. original is what
// a cancel goes back to; pending is false when target has the original
// members (a cancel, or a new order: its first is the preferred leader).
func NextReplicas(replicas []int32, r Reassignment, inProgress bool, target []int32) (next, original []int32, pending bool) {
	original = replicas
	if inProgress {
		original = r.Original
	}
	if sameMembers(original, target) {
		return slices.Clone(target), original, false
	}
	return append(slices.Clone(target), without(original, target)...), original, true
}

func (s *State) applyReassign(c *ReassignReplicas) {
	t := s.Topics[c.Topic]
	r, inProgress := t.Reassigning[c.Partition]
	next, orig, pending := NextReplicas(t.Replicas[c.Partition], r, inProgress, c.Target)
	t.bump(c.Partition)
	t.Replicas[c.Partition] = next
	t.ISR[c.Partition] = slices.DeleteFunc(slices.Clone(t.ISR[c.Partition]), func(r int32) bool { return !slices.Contains(next, r) })
	if !pending {
		delete(t.Reassigning, c.Partition)
		if int(c.Partition) < len(t.Preferred) {
			t.Preferred[c.Partition] = next[0]
		}
		return
	}
	if t.Reassigning == nil {
		t.Reassigning = map[int32]Reassignment{}
	}
	t.Reassigning[c.Partition] = Reassignment{Target: slices.Clone(c.Target), Original: slices.Clone(orig)}
}

func (s *State) checkComplete(c *CompleteReassignment) error {
	t := s.Topics[c.Topic]
	if t == nil || t.ID != c.ID || c.Partition < 0 || c.Partition >= t.Partitions() {
		return fmt.Errorf("%w: partition %s-%d", ErrNotFound, c.Topic, c.Partition)
	}
	r, ok := t.Reassigning[c.Partition]
	if !ok {
		return fmt.Errorf("%w: no reassignment of %s-%d in progress", ErrNotFound, c.Topic, c.Partition)
	}
	if t.Leaders[c.Partition] != c.Expect || !slices.Equal(t.ISR[c.Partition], c.ExpectISR) {
		return fmt.Errorf("%w: %s-%d changed leader or ISR", ErrStale, c.Topic, c.Partition)
	}
	if !slices.Contains(r.Target, c.Expect.Broker) || slices.ContainsFunc(r.Target, func(b int32) bool { return !slices.Contains(c.ExpectISR, b) }) {
		return fmt.Errorf("%w: %s-%d: target %v, leader %d, ISR %v", ErrInvalid, c.Topic, c.Partition, r.Target, c.Expect.Broker, c.ExpectISR)
	}
	return nil
}

func (s *State) applyComplete(c *CompleteReassignment) {
	t := s.Topics[c.Topic]
	r := t.Reassigning[c.Partition]
	t.bump(c.Partition)
	t.Replicas[c.Partition] = slices.Clone(r.Target)
	t.ISR[c.Partition] = slices.DeleteFunc(slices.Clone(t.ISR[c.Partition]), func(b int32) bool { return !slices.Contains(r.Target, b) })
	if int(c.Partition) < len(t.Preferred) {
		t.Preferred[c.Partition] = r.Target[0] // Kafka's preferred leader: the first replica
	}
	delete(t.Reassigning, c.Partition)
}

// without is a's members not in b, in a's order.
func without(a, b []int32) []int32 {
	var out []int32
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

func sameMembers(a, b []int32) bool {
	x, y := slices.Clone(a), slices.Clone(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y)
}

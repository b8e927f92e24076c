// Package metalog is the cluster metadata log (docs/design.md, "Control
// plane"): numbered entries in the bucket, each created with a create-only
// PUT, applied in order by a pure state machine, so every broker that
// applies the same entries holds the same state. This file is the state
// machine: no I/O, no clock.
package metalog

import (
	"fmt"
	"maps"
	"slices"
	"sort"
)

// Parked is the leader of a partition that lives only in the bucket: its
// last leader rolled and uploaded it and let go (the cluster was paused);
// the next leader adopts it at epoch + 1 (docs/design.md, "Pause").
const Parked int32 = -1

// Leader is a partition's leader and leader epoch.
type Leader struct {
	Broker int32 `json:"broker"`
	Epoch  int32 `json:"epoch"`
}

// Topic is one topic's metadata.
type Topic struct {
	Name    string            `json:"name"`
	ID      string            `json:"id"`
	Configs map[string]string `json:"configs,omitempty"`
	Leaders []Leader          `json:"leaders"` // by partition
	// Preferred is each partition's preferred leader: where it was placed
	// (ElectLeaders moves it back there).
	Preferred []int32 `json:"preferred,omitempty"`
	// Replicas and ISR are each partition's replica assignment and
	// in-sync replicas, for topics created with more than one replica
	// (issue 8); nil for replication factor 1 (the leader alone).
	Replicas [][]int32 `json:"replicas,omitempty"`
	ISR      [][]int32 `json:"isr,omitempty"`
	// Moves are requested leadership moves not done yet: partition ->
	// target broker. The current leader carries them out (roll, upload,
	// SetLeader), which clears them.
	Moves map[int32]int32 `json:"moves,omitempty"`
	// Reassigning are the reassignments of replicated partitions in
	// progress (reassign.go).
	Reassigning map[int32]Reassignment `json:"reassigning,omitempty"`
	// PartitionEpochs count the changes of each replicated partition's
	// leader, ISR or replicas (absent: 0), as KRaft's partition epoch: an
	// ISR change proposed against an older one is skipped.
	PartitionEpochs map[int32]int32 `json:"partitionEpochs,omitempty"`
}

// PartitionEpoch is partition p's partition epoch.
func (t *Topic) PartitionEpoch(p int32) int32 { return t.PartitionEpochs[p] }

func (t *Topic) bump(p int32) {
	if t.PartitionEpochs == nil {
		t.PartitionEpochs = map[int32]int32{}
	}
	t.PartitionEpochs[p]++
}

// PreferredLeader is partition p's preferred leader (its current one for
// topics created before preferences were recorded).
func (t *Topic) PreferredLeader(p int32) int32 {
	if int(p) < len(t.Preferred) {
		return t.Preferred[p]
	}
	return t.Leaders[p].Broker
}

// State is the applied metadata after entry Seq.
type State struct {
	Seq       int64             `json:"seq"`
	ClusterID string            `json:"clusterId,omitempty"`
	Topics    map[string]*Topic `json:"topics"`
	Brokers   map[int32]string  `json:"brokers"` // id -> incarnation
	// Places are the rack and region each broker registered last: where
	// leadership stays when a broker that is not live is replaced.
	Places map[int32]BrokerPlace `json:"places,omitempty"`
	// BrokerConfigs are the cluster-wide dynamic broker configs
	// (IncrementalAlterConfigs on the default broker resource).
	BrokerConfigs map[string]string `json:"brokerConfigs,omitempty"`
	// NextProducerID is the first producer id no broker has reserved.
	NextProducerID int64 `json:"nextProducerId"`
	// NextBrokerID is the next id AllocateBrokerID hands out (at least its
	// Min).
	NextBrokerID int32 `json:"nextBrokerId,omitempty"`
	// BrokerEpochs are the entry numbers of each broker's last
	// registration: its broker epoch (KIP-903), new at every start.
	BrokerEpochs map[int32]int64 `json:"brokerEpochs,omitempty"`
	// ProducerBlocks is the first id of the newest block each writer
	// reserved: how a writer learns its block even when its append's
	// answer was lost and later entries were applied before it found out.
	ProducerBlocks map[int32]int64 `json:"producerBlocks,omitempty"`
}

// NewState is the state before the first entry.
func NewState() State {
	return State{Topics: map[string]*Topic{}, Brokers: map[int32]string{}, ProducerBlocks: map[int32]int64{}}
}

// Partitions is a topic's partition count.
func (t *Topic) Partitions() int32 { return int32(len(t.Leaders)) }

// ReplicasOf is partition p's replicas (its leader alone when the topic
// has one replica).
func (t *Topic) ReplicasOf(p int32) []int32 {
	if int(p) < len(t.Replicas) {
		return t.Replicas[p]
	}
	return []int32{t.Leaders[p].Broker}
}

// ISROf is partition p's in-sync replicas.
func (t *Topic) ISROf(p int32) []int32 {
	if int(p) < len(t.ISR) {
		return t.ISR[p]
	}
	return []int32{t.Leaders[p].Broker}
}

// Op is one change; exactly one field is set.
type Op struct {
	InitCluster          *InitCluster          `json:"initCluster,omitempty"`
	CreateTopic          *CreateTopic          `json:"createTopic,omitempty"`
	DeleteTopic          *DeleteTopic          `json:"deleteTopic,omitempty"`
	AddPartitions        *AddPartitions        `json:"addPartitions,omitempty"`
	SetTopicConfigs      *SetTopicConfigs      `json:"setTopicConfigs,omitempty"`
	SetBrokerConfigs     *SetBrokerConfigs     `json:"setBrokerConfigs,omitempty"`
	AllocateProducerIDs  *AllocateProducerIDs  `json:"allocateProducerIds,omitempty"`
	SetLeader            *SetLeader            `json:"setLeader,omitempty"`
	RequestMove          *RequestMove          `json:"requestMove,omitempty"`
	CancelMove           *CancelMove           `json:"cancelMove,omitempty"`
	RegisterBroker       *RegisterBroker       `json:"registerBroker,omitempty"`
	AllocateBrokerID     *AllocateBrokerID     `json:"allocateBrokerId,omitempty"`
	SetISR               *SetISR               `json:"setIsr,omitempty"`
	ReassignReplicas     *ReassignReplicas     `json:"reassignReplicas,omitempty"`
	CompleteReassignment *CompleteReassignment `json:"completeReassignment,omitempty"`
}

// SetISR changes a replicated partition's in-sync replicas, if it is
// still led by Expect with ExpectISR in sync (Kafka's AlterPartition: only
// the leader proposes, one change at a time, and a change made against a
// stale view is skipped). The ISR must hold the leader and only replicas.
type SetISR struct {
	Topic     string  `json:"topic"`
	ID        string  `json:"id"`
	Partition int32   `json:"partition"`
	Expect    Leader  `json:"expect"`
	ExpectISR []int32 `json:"expectIsr"`
	ISR       []int32 `json:"isr"`
	// ExpectPartitionEpoch, if set, is the partition epoch the change was
	// proposed against (nothing else changed the partition since).
	ExpectPartitionEpoch *int32 `json:"expectPartitionEpoch,omitempty"`
	// AddedEpochs are the broker epochs (State.BrokerEpochs) of the
	// members the change adds, as the leader saw them catch up: a broker
	// that registered again since (restarted, perhaps on an empty disk) is
	// not added (KIP-903).
	AddedEpochs map[int32]int64 `json:"addedEpochs,omitempty"`
}

// AllocateBrokerID gives a starting broker with no configured id the next
// unused id, at least Min: it is registered with the broker's Incarnation,
// which is how the broker finds its id in the state.
type AllocateBrokerID struct {
	Incarnation string `json:"incarnation"`
	Min         int32  `json:"min"`
}

// AllocatedBrokerID is the id allocated to incarnation, or -1.
func (s *State) AllocatedBrokerID(incarnation string) int32 {
	for id, inc := range s.Brokers {
		if inc == incarnation {
			return id
		}
	}
	return -1
}

// RequestMove asks the leader of a partition (if it is still Expect) to
// hand it over to broker To.
type RequestMove struct {
	Topic     string `json:"topic"`
	ID        string `json:"id"`
	Partition int32  `json:"partition"`
	To        int32  `json:"to"`
	Expect    Leader `json:"expect"`
}

// CancelMove withdraws a requested move that has not happened.
type CancelMove struct {
	Topic     string `json:"topic"`
	ID        string `json:"id"`
	Partition int32  `json:"partition"`
}

// InitCluster names the cluster; only the first one in the log applies,
// so brokers starting together on an empty bucket agree on one id.
type InitCluster struct {
	ClusterID string `json:"clusterId"`
}

// AddPartitions grows topic Name (if it still has id ID and From
// partitions: two brokers growing one topic at once must not both add) by
// one partition per entry of Leaders.
type AddPartitions struct {
	Name    string  `json:"name"`
	ID      string  `json:"id"`
	From    int32   `json:"from"`
	Leaders []int32 `json:"leaders"`
	// Replicas of each new partition: required for a replicated topic.
	Replicas [][]int32 `json:"replicas,omitempty"`
}

// SetTopicConfigs replaces topic Name's config overrides, if it still has
// id ID.
type SetTopicConfigs struct {
	Name    string            `json:"name"`
	ID      string            `json:"id"`
	Configs map[string]string `json:"configs,omitempty"`
}

// SetBrokerConfigs replaces the cluster-wide dynamic broker configs.
type SetBrokerConfigs struct {
	Configs map[string]string `json:"configs,omitempty"`
}

// AllocateProducerIDs reserves the next Count producer ids for the
// entry's writer: the block is [NextProducerID before, NextProducerID
// after).
type AllocateProducerIDs struct {
	Count int64 `json:"count"`
}

// CreateTopic adds a topic whose partitions are led by Leaders at epoch 0.
type CreateTopic struct {
	Name    string            `json:"name"`
	ID      string            `json:"id"`
	Leaders []int32           `json:"leaders"`
	Configs map[string]string `json:"configs,omitempty"`
	// Replicas, for more than one replica: each partition's replicas,
	// its leader among them; all start in sync.
	Replicas [][]int32 `json:"replicas,omitempty"`
}

// DeleteTopic removes a topic, if it still has this id.
type DeleteTopic struct {
	Name string `json:"name"`
	ID   string `json:"id"`
}

// SetLeader moves a partition's leadership to Leader with epoch Expect.Epoch
// + 1, if the partition is still led by Expect: two brokers racing for one
// partition both get their entry into the log, and only the first in log
// order takes effect.
type SetLeader struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Leader    int32  `json:"leader"`
	Expect    Leader `json:"expect"`
	// ExpectIncarnation, if set, is the incarnation of Expect.Broker whose
	// lease a takeover revoked: the op is skipped if that broker has
	// registered a newer incarnation since. A broker registers before it
	// leads anything, so a takeover whose entry reaches the log late (its
	// writer paused between the revoke and the append) cannot move a
	// partition away from a restarted leader that never saw the entry.
	ExpectIncarnation string `json:"expectIncarnation,omitempty"`
	// ISR, for a replicated partition, replaces its in-sync replicas with
	// the new leader's election (the old leader leaves the ISR when it
	// crashed or shut down, as KRaft removes a fenced broker). It must hold
	// the new leader and only replicas. Nil keeps the ISR.
	ISR []int32 `json:"isr,omitempty"`
}

// RegisterBroker records a broker id's current incarnation, and where it
// runs.
type RegisterBroker struct {
	ID          int32  `json:"id"`
	Incarnation string `json:"incarnation"`
	Rack        string `json:"rack,omitempty"`
	Region      string `json:"region,omitempty"`
	// Unclean: the broker did not shut down cleanly before (it crashed,
	// or its data directory is new): its copies may lack records it held,
	// so it leaves every ISR it shares with other replicas, handing the
	// partitions it led to another in-sync replica (KIP-903's broker
	// epochs, here its incarnation).
	Unclean bool `json:"unclean,omitempty"`
}

// BrokerPlace is where a registered broker runs.
type BrokerPlace struct {
	Rack   string `json:"rack,omitempty"`
	Region string `json:"region,omitempty"`
}

// Entry is one numbered log entry.
type Entry struct {
	Seq    int64  `json:"seq"`
	Writer int32  `json:"writer"`
	Nonce  string `json:"nonce"` // makes every writer's bytes unique, for settling a lost answer
	Ops    []Op   `json:"ops"`
}

// Check says why op cannot apply to s, or nil.
func (s *State) Check(op Op) error {
	switch {
	case op.InitCluster != nil:
		if s.ClusterID != "" {
			return fmt.Errorf("%w: cluster %s", ErrExists, s.ClusterID)
		}
		if op.InitCluster.ClusterID == "" {
			return fmt.Errorf("%w: empty cluster id", ErrInvalid)
		}
	case op.AddPartitions != nil:
		a := op.AddPartitions
		t := s.Topics[a.Name]
		if t == nil || t.ID != a.ID {
			return fmt.Errorf("%w: topic %q with id %s", ErrNotFound, a.Name, a.ID)
		}
		if t.Partitions() != a.From {
			return fmt.Errorf("%w: topic %q has %d partitions, not %d", ErrStale, a.Name, t.Partitions(), a.From)
		}
		if len(a.Leaders) == 0 {
			return fmt.Errorf("%w: no partitions to add to %q", ErrInvalid, a.Name)
		}
		if (len(t.Replicas) > 0) != (a.Replicas != nil) || a.Replicas != nil && len(a.Replicas) != len(a.Leaders) {
			return fmt.Errorf("%w: partitions added to %q need replicas exactly when it has more than one", ErrInvalid, a.Name)
		}
		for p, rs := range a.Replicas {
			if !slices.Contains(rs, a.Leaders[p]) || hasDuplicates(rs) {
				return fmt.Errorf("%w: new partition of %q: replicas %v with leader %d", ErrInvalid, a.Name, rs, a.Leaders[p])
			}
		}
	case op.SetTopicConfigs != nil:
		c := op.SetTopicConfigs
		if t := s.Topics[c.Name]; t == nil || t.ID != c.ID {
			return fmt.Errorf("%w: topic %q with id %s", ErrNotFound, c.Name, c.ID)
		}
	case op.SetBrokerConfigs != nil:
	case op.AllocateProducerIDs != nil:
		if op.AllocateProducerIDs.Count <= 0 {
			return fmt.Errorf("%w: a block of %d producer ids", ErrInvalid, op.AllocateProducerIDs.Count)
		}
	case op.CreateTopic != nil:
		c := op.CreateTopic
		if _, ok := s.Topics[c.Name]; ok {
			return fmt.Errorf("%w: topic %q", ErrExists, c.Name)
		}
		if len(c.Leaders) == 0 || c.ID == "" {
			return fmt.Errorf("%w: topic %q with %d partitions and id %q", ErrInvalid, c.Name, len(c.Leaders), c.ID)
		}
		if c.Replicas != nil {
			if len(c.Replicas) != len(c.Leaders) {
				return fmt.Errorf("%w: topic %q with %d partitions and %d replica lists", ErrInvalid, c.Name, len(c.Leaders), len(c.Replicas))
			}
			for p, rs := range c.Replicas {
				if !slices.Contains(rs, c.Leaders[p]) || hasDuplicates(rs) {
					return fmt.Errorf("%w: partition %d of %q: replicas %v with leader %d", ErrInvalid, p, c.Name, rs, c.Leaders[p])
				}
			}
		}
	case op.DeleteTopic != nil:
		t := s.Topics[op.DeleteTopic.Name]
		if t == nil || t.ID != op.DeleteTopic.ID {
			return fmt.Errorf("%w: topic %q with id %s", ErrNotFound, op.DeleteTopic.Name, op.DeleteTopic.ID)
		}
	case op.SetLeader != nil:
		l := op.SetLeader
		t := s.Topics[l.Topic]
		if t == nil || l.Partition < 0 || int(l.Partition) >= len(t.Leaders) {
			return fmt.Errorf("%w: partition %s-%d", ErrNotFound, l.Topic, l.Partition)
		}
		if l.Leader < Parked {
			return fmt.Errorf("%w: leader %d for %s-%d", ErrInvalid, l.Leader, l.Topic, l.Partition)
		}
		if len(t.Replicas) > 0 && l.Leader != Parked && !slices.Contains(t.ISR[l.Partition], l.Leader) {
			return fmt.Errorf("%w: broker %d is not in the ISR %v of %s-%d", ErrInvalid, l.Leader, t.ISR[l.Partition], l.Topic, l.Partition)
		}
		if l.ISR != nil {
			rs := t.ReplicasOf(l.Partition)
			if len(t.Replicas) == 0 || !slices.Contains(l.ISR, l.Leader) || hasDuplicates(l.ISR) || slices.ContainsFunc(l.ISR, func(r int32) bool { return !slices.Contains(rs, r) }) {
				return fmt.Errorf("%w: ISR %v for %s-%d (replicas %v, leader %d)", ErrInvalid, l.ISR, l.Topic, l.Partition, rs, l.Leader)
			}
		}
		if inc := s.Brokers[l.Expect.Broker]; l.ExpectIncarnation != "" && inc != "" && inc != l.ExpectIncarnation {
			return fmt.Errorf("%w: broker %d registered incarnation %s after %s's lease was revoked", ErrStale, l.Expect.Broker, inc, l.ExpectIncarnation)
		}
		if t.Leaders[l.Partition] != l.Expect {
			return fmt.Errorf("%w: %s-%d is led by %d at epoch %d, not %d at %d", ErrStale, l.Topic, l.Partition,
				t.Leaders[l.Partition].Broker, t.Leaders[l.Partition].Epoch, l.Expect.Broker, l.Expect.Epoch)
		}
	case op.RequestMove != nil:
		m := op.RequestMove
		t := s.Topics[m.Topic]
		if t == nil || t.ID != m.ID || m.Partition < 0 || m.Partition >= t.Partitions() {
			return fmt.Errorf("%w: partition %s-%d", ErrNotFound, m.Topic, m.Partition)
		}
		if t.Leaders[m.Partition] != m.Expect {
			return fmt.Errorf("%w: %s-%d changed leader", ErrStale, m.Topic, m.Partition)
		}
		if m.To < 0 || m.To == m.Expect.Broker {
			return fmt.Errorf("%w: move %s-%d to broker %d", ErrInvalid, m.Topic, m.Partition, m.To)
		}
	case op.SetISR != nil:
		c := op.SetISR
		t := s.Topics[c.Topic]
		if t == nil || t.ID != c.ID || c.Partition < 0 || c.Partition >= t.Partitions() || len(t.Replicas) == 0 {
			return fmt.Errorf("%w: replicated partition %s-%d", ErrNotFound, c.Topic, c.Partition)
		}
		if t.Leaders[c.Partition] != c.Expect || !slices.Equal(t.ISR[c.Partition], c.ExpectISR) ||
			c.ExpectPartitionEpoch != nil && *c.ExpectPartitionEpoch != t.PartitionEpoch(c.Partition) {
			return fmt.Errorf("%w: %s-%d changed leader, ISR or replicas", ErrStale, c.Topic, c.Partition)
		}
		if c.AddedEpochs != nil {
			for _, r := range c.ISR {
				if e, ok := c.AddedEpochs[r]; !slices.Contains(c.ExpectISR, r) && (!ok || e != s.BrokerEpochs[r]) {
					return fmt.Errorf("%w: broker %d registered again since it caught up with %s-%d", ErrStale, r, c.Topic, c.Partition)
				}
			}
		}
		rs := t.Replicas[c.Partition]
		if !slices.Contains(c.ISR, c.Expect.Broker) || hasDuplicates(c.ISR) || slices.ContainsFunc(c.ISR, func(r int32) bool { return !slices.Contains(rs, r) }) {
			return fmt.Errorf("%w: ISR %v of %s-%d (replicas %v, leader %d)", ErrInvalid, c.ISR, c.Topic, c.Partition, rs, c.Expect.Broker)
		}
	case op.ReassignReplicas != nil:
		return s.checkReassign(op.ReassignReplicas)
	case op.CompleteReassignment != nil:
		return s.checkComplete(op.CompleteReassignment)
	case op.CancelMove != nil:
		c := op.CancelMove
		t := s.Topics[c.Topic]
		if t == nil || t.ID != c.ID {
			return fmt.Errorf("%w: topic %s", ErrNotFound, c.Topic)
		}
		if _, ok := t.Moves[c.Partition]; !ok {
			return fmt.Errorf("%w: no move of %s-%d in progress", ErrNotFound, c.Topic, c.Partition)
		}
	case op.RegisterBroker != nil:
		if op.RegisterBroker.Incarnation == "" {
			return fmt.Errorf("%w: broker %d without an incarnation", ErrInvalid, op.RegisterBroker.ID)
		}
	case op.AllocateBrokerID != nil:
		if op.AllocateBrokerID.Incarnation == "" || op.AllocateBrokerID.Min < 0 {
			return fmt.Errorf("%w: broker id allocation for %q from %d", ErrInvalid, op.AllocateBrokerID.Incarnation, op.AllocateBrokerID.Min)
		}
	default:
		return fmt.Errorf("%w: empty op", ErrInvalid)
	}
	return nil
}

// Apply applies entry e (which must be entry s.Seq+1) in place and reports,
// per op, whether it took effect; an op whose Check fails is skipped, the
// same way on every broker.
func (s *State) Apply(e Entry) ([]bool, error) {
	if e.Seq != s.Seq+1 {
		return nil, fmt.Errorf("metalog: entry %d applied after %d", e.Seq, s.Seq)
	}
	done := make([]bool, len(e.Ops))
	for i, op := range e.Ops {
		if s.Check(op) != nil {
			continue
		}
		done[i] = true
		switch {
		case op.InitCluster != nil:
			s.ClusterID = op.InitCluster.ClusterID
		case op.AddPartitions != nil:
			t := s.Topics[op.AddPartitions.Name]
			if len(t.Preferred) < len(t.Leaders) {
				t.Preferred = nil // recorded only for whole topics
			} else {
				t.Preferred = append(t.Preferred, op.AddPartitions.Leaders...)
			}
			for _, b := range op.AddPartitions.Leaders {
				t.Leaders = append(t.Leaders, Leader{Broker: b})
			}
			if a := op.AddPartitions.Replicas; a != nil {
				t.Replicas = append(t.Replicas, cloneLists(a)...)
				t.ISR = append(t.ISR, cloneLists(a)...)
			}
		case op.SetTopicConfigs != nil:
			s.Topics[op.SetTopicConfigs.Name].Configs = op.SetTopicConfigs.Configs
		case op.SetBrokerConfigs != nil:
			s.BrokerConfigs = op.SetBrokerConfigs.Configs
		case op.AllocateProducerIDs != nil:
			if s.ProducerBlocks == nil {
				s.ProducerBlocks = map[int32]int64{}
			}
			s.ProducerBlocks[e.Writer] = s.NextProducerID
			s.NextProducerID += op.AllocateProducerIDs.Count
		case op.CreateTopic != nil:
			c := op.CreateTopic
			t := &Topic{Name: c.Name, ID: c.ID, Configs: c.Configs, Preferred: append([]int32(nil), c.Leaders...)}
			for _, b := range c.Leaders {
				t.Leaders = append(t.Leaders, Leader{Broker: b})
			}
			if c.Replicas != nil {
				t.Replicas, t.ISR = cloneLists(c.Replicas), cloneLists(c.Replicas) // all in sync at first
			}
			s.Topics[c.Name] = t
		case op.DeleteTopic != nil:
			delete(s.Topics, op.DeleteTopic.Name)
		case op.SetLeader != nil:
			l := op.SetLeader
			t := s.Topics[l.Topic]
			t.Leaders[l.Partition] = Leader{Broker: l.Leader, Epoch: l.Expect.Epoch + 1}
			if l.ISR != nil {
				t.ISR[l.Partition] = slices.Clone(l.ISR)
			}
			t.bump(l.Partition)
			delete(t.Moves, l.Partition)
		case op.RequestMove != nil:
			t := s.Topics[op.RequestMove.Topic]
			if t.Moves == nil {
				t.Moves = map[int32]int32{}
			}
			t.Moves[op.RequestMove.Partition] = op.RequestMove.To
		case op.CancelMove != nil:
			delete(s.Topics[op.CancelMove.Topic].Moves, op.CancelMove.Partition)
		case op.SetISR != nil:
			t := s.Topics[op.SetISR.Topic]
			t.ISR[op.SetISR.Partition] = slices.Clone(op.SetISR.ISR)
			t.bump(op.SetISR.Partition)
		case op.ReassignReplicas != nil:
			s.applyReassign(op.ReassignReplicas)
		case op.CompleteReassignment != nil:
			s.applyComplete(op.CompleteReassignment)
		case op.RegisterBroker != nil:
			r := op.RegisterBroker
			s.Brokers[r.ID] = r.Incarnation
			if s.BrokerEpochs == nil {
				s.BrokerEpochs = map[int32]int64{}
			}
			s.BrokerEpochs[r.ID] = e.Seq
			if s.Places == nil {
				s.Places = map[int32]BrokerPlace{}
			}
			s.Places[r.ID] = BrokerPlace{Rack: r.Rack, Region: r.Region}
			if r.Unclean {
				s.fenceRestarted(r.ID)
			}
		case op.AllocateBrokerID != nil:
			id := max(s.NextBrokerID, op.AllocateBrokerID.Min)
			for s.Brokers[id] != "" {
				id++ // registered some other way
			}
			s.Brokers[id] = op.AllocateBrokerID.Incarnation
			s.NextBrokerID = id + 1
		}
	}
	s.Seq = e.Seq
	return done, nil
}

// fenceRestarted takes a broker that restarted uncleanly out of the ISR of
// every replicated partition with other in-sync replicas; one it led goes
// to the first of them at epoch + 1 (the takeover moves it on if that
// broker is not live). A partition whose ISR is that broker alone keeps it:
// no replica is known to hold more.
func (s *State) fenceRestarted(id int32) {
	for _, t := range s.Topics {
		for p := range t.ISR {
			isr := t.ISR[p]
			if len(isr) < 2 || !slices.Contains(isr, id) {
				continue
			}
			rest := without(isr, []int32{id})
			if l := t.Leaders[p]; l.Broker == id {
				t.Leaders[p] = Leader{Broker: rest[0], Epoch: l.Epoch + 1}
				delete(t.Moves, int32(p))
			}
			t.ISR[p] = rest
			t.bump(int32(p))
		}
	}
}

// Clone is a deep copy.
func (s *State) Clone() State {
	c := NewState()
	// Config maps are replaced by Apply, never changed in place: shared.
	c.Seq, c.ClusterID, c.NextProducerID, c.BrokerConfigs, c.NextBrokerID = s.Seq, s.ClusterID, s.NextProducerID, s.BrokerConfigs, s.NextBrokerID
	for n, t := range s.Topics {
		ct := *t
		ct.Leaders = append([]Leader(nil), t.Leaders...)
		ct.Preferred = append([]int32(nil), t.Preferred...)
		ct.Replicas, ct.ISR = cloneLists(t.Replicas), cloneLists(t.ISR)
		if t.Moves != nil {
			ct.Moves = make(map[int32]int32, len(t.Moves))
			for p, to := range t.Moves {
				ct.Moves[p] = to
			}
		}
		ct.PartitionEpochs = maps.Clone(t.PartitionEpochs)
		ct.Reassigning = CloneReassignments(t.Reassigning)
		c.Topics[n] = &ct
	}
	for id, inc := range s.Brokers {
		c.Brokers[id] = inc
	}
	for w, start := range s.ProducerBlocks {
		c.ProducerBlocks[w] = start
	}
	if s.Places != nil {
		c.Places = maps.Clone(s.Places)
	}
	c.BrokerEpochs = maps.Clone(s.BrokerEpochs)
	return c
}

func cloneLists(ls [][]int32) [][]int32 {
	if ls == nil {
		return nil
	}
	out := make([][]int32, len(ls))
	for i, l := range ls {
		out[i] = slices.Clone(l)
	}
	return out
}

func hasDuplicates(ids []int32) bool {
	s := slices.Clone(ids)
	slices.Sort(s)
	return len(slices.Compact(s)) != len(ids)
}

// TopicNames lists the topics in order.
func (s *State) TopicNames() []string {
	names := make([]string, 0, len(s.Topics))
	for n := range s.Topics {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

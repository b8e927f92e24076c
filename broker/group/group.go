// Package group is the consumer-group coordinator as a pure state machine.
//
// A Shard holds every group that hashes to one partition of
// __consumer_offsets. It is driven by a single goroutine (see the broker's
// coordinator): each input (a request, a clock tick, a write that became
// durable, a record replayed at load) is a method call with the current time;
// the effects are collected and taken with Take:
//
//   - Replies, addressed by the ReplyTo token the driver passed in. A request
//     may be answered later than it arrived (JoinGroup waits for the
//     rebalance, SyncGroup for the leader, OffsetCommit for its write).
//   - Writes: records for __consumer_offsets. The driver appends them and
//     reports back with Persisted once they are durable (or failed); only
//     then does the shard apply their effect and answer the requests that
//     waited on them, so nothing is acknowledged before it is on disk.
//
// No I/O, no goroutines, no clocks: tests drive it with transcripts and with
// seeded random schedules (see the _test files).
package group

import (
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// State is a group's state, named as Kafka names it.
type State int8

const (
	Empty State = iota
	PreparingRebalance
	CompletingRebalance
	Stable
	Dead
	// Assigning and Reconciling are KIP-848 consumer-group states.
	Assigning
	Reconciling
)

func (s State) String() string {
	switch s {
	case Empty:
		return "Empty"
	case PreparingRebalance:
		return "PreparingRebalance"
	case CompletingRebalance:
		return "CompletingRebalance"
	case Stable:
		return "Stable"
	case Dead:
		return "Dead"
	case Assigning:
		return "Assigning"
	case Reconciling:
		return "Reconciling"
	}
	return "Unknown"
}

// ReplyTo addresses a reply to the request that is waiting for it. The
// driver chooses the values; 0 is never used.
type ReplyTo uint64

// Reply is one answer. Resp is a kmsg response, or for requests a broker
// splits across shards (DeleteGroups) the per-group part of one.
type Reply struct {
	To   ReplyTo
	Resp any
}

// Record is one __consumer_offsets record; a nil Value is a tombstone.
type Record struct {
	Key, Value []byte
}

// Write is a set of records to append atomically (one batch). The driver
// reports its fate with Persisted(ID, err).
type Write struct {
	ID      uint64
	Records []Record
}

// Topics answers what the coordinator must know of the cluster's topics.
type Topics interface {
	// Partitions returns the topic's partition count, or -1 if it does not exist.
	Partitions(topic string) int32
	// TopicID and TopicName map between names and ids (KIP-848 assignments).
	TopicID(topic string) ([16]byte, bool)
	TopicName(id [16]byte) (string, bool)
}

// Config is the coordinator's Kafka configuration.
type Config struct {
	MinSessionTimeout     time.Duration // group.min.session.timeout.ms
	MaxSessionTimeout     time.Duration // group.max.session.timeout.ms
	InitialRebalanceDelay time.Duration // group.initial.rebalance.delay.ms
	MaxSize               int           // group.max.size
	MaxMetadataBytes      int           // offset.metadata.max.bytes
	OffsetsRetention      time.Duration // offsets.retention.minutes
	MaxRecordBytes        int           // the offsets topic's max.message.bytes

	// KIP-848 consumer groups.
	ConsumerSessionTimeout    time.Duration // group.consumer.session.timeout.ms
	ConsumerHeartbeatInterval time.Duration // group.consumer.heartbeat.interval.ms
	ConsumerMaxSize           int           // group.consumer.max.size
	ConsumerAssignors         []string      // group.consumer.assignors, the first is the default

	Topics Topics
	// NewMemberID returns a fresh unique member id for a client id.
	NewMemberID func(clientID string) string
}

// maxGroupIDBytes bounds group ids. Kafka has no explicit limit (the wire
// allows 32767 bytes); a bound keeps keys of __consumer_offsets small.
const maxGroupIDBytes = 1024

// TopicPartition names one partition.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// Offset is one committed offset.
type Offset struct {
	Offset      int64
	LeaderEpoch int32
	Metadata    string
	CommitTime  int64 // ms
	ExpireTime  int64 // ms; 0 = by offsets.retention.minutes (OffsetCommit v2-4 retention)
}

// protocol is one (name, metadata) a member supports, in preference order.
type protocol struct {
	name     string
	metadata []byte
}

// member is a classic-protocol member.
type member struct {
	id               string
	instanceID       string // "" for a dynamic member
	clientID, host   string
	sessionTimeout   time.Duration
	rebalanceTimeout time.Duration
	protocols        []protocol
	assignment       []byte

	heartbeatDeadline time.Time
	joinTo            ReplyTo // a JoinGroup waiting for the rebalance
	joinSeq           uint64  // order of arrival, for choosing a leader
	syncTo            ReplyTo // a SyncGroup waiting for the leader's assignment
}

func (m *member) metadataFor(name string) []byte {
	for _, p := range m.protocols {
		if p.name == name {
			return p.metadata
		}
	}
	return nil
}

func (m *member) sameProtocols(ps []kmsg.JoinGroupRequestProtocol) bool {
	if len(ps) != len(m.protocols) {
		return false
	}
	for i, p := range ps {
		if p.Name != m.protocols[i].name || string(p.Metadata) != string(m.protocols[i].metadata) {
			return false
		}
	}
	return true
}

// Group is one consumer group: classic (JoinGroup/SyncGroup) or a KIP-848
// consumer group, and its committed offsets.
type Group struct {
	id       string
	state    State
	consumer *consumerGroup // non-nil for a KIP-848 group

	protocolType string
	protocol     string
	generation   int32
	leader       string
	members      map[string]*member
	pending      map[string]time.Time // member ids handed out by MEMBER_ID_REQUIRED
	static       map[string]string    // group.instance.id -> member id
	stateTime    time.Time            // when the state last changed (for offset expiry)

	rebalanceDeadline time.Time // PreparingRebalance: give up waiting for members
	initialDeadline   time.Time // PreparingRebalance from Empty: group.initial.rebalance.delay.ms
	initialLimit      time.Time
	syncDeadline      time.Time // CompletingRebalance: members must sync by then
	joinSeq           uint64

	offsets map[TopicPartition]Offset
	writing int // writes in flight for this group
}

func newGroup(id string, now time.Time) *Group {
	return &Group{
		id: id, state: Empty, stateTime: now,
		members: map[string]*member{}, pending: map[string]time.Time{},
		static: map[string]string{}, offsets: map[TopicPartition]Offset{},
	}
}

func (g *Group) setState(s State, now time.Time) {
	if g.state != s {
		g.state = s
		g.stateTime = now
	}
}

// ID is the group id.
func (g *Group) ID() string { return g.id }

// State is the group's current state.
func (g *Group) State() State { return g.state }

// Type is "classic" or "consumer", as ListGroups v5 reports it.
func (g *Group) Type() string {
	if g.consumer != nil {
		return "consumer"
	}
	return "classic"
}

// ProtocolType is the classic protocol type ("consumer" for consumers).
func (g *Group) ProtocolType() string {
	if g.consumer != nil {
		return "consumer"
	}
	return g.protocolType
}

// Generation is the classic generation or the KIP-848 group epoch.
func (g *Group) Generation() int32 {
	if g.consumer != nil {
		return g.consumer.epoch
	}
	return g.generation
}

// Size is the number of members.
func (g *Group) Size() int {
	if g.consumer != nil {
		return len(g.consumer.members)
	}
	return len(g.members)
}

// Offsets returns a copy of the committed offsets.
func (g *Group) Offsets() map[TopicPartition]Offset {
	out := make(map[TopicPartition]Offset, len(g.offsets))
	for tp, o := range g.offsets {
		out[tp] = o
	}
	return out
}

// stateName is the state as ListGroups reports it, for either kind of group.
func (g *Group) stateName() string {
	if g.consumer != nil {
		return g.consumer.state().String()
	}
	return g.state.String()
}

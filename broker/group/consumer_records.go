package group

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// KIP-848 groups are stored as one snapshot record per group under key
// version consumerKeyVersion (Kafka itself uses several record types, key
// versions 3 to 8, for the same state; ours is a deliberate simplification,
// documented in docs/design.md). The value is JSON with its own version.
const consumerKeyVersion = 1000

type consumerSnapshot struct {
	V               int              `json:"v"`
	Epoch           int32            `json:"epoch"`
	AssignmentEpoch int32            `json:"assignmentEpoch"`
	Assignor        string           `json:"assignor"`
	StateTime       int64            `json:"stateTime"`
	Members         []memberSnapshot `json:"members"`
}

type memberSnapshot struct {
	ID               string     `json:"id"`
	InstanceID       string     `json:"instanceId,omitempty"`
	Rack             string     `json:"rack,omitempty"`
	ClientID         string     `json:"clientId"`
	Host             string     `json:"host"`
	Topics           []string   `json:"topics"`
	Assignor         string     `json:"assignor,omitempty"`
	RebalanceTimeout int64      `json:"rebalanceTimeoutMs"`
	Epoch            int32      `json:"epoch"`
	PrevEpoch        int32      `json:"prevEpoch"`
	State            int8       `json:"state"`
	Assigned         partitions `json:"assigned"`
	Revoking         partitions `json:"revoking,omitempty"`
	Target           partitions `json:"target"`
	Left             bool       `json:"left,omitempty"`
}

func consumerKey(group string) []byte {
	b := binary.BigEndian.AppendUint16(nil, consumerKeyVersion)
	b = binary.BigEndian.AppendUint16(b, uint16(len(group)))
	return append(b, group...)
}

func (s *Shard) consumerRecord(g *Group) Record {
	c := g.consumer
	snap := consumerSnapshot{V: 1, Epoch: c.epoch, AssignmentEpoch: c.assignmentEpoch, Assignor: c.assignor, StateTime: g.stateTime.UnixMilli()}
	for _, m := range c.sortedMembers() {
		snap.Members = append(snap.Members, memberSnapshot{
			ID: m.id, InstanceID: m.instanceID, Rack: m.rack, ClientID: m.clientID, Host: m.host,
			Topics: m.topics, Assignor: m.assignor, RebalanceTimeout: m.rebalanceTimeout.Milliseconds(),
			Epoch: m.epoch, PrevEpoch: m.prevEpoch, State: int8(m.state),
			Assigned: m.assigned, Revoking: m.revoking, Target: c.target[m.id], Left: m.left,
		})
	}
	v, err := json.Marshal(snap)
	if err != nil {
		panic(fmt.Sprintf("group: encoding a consumer group snapshot: %v", err)) // plain data: cannot fail
	}
	return Record{Key: consumerKey(g.id), Value: v}
}

// consumerTombstones deletes a consumer group's snapshot.
func (s *Shard) consumerTombstones(g *Group) []Record {
	if g.consumer == nil {
		return nil
	}
	return []Record{{Key: consumerKey(g.id)}}
}

// persistConsumer writes the group's snapshot and answers `to` with resp
// once it is durable (or with COORDINATOR_NOT_AVAILABLE if it failed).
func (s *Shard) persistConsumer(now time.Time, g *Group, to ReplyTo, resp any) {
	rec := s.consumerRecord(g)
	g.writing++
	s.write([]Record{rec}, func(err error) {
		g.writing--
		if err != nil {
			s.reply(to, heartbeatError(kerr.CoordinatorNotAvailable.Code, ""))
			return
		}
		s.reply(to, resp)
	})
}

func (s *Shard) loadConsumer(now time.Time, version int16, key, value []byte) error {
	if version != consumerKeyVersion {
		return nil // another record type of Kafka's: nothing of ours
	}
	if len(key) < 4 || int(binary.BigEndian.Uint16(key[2:]))+4 != len(key) {
		return fmt.Errorf("group: malformed consumer group key")
	}
	id := string(key[4:])
	if value == nil {
		if g := s.groups[id]; g != nil {
			g.consumer = nil
			if len(g.offsets) == 0 {
				delete(s.groups, id)
			}
		}
		return nil
	}
	var snap consumerSnapshot
	if err := json.Unmarshal(value, &snap); err != nil {
		return fmt.Errorf("group %q: consumer group snapshot: %w", id, err)
	}
	g := s.getOrCreate(id, now)
	c := newConsumerGroup()
	c.epoch, c.assignmentEpoch, c.assignor = snap.Epoch, snap.AssignmentEpoch, snap.Assignor
	if snap.StateTime > 0 {
		g.stateTime = time.UnixMilli(snap.StateTime)
	}
	for _, ms := range snap.Members {
		m := &consumerMember{
			id: ms.ID, instanceID: ms.InstanceID, rack: ms.Rack, clientID: ms.ClientID, host: ms.Host,
			topics: ms.Topics, assignor: ms.Assignor, rebalanceTimeout: time.Duration(ms.RebalanceTimeout) * time.Millisecond,
			epoch: ms.Epoch, prevEpoch: ms.PrevEpoch, state: memberState(ms.State),
			assigned: orEmpty(ms.Assigned), revoking: orEmpty(ms.Revoking), left: ms.Left,
			heartbeatDeadline: now.Add(s.cfg.ConsumerSessionTimeout),
		}
		if m.state == memberUnrevokedPartitions {
			m.revocationDeadline = now.Add(max(m.rebalanceTimeout, time.Second))
		}
		sort.Strings(m.topics)
		c.members[m.id] = m
		c.target[m.id] = orEmpty(ms.Target)
	}
	c.topicsHash = s.topicsHash(c)
	g.consumer = c
	return nil
}

func orEmpty(p partitions) partitions {
	if p == nil {
		return partitions{}
	}
	return p
}

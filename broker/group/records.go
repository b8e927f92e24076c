package group

import (
	"encoding/binary"
	"fmt"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// __consumer_offsets holds Kafka's record schemas (kmsg's OffsetCommitKey,
// OffsetCommitValue, GroupMetadataKey, GroupMetadataValue), so Kafka's own
// tools can read it. Key version 0/1 is an offset; version 2 is a group's
// metadata. KIP-848 groups use key versions 3 (group epoch), 4 (member
// subscription), 6 (target assignment member) and 8 (current assignment), with
// values that carry what this coordinator needs (see consumer_records.go).

func offsetKey(group string, tp TopicPartition) []byte {
	k := kmsg.NewOffsetCommitKey()
	k.Version = 1
	k.Group, k.Topic, k.Partition = group, tp.Topic, tp.Partition
	return k.AppendTo(nil)
}

func offsetRecord(group string, tp TopicPartition, o Offset) Record {
	v := kmsg.NewOffsetCommitValue()
	v.Version = 3
	if o.ExpireTime > 0 {
		v.Version = 1 // the only version with an explicit expiry (OffsetCommit v2-4 retention)
		v.ExpireTimestamp = o.ExpireTime
	}
	v.Offset, v.LeaderEpoch, v.Metadata, v.CommitTimestamp = o.Offset, o.LeaderEpoch, o.Metadata, o.CommitTime
	return Record{Key: offsetKey(group, tp), Value: v.AppendTo(nil)}
}

func offsetTombstone(group string, tp TopicPartition) Record {
	return Record{Key: offsetKey(group, tp)}
}

func groupKey(group string) []byte {
	k := kmsg.NewGroupMetadataKey()
	k.Version = 2
	k.Group = group
	return k.AppendTo(nil)
}

func groupTombstone(group string) Record { return Record{Key: groupKey(group)} }

func (g *Group) sortedMembers() []*member {
	out := make([]*member, 0, len(g.members))
	for _, m := range g.members {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

// metadataRecord is the group's classic metadata as Kafka stores it.
func (g *Group) metadataRecord(now time.Time) Record {
	v := kmsg.NewGroupMetadataValue()
	v.Version = 3
	v.ProtocolType = g.protocolType
	v.Generation = g.generation
	if g.protocol != "" {
		p := g.protocol
		v.Protocol = &p
	}
	if g.leader != "" {
		l := g.leader
		v.Leader = &l
	}
	v.CurrentStateTimestamp = now.UnixMilli()
	for _, m := range g.sortedMembers() {
		vm := kmsg.NewGroupMetadataValueMember()
		vm.MemberID = m.id
		if m.instanceID != "" {
			inst := m.instanceID
			vm.InstanceID = &inst
		}
		vm.ClientID, vm.ClientHost = m.clientID, m.host
		vm.RebalanceTimeoutMillis = int32(m.rebalanceTimeout.Milliseconds())
		vm.SessionTimeoutMillis = int32(m.sessionTimeout.Milliseconds())
		vm.Subscription = m.metadataFor(g.protocol)
		vm.Assignment = m.assignment
		v.Members = append(v.Members, vm)
	}
	return Record{Key: groupKey(g.id), Value: v.AppendTo(nil)}
}

// Load replays one record of the shard's partition, in log order. now is
// the load time: restored members get a full session from it.
func (s *Shard) Load(now time.Time, key, value []byte) error {
	if len(key) < 2 {
		return fmt.Errorf("group: record key of %d bytes", len(key))
	}
	switch version := int16(binary.BigEndian.Uint16(key)); version {
	case 0, 1:
		var k kmsg.OffsetCommitKey
		if err := k.ReadFrom(key); err != nil {
			return fmt.Errorf("group: offset key: %w", err)
		}
		tp := TopicPartition{k.Topic, k.Partition}
		if value == nil {
			if g := s.groups[k.Group]; g != nil {
				delete(g.offsets, tp)
			}
			return nil
		}
		var v kmsg.OffsetCommitValue
		if err := v.ReadFrom(value); err != nil {
			return fmt.Errorf("group %q: offset value: %w", k.Group, err)
		}
		o := Offset{Offset: v.Offset, LeaderEpoch: -1, Metadata: v.Metadata, CommitTime: v.CommitTimestamp}
		if v.Version >= 3 {
			o.LeaderEpoch = v.LeaderEpoch
		}
		if v.Version == 1 {
			o.ExpireTime = v.ExpireTimestamp
		}
		s.getOrCreate(k.Group, now).offsets[tp] = o
		return nil
	case 2:
		var k kmsg.GroupMetadataKey
		if err := k.ReadFrom(key); err != nil {
			return fmt.Errorf("group: metadata key: %w", err)
		}
		if value == nil {
			delete(s.groups, k.Group)
			return nil
		}
		var v kmsg.GroupMetadataValue
		if err := v.ReadFrom(value); err != nil {
			return fmt.Errorf("group %q: metadata value: %w", k.Group, err)
		}
		s.loadClassic(now, k.Group, &v)
		return nil
	default:
		return s.loadConsumer(now, version, key, value)
	}
}

func (s *Shard) loadClassic(now time.Time, id string, v *kmsg.GroupMetadataValue) {
	g := s.getOrCreate(id, now)
	offsets := g.offsets
	*g = *newGroup(id, now)
	g.offsets = offsets
	g.protocolType, g.generation = v.ProtocolType, v.Generation
	if v.Protocol != nil {
		g.protocol = *v.Protocol
	}
	if v.Leader != nil {
		g.leader = *v.Leader
	}
	if v.CurrentStateTimestamp > 0 {
		g.stateTime = time.UnixMilli(v.CurrentStateTimestamp)
	}
	for _, vm := range v.Members {
		m := &member{
			id: vm.MemberID, clientID: vm.ClientID, host: vm.ClientHost,
			sessionTimeout:    time.Duration(vm.SessionTimeoutMillis) * time.Millisecond,
			rebalanceTimeout:  time.Duration(vm.RebalanceTimeoutMillis) * time.Millisecond,
			protocols:         []protocol{{name: g.protocol, metadata: vm.Subscription}},
			assignment:        vm.Assignment,
			heartbeatDeadline: now.Add(time.Duration(vm.SessionTimeoutMillis) * time.Millisecond),
		}
		if m.rebalanceTimeout <= 0 {
			m.rebalanceTimeout = m.sessionTimeout
		}
		if vm.InstanceID != nil {
			m.instanceID = *vm.InstanceID
			g.static[m.instanceID] = m.id
		}
		g.members[m.id] = m
	}
	if len(g.members) > 0 {
		g.state = Stable
	}
}

// Loaded ends the replay: requests are served from now on.
func (s *Shard) Loaded(now time.Time) {
	s.loading = false
	for id, g := range s.groups {
		if g.Size() == 0 && len(g.offsets) == 0 && g.consumer == nil && g.generation == 0 {
			delete(s.groups, id)
		}
	}
}

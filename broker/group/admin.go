package group

import (
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Describe answers one group of DescribeGroups. A group that does not exist
// is reported as Dead with no error, as Kafka does.
func (s *Shard) Describe(id string) kmsg.DescribeGroupsResponseGroup {
	out := kmsg.NewDescribeGroupsResponseGroup()
	out.Group = id
	out.AuthorizedOperations = -2147483648
	switch {
	case !validGroupID(id):
		out.ErrorCode = kerr.InvalidGroupID.Code
		return out
	case s.loading:
		out.ErrorCode = kerr.CoordinatorLoadInProgress.Code
		return out
	}
	g := s.groups[id]
	if g == nil {
		out.State = Dead.String()
		return out
	}
	if g.consumer != nil {
		// Kafka 4.0 answers a classic describe (v0-5) of a KIP-848 group
		// as if it did not exist; ConsumerGroupDescribe describes it.
		out.State = Dead.String()
		return out
	}
	out.State = g.state.String()
	out.ProtocolType = g.protocolType
	if g.state == Stable {
		out.Protocol = g.protocol
	}
	for _, m := range g.sortedMembers() {
		dm := kmsg.NewDescribeGroupsResponseGroupMember()
		dm.MemberID, dm.ClientID, dm.ClientHost = m.id, m.clientID, m.host
		if m.instanceID != "" {
			inst := m.instanceID
			dm.InstanceID = &inst
		}
		if g.state == Stable {
			dm.ProtocolMetadata = m.metadataFor(g.protocol)
			dm.MemberAssignment = m.assignment
		}
		out.Members = append(out.Members, dm)
	}
	return out
}

// List answers ListGroups for this shard. states and types filter when
// non-empty (case-insensitive, as Kafka matches them).
func (s *Shard) List(states, types []string) ([]kmsg.ListGroupsResponseGroup, int16) {
	if s.loading {
		return nil, kerr.CoordinatorLoadInProgress.Code
	}
	var out []kmsg.ListGroupsResponseGroup
	for _, g := range s.Groups() {
		state := g.stateName()
		if len(states) > 0 && !containsFold(states, state) {
			continue
		}
		if len(types) > 0 && !containsFold(types, g.Type()) {
			continue
		}
		lg := kmsg.NewListGroupsResponseGroup()
		lg.Group, lg.ProtocolType, lg.GroupState, lg.GroupType = g.id, g.ProtocolType(), state, g.Type()
		out = append(out, lg)
	}
	return out, 0
}

func containsFold(xs []string, x string) bool {
	for _, y := range xs {
		if strings.EqualFold(x, y) {
			return true
		}
	}
	return false
}

// DeleteGroup handles one group of DeleteGroups: only an empty group can go;
// its offsets and metadata are tombstoned before the reply.
func (s *Shard) DeleteGroup(now time.Time, to ReplyTo, id string) {
	out := kmsg.NewDeleteGroupsResponseGroup()
	out.Group = id
	g := s.groups[id]
	switch {
	case !validGroupID(id):
		out.ErrorCode = kerr.InvalidGroupID.Code
	case s.loading:
		out.ErrorCode = kerr.CoordinatorLoadInProgress.Code
	case g == nil || g.state == Dead:
		out.ErrorCode = kerr.GroupIDNotFound.Code
	case g.Size() > 0 || len(g.pending) > 0:
		out.ErrorCode = kerr.NonEmptyGroup.Code
	}
	if out.ErrorCode != 0 {
		s.reply(to, &out)
		return
	}
	var tps []TopicPartition
	for tp := range g.offsets {
		tps = append(tps, tp)
	}
	sortTPs(tps)
	recs := make([]Record, 0, len(tps)+1)
	for _, tp := range tps {
		recs = append(recs, offsetTombstone(id, tp))
	}
	recs = append(recs, groupTombstone(id))
	recs = append(recs, s.consumerTombstones(g)...)
	g.setState(Dead, now)
	g.writing++
	s.write(recs, func(err error) {
		g.writing--
		if err != nil {
			g.setState(Empty, now)
			out.ErrorCode = kerr.CoordinatorNotAvailable.Code
			s.reply(to, &out)
			return
		}
		if s.groups[id] == g {
			delete(s.groups, id)
		}
		s.reply(to, &out)
	})
}

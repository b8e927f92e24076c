package group

import (
	"slices"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The next-generation consumer group protocol (KIP-848): the coordinator
// assigns partitions itself. The group epoch moves with every membership or
// subscription change; the target assignment is recomputed for it; each
// member is then reconciled towards its target, one heartbeat at a time:
// partitions it must give up are revoked first (its epoch stays), and a
// partition is handed to its new owner only once the old owner has reported
// it released. So at every moment each partition has at most one owner.

// memberState is a member's reconciliation state.
type memberState int8

const (
	memberStable               memberState = iota // holds its whole target
	memberUnrevokedPartitions                     // must give partitions up first
	memberUnreleasedPartitions                    // waits for partitions others still hold
)

// partitions is a set of partitions by topic name, kept sorted.
type partitions map[string][]int32

func (p partitions) clone() partitions {
	out := make(partitions, len(p))
	for t, ps := range p {
		out[t] = slices.Clone(ps)
	}
	return out
}

func (p partitions) has(t string, part int32) bool {
	_, ok := slices.BinarySearch(p[t], part)
	return ok
}

func (p partitions) add(t string, part int32) {
	ps := p[t]
	i, ok := slices.BinarySearch(ps, part)
	if !ok {
		p[t] = slices.Insert(ps, i, part)
	}
}

func (p partitions) count() int {
	n := 0
	for _, ps := range p {
		n += len(ps)
	}
	return n
}

func (p partitions) equal(q partitions) bool {
	if p.count() != q.count() {
		return false
	}
	for t, ps := range p {
		if !slices.Equal(ps, q[t]) {
			return false
		}
	}
	return true
}

// minus returns p without q.
func (p partitions) minus(q partitions) partitions {
	out := partitions{}
	for t, ps := range p {
		for _, part := range ps {
			if !q.has(t, part) {
				out[t] = append(out[t], part)
			}
		}
	}
	return out
}

// intersect returns what p and q share.
func (p partitions) intersect(q partitions) partitions {
	out := partitions{}
	for t, ps := range p {
		for _, part := range ps {
			if q.has(t, part) {
				out[t] = append(out[t], part)
			}
		}
	}
	return out
}

// consumerGroup is the KIP-848 state of a "consumer" group.
type consumerGroup struct {
	epoch           int32 // group epoch
	assignmentEpoch int32 // epoch of the target assignment
	assignor        string
	members         map[string]*consumerMember
	target          map[string]partitions // member id -> target assignment
	topicsHash      string                // partition counts the target was computed with
}

// consumerMember is one KIP-848 member.
type consumerMember struct {
	id, instanceID     string
	rack               string
	clientID, host     string
	topics             []string // subscribed topic names, sorted
	regex              string
	assignor           string
	rebalanceTimeout   time.Duration
	epoch, prevEpoch   int32
	state              memberState
	assigned           partitions // what the member owns (as far as we told it)
	revoking           partitions // what it must give up and may still hold
	sent               partitions // the assignment last sent to it
	heartbeatDeadline  time.Time
	revocationDeadline time.Time // UNREVOKED_PARTITIONS: must release by then
	left               bool      // a static member that left temporarily (epoch -2)
}

func newConsumerGroup() *consumerGroup {
	return &consumerGroup{members: map[string]*consumerMember{}, target: map[string]partitions{}}
}

func (c *consumerGroup) sortedMembers() []*consumerMember {
	out := make([]*consumerMember, 0, len(c.members))
	for _, m := range c.members {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

// owner returns who holds a partition (assigned or still revoking), or nil.
func (c *consumerGroup) owner(t string, p int32) *consumerMember {
	for _, m := range c.members {
		if m.assigned.has(t, p) || m.revoking.has(t, p) {
			return m
		}
	}
	return nil
}

// state is the group state as ConsumerGroupDescribe and ListGroups name it.
func (c *consumerGroup) state() State {
	if len(c.members) == 0 {
		return Empty
	}
	if c.assignmentEpoch < c.epoch {
		return Assigning
	}
	for _, m := range c.members {
		if m.epoch != c.assignmentEpoch || m.state != memberStable {
			return Reconciling
		}
	}
	return Stable
}

func heartbeatError(code int16, msg string) *kmsg.ConsumerGroupHeartbeatResponse {
	resp := kmsg.NewPtrConsumerGroupHeartbeatResponse()
	resp.ErrorCode = code
	if msg != "" {
		resp.ErrorMessage = &msg
	}
	return resp
}

// ConsumerHeartbeat handles ConsumerGroupHeartbeat.
func (s *Shard) ConsumerHeartbeat(now time.Time, to ReplyTo, req *kmsg.ConsumerGroupHeartbeatRequest, client Client) {
	if code, msg := s.validateConsumerHeartbeat(req); code != 0 {
		s.reply(to, heartbeatError(code, msg))
		return
	}
	g := s.groups[req.Group]
	if g == nil {
		if req.MemberEpoch != 0 {
			s.reply(to, heartbeatError(kerr.UnknownMemberID.Code, "unknown group"))
			return
		}
		g = s.getOrCreate(req.Group, now)
	}
	if g.consumer == nil {
		if len(g.members) > 0 || len(g.pending) > 0 || g.state != Empty {
			// A live classic group: no online migration (yet).
			s.reply(to, heartbeatError(kerr.GroupIDNotFound.Code, "group "+req.Group+" is a classic group"))
			return
		}
		// An empty classic group (offsets only) becomes a consumer group.
		g.consumer = newConsumerGroup()
		g.consumer.assignor = s.cfg.ConsumerAssignors[0]
	}
	c := g.consumer
	instance := ""
	if req.InstanceID != nil {
		instance = *req.InstanceID
	}
	if req.MemberEpoch < 0 {
		s.consumerLeave(now, to, g, req, instance)
		return
	}
	m := c.members[req.MemberID]
	changed := false
	if req.MemberEpoch == 0 {
		var code int16
		m, changed, code = s.consumerJoin(now, g, req, instance, client)
		if code != 0 {
			s.reply(to, heartbeatError(code, ""))
			return
		}
	} else {
		switch {
		case m == nil:
			s.reply(to, heartbeatError(kerr.UnknownMemberID.Code, ""))
			return
		case instance != "" && m.instanceID != instance:
			s.reply(to, heartbeatError(kerr.FencedInstanceID.Code, ""))
			return
		case req.MemberEpoch != m.epoch && !(req.MemberEpoch == m.prevEpoch && req.Topics != nil && ownedSubsetOf(s, req.Topics, m.assigned)):
			s.reply(to, heartbeatError(kerr.FencedMemberEpoch.Code, ""))
			return
		}
	}
	m.heartbeatDeadline = now.Add(s.cfg.ConsumerSessionTimeout)
	if s.updateSubscription(m, req, client) {
		changed = true
	}
	if changed || s.topicsChanged(c) {
		c.epoch++
	}
	if c.assignmentEpoch < c.epoch {
		s.computeTarget(c)
	}
	var owned partitions
	if req.Topics != nil {
		owned = s.ownedFromRequest(req.Topics)
	}
	before := m.assigned.clone()
	beforeEpoch, beforeState := m.epoch, m.state
	s.reconcile(now, c, m, owned)
	full := req.MemberEpoch == 0 || req.Topics != nil
	resp := kmsg.NewPtrConsumerGroupHeartbeatResponse()
	id := m.id
	resp.MemberID = &id
	resp.MemberEpoch = m.epoch
	resp.HeartbeatIntervalMillis = int32(s.cfg.ConsumerHeartbeatInterval.Milliseconds())
	if full && (owned == nil || !owned.equal(m.assigned)) || !before.equal(m.assigned) || m.sent == nil {
		resp.Assignment = s.assignmentOf(m.assigned)
		m.sent = m.assigned.clone()
	}
	if !changed && before.equal(m.assigned) && beforeEpoch == m.epoch && beforeState == m.state {
		s.reply(to, resp)
		return
	}
	s.persistConsumer(now, g, to, resp)
}

func (s *Shard) validateConsumerHeartbeat(req *kmsg.ConsumerGroupHeartbeatRequest) (int16, string) {
	switch {
	case !validGroupID(req.Group):
		return kerr.InvalidGroupID.Code, ""
	case s.loading:
		return kerr.CoordinatorLoadInProgress.Code, ""
	case req.MemberID == "" && (req.Version >= 1 || req.MemberEpoch != 0):
		return kerr.InvalidRequest.Code, "MemberId can't be empty."
	case len(req.MemberID) > maxGroupIDBytes:
		return kerr.InvalidRequest.Code, "MemberId is too long."
	case req.MemberEpoch < -2:
		return kerr.InvalidRequest.Code, "MemberEpoch is invalid."
	case req.MemberEpoch == 0 && req.SubscribedTopicNames == nil && req.SubscribedTopicRegex == nil:
		return kerr.InvalidRequest.Code, "SubscribedTopicNames or SubscribedTopicRegex must be set in first request."
	case req.MemberEpoch == 0 && len(req.Topics) > 0:
		return kerr.InvalidRequest.Code, "TopicPartitions must be empty when (re-)joining."
	case req.MemberEpoch == 0 && req.RebalanceTimeoutMillis < 0:
		return kerr.InvalidRequest.Code, "RebalanceTimeoutMs must be provided in first request."
	case req.ServerAssignor != nil && *req.ServerAssignor != "" && !contains(s.cfg.ConsumerAssignors, *req.ServerAssignor):
		return kerr.UnsupportedAssignor.Code, "ServerAssignor " + *req.ServerAssignor + " is not supported; supported assignors: uniform, range."
	case req.SubscribedTopicRegex != nil && *req.SubscribedTopicRegex != "":
		return kerr.InvalidRequest.Code, "SubscribedTopicRegex is not supported by Tiercel yet; subscribe by topic names."
	}
	return 0, ""
}

// consumerJoin admits a member with epoch 0: new, rejoining, or a static
// member coming back under a new member id (which keeps its assignment and
// moves nothing). fresh reports a membership change.
func (s *Shard) consumerJoin(now time.Time, g *Group, req *kmsg.ConsumerGroupHeartbeatRequest, instance string, client Client) (m *consumerMember, fresh bool, code int16) {
	c := g.consumer
	id := req.MemberID
	if id == "" {
		id = s.cfg.NewMemberID(client.ID)
	}
	if instance != "" {
		for _, old := range c.members {
			if old.instanceID != instance || old.id == id {
				continue
			}
			if !old.left {
				return nil, false, kerr.UnreleasedInstanceID.Code
			}
			// The static member comes back: it keeps its assignment.
			delete(c.members, old.id)
			c.target[id] = c.target[old.id]
			delete(c.target, old.id)
			old.id, old.left = id, false
			c.members[id] = old
			old.sent = nil
			return old, false, 0
		}
	}
	if m := c.members[id]; m != nil {
		// A rejoin with the same id: the client dropped its partitions
		// before rejoining, so it starts over from nothing.
		m.assigned, m.revoking, m.sent = partitions{}, partitions{}, nil
		m.epoch, m.prevEpoch, m.state = 0, 0, memberStable
		return m, true, 0
	}
	if s.cfg.ConsumerMaxSize > 0 && len(c.members) >= s.cfg.ConsumerMaxSize {
		return nil, false, kerr.GroupMaxSizeReached.Code
	}
	m = &consumerMember{id: id, instanceID: instance, assigned: partitions{}, revoking: partitions{}}
	c.members[id] = m
	return m, true, 0
}

// updateSubscription applies the request's optional fields; true if the
// subscription (which moves the group epoch) changed.
func (s *Shard) updateSubscription(m *consumerMember, req *kmsg.ConsumerGroupHeartbeatRequest, client Client) bool {
	changed := false
	m.clientID, m.host = client.ID, client.Host
	if req.RackID != nil {
		m.rack = *req.RackID
	}
	if req.RebalanceTimeoutMillis > 0 {
		m.rebalanceTimeout = time.Duration(req.RebalanceTimeoutMillis) * time.Millisecond
	}
	if req.ServerAssignor != nil && *req.ServerAssignor != m.assignor {
		m.assignor = *req.ServerAssignor
		changed = true
	}
	if req.SubscribedTopicNames != nil {
		topics := slices.Clone(req.SubscribedTopicNames)
		sort.Strings(topics)
		topics = slices.Compact(topics)
		if !slices.Equal(topics, m.topics) {
			m.topics = topics
			changed = true
		}
	}
	return changed
}

// topicsChanged notices partition counts growing (or topics appearing or
// going) under the subscriptions: the target must be recomputed.
func (s *Shard) topicsChanged(c *consumerGroup) bool {
	return s.topicsHash(c) != c.topicsHash
}

func (s *Shard) topicsHash(c *consumerGroup) string {
	set := map[string]bool{}
	for _, m := range c.members {
		for _, t := range m.topics {
			set[t] = true
		}
	}
	names := make([]string, 0, len(set))
	for t := range set {
		names = append(names, t)
	}
	sort.Strings(names)
	var b []byte
	for _, t := range names {
		b = append(b, t...)
		b = append(b, '=')
		b = appendInt(b, int64(s.cfg.Topics.Partitions(t)))
		b = append(b, ';')
	}
	return string(b)
}

func appendInt(b []byte, n int64) []byte {
	if n < 0 {
		b = append(b, '-')
		n = -n
	}
	var d [20]byte
	i := len(d)
	for {
		i--
		d[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	return append(b, d[i:]...)
}

// computeTarget runs the group's assignor for the current group epoch.
func (s *Shard) computeTarget(c *consumerGroup) {
	assignor := c.assignor
	// The assignor most members ask for wins; ties go to the configured order.
	votes := map[string]int{}
	for _, m := range c.members {
		if m.assignor != "" {
			votes[m.assignor]++
		}
	}
	for _, a := range s.cfg.ConsumerAssignors {
		if votes[a] > votes[assignor] {
			assignor = a
		}
	}
	c.assignor = assignor
	members := c.sortedMembers()
	var target map[string]partitions
	if assignor == "range" {
		target = rangeAssign(members, s.cfg.Topics)
	} else {
		target = uniformAssign(members, c.target, s.cfg.Topics)
	}
	c.target = target
	c.assignmentEpoch = c.epoch
	c.topicsHash = s.topicsHash(c)
}

// reconcile moves a member one step towards its target assignment.
func (s *Shard) reconcile(now time.Time, c *consumerGroup, m *consumerMember, owned partitions) {
	target := c.target[m.id]
	if target == nil {
		target = partitions{}
	}
	if m.state == memberUnrevokedPartitions {
		// Released once the member's report no longer lists them.
		if owned != nil {
			for t, ps := range m.revoking {
				var still []int32
				for _, p := range ps {
					if owned.has(t, p) {
						still = append(still, p)
					}
				}
				if len(still) == 0 {
					delete(m.revoking, t)
				} else {
					m.revoking[t] = still
				}
			}
		}
		if m.revoking.count() > 0 {
			return
		}
		m.state = memberStable
		m.revocationDeadline = time.Time{}
	}
	if m.epoch == c.assignmentEpoch && m.state == memberStable {
		return
	}
	keep := m.assigned.intersect(target)
	revoke := m.assigned.minus(target)
	if revoke.count() > 0 {
		m.assigned = keep
		m.revoking = revoke
		m.state = memberUnrevokedPartitions
		m.revocationDeadline = now.Add(max(m.rebalanceTimeout, time.Second))
		return
	}
	// Take what is free; wait for what others still hold.
	unreleased := false
	for t, ps := range target.minus(m.assigned) {
		for _, p := range ps {
			if o := c.owner(t, p); o != nil && o != m {
				unreleased = true
				continue
			}
			m.assigned.add(t, p)
		}
	}
	if m.epoch != c.assignmentEpoch {
		m.prevEpoch = m.epoch
		m.epoch = c.assignmentEpoch
	}
	m.state = memberStable
	if unreleased {
		m.state = memberUnreleasedPartitions
	}
}

// ownedFromRequest maps the request's owned partitions (by topic id) to names.
func (s *Shard) ownedFromRequest(ts []kmsg.ConsumerGroupHeartbeatRequestTopic) partitions {
	out := partitions{}
	for _, t := range ts {
		name, ok := s.cfg.Topics.TopicName(t.TopicID)
		if !ok {
			continue
		}
		for _, p := range t.Partitions {
			out.add(name, p)
		}
	}
	return out
}

func ownedSubsetOf(s *Shard, ts []kmsg.ConsumerGroupHeartbeatRequestTopic, assigned partitions) bool {
	return s.ownedFromRequest(ts).minus(assigned).count() == 0
}

func (s *Shard) assignmentOf(p partitions) *kmsg.ConsumerGroupHeartbeatResponseAssignment {
	a := kmsg.NewConsumerGroupHeartbeatResponseAssignment()
	names := make([]string, 0, len(p))
	for t := range p {
		names = append(names, t)
	}
	sort.Strings(names)
	for _, t := range names {
		id, ok := s.cfg.Topics.TopicID(t)
		if !ok || len(p[t]) == 0 {
			continue
		}
		at := kmsg.NewConsumerGroupHeartbeatResponseAssignmentTopic()
		at.TopicID, at.Partitions = id, slices.Clone(p[t])
		a.Topics = append(a.Topics, at)
	}
	if a.Topics == nil {
		a.Topics = []kmsg.ConsumerGroupHeartbeatResponseAssignmentTopic{}
	}
	return &a
}

// consumerLeave handles epoch -1 (leave) and -2 (a static member leaving
// for a while: its partitions stay reserved until its session expires).
func (s *Shard) consumerLeave(now time.Time, to ReplyTo, g *Group, req *kmsg.ConsumerGroupHeartbeatRequest, instance string) {
	c := g.consumer
	m := c.members[req.MemberID]
	if m == nil && instance != "" {
		for _, old := range c.members {
			if old.instanceID == instance {
				m = old
			}
		}
	}
	if m == nil {
		s.reply(to, heartbeatError(kerr.UnknownMemberID.Code, ""))
		return
	}
	if m.instanceID != "" && instance != "" && m.instanceID != instance {
		s.reply(to, heartbeatError(kerr.FencedInstanceID.Code, ""))
		return
	}
	resp := kmsg.NewPtrConsumerGroupHeartbeatResponse()
	id := m.id
	resp.MemberID, resp.MemberEpoch = &id, req.MemberEpoch
	if req.MemberEpoch == -2 && m.instanceID != "" {
		m.left = true
		m.heartbeatDeadline = now.Add(s.cfg.ConsumerSessionTimeout)
	} else {
		s.removeConsumerMember(now, g, m)
	}
	s.persistConsumer(now, g, to, resp)
}

func (s *Shard) removeConsumerMember(now time.Time, g *Group, m *consumerMember) {
	c := g.consumer
	delete(c.members, m.id)
	delete(c.target, m.id)
	c.epoch++
	if len(c.members) == 0 {
		g.stateTime = now // offsets of an empty group age from here
	}
}

// tickConsumer expires sessions and members that keep revoked partitions
// past their rebalance timeout.
func (s *Shard) tickConsumer(g *Group, now time.Time) time.Time {
	c := g.consumer
	var next time.Time
	removed := false
	for _, m := range c.sortedMembers() {
		expired := !now.Before(m.heartbeatDeadline)
		stuck := m.state == memberUnrevokedPartitions && !m.revocationDeadline.IsZero() && !now.Before(m.revocationDeadline)
		if expired || stuck {
			s.removeConsumerMember(now, g, m)
			removed = true
			continue
		}
		for _, t := range []time.Time{m.heartbeatDeadline, m.revocationDeadline} {
			if !t.IsZero() && (next.IsZero() || t.Before(next)) {
				next = t
			}
		}
	}
	if removed {
		s.persistConsumer(now, g, 0, nil)
	}
	return next
}

// consumerCommitCheck validates a commit or fetch from a KIP-848 member:
// the generation field carries the member epoch.
func (s *Shard) consumerCommitCheck(g *Group, memberID string, epoch int32) int16 {
	c := g.consumer
	if memberID == "" && epoch < 0 {
		if len(c.members) == 0 {
			return 0 // an admin commit into an empty group
		}
		return kerr.UnknownMemberID.Code
	}
	m := c.members[memberID]
	switch {
	case m == nil:
		return kerr.UnknownMemberID.Code
	case epoch != m.epoch && epoch != m.prevEpoch:
		// The previous epoch is still accepted: a member commits what it
		// is giving up before it reports the partitions released.
		return kerr.StaleMemberEpoch.Code
	}
	return 0
}

// DescribeConsumer answers one group of ConsumerGroupDescribe.
func (s *Shard) DescribeConsumer(id string) kmsg.ConsumerGroupDescribeResponseGroup {
	out := kmsg.NewConsumerGroupDescribeResponseGroup()
	out.Group = id
	switch {
	case !validGroupID(id):
		out.ErrorCode = kerr.InvalidGroupID.Code
		return out
	case s.loading:
		out.ErrorCode = kerr.CoordinatorLoadInProgress.Code
		return out
	}
	g := s.groups[id]
	if g == nil || g.consumer == nil {
		out.ErrorCode = kerr.GroupIDNotFound.Code
		msg := "group " + id + " not found"
		if g != nil {
			msg = "group " + id + " is not a consumer group"
		}
		out.ErrorMessage = &msg
		return out
	}
	c := g.consumer
	out.State = c.state().String()
	out.Epoch, out.AssignmentEpoch, out.AssignorName = c.epoch, c.assignmentEpoch, c.assignor
	for _, m := range c.sortedMembers() {
		dm := kmsg.NewConsumerGroupDescribeResponseGroupMember()
		dm.MemberID, dm.MemberEpoch, dm.ClientID, dm.ClientHost = m.id, m.epoch, m.clientID, m.host
		if m.instanceID != "" {
			inst := m.instanceID
			dm.InstanceID = &inst
		}
		if m.rack != "" {
			rack := m.rack
			dm.RackID = &rack
		}
		dm.SubscribedTopics = slices.Clone(m.topics)
		dm.Assignment = s.describeAssignment(m.assigned)
		dm.TargetAssignment = s.describeAssignment(c.target[m.id])
		out.Members = append(out.Members, dm)
	}
	return out
}

func (s *Shard) describeAssignment(p partitions) kmsg.Assignment {
	var a kmsg.Assignment
	names := make([]string, 0, len(p))
	for t := range p {
		names = append(names, t)
	}
	sort.Strings(names)
	for _, t := range names {
		id, _ := s.cfg.Topics.TopicID(t)
		a.TopicPartitions = append(a.TopicPartitions, kmsg.AssignmentTopicPartition{TopicID: id, Topic: t, Partitions: slices.Clone(p[t])})
	}
	return a
}

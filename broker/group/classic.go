package group

import (
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// validGroupID checks a group id as every group API does.
func validGroupID(id string) bool { return id != "" && len(id) <= maxGroupIDBytes }

// JoinError is a JoinGroup answer carrying only an error.
func JoinError(memberID string, code int16) *kmsg.JoinGroupResponse {
	resp := kmsg.NewPtrJoinGroupResponse()
	resp.ErrorCode = code
	resp.Generation = -1
	resp.MemberID = memberID
	resp.LeaderID = ""
	return resp
}

// Client is who sent a request: the header's client id and the
// connection's address, as DescribeGroups reports them.
type Client struct{ ID, Host string }

// Join handles JoinGroup.
func (s *Shard) Join(now time.Time, to ReplyTo, req *kmsg.JoinGroupRequest, host Client) {
	switch {
	case !validGroupID(req.Group):
		s.reply(to, JoinError(req.MemberID, kerr.InvalidGroupID.Code))
		return
	case s.loading:
		s.reply(to, JoinError(req.MemberID, kerr.CoordinatorLoadInProgress.Code))
		return
	}
	session := time.Duration(req.SessionTimeoutMillis) * time.Millisecond
	if session < s.cfg.MinSessionTimeout || session > s.cfg.MaxSessionTimeout {
		s.reply(to, JoinError(req.MemberID, kerr.InvalidSessionTimeout.Code))
		return
	}
	if req.ProtocolType == "" || len(req.Protocols) == 0 {
		s.reply(to, JoinError(req.MemberID, kerr.InconsistentGroupProtocol.Code))
		return
	}
	g := s.groups[req.Group]
	if g != nil && g.consumer != nil {
		// A KIP-848 group cannot take classic members (no upgrade path yet).
		s.reply(to, JoinError(req.MemberID, kerr.InconsistentGroupProtocol.Code))
		return
	}
	if g == nil {
		if req.MemberID != "" {
			s.reply(to, JoinError(req.MemberID, kerr.UnknownMemberID.Code))
			return
		}
		g = s.getOrCreate(req.Group, now)
	}
	if g.state == Dead {
		s.reply(to, JoinError(req.MemberID, kerr.CoordinatorNotAvailable.Code))
		return
	}
	if !g.supports(req) {
		s.reply(to, JoinError(req.MemberID, kerr.InconsistentGroupProtocol.Code))
		return
	}
	instance := ""
	if req.InstanceID != nil {
		instance = *req.InstanceID
	}
	if req.MemberID == "" {
		s.joinUnknown(now, to, g, req, host, instance)
		return
	}
	s.joinKnown(now, to, g, req, host, instance)
}

// supports reports whether the request's protocols fit the group's.
func (g *Group) supports(req *kmsg.JoinGroupRequest) bool {
	if len(g.members) == 0 {
		return true
	}
	if req.ProtocolType != g.protocolType {
		return false
	}
	// Some protocol must be supported by every member, this one included.
	for _, p := range req.Protocols {
		all := true
		for _, m := range g.members {
			if m.id == req.MemberID {
				continue
			}
			if m.metadataFor(p.Name) == nil && !hasProtocol(m, p.Name) {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}

func hasProtocol(m *member, name string) bool {
	for _, p := range m.protocols {
		if p.name == name {
			return true
		}
	}
	return false
}

func (s *Shard) joinUnknown(now time.Time, to ReplyTo, g *Group, req *kmsg.JoinGroupRequest, host Client, instance string) {
	if instance != "" {
		if oldID, ok := g.static[instance]; ok {
			s.replaceStatic(now, to, g, req, host, instance, oldID)
			return
		}
	}
	if s.cfg.MaxSize > 0 && len(g.members)+len(g.pending) >= s.cfg.MaxSize {
		s.reply(to, JoinError("", kerr.GroupMaxSizeReached.Code))
		return
	}
	id := s.cfg.NewMemberID(host.ID)
	if instance == "" && req.Version >= 4 {
		// KIP-394: hand out the id first, so a client that times out and
		// retries does not leave a ghost member behind.
		g.pending[id] = now.Add(time.Duration(req.SessionTimeoutMillis) * time.Millisecond)
		s.reply(to, JoinError(id, kerr.MemberIDRequired.Code))
		return
	}
	s.addMember(now, to, g, req, host, id, instance)
}

func (s *Shard) joinKnown(now time.Time, to ReplyTo, g *Group, req *kmsg.JoinGroupRequest, host Client, instance string) {
	if _, ok := g.pending[req.MemberID]; ok {
		if s.cfg.MaxSize > 0 && len(g.members) >= s.cfg.MaxSize {
			delete(g.pending, req.MemberID)
			s.reply(to, JoinError(req.MemberID, kerr.GroupMaxSizeReached.Code))
			return
		}
		delete(g.pending, req.MemberID)
		s.addMember(now, to, g, req, host, req.MemberID, instance)
		return
	}
	if code := g.checkMember(req.MemberID, instance); code != 0 {
		s.reply(to, JoinError(req.MemberID, code))
		return
	}
	m := g.members[req.MemberID]
	switch g.state {
	case PreparingRebalance:
		s.updateMember(now, to, g, m, req, host)
		s.maybeCompleteJoin(now, g)
	case CompletingRebalance:
		if m.sameProtocols(req.Protocols) {
			// A retried JoinGroup: answer as the rebalance did.
			s.reply(to, g.joinResponse(m))
			return
		}
		s.updateMember(now, to, g, m, req, host)
		s.prepareRebalance(now, g)
	case Stable:
		if m.id == g.leader || !m.sameProtocols(req.Protocols) {
			// The leader rejoining, or changed subscriptions, mean a new assignment.
			s.updateMember(now, to, g, m, req, host)
			s.prepareRebalance(now, g)
			return
		}
		m.heartbeatDeadline = now.Add(m.sessionTimeout)
		s.reply(to, g.joinResponse(m))
	default:
		s.reply(to, JoinError(req.MemberID, kerr.UnknownMemberID.Code))
	}
}

// checkMember validates a (member id, instance id) pair against the group.
func (g *Group) checkMember(memberID, instance string) int16 {
	if instance != "" {
		if cur, ok := g.static[instance]; ok && cur != memberID {
			return kerr.FencedInstanceID.Code
		}
	}
	m := g.members[memberID]
	if m == nil {
		return kerr.UnknownMemberID.Code
	}
	if m.instanceID != "" && instance != "" && m.instanceID != instance {
		return kerr.FencedInstanceID.Code
	}
	return 0
}

func (s *Shard) addMember(now time.Time, to ReplyTo, g *Group, req *kmsg.JoinGroupRequest, host Client, id, instance string) {
	m := &member{id: id, instanceID: instance}
	if len(g.members) == 0 {
		g.protocolType = req.ProtocolType
	}
	g.members[id] = m
	if instance != "" {
		g.static[instance] = id
	}
	s.updateMember(now, to, g, m, req, host)
	if g.state == PreparingRebalance && !g.initialDeadline.IsZero() {
		// Each member arriving during the initial delay extends it, up to
		// the rebalance timeout (Kafka's InitialDelayedJoin).
		ext := now.Add(s.cfg.InitialRebalanceDelay)
		if ext.After(g.initialLimit) {
			ext = g.initialLimit
		}
		if ext.After(g.initialDeadline) {
			g.initialDeadline = ext
		}
	}
	if g.state != PreparingRebalance {
		s.prepareRebalance(now, g)
	} else {
		s.maybeCompleteJoin(now, g)
	}
}

func (s *Shard) updateMember(now time.Time, to ReplyTo, g *Group, m *member, req *kmsg.JoinGroupRequest, host Client) {
	m.clientID, m.host = host.ID, host.Host
	m.sessionTimeout = time.Duration(req.SessionTimeoutMillis) * time.Millisecond
	m.rebalanceTimeout = m.sessionTimeout
	if req.Version >= 1 && req.RebalanceTimeoutMillis > 0 {
		m.rebalanceTimeout = time.Duration(req.RebalanceTimeoutMillis) * time.Millisecond
	}
	m.protocols = m.protocols[:0]
	for _, p := range req.Protocols {
		m.protocols = append(m.protocols, protocol{name: p.Name, metadata: append([]byte(nil), p.Metadata...)})
	}
	if m.joinTo != 0 && m.joinTo != to {
		// A duplicate JoinGroup: the earlier one is answered as Kafka does.
		s.reply(m.joinTo, JoinError(m.id, kerr.UnknownMemberID.Code))
	}
	m.joinTo = to
	g.joinSeq++
	m.joinSeq = g.joinSeq
	m.heartbeatDeadline = now.Add(m.sessionTimeout)
}

// replaceStatic handles a static member rejoining with a new member id
// (KIP-345): the old id is fenced; a stable group keeps its assignment.
func (s *Shard) replaceStatic(now time.Time, to ReplyTo, g *Group, req *kmsg.JoinGroupRequest, host Client, instance, oldID string) {
	old := g.members[oldID]
	id := s.cfg.NewMemberID(host.ID)
	if old == nil {
		delete(g.static, instance)
		s.addMember(now, to, g, req, host, id, instance)
		return
	}
	// The old member's waiting requests learn that they are fenced.
	if old.joinTo != 0 {
		s.reply(old.joinTo, JoinError(oldID, kerr.FencedInstanceID.Code))
		old.joinTo = 0
	}
	if old.syncTo != 0 {
		s.reply(old.syncTo, SyncError(kerr.FencedInstanceID.Code))
		old.syncTo = 0
	}
	delete(g.members, oldID)
	old.id = id
	g.members[id] = old
	g.static[instance] = id
	if g.leader == oldID {
		g.leader = id
	}
	sameProtocols := old.sameProtocols(req.Protocols)
	switch g.state {
	case Stable:
		if !sameProtocols {
			s.updateMember(now, to, g, old, req, host)
			s.prepareRebalance(now, g)
			return
		}
		old.heartbeatDeadline = now.Add(time.Duration(req.SessionTimeoutMillis) * time.Millisecond)
		old.clientID, old.host = host.ID, host.Host
		resp := g.joinResponse(old)
		// KIP-814: a static leader that comes back must not reassign.
		resp.SkipAssignment = old.id == g.leader
		// Persist the new member id so a restarted coordinator fences the old one.
		recs := []Record{g.metadataRecord(now)}
		g.writing++
		s.write(recs, func(err error) {
			g.writing--
			if err != nil {
				s.reply(to, JoinError(id, kerr.CoordinatorNotAvailable.Code))
				return
			}
			s.reply(to, resp)
		})
	case CompletingRebalance:
		s.updateMember(now, to, g, old, req, host)
		s.prepareRebalance(now, g)
	case PreparingRebalance:
		s.updateMember(now, to, g, old, req, host)
		s.maybeCompleteJoin(now, g)
	default:
		s.updateMember(now, to, g, old, req, host)
		s.prepareRebalance(now, g)
	}
}

// joinResponse describes the current generation to one member.
func (g *Group) joinResponse(m *member) *kmsg.JoinGroupResponse {
	resp := kmsg.NewPtrJoinGroupResponse()
	resp.Generation = g.generation
	pt := g.protocolType
	resp.ProtocolType = &pt
	p := g.protocol
	resp.Protocol = &p
	resp.LeaderID = g.leader
	resp.MemberID = m.id
	if m.id == g.leader {
		resp.Members = g.memberList()
	}
	return resp
}

func (g *Group) memberList() []kmsg.JoinGroupResponseMember {
	out := make([]kmsg.JoinGroupResponseMember, 0, len(g.members))
	for _, m := range g.sortedMembers() {
		jm := kmsg.NewJoinGroupResponseMember()
		jm.MemberID = m.id
		if m.instanceID != "" {
			inst := m.instanceID
			jm.InstanceID = &inst
		}
		jm.ProtocolMetadata = m.metadataFor(g.protocol)
		out = append(out, jm)
	}
	return out
}

// prepareRebalance moves the group to PreparingRebalance: members must
// rejoin within the rebalance timeout.
func (s *Shard) prepareRebalance(now time.Time, g *Group) {
	if g.state == CompletingRebalance {
		for _, m := range g.members {
			m.assignment = nil
			if m.syncTo != 0 {
				s.reply(m.syncTo, SyncError(kerr.RebalanceInProgress.Code))
				m.syncTo = 0
			}
		}
	}
	var timeout time.Duration
	for _, m := range g.members {
		timeout = max(timeout, m.rebalanceTimeout)
	}
	if g.state == Empty {
		g.initialDeadline = now.Add(min(s.cfg.InitialRebalanceDelay, timeout))
		g.initialLimit = now.Add(timeout)
	} else {
		g.initialDeadline = time.Time{}
	}
	g.rebalanceDeadline = now.Add(timeout)
	g.setState(PreparingRebalance, now)
	s.maybeCompleteJoin(now, g)
}

func (g *Group) allJoined() bool {
	if len(g.pending) > 0 {
		return false
	}
	for _, m := range g.members {
		if m.joinTo == 0 {
			return false
		}
	}
	return true
}

// maybeCompleteJoin completes the join phase when every member has
// rejoined (and any initial delay has passed).
func (s *Shard) maybeCompleteJoin(now time.Time, g *Group) {
	if g.state != PreparingRebalance {
		return
	}
	if !g.initialDeadline.IsZero() && now.Before(g.initialDeadline) {
		return
	}
	if g.allJoined() || !now.Before(g.rebalanceDeadline) {
		s.completeJoin(now, g)
	}
}

// completeJoin ends the join phase: members that did not rejoin are
// removed, a new generation starts, and every waiting JoinGroup is answered.
func (s *Shard) completeJoin(now time.Time, g *Group) {
	for id, m := range g.members {
		if m.joinTo == 0 {
			s.removeMember(g, id)
		}
	}
	g.initialDeadline = time.Time{}
	g.generation++
	if len(g.members) == 0 {
		g.protocol = ""
		g.leader = ""
		g.setState(Empty, now)
		g.writing++
		s.write([]Record{g.metadataRecord(now)}, func(error) { g.writing-- })
		return
	}
	g.protocol = g.selectProtocol()
	if g.members[g.leader] == nil {
		var first *member
		for _, m := range g.members {
			if first == nil || m.joinSeq < first.joinSeq {
				first = m
			}
		}
		g.leader = first.id
	}
	g.setState(CompletingRebalance, now)
	s.rebalances++
	var timeout time.Duration
	for _, m := range g.sortedMembers() {
		timeout = max(timeout, m.rebalanceTimeout)
		resp := g.joinResponse(m)
		s.reply(m.joinTo, resp)
		m.joinTo = 0
		m.heartbeatDeadline = now.Add(m.sessionTimeout)
	}
	g.syncDeadline = now.Add(timeout)
}

// selectProtocol picks the protocol every member supports that most
// members prefer (ties go to the leader's order), as Kafka votes.
func (g *Group) selectProtocol() string {
	members := g.sortedMembers()
	var candidates []string
	for _, p := range members[0].protocols {
		ok := true
		for _, m := range members[1:] {
			if !hasProtocol(m, p.name) {
				ok = false
				break
			}
		}
		if ok {
			candidates = append(candidates, p.name)
		}
	}
	votes := map[string]int{}
	for _, m := range members {
		for _, p := range m.protocols {
			if contains(candidates, p.name) {
				votes[p.name]++
				break
			}
		}
	}
	best := ""
	for _, c := range candidates {
		if best == "" || votes[c] > votes[best] {
			best = c
		}
	}
	return best
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// removeMember drops a member and its static mapping.
func (s *Shard) removeMember(g *Group, id string) {
	m := g.members[id]
	if m == nil {
		return
	}
	if m.joinTo != 0 {
		s.reply(m.joinTo, JoinError(id, kerr.UnknownMemberID.Code))
		m.joinTo = 0
	}
	if m.syncTo != 0 {
		s.reply(m.syncTo, SyncError(kerr.UnknownMemberID.Code))
		m.syncTo = 0
	}
	delete(g.members, id)
	if m.instanceID != "" && g.static[m.instanceID] == id {
		delete(g.static, m.instanceID)
	}
}

// SyncError is a SyncGroup answer carrying only an error.
func SyncError(code int16) *kmsg.SyncGroupResponse {
	resp := kmsg.NewPtrSyncGroupResponse()
	resp.ErrorCode = code
	return resp
}

// Sync handles SyncGroup.
func (s *Shard) Sync(now time.Time, to ReplyTo, req *kmsg.SyncGroupRequest) {
	switch {
	case !validGroupID(req.Group):
		s.reply(to, SyncError(kerr.InvalidGroupID.Code))
		return
	case s.loading:
		s.reply(to, SyncError(kerr.CoordinatorLoadInProgress.Code))
		return
	}
	g := s.groups[req.Group]
	if g == nil || g.consumer != nil {
		s.reply(to, SyncError(kerr.UnknownMemberID.Code))
		return
	}
	instance := ""
	if req.InstanceID != nil {
		instance = *req.InstanceID
	}
	if code := g.checkMember(req.MemberID, instance); code != 0 {
		s.reply(to, SyncError(code))
		return
	}
	if req.Generation != g.generation {
		s.reply(to, SyncError(kerr.IllegalGeneration.Code))
		return
	}
	if (req.ProtocolType != nil && *req.ProtocolType != g.protocolType) || (req.Protocol != nil && *req.Protocol != g.protocol) {
		s.reply(to, SyncError(kerr.InconsistentGroupProtocol.Code))
		return
	}
	m := g.members[req.MemberID]
	switch g.state {
	case PreparingRebalance:
		s.reply(to, SyncError(kerr.RebalanceInProgress.Code))
	case CompletingRebalance:
		if m.syncTo != 0 {
			s.reply(m.syncTo, SyncError(kerr.UnknownMemberID.Code))
		}
		m.syncTo = to
		m.heartbeatDeadline = now.Add(m.sessionTimeout)
		if m.id != g.leader {
			return
		}
		assigned := map[string][]byte{}
		for _, a := range req.GroupAssignment {
			assigned[a.MemberID] = a.MemberAssignment
		}
		for _, gm := range g.members {
			gm.assignment = assigned[gm.id]
		}
		s.storeAssignment(now, g)
	case Stable:
		m.heartbeatDeadline = now.Add(m.sessionTimeout)
		s.reply(to, g.syncResponse(m))
	default:
		s.reply(to, SyncError(kerr.UnknownMemberID.Code))
	}
}

func (g *Group) syncResponse(m *member) *kmsg.SyncGroupResponse {
	resp := kmsg.NewPtrSyncGroupResponse()
	pt, p := g.protocolType, g.protocol
	resp.ProtocolType, resp.Protocol = &pt, &p
	resp.MemberAssignment = m.assignment
	if resp.MemberAssignment == nil {
		resp.MemberAssignment = []byte{}
	}
	return resp
}

// storeAssignment persists the leader's assignment; the group is Stable and
// the waiting SyncGroups are answered once the record is durable.
func (s *Shard) storeAssignment(now time.Time, g *Group) {
	rec := g.metadataRecord(now)
	gen := g.generation
	if s.cfg.MaxRecordBytes > 0 && len(rec.Key)+len(rec.Value)+128 > s.cfg.MaxRecordBytes {
		// Kafka answers RECORD_TOO_LARGE from the log as UNKNOWN_SERVER_ERROR.
		s.failSync(now, g, kerr.UnknownServerError.Code)
		return
	}
	g.writing++
	s.write([]Record{rec}, func(err error) {
		g.writing--
		if g.generation != gen || g.state != CompletingRebalance {
			return // a later rebalance already answered the waiters
		}
		if err != nil {
			s.failSync(now, g, kerr.CoordinatorNotAvailable.Code)
			return
		}
		g.setState(Stable, now)
		for _, m := range g.sortedMembers() {
			if m.syncTo != 0 {
				s.reply(m.syncTo, g.syncResponse(m))
				m.syncTo = 0
			}
		}
	})
}

// failSync answers the waiting SyncGroups with code and starts over.
func (s *Shard) failSync(now time.Time, g *Group, code int16) {
	for _, m := range g.members {
		m.assignment = nil
		if m.syncTo != 0 {
			s.reply(m.syncTo, SyncError(code))
			m.syncTo = 0
		}
	}
	s.prepareRebalance(now, g)
}

// Heartbeat handles Heartbeat.
func (s *Shard) Heartbeat(now time.Time, to ReplyTo, req *kmsg.HeartbeatRequest) {
	resp := kmsg.NewPtrHeartbeatResponse()
	defer s.reply(to, resp)
	switch {
	case !validGroupID(req.Group):
		resp.ErrorCode = kerr.InvalidGroupID.Code
		return
	case s.loading:
		resp.ErrorCode = kerr.CoordinatorLoadInProgress.Code
		return
	}
	g := s.groups[req.Group]
	if g == nil || g.consumer != nil {
		resp.ErrorCode = kerr.UnknownMemberID.Code
		return
	}
	instance := ""
	if req.InstanceID != nil {
		instance = *req.InstanceID
	}
	if code := g.checkMember(req.MemberID, instance); code != 0 {
		resp.ErrorCode = code
		return
	}
	if req.Generation != g.generation {
		resp.ErrorCode = kerr.IllegalGeneration.Code
		return
	}
	m := g.members[req.MemberID]
	switch g.state {
	case PreparingRebalance:
		m.heartbeatDeadline = now.Add(m.sessionTimeout)
		resp.ErrorCode = kerr.RebalanceInProgress.Code
	case CompletingRebalance, Stable:
		m.heartbeatDeadline = now.Add(m.sessionTimeout)
	default:
		resp.ErrorCode = kerr.UnknownMemberID.Code
	}
}

// Leave handles LeaveGroup (v0-2: one member; v3+: a batch).
func (s *Shard) Leave(now time.Time, to ReplyTo, req *kmsg.LeaveGroupRequest) {
	resp := kmsg.NewPtrLeaveGroupResponse()
	switch {
	case !validGroupID(req.Group):
		resp.ErrorCode = kerr.InvalidGroupID.Code
		s.reply(to, resp)
		return
	case s.loading:
		resp.ErrorCode = kerr.CoordinatorLoadInProgress.Code
		s.reply(to, resp)
		return
	}
	g := s.groups[req.Group]
	leaving := req.Members
	if req.Version < 3 {
		leaving = []kmsg.LeaveGroupRequestMember{{MemberID: req.MemberID}}
	}
	if g == nil || g.consumer != nil {
		resp.ErrorCode = kerr.UnknownMemberID.Code
		s.reply(to, resp)
		return
	}
	removed := false
	for _, lm := range leaving {
		rm := kmsg.NewLeaveGroupResponseMember()
		rm.MemberID, rm.InstanceID = lm.MemberID, lm.InstanceID
		id := lm.MemberID
		if lm.InstanceID != nil && *lm.InstanceID != "" {
			cur, ok := g.static[*lm.InstanceID]
			switch {
			case !ok:
				rm.ErrorCode = kerr.UnknownMemberID.Code
			case id != "" && id != cur:
				rm.ErrorCode = kerr.FencedInstanceID.Code
			default:
				id = cur
			}
		} else if _, ok := g.pending[id]; ok {
			delete(g.pending, id)
			removed = true
		} else if g.members[id] == nil {
			rm.ErrorCode = kerr.UnknownMemberID.Code
		}
		if rm.ErrorCode == 0 && g.members[id] != nil {
			s.removeMember(g, id)
			removed = true
		}
		resp.Members = append(resp.Members, rm)
	}
	if req.Version < 3 {
		resp.ErrorCode = resp.Members[0].ErrorCode
		resp.Members = nil
	}
	s.reply(to, resp)
	if !removed {
		return
	}
	switch g.state {
	case Stable, CompletingRebalance:
		s.prepareRebalance(now, g)
	case PreparingRebalance:
		s.maybeCompleteJoin(now, g)
	}
}

// tickClassic expires sessions and pending ids and completes rebalances
// whose time is up; it returns the group's next deadline.
func (s *Shard) tickClassic(g *Group, now time.Time) time.Time {
	var next time.Time
	note := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	for id, deadline := range g.pending {
		if !now.Before(deadline) {
			delete(g.pending, id)
		} else {
			note(deadline)
		}
	}
	expired := false
	for _, m := range g.sortedMembers() {
		// Members waiting in JoinGroup or SyncGroup are kept alive: the
		// rebalance and sync deadlines bound them instead (as Kafka does).
		if m.joinTo != 0 || m.syncTo != 0 {
			continue
		}
		if !now.Before(m.heartbeatDeadline) {
			s.removeMember(g, m.id)
			expired = true
			continue
		}
		note(m.heartbeatDeadline)
	}
	switch g.state {
	case PreparingRebalance:
		s.maybeCompleteJoin(now, g)
	case CompletingRebalance:
		if !now.Before(g.syncDeadline) {
			// Members that never synced are dropped (Kafka's pending-sync timeout).
			for id, m := range g.members {
				if m.syncTo == 0 {
					s.removeMember(g, id)
				}
			}
			s.prepareRebalance(now, g)
		} else if expired {
			s.prepareRebalance(now, g)
		}
	case Stable:
		if expired {
			s.prepareRebalance(now, g)
		}
	}
	switch g.state {
	case PreparingRebalance:
		note(g.rebalanceDeadline)
		note(g.initialDeadline)
	case CompletingRebalance:
		note(g.syncDeadline)
	}
	return next
}

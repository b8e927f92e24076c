package group

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const sess = 10 * time.Second

// joinNew runs the two-step join (MEMBER_ID_REQUIRED, then the real one)
// and returns the member id and the address of the waiting JoinGroup.
func (h *harness) joinNew(group string) (string, ReplyTo) {
	h.t.Helper()
	r := h.joinResp(h.join(joinReq(group, "", "", sess)))
	if r.ErrorCode != kerr.MemberIDRequired.Code {
		h.t.Fatalf("first join: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	return r.MemberID, h.join(joinReq(group, r.MemberID, "", sess))
}

// stableGroup forms a group of n members and returns their ids and the generation.
func (h *harness) stableGroup(group string, n int) ([]string, int32) {
	h.t.Helper()
	var ids []string
	var tos []ReplyTo
	for range n {
		id, to := h.joinNew(group)
		ids = append(ids, id)
		tos = append(tos, to)
		// Members already in must rejoin for the newcomer's rebalance.
		for i := range len(ids) - 1 {
			if r := h.reply(tos[i]); r != nil {
				tos[i] = h.join(joinReq(group, ids[i], "", sess))
			} else {
				tos[i] = 0
			}
		}
	}
	h.advance(0)
	var gen int32
	var leader string
	for i, to := range tos {
		if to == 0 {
			continue
		}
		r := h.reply(to)
		if r == nil {
			tos[i] = h.join(joinReq(group, ids[i], "", sess))
			r = h.reply(tos[i])
		}
		jr := r.(*kmsg.JoinGroupResponse)
		if jr.ErrorCode != 0 {
			h.t.Fatalf("join: %v", kerr.ErrorForCode(jr.ErrorCode))
		}
		gen, leader = jr.Generation, jr.LeaderID
	}
	assign := map[string]string{}
	for _, id := range ids {
		assign[id] = "a-" + id
	}
	var syncs []ReplyTo
	for _, id := range ids {
		if id != leader {
			syncs = append(syncs, h.sync(group, id, gen, nil))
		}
	}
	syncs = append(syncs, h.sync(group, leader, gen, assign))
	for _, to := range syncs {
		if sr := h.reply(to).(*kmsg.SyncGroupResponse); sr.ErrorCode != 0 {
			h.t.Fatalf("sync: %v", kerr.ErrorForCode(sr.ErrorCode))
		}
	}
	if st := h.s.Group(group).State(); st != Stable {
		h.t.Fatalf("group is %v after syncing", st)
	}
	return ids, gen
}

func TestJoinSyncHeartbeat(t *testing.T) {
	h := newHarness(t, testConfig())
	id, to := h.joinNew("g")
	jr := h.joinResp(to)
	if jr.ErrorCode != 0 || jr.Generation != 1 || jr.LeaderID != id || len(jr.Members) != 1 || *jr.Protocol != "range" {
		t.Fatalf("join response: %+v", jr)
	}
	if st := h.s.Group("g").State(); st != CompletingRebalance {
		t.Fatalf("state %v", st)
	}
	wantCode(t, "heartbeat while completing", h.heartbeat("g", id, "", 1), nil)
	h.hold = true
	sto := h.sync("g", id, 1, map[string]string{id: "mine"})
	if h.reply(sto) != nil {
		t.Fatal("SyncGroup answered before its record was durable")
	}
	h.hold = false
	h.release()
	sr := h.reply(sto).(*kmsg.SyncGroupResponse)
	if sr.ErrorCode != 0 || string(sr.MemberAssignment) != "mine" {
		t.Fatalf("sync: %+v", sr)
	}
	wantCode(t, "heartbeat", h.heartbeat("g", id, "", 1), nil)
	wantCode(t, "heartbeat, wrong generation", h.heartbeat("g", id, "", 2), kerr.IllegalGeneration)
	wantCode(t, "heartbeat, unknown member", h.heartbeat("g", "x", "", 1), kerr.UnknownMemberID)
	wantCode(t, "heartbeat, unknown group", h.heartbeat("nope", id, "", 1), kerr.UnknownMemberID)
}

func TestNewMemberTriggersRebalance(t *testing.T) {
	h := newHarness(t, testConfig())
	ids, gen := h.stableGroup("g", 1)
	newID, newTo := h.joinNew("g")
	if h.reply(newTo) != nil {
		t.Fatal("the newcomer's join completed before the old member rejoined")
	}
	wantCode(t, "old member's heartbeat", h.heartbeat("g", ids[0], "", gen), kerr.RebalanceInProgress)
	wantCode(t, "a commit with the current generation during the rebalance", commitCode(h.reply(h.commit("g", ids[0], gen, "t", 0, 7))), nil)
	oldTo := h.join(joinReq("g", ids[0], "", sess))
	a, b := h.joinResp(oldTo), h.joinResp(newTo)
	if a.Generation != gen+1 || b.Generation != gen+1 {
		t.Fatalf("generations %d, %d", a.Generation, b.Generation)
	}
	if a.LeaderID != ids[0] || len(a.Members) != 2 || len(b.Members) != 0 {
		t.Fatalf("the old leader stays leader and alone sees the members: %+v / %+v", a, b)
	}
	wantCode(t, "stale commit", commitCode(h.reply(h.commit("g", ids[0], gen, "t", 0, 3))), kerr.IllegalGeneration)
	wantCode(t, "commit while completing", commitCode(h.reply(h.commit("g", newID, gen+1, "t", 0, 3))), kerr.RebalanceInProgress)
	if got := h.committed("g", "t", 0); got != 7 {
		t.Fatalf("committed %d", got)
	}
}

func TestSessionExpiryAndRebalanceTimeout(t *testing.T) {
	h := newHarness(t, testConfig())
	ids, gen := h.stableGroup("g", 2)
	h.advance(sess / 2)
	wantCode(t, "heartbeat", h.heartbeat("g", ids[0], "", gen), nil)
	h.advance(sess/2 + time.Millisecond)
	// ids[1] stopped heartbeating: it is gone and the group rebalances.
	if g := h.s.Group("g"); g.State() != PreparingRebalance || g.Size() != 1 {
		t.Fatalf("state %v with %d members", g.State(), g.Size())
	}
	wantCode(t, "expired member", h.heartbeat("g", ids[1], "", gen), kerr.UnknownMemberID)
	jr := h.joinResp(h.join(joinReq("g", ids[0], "", sess)))
	if jr.Generation != gen+1 || len(jr.Members) != 1 {
		t.Fatalf("%+v", jr)
	}
	// Now nobody syncs: after the rebalance timeout the member is dropped.
	h.advance(sess + time.Millisecond)
	h.advance(sess + time.Millisecond)
	if g := h.s.Group("g"); g.State() != Empty || g.Size() != 0 {
		t.Fatalf("state %v with %d members", g.State(), g.Size())
	}
}

func TestMemberThatDoesNotRejoinIsDropped(t *testing.T) {
	h := newHarness(t, testConfig())
	ids, gen := h.stableGroup("g", 2)
	to := h.join(joinReq("g", ids[0], "", sess, "range", "roundrobin"))
	if h.reply(to) != nil {
		t.Fatal("answered before the other member rejoined")
	}
	h.advance(sess / 2)
	wantCode(t, "the other member's heartbeat", h.heartbeat("g", ids[1], "", gen), kerr.RebalanceInProgress)
	h.advance(sess/2 + time.Millisecond)
	jr := h.joinResp(to)
	if jr.ErrorCode != 0 || len(jr.Members) != 1 || h.s.Group("g").Size() != 1 {
		t.Fatalf("after the rebalance timeout: %+v", jr)
	}
}

func TestLeave(t *testing.T) {
	h := newHarness(t, testConfig())
	ids, _ := h.stableGroup("g", 2)
	r := kmsg.NewPtrLeaveGroupRequest()
	r.Version = 5
	r.Group = "g"
	r.Members = []kmsg.LeaveGroupRequestMember{{MemberID: ids[1]}, {MemberID: "ghost"}}
	to := h.to()
	h.s.Leave(h.now, to, r)
	h.settle()
	lr := h.reply(to).(*kmsg.LeaveGroupResponse)
	if lr.ErrorCode != 0 || lr.Members[0].ErrorCode != 0 || lr.Members[1].ErrorCode != kerr.UnknownMemberID.Code {
		t.Fatalf("%+v", lr)
	}
	if g := h.s.Group("g"); g.State() != PreparingRebalance || g.Size() != 1 {
		t.Fatalf("state %v size %d", g.State(), g.Size())
	}
}

func TestStaticMemberRejoinKeepsGeneration(t *testing.T) {
	h := newHarness(t, testConfig())
	// Two static members.
	a := h.joinResp(h.join(joinReq("g", "", "ia", sess)))
	bTo := h.join(joinReq("g", "", "ib", sess))
	_ = a
	h.advance(0)
	aTo := h.join(joinReq("g", h.s.Group("g").static["ia"], "ia", sess))
	ar, br := h.joinResp(aTo), h.joinResp(bTo)
	gen := ar.Generation
	leader := ar.LeaderID
	other := br.MemberID
	if leader == br.MemberID {
		other = ar.MemberID
	}
	st1 := h.sync("g", other, gen, nil)
	h.sync("g", leader, gen, map[string]string{ar.MemberID: "A", br.MemberID: "B"})
	if sr := h.reply(st1).(*kmsg.SyncGroupResponse); sr.ErrorCode != 0 {
		t.Fatal(kerr.ErrorForCode(sr.ErrorCode))
	}
	// "ib" restarts: a new member id, same instance id.
	oldB := br.MemberID
	nr := h.joinResp(h.join(joinReq("g", "", "ib", sess)))
	if nr.ErrorCode != 0 || nr.Generation != gen || nr.MemberID == oldB {
		t.Fatalf("rejoin: %+v", nr)
	}
	if st := h.s.Group("g").State(); st != Stable {
		t.Fatalf("a static rejoin rebalanced: %v", st)
	}
	sr := h.reply(h.sync("g", nr.MemberID, gen, nil)).(*kmsg.SyncGroupResponse)
	if string(sr.MemberAssignment) != "B" {
		t.Fatalf("assignment after rejoin %q", sr.MemberAssignment)
	}
	wantCode(t, "the old incarnation", h.heartbeat("g", oldB, "ib", gen), kerr.FencedInstanceID)
}

func TestInconsistentProtocols(t *testing.T) {
	h := newHarness(t, testConfig())
	h.stableGroup("g", 1)
	r := joinReq("g", "", "", sess, "other")
	wantCode(t, "no common protocol", h.joinResp(h.join(r)).ErrorCode, kerr.InconsistentGroupProtocol)
	r = joinReq("g", "", "", sess)
	r.ProtocolType = "connect"
	wantCode(t, "another protocol type", h.joinResp(h.join(r)).ErrorCode, kerr.InconsistentGroupProtocol)
}

func TestProtocolVote(t *testing.T) {
	h := newHarness(t, testConfig())
	g := newGroup("g", h.now)
	g.members["a"] = &member{id: "a", protocols: []protocol{{name: "x"}, {name: "y"}}}
	g.members["b"] = &member{id: "b", protocols: []protocol{{name: "y"}, {name: "x"}}}
	g.members["c"] = &member{id: "c", protocols: []protocol{{name: "y"}, {name: "z"}}}
	if p := g.selectProtocol(); p != "y" {
		t.Fatalf("selected %q", p)
	}
}

func TestCommitRules(t *testing.T) {
	h := newHarness(t, testConfig())
	ids, gen := h.stableGroup("g", 1)
	cases := []struct {
		what   string
		group  string
		member string
		gen    int32
		topic  string
		want   *kerr.Error
	}{
		{"member commit", "g", ids[0], gen, "t", nil},
		{"unknown member", "g", "x", gen, "t", kerr.UnknownMemberID},
		{"wrong generation", "g", ids[0], gen + 1, "t", kerr.IllegalGeneration},
		{"admin commit into a live group", "g", "", -1, "t", kerr.UnknownMemberID},
		{"admin commit into a new group", "simple", "", -1, "t", nil},
		{"unknown group with a generation (v8)", "other", "m", 1, "t", kerr.IllegalGeneration},
		{"unknown topic", "simple", "", -1, "nope", kerr.UnknownTopicOrPartition},
		{"empty group id", "", "", -1, "t", kerr.InvalidGroupID},
	}
	for _, c := range cases {
		wantCode(t, c.what, commitCode(h.reply(h.commit(c.group, c.member, c.gen, c.topic, 0, 1))), c.want)
	}
	// A failed write applies nothing.
	h.failing = true
	wantCode(t, "commit that cannot be written", commitCode(h.reply(h.commit("simple", "", -1, "t", 1, 9))), kerr.CoordinatorNotAvailable)
	h.failing = false
	if got := h.committed("simple", "t", 1); got != -1 {
		t.Fatalf("a failed commit is visible: %d", got)
	}
}

func TestDeleteGroupsAndOffsets(t *testing.T) {
	h := newHarness(t, testConfig())
	h.commit("simple", "", -1, "t", 0, 4)
	h.commit("simple", "", -1, "u", 0, 5)
	ids, _ := h.stableGroup("live", 1)
	_ = ids
	del := func(id string) int16 {
		to := h.to()
		h.s.DeleteGroup(h.now, to, id)
		h.settle()
		return h.reply(to).(*kmsg.DeleteGroupsResponseGroup).ErrorCode
	}
	wantCode(t, "delete a live group", del("live"), kerr.NonEmptyGroup)
	wantCode(t, "delete a missing group", del("missing"), kerr.GroupIDNotFound)

	od := kmsg.NewPtrOffsetDeleteRequest()
	od.Group = "simple"
	od.Topics = []kmsg.OffsetDeleteRequestTopic{{Topic: "u", Partitions: []kmsg.OffsetDeleteRequestTopicPartition{{Partition: 0}}}}
	to := h.to()
	h.s.DeleteOffsets(h.now, to, od)
	h.settle()
	if r := h.reply(to).(*kmsg.OffsetDeleteResponse); r.ErrorCode != 0 || r.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("%+v", r)
	}
	if h.committed("simple", "u", 0) != -1 || h.committed("simple", "t", 0) != 4 {
		t.Fatal("OffsetDelete removed the wrong offsets")
	}
	wantCode(t, "delete an empty group", del("simple"), nil)
	if h.s.Group("simple") != nil || h.committed("simple", "t", 0) != -1 {
		t.Fatal("the deleted group is still there")
	}
}

func TestOffsetExpiry(t *testing.T) {
	h := newHarness(t, testConfig())
	h.commit("simple", "", -1, "t", 0, 4)
	h.advance(time.Hour)
	h.commit("simple", "", -1, "t", 1, 5)
	h.now = h.now.Add(23*time.Hour + time.Minute)
	h.s.ExpireOffsets(h.now)
	h.settle()
	if h.committed("simple", "t", 0) != -1 || h.committed("simple", "t", 1) != 5 {
		t.Fatal("expiry is per offset in a simple group")
	}
	h.now = h.now.Add(2 * time.Hour)
	h.s.ExpireOffsets(h.now)
	h.settle()
	if h.s.Group("simple") != nil {
		t.Fatal("a group with no offsets left should be gone")
	}
}

// TestReplay rebuilds a shard from what the first one persisted.
func TestReplay(t *testing.T) {
	h := newHarness(t, testConfig())
	ids, gen := h.stableGroup("g", 2)
	h.commit("g", ids[0], gen, "t", 3, 42)
	h.commit("simple", "", -1, "u", 1, 7)
	h.commit("gone", "", -1, "u", 1, 7)
	to := h.to()
	h.s.DeleteGroup(h.now, to, "gone")
	h.settle()

	r := NewShard(testConfig())
	for _, rec := range h.log {
		if err := r.Load(h.now, rec.Key, rec.Value); err != nil {
			t.Fatal(err)
		}
	}
	r.Loaded(h.now)
	g := r.Group("g")
	if g == nil || g.State() != Stable || g.Generation() != gen || g.Size() != 2 {
		t.Fatalf("replayed group: %+v", g)
	}
	if o := g.Offsets()[TopicPartition{"t", 3}]; o.Offset != 42 {
		t.Fatalf("replayed offset %+v", o)
	}
	if r.Group("gone") != nil || r.Group("simple").Offsets()[TopicPartition{"u", 1}].Offset != 7 {
		t.Fatal("replay of tombstones or simple groups is wrong")
	}
	// The replayed members keep heartbeating without a rebalance.
	h2 := &harness{t: t, s: r, now: h.now, replies: map[ReplyTo]any{}}
	wantCode(t, "heartbeat after replay", h2.heartbeat("g", ids[1], "", gen), nil)
}

func TestStats(t *testing.T) {
	h := newHarness(t, testConfig())
	h.stableGroup("g", 2)
	h.commit("simple", "", -1, "t", 0, 1)
	h.hb("k", "m", "", 0, []string{"t"}, partitions{})
	st := h.s.Stats()
	if st.Rebalances != 2 || st.Commits != 1 { // one member alone, then both
		t.Fatalf("rebalances %d, commits %d", st.Rebalances, st.Commits)
	}
	want := map[[2]string]int{{"classic", "Stable"}: 1, {"classic", "Empty"}: 1, {"consumer", "Stable"}: 1}
	for k, n := range want {
		if st.Groups[k] != n {
			t.Fatalf("groups %v, want %v", st.Groups, want)
		}
	}
}

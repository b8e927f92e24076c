package group

import (
	"fmt"
	"math/rand"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// hb sends a ConsumerGroupHeartbeat. owned nil = a keepalive (no Topics).
func (h *harness) hb(group, member, instance string, epoch int32, topics []string, owned partitions) *kmsg.ConsumerGroupHeartbeatResponse {
	h.t.Helper()
	r := kmsg.NewPtrConsumerGroupHeartbeatRequest()
	r.Version = 1
	r.Group, r.MemberID, r.MemberEpoch = group, member, epoch
	if instance != "" {
		r.InstanceID = &instance
	}
	r.RebalanceTimeoutMillis = 5000
	r.SubscribedTopicNames = topics
	if owned != nil {
		r.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{}
		for _, t := range sortedKeys(owned) {
			id, _ := h.s.cfg.Topics.TopicID(t)
			r.Topics = append(r.Topics, kmsg.ConsumerGroupHeartbeatRequestTopic{TopicID: id, Partitions: owned[t]})
		}
	}
	to := h.to()
	h.s.ConsumerHeartbeat(h.now, to, r, Client{ID: "c", Host: "/h"})
	h.settle()
	resp := h.reply(to)
	if resp == nil {
		h.t.Fatalf("heartbeat of %s not answered", member)
	}
	return resp.(*kmsg.ConsumerGroupHeartbeatResponse)
}

// assigned turns a heartbeat's assignment into names.
func (h *harness) assigned(resp *kmsg.ConsumerGroupHeartbeatResponse) partitions {
	if resp.Assignment == nil {
		return nil
	}
	out := partitions{}
	for _, t := range resp.Assignment.Topics {
		name, _ := h.s.cfg.Topics.TopicName(t.TopicID)
		for _, p := range t.Partitions {
			out.add(name, p)
		}
	}
	return out
}

func pset(spec string) partitions {
	out := partitions{}
	for _, part := range strings.Fields(spec) {
		var t string
		var p int32
		i := strings.LastIndexByte(part, '-')
		t = part[:i]
		fmt.Sscan(part[i+1:], &p)
		out.add(t, p)
	}
	return out
}

func TestConsumerJoinRevokeAssign(t *testing.T) {
	h := newHarness(t, testConfig())
	topics := []string{"u"}
	a := h.hb("g", "a", "", 0, topics, partitions{})
	if a.ErrorCode != 0 || a.MemberEpoch != 1 || !h.assigned(a).equal(pset("u-0 u-1 u-2")) {
		t.Fatalf("first member: %+v %v", a, h.assigned(a))
	}
	b := h.hb("g", "b", "", 0, topics, partitions{})
	if b.MemberEpoch != 2 || h.assigned(b).count() != 0 {
		t.Fatalf("second member must wait for what a holds: epoch %d, %v", b.MemberEpoch, h.assigned(b))
	}
	// a learns it must give partitions up; its epoch stays.
	a = h.hb("g", "a", "", 1, nil, nil)
	mine := h.assigned(a)
	if a.MemberEpoch != 1 || mine == nil || mine.count() >= 3 {
		t.Fatalf("revocation: epoch %d, %v", a.MemberEpoch, mine)
	}
	// b still gets nothing while a has not reported the release.
	if b = h.hb("g", "b", "", 2, nil, nil); h.assigned(b).count() != 0 {
		t.Fatalf("b got partitions a still holds: %v", h.assigned(b))
	}
	a = h.hb("g", "a", "", 1, nil, mine)
	if a.MemberEpoch != 2 {
		t.Fatalf("after releasing, a moves to epoch 2: %d", a.MemberEpoch)
	}
	b = h.hb("g", "b", "", 2, nil, nil)
	theirs := h.assigned(b)
	if theirs.count()+mine.count() != 3 || theirs.intersect(mine).count() != 0 {
		t.Fatalf("final split: a %v, b %v", mine, theirs)
	}
	if st := h.s.Group("g").consumer.state(); st != Stable {
		t.Fatalf("state %v", st)
	}
	// Errors.
	wantCode(t, "stale epoch", h.hb("g", "a", "", 1, nil, nil).ErrorCode, kerr.FencedMemberEpoch)
	wantCode(t, "unknown member", h.hb("g", "zz", "", 2, nil, nil).ErrorCode, kerr.UnknownMemberID)
	wantCode(t, "joining with owned partitions", h.hb("g", "c", "", 0, topics, pset("u-0")).ErrorCode, kerr.InvalidRequest)
	r := kmsg.NewPtrConsumerGroupHeartbeatRequest()
	r.Version, r.Group, r.MemberID, r.SubscribedTopicNames, r.RebalanceTimeoutMillis = 1, "g", "d", topics, 5000
	assignor := "sticky"
	r.ServerAssignor = &assignor
	to := h.to()
	h.s.ConsumerHeartbeat(h.now, to, r, Client{})
	h.settle()
	wantCode(t, "unknown assignor", h.reply(to).(*kmsg.ConsumerGroupHeartbeatResponse).ErrorCode, kerr.UnsupportedAssignor)

	// Commits carry the member epoch.
	commit := func(member string, epoch int32) int16 {
		return commitCode(h.reply(h.commit("g", member, epoch, "u", 0, 5)))
	}
	wantCode(t, "commit with the member epoch", commit("a", 2), nil)
	wantCode(t, "commit with the previous epoch", commit("a", 1), nil)
	wantCode(t, "commit with an older epoch", commit("a", 0), kerr.StaleMemberEpoch)
	wantCode(t, "commit from a stranger", commit("zz", 2), kerr.UnknownMemberID)

	// Leaving frees a's partitions for b.
	if l := h.hb("g", "a", "", -1, nil, nil); l.ErrorCode != 0 || l.MemberEpoch != -1 {
		t.Fatalf("leave: %+v", l)
	}
	b = h.hb("g", "b", "", 2, nil, theirs)
	if b.MemberEpoch != 3 || !h.assigned(b).equal(pset("u-0 u-1 u-2")) {
		t.Fatalf("after a left: epoch %d, %v", b.MemberEpoch, h.assigned(b))
	}
	// And a session that lapses removes the member.
	h.advance(h.s.cfg.ConsumerSessionTimeout + time.Millisecond)
	if g := h.s.Group("g"); g.Size() != 0 || g.consumer.state() != Empty {
		t.Fatalf("after the session timeout: %d members", g.Size())
	}
}

func TestConsumerStaticMemberRejoin(t *testing.T) {
	h := newHarness(t, testConfig())
	a := h.hb("g", "a1", "ia", 0, []string{"t"}, partitions{})
	h.hb("g", "b", "", 0, []string{"t"}, partitions{})
	a = h.hb("g", "a1", "ia", a.MemberEpoch, nil, nil)
	mine := h.assigned(a)
	a = h.hb("g", "a1", "ia", a.MemberEpoch, nil, mine)
	epoch := h.s.Group("g").consumer.epoch
	if l := h.hb("g", "a1", "ia", -2, nil, nil); l.ErrorCode != 0 {
		t.Fatal(kerr.ErrorForCode(l.ErrorCode))
	}
	back := h.hb("g", "a2", "ia", 0, []string{"t"}, partitions{})
	if back.ErrorCode != 0 || back.MemberEpoch != a.MemberEpoch || !h.assigned(back).equal(mine) {
		t.Fatalf("static rejoin: %+v %v (had %v)", back, h.assigned(back), mine)
	}
	if got := h.s.Group("g").consumer.epoch; got != epoch {
		t.Fatalf("a static rejoin moved the group epoch %d -> %d", epoch, got)
	}
	wantCode(t, "the instance is taken", h.hb("g", "a3", "ia", 0, []string{"t"}, partitions{}).ErrorCode, kerr.UnreleasedInstanceID)
}

func TestAssignors(t *testing.T) {
	topics := fakeTopics{"t": 7, "u": 2}
	ms := []*consumerMember{{id: "a", topics: []string{"t", "u"}}, {id: "b", topics: []string{"t", "u"}}, {id: "c", topics: []string{"t"}}}
	r := rangeAssign(ms, topics)
	want := map[string]string{"a": "t-0 t-1 t-2 u-0", "b": "t-3 t-4 u-1", "c": "t-5 t-6"}
	for id, w := range want {
		if !r[id].equal(pset(w)) {
			t.Fatalf("range: %s got %v, want %s", id, r[id], w)
		}
	}
	u := uniformAssign(ms, nil, topics)
	counts := []int{u["a"].count(), u["b"].count(), u["c"].count()}
	sort.Ints(counts)
	if counts[0] != 3 || counts[2] != 3 {
		t.Fatalf("uniform is unbalanced: %v", u)
	}
	// Sticky: a fourth member takes partitions without moving others'.
	ms2 := append(ms, &consumerMember{id: "d", topics: []string{"t", "u"}})
	u2 := uniformAssign(ms2, u, topics)
	moved := 0
	for _, id := range []string{"a", "b", "c"} {
		moved += u[id].minus(u2[id]).count()
	}
	if moved != u2["d"].count() || u2["d"].count() < 2 {
		t.Fatalf("uniform moved %d partitions to give d %d: %v -> %v", moved, u2["d"].count(), u, u2)
	}
}

func TestConsumerReplay(t *testing.T) {
	h := newHarness(t, testConfig())
	a := h.hb("g", "a", "", 0, []string{"t"}, partitions{})
	h.hb("g", "a", "", a.MemberEpoch, nil, h.assigned(a))
	h.commit("g", "a", a.MemberEpoch, "t", 4, 99)
	r := NewShard(testConfig())
	for _, rec := range h.log {
		if err := r.Load(h.now, rec.Key, rec.Value); err != nil {
			t.Fatal(err)
		}
	}
	r.Loaded(h.now)
	h2 := &harness{t: t, s: r, now: h.now, replies: map[ReplyTo]any{}}
	again := h2.hb("g", "a", "", a.MemberEpoch, nil, nil)
	if again.ErrorCode != 0 || again.MemberEpoch != a.MemberEpoch {
		t.Fatalf("after replay: %+v", again)
	}
	if h2.committed("g", "t", 4) != 99 {
		t.Fatal("offset lost in replay")
	}
}

// sim848 is a well-behaved (or crashed) KIP-848 client.
type sim848 struct {
	id      string
	alive   bool
	joined  bool
	epoch   int32
	owned   partitions
	pending bool      // owned changed since the last heartbeat
	lastOK  time.Time // last successful heartbeat: past the session timeout the member knows it is out
	// When it was told to give partitions up: if it does not report them
	// released within its rebalance timeout, it is out too.
	revokeSince time.Time
}

// TestRandomizedConsumerGroup runs members joining, leaving, crashing,
// missing heartbeats and sending stale epochs, and checks after every step
// that no partition is owned by two live members, and at the end that the
// group converges with every partition owned.
func TestRandomizedConsumerGroup(t *testing.T) {
	for seed := int64(1); seed <= 300; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { runConsumerSim(t, seed) })
	}
}

func runConsumerSim(t *testing.T, seed int64) {
	rng := rand.New(rand.NewSource(seed))
	cfg := testConfig()
	if rng.Intn(2) == 0 {
		cfg.ConsumerAssignors = []string{"range", "uniform"}
	}
	h := newHarness(t, cfg)
	var trace []string
	fail := func(format string, args ...any) {
		t.Helper()
		if len(trace) > 80 {
			trace = trace[len(trace)-80:]
		}
		t.Fatalf("%s\n%s", fmt.Sprintf(format, args...), strings.Join(trace, "\n"))
	}
	ms := make([]*sim848, 2+rng.Intn(4))
	for i := range ms {
		ms[i] = &sim848{id: fmt.Sprint("m", i), alive: true, owned: partitions{}}
	}
	checkDisjoint := func() {
		seen := map[string]string{}
		for _, m := range ms {
			if !m.alive || !m.joined || !h.now.Before(m.lastOK.Add(h.s.cfg.ConsumerSessionTimeout)) {
				continue
			}
			if !m.revokeSince.IsZero() && !h.now.Before(m.revokeSince.Add(5*time.Second)) {
				continue
			}
			for tp, ps := range m.owned {
				for _, p := range ps {
					k := fmt.Sprintf("%s-%d", tp, p)
					if other, ok := seen[k]; ok {
						fail("%s owned by %s and %s", k, other, m.id)
					}
					if g := h.s.Group("g"); g != nil && g.consumer != nil {
						sm := g.consumer.members[m.id]
						if sm == nil || !(sm.assigned.has(tp, p) || sm.revoking.has(tp, p)) {
							fail("%s believes it owns %s but the coordinator disagrees (%v)", m.id, k, sm)
						}
					}
					seen[k] = m.id
				}
			}
		}
	}
	apply := func(m *sim848, resp *kmsg.ConsumerGroupHeartbeatResponse) {
		switch resp.ErrorCode {
		case 0:
		case kerr.FencedMemberEpoch.Code, kerr.UnknownMemberID.Code:
			trace = append(trace, fmt.Sprintf("%s: %v, rejoining", m.id, kerr.ErrorForCode(resp.ErrorCode)))
			m.joined, m.owned, m.epoch, m.revokeSince = false, partitions{}, 0, time.Time{}
			return
		default:
			trace = append(trace, fmt.Sprintf("%s: %v", m.id, kerr.ErrorForCode(resp.ErrorCode)))
			return
		}
		m.joined, m.epoch, m.lastOK = true, resp.MemberEpoch, h.now
		if a := h.assigned(resp); a != nil {
			if !a.equal(m.owned) {
				m.pending = true
			}
			if m.owned.minus(a).count() > 0 && m.revokeSince.IsZero() {
				m.revokeSince = h.now
			}
			m.owned = a // revoked ones are released at once, new ones taken
			trace = append(trace, fmt.Sprintf("%s epoch %d owns %v", m.id, m.epoch, m.owned))
		}
	}
	step := func(m *sim848) {
		var resp *kmsg.ConsumerGroupHeartbeatResponse
		if !m.joined {
			resp = h.hb("g", m.id, "", 0, []string{"t", "u"}, partitions{})
		} else {
			var owned partitions
			if m.pending || rng.Intn(3) == 0 {
				owned = m.owned
			}
			resp = h.hb("g", m.id, "", m.epoch, nil, owned)
			if owned != nil {
				m.pending = false
				if resp.ErrorCode == 0 {
					m.revokeSince = time.Time{}
				}
			}
		}
		apply(m, resp)
	}
	for i := 0; i < 500; i++ {
		m := ms[rng.Intn(len(ms))]
		switch r := rng.Intn(100); {
		case r < 8:
			d := time.Duration(rng.Intn(4000)) * time.Millisecond
			h.advance(d)
			if g := h.s.Group("g"); g != nil {
				trace = append(trace, fmt.Sprintf("+%v: %d members", d, g.Size()))
			}
		case r < 10 && m.alive:
			m.alive = false
			trace = append(trace, m.id+" crashes")
		case r < 13 && !m.alive:
			m.alive, m.joined, m.owned, m.epoch = true, false, partitions{}, 0
			m.id += "'"
			trace = append(trace, m.id+" starts")
		case r < 15 && m.alive && m.joined:
			h.hb("g", m.id, "", -1, nil, nil)
			m.joined, m.owned, m.epoch = false, partitions{}, 0
			trace = append(trace, m.id+" leaves")
		case r < 18 && m.alive && m.joined && m.epoch > 1:
			// A delayed heartbeat from an older epoch: fenced, or accepted
			// only as the previous epoch with partitions it still owns.
			resp := h.hb("g", m.id, "", m.epoch-1, nil, m.owned)
			trace = append(trace, fmt.Sprintf("%s sends epoch %d: %v", m.id, m.epoch-1, kerr.ErrorForCode(resp.ErrorCode)))
			m.pending = false
			if resp.ErrorCode == 0 {
				m.revokeSince = time.Time{}
			}
			apply(m, resp)
		case m.alive:
			step(m)
		}
		checkDisjoint()
	}
	for round := 0; round < 100; round++ {
		for _, m := range ms {
			if m.alive {
				step(m)
				checkDisjoint()
			}
		}
		h.advance(500 * time.Millisecond)
		g := h.s.Group("g")
		live, owned := 0, 0
		for _, m := range ms {
			if m.alive && m.joined {
				live++
				owned += m.owned.count()
			}
		}
		if live == 0 && (g == nil || g.Size() == 0) {
			return
		}
		if g != nil && g.consumer != nil && g.consumer.state() == Stable && live == g.Size() && owned == 15 {
			return
		}
	}
	g := h.s.Group("g")
	fail("did not converge: state %v, %d members", g.consumer.state(), g.Size())
}

func TestConsumerGroupLimits(t *testing.T) {
	cfg := testConfig()
	cfg.ConsumerMaxSize = 2
	h := newHarness(t, cfg)
	h.hb("g", "a", "", 0, []string{"t"}, partitions{})
	h.hb("g", "b", "", 0, []string{"t"}, partitions{})
	wantCode(t, "a third member of a group of at most two", h.hb("g", "c", "", 0, []string{"t"}, partitions{}).ErrorCode, kerr.GroupMaxSizeReached)
	wantCode(t, "empty group id", h.hb("", "a", "", 0, []string{"t"}, partitions{}).ErrorCode, kerr.InvalidGroupID)
	wantCode(t, "empty member id (v1)", h.hb("g", "", "", 0, []string{"t"}, partitions{}).ErrorCode, kerr.InvalidRequest)
	wantCode(t, "epoch below -2", h.hb("g", "a", "", -3, nil, nil).ErrorCode, kerr.InvalidRequest)
	wantCode(t, "joining without a subscription", h.hb("g", "d", "", 0, nil, partitions{}).ErrorCode, kerr.InvalidRequest)
	// A classic group with members cannot take KIP-848 members.
	h.stableGroup("classic", 1)
	wantCode(t, "a consumer member in a live classic group", h.hb("classic", "x", "", 0, []string{"t"}, partitions{}).ErrorCode, kerr.GroupIDNotFound)
	// And a consumer group cannot take classic members.
	wantCode(t, "a classic member in a consumer group", h.joinResp(h.join(joinReq("g", "", "", sess))).ErrorCode, kerr.InconsistentGroupProtocol)
}

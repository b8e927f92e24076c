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

// simMember is a well-behaved eager consumer (or a crashed one) in the
// randomized test.
type simMember struct {
	name     string
	instance string // "" for dynamic
	alive    bool
	id       string
	joinTo   ReplyTo
	syncTo   ReplyTo
	gen      int32
	members  []string // as the leader saw them
	leader   bool
	owned    []int32
	ownedGen int32
	progress map[int32]int64
	// What the member held in its previous generation, for stale commits.
	prevGen      int32
	prevOwned    []int32
	prevProgress map[int32]int64
}

type groupSim struct {
	t       *testing.T
	h       *harness
	rng     *rand.Rand
	ms      []*simMember
	owners  map[int32]map[int32]string // generation -> partition -> member (a static member's incarnations are one member)
	commits map[int32]int64            // partition -> last accepted offset
	trace   []string
}

func (s *groupSim) logf(format string, args ...any) {
	s.trace = append(s.trace, fmt.Sprintf("%s "+format, append([]any{s.h.now.Format("15:04:05.000")}, args...)...))
}

func (s *groupSim) fail(format string, args ...any) {
	s.t.Helper()
	tail := s.trace
	if len(tail) > 40 {
		tail = tail[len(tail)-40:]
	}
	s.t.Fatalf("%s\nlast steps:\n%s", fmt.Sprintf(format, args...), strings.Join(tail, "\n"))
}

func (s *groupSim) reset(m *simMember) {
	m.id, m.joinTo, m.syncTo, m.owned, m.leader = "", 0, 0, nil, false
}

func (s *groupSim) rejoin(m *simMember) {
	if len(m.owned) > 0 {
		m.prevGen, m.prevOwned, m.prevProgress = m.ownedGen, m.owned, map[int32]int64{}
		for p, o := range m.progress {
			m.prevProgress[p] = o
		}
	}
	m.owned, m.syncTo = nil, 0 // eager: give everything up before rejoining
	m.joinTo = s.h.join(joinReq("g", m.id, m.instance, 2*time.Second))
}

// act makes one protocol step for a live member.
func (s *groupSim) act(m *simMember) {
	h := s.h
	switch {
	case m.joinTo != 0:
		r := h.reply(m.joinTo)
		if r == nil {
			return
		}
		m.joinTo = 0
		jr := r.(*kmsg.JoinGroupResponse)
		switch jr.ErrorCode {
		case 0:
			m.id, m.gen, m.leader = jr.MemberID, jr.Generation, jr.LeaderID == jr.MemberID
			m.members = m.members[:0]
			for _, jm := range jr.Members {
				m.members = append(m.members, jm.MemberID)
			}
			var assign map[string]string
			if m.leader {
				sort.Strings(m.members)
				assign = map[string]string{}
				for p := 0; p < 12; p++ {
					who := m.members[p%len(m.members)]
					assign[who] += fmt.Sprintf("%d,", p)
				}
			}
			m.syncTo = h.sync("g", m.id, m.gen, assign)
			s.logf("%s joined gen %d as %s (leader %v)", m.name, m.gen, m.id, m.leader)
		case kerr.MemberIDRequired.Code:
			m.id = jr.MemberID
			s.rejoin(m)
		default:
			s.logf("%s join failed: %v", m.name, kerr.ErrorForCode(jr.ErrorCode))
			s.reset(m)
		}
	case m.syncTo != 0:
		r := h.reply(m.syncTo)
		if r == nil {
			return
		}
		m.syncTo = 0
		sr := r.(*kmsg.SyncGroupResponse)
		switch sr.ErrorCode {
		case 0:
			if len(m.owned) > 0 || m.ownedGen > 0 {
				m.prevGen, m.prevOwned, m.prevProgress = m.ownedGen, m.owned, map[int32]int64{}
				for p, o := range m.progress {
					m.prevProgress[p] = o
				}
			}
			m.owned = nil
			for _, f := range strings.Split(string(sr.MemberAssignment), ",") {
				var p int32
				if _, err := fmt.Sscan(f, &p); err == nil {
					m.owned = append(m.owned, p)
				}
			}
			m.ownedGen = m.gen
			if s.owners[m.gen] == nil {
				s.owners[m.gen] = map[int32]string{}
			}
			for _, p := range m.owned {
				who := m.id
				if m.instance != "" {
					who = m.instance
				}
				if other, ok := s.owners[m.gen][p]; ok && other != who {
					s.fail("partition %d owned by %s and %s in generation %d", p, other, who, m.gen)
				}
				s.owners[m.gen][p] = who
				m.progress[p] = max(0, h.committed("g", "t", p))
			}
			s.logf("%s synced gen %d: %v", m.name, m.gen, m.owned)
		case kerr.RebalanceInProgress.Code:
			s.rejoin(m)
		default:
			s.logf("%s sync failed: %v", m.name, kerr.ErrorForCode(sr.ErrorCode))
			s.reset(m)
		}
	case m.id == "":
		m.joinTo = h.join(joinReq("g", "", m.instance, 2*time.Second))
	default:
		code := h.heartbeat("g", m.id, m.instance, m.gen)
		if code == 0 && len(m.owned) > 0 {
			p := m.owned[s.rng.Intn(len(m.owned))]
			next := m.progress[p] + 1 + int64(s.rng.Intn(5))
			code = commitCode(h.reply(h.commit("g", m.id, m.gen, "t", p, next)))
			if code == 0 {
				s.accepted(m, p, next)
				m.progress[p] = next
			}
		}
		switch code {
		case 0:
		case kerr.RebalanceInProgress.Code:
			s.rejoin(m)
		default:
			s.logf("%s heartbeat/commit: %v", m.name, kerr.ErrorForCode(code))
			s.reset(m)
		}
	}
}

func (s *groupSim) accepted(m *simMember, p int32, off int64) {
	if last, ok := s.commits[p]; ok && off < last {
		s.fail("partition %d committed offset went back from %d to %d (member %s, generation %d)", p, last, off, m.id, m.gen)
	}
	s.commits[p] = off
	s.logf("%s committed %d=%d in gen %d", m.name, p, off, m.gen)
}

// zombie is a crashed member's late commit with its old generation and
// an old offset: it must never be accepted once the partition moved on.
func (s *groupSim) zombie(m *simMember) {
	if len(m.owned) == 0 || m.id == "" {
		return
	}
	p := m.owned[s.rng.Intn(len(m.owned))]
	off := m.progress[p]
	code := commitCode(s.h.reply(s.h.commit("g", m.id, m.gen, "t", p, off)))
	if code == 0 {
		s.accepted(m, p, off)
	}
}

// stale is a live member replaying a commit from its previous generation
// (a slow thread in the client): the generation check must refuse it.
func (s *groupSim) stale(m *simMember) {
	if len(m.prevOwned) == 0 || m.id == "" {
		return
	}
	p := m.prevOwned[s.rng.Intn(len(m.prevOwned))]
	off := m.prevProgress[p]
	code := commitCode(s.h.reply(s.h.commit("g", m.id, m.prevGen, "t", p, off)))
	if code == 0 {
		s.accepted(m, p, off)
	}
}

func TestRandomizedClassicGroup(t *testing.T) {
	for seed := int64(1); seed <= 300; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { runGroupSim(t, seed) })
	}
}

func runGroupSim(t *testing.T, seed int64) {
	rng := rand.New(rand.NewSource(seed))
	h := newHarness(t, testConfig())
	s := &groupSim{t: t, h: h, rng: rng, owners: map[int32]map[int32]string{}, commits: map[int32]int64{}}
	for i := range 2 + rng.Intn(4) {
		m := &simMember{name: fmt.Sprint("m", i), alive: true, progress: map[int32]int64{}}
		if rng.Intn(2) == 0 {
			m.instance = fmt.Sprint("i", i)
		}
		s.ms = append(s.ms, m)
	}
	for step := 0; step < 400; step++ {
		m := s.ms[rng.Intn(len(s.ms))]
		switch r := rng.Intn(100); {
		case r < 10:
			h.advance(time.Duration(rng.Intn(1500)) * time.Millisecond)
		case r < 13 && m.alive:
			m.alive = false
			s.logf("%s crashes", m.name)
		case r < 18 && !m.alive:
			s.zombie(m)
		case r < 22 && !m.alive:
			m.alive = true
			s.reset(m)
			s.logf("%s restarts", m.name)
		case r < 24 && m.alive && m.id != "":
			lr := kmsg.NewPtrLeaveGroupRequest()
			lr.Version = 5
			lr.Group = "g"
			lr.Members = []kmsg.LeaveGroupRequestMember{{MemberID: m.id}}
			if m.instance != "" {
				lr.Members[0].InstanceID = &m.instance
			}
			to := h.to()
			h.s.Leave(h.now, to, lr)
			h.settle()
			h.reply(to)
			s.reset(m)
			s.logf("%s leaves", m.name)
		case r < 26:
			h.failing = !h.failing
		case r < 32 && m.alive:
			s.stale(m)
		case m.alive:
			s.act(m)
		}
	}
	// Calm: no faults; the live members must reach a stable assignment
	// covering every partition.
	h.failing = false
	for round := 0; round < 300; round++ {
		for _, m := range s.ms {
			if m.alive {
				s.act(m)
			}
		}
		h.advance(100 * time.Millisecond)
		if s.settled() {
			return
		}
	}
	g := h.s.Group("g")
	s.fail("no stable assignment after the faults stopped: state %v, generation %d, %d members", g.State(), g.Generation(), g.Size())
}

// settled: the group is Stable and every live member holds its part of the
// current generation, all partitions owned.
func (s *groupSim) settled() bool {
	g := s.h.s.Group("g")
	anyLive := false
	for _, m := range s.ms {
		anyLive = anyLive || m.alive
	}
	if !anyLive {
		return g == nil || g.Size() == 0
	}
	if g == nil || g.State() != Stable {
		return false
	}
	owned := 0
	live := 0
	for _, m := range s.ms {
		if !m.alive {
			continue
		}
		live++
		if m.id == "" || m.ownedGen != g.Generation() || m.joinTo != 0 || m.syncTo != 0 {
			return false
		}
		owned += len(m.owned)
	}
	return live == g.Size() && owned == 12
}

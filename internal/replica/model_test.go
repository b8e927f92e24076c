package replica

import (
	"fmt"
	"math/rand"
	"slices"
	"testing"
	"time"
)

// The replication state machine against a model of the partition: three
// replicas with logs of (epoch, id) records, a metadata log holding the
// leader, its epoch and the committed ISR (changed only by conditional
// commits), producers appending on the leader, followers truncating with
// OffsetForLeaderEpoch and fetching, ISR proposals committed late or not
// at all, replicas crashing and coming back (some on an empty disk: they
// leave the ISR as they register, as the broker's unclean registration
// does), leaders elected from the ISR, and reassignments of the replicas
// over a fourth node (the new replica copies and joins the ISR, the leader
// hands over if it is leaving, the removed copies are deleted; some are
// cancelled).
// Checked at every step: a record below any leader's high watermark
// (committed) never changes and is on every replica of the committed ISR;
// each leader's high watermark never goes back; a consumer reading below
// the watermark reads committed records; every acks=all produce answered
// is committed.

type modelRec struct {
	epoch int32
	id    int
}

type modelNode struct {
	id     int32
	log    []modelRec
	epochs []EpochStart
	alive  bool
	seen   int32 // the leader epoch it last truncated for
	hw     int64 // the leader's watermark, as its last fetch told it
	ok     int64 // a prefix of its log known to equal the committed records
	epoch  int64 // its broker epoch: a new one at every restart (its registration)
	paused bool  // down for a pause, not a crash: it comes back as the same process
}

func (n *modelNode) append(r modelRec) {
	if len(n.epochs) == 0 || n.epochs[len(n.epochs)-1].Epoch < r.epoch {
		n.epochs = append(n.epochs, EpochStart{Epoch: r.epoch, StartOffset: int64(len(n.log))})
	}
	n.log = append(n.log, r)
}

func (n *modelNode) truncate(to int64) {
	n.log = n.log[:to]
	n.ok = min(n.ok, to)
	for len(n.epochs) > 0 && n.epochs[len(n.epochs)-1].StartOffset >= to {
		n.epochs = n.epochs[:len(n.epochs)-1]
	}
}

func (n *modelNode) lastEpoch() int32 {
	if len(n.epochs) == 0 {
		return -1
	}
	return n.epochs[len(n.epochs)-1].Epoch
}

type modelRules struct {
	hwFromProposal   bool // the leader's watermark over a proposed, uncommitted ISR
	unclean          bool // elect any live replica, in the ISR or not
	oneRound         bool // a follower truncates once, even when told to ask again
	staysInISR       bool // a replica back on an empty disk stays in the ISR
	staleEpochs      bool // an ISR addition commits although its broker restarted since
	noPartitionEpoch bool // an ISR change commits if the ISR is as it was, whatever else changed

	// noWipesOrMoves leaves out empty disks and reassignments, which
	// delete divergent tails and so hide some truncation bugs.
	noWipesOrMoves bool
}

type modelStats struct{ commits, elections, isrChanges, wipes, reassignments int }

func (n *modelNode) wipe() {
	n.log, n.epochs, n.ok, n.hw, n.seen = nil, nil, 0, 0, -2
}

func without(ids []int32, drop ...int32) []int32 {
	var out []int32
	for _, r := range ids {
		if !slices.Contains(drop, r) {
			out = append(out, r)
		}
	}
	return out
}

func runModel(seed int64, rules modelRules) (st modelStats, err error) {
	rng := rand.New(rand.NewSource(seed))
	cfg := Config{LagTime: 300 * time.Millisecond, MinISR: 2}
	nodes := []*modelNode{{id: 0, alive: true}, {id: 1, alive: true}, {id: 2, alive: true}, {id: 3, alive: true}}
	replicas := []int32{0, 1, 2}
	var target, original []int32 // a reassignment in progress
	metaLeader, metaEpoch, metaISR := int32(0), int32(0), []int32{0, 1, 2}
	var partitionEpoch int32 // bumped by every change of the leader, ISR or replicas
	var leader *Leader
	elect := func(id int32, now time.Duration) {
		metaLeader, metaEpoch = id, metaEpoch+1
		partitionEpoch++
		n := nodes[id]
		n.epochs = append(n.epochs, EpochStart{Epoch: metaEpoch, StartOffset: int64(len(n.log))})
		n.seen = metaEpoch
		leader = NewLeader(cfg, id, metaEpoch, replicas, metaISR, int64(len(n.log)), n.hw, now)
		leader.hwFromProposal = rules.hwFromProposal
		st.elections++
	}
	nodes[0].epochs = []EpochStart{{Epoch: 0, StartOffset: 0}}
	leader = NewLeader(cfg, 0, 0, replicas, metaISR, 0, 0, 0)
	leader.hwFromProposal = rules.hwFromProposal

	committed := map[int64]modelRec{}
	var commitEnd int64
	lastHW := map[int32]int64{} // per epoch
	acks := map[int64]int{}     // offset -> id awaiting acks=all
	type proposal struct {
		isr    []int32
		from   []int32         // the ISR it was made against (SetISR.ExpectISR; the ISR must hold replicas only)
		epochs map[int32]int64 // the broker epochs of the members it adds (SetISR.AddedEpochs)
		pe     int32           // the partition epoch it was made against
		epoch  int32
		at     time.Duration
	}
	// current: the members a proposal adds are still the processes it saw.
	current := func(p *proposal) bool {
		for _, r := range without(p.isr, p.from...) {
			if e, ok := p.epochs[r]; !rules.staleEpochs && (!ok || e != nodes[r].epoch) {
				return false
			}
		}
		return true
	}
	// setISR is a change of the committed ISR made by someone else than
	// the leader (a registration, a reassignment): the leader takes it.
	setISR := func(isr []int32) {
		metaISR = isr
		partitionEpoch++
		if metaLeader >= 0 {
			leader.Committed(isr)
		}
	}
	setReplicas := func(rs []int32, now time.Duration) {
		for _, r := range replicas {
			if !slices.Contains(rs, r) {
				nodes[r].wipe() // its copy is deleted
			}
		}
		replicas = rs
		setISR(slices.DeleteFunc(slices.Clone(metaISR), func(r int32) bool { return !slices.Contains(rs, r) }))
		if metaLeader >= 0 {
			leader.SetReplicas(rs, now)
		}
	}
	var inflight *proposal
	nextID := 0
	fail := func(format string, args ...any) error {
		return fmt.Errorf("seed %d: "+format, append([]any{seed}, args...)...)
	}

	for step := 0; step < 4000; step++ {
		now := time.Duration(step) * 10 * time.Millisecond
		var ln *modelNode
		if metaLeader >= 0 {
			ln = nodes[metaLeader]
		}

		// Produce.
		if ln != nil && rng.Intn(3) == 0 && leader.CheckProduce() == nil {
			nextID++
			ln.append(modelRec{epoch: metaEpoch, id: nextID})
			leader.Appended(int64(len(ln.log)))
			acks[int64(len(ln.log)-1)] = nextID
		}

		// Followers truncate when they learn of a new epoch, then fetch.
		for _, n := range nodes {
			if ln == nil || n == ln || !n.alive || !slices.Contains(replicas, n.id) || rng.Intn(3) != 0 {
				continue
			}
			for done := n.seen == metaEpoch; !done; {
				e, end := EndOffsetFor(ln.epochs, int64(len(ln.log)), n.lastEpoch())
				var to int64
				to, done = TruncationOffset(n.epochs, int64(len(n.log)), n.hw, e, end)
				done = done || rules.oneRound
				n.truncate(to)
				n.seen = metaEpoch
			}
			off := int64(len(n.log))
			if err := leader.FetchedAs(n.id, n.epoch, off, now); err != nil {
				return st, fail("fetch by %d at %d: %v", n.id, off, err)
			}
			for k := 0; k < 1+rng.Intn(5) && int(off)+k < len(ln.log); k++ {
				n.append(ln.log[int(off)+k])
			}
			n.hw = min(leader.HighWatermark(), int64(len(n.log)))
		}

		// ISR proposals reach the metadata log late, or never.
		if ln != nil && inflight == nil {
			if isr, ok := leader.Propose(now); ok {
				inflight = &proposal{isr: isr, from: slices.Clone(metaISR), epochs: leader.Epochs(without(isr, metaISR...)), pe: partitionEpoch, epoch: metaEpoch,
					at: now + time.Duration(rng.Intn(30))*10*time.Millisecond}
			}
		}
		if inflight != nil && now >= inflight.at {
			p := inflight
			inflight = nil
			if p.epoch == metaEpoch && leader.Epoch() == p.epoch && (p.pe == partitionEpoch || rules.noPartitionEpoch && slices.Equal(p.from, metaISR) && len(without(p.isr, replicas...)) == 0) &&
				current(p) && rng.Intn(10) != 0 {
				metaISR = p.isr // conditional on the partition epoch, as Kafka's AlterPartition
				partitionEpoch++
				leader.Committed(p.isr)
				st.isrChanges++
			} else if leader.Epoch() == p.epoch {
				leader.Rejected()
			}
		}

		// Crashes and restarts; a leader's crash elects from the ISR.
		for _, n := range nodes {
			switch {
			case n.alive && rng.Intn(400) == 0:
				n.alive = false
				// A follower may only be paused (SIGSTOP, a long GC): back, it
				// is the same process, still in the ISR until it lags. A
				// leader that lost its lease exits and restarts.
				n.paused = n.id != metaLeader && rng.Intn(2) == 0
				if n.id == metaLeader {
					metaLeader, ln = -1, nil
				}
			case !n.alive && rng.Intn(60) == 0:
				n.alive = true
				n.seen = -2 // truncate before fetching again
				if n.paused {
					break
				}
				n.epoch++
				if len(metaISR) > 1 || !slices.Contains(metaISR, n.id) {
					// (The last in-sync copy is never wiped here: nothing could
					// bring its records back.)
					if rng.Intn(3) == 0 && !rules.noWipesOrMoves {
						n.wipe()
						st.wipes++
					}
					if !rules.staysInISR && len(metaISR) > 1 && slices.Contains(metaISR, n.id) {
						setISR(without(metaISR, n.id)) // its registration after a crash
					}
				}
			}
		}

		// Reassignments: start one (a new set of three of the four nodes),
		// cancel it, or carry it on: complete it once every target replica
		// is in sync under a target leader, or hand the leadership to one.
		switch {
		case target == nil && !rules.noWipesOrMoves && rng.Intn(150) == 0:
			next := []int32{0, 1, 2, 3}
			rng.Shuffle(len(next), func(i, j int) { next[i], next[j] = next[j], next[i] })
			next = next[:3]
			if !slices.Equal(sorted(next), sorted(replicas)) {
				target, original = next, slices.Clone(replicas)
				setReplicas(append(slices.Clone(target), without(original, target...)...), now)
				st.reassignments++
			}
		case target != nil && rng.Intn(300) == 0 && (metaLeader < 0 || slices.Contains(original, metaLeader)):
			setReplicas(original, now)
			target = nil
		case target != nil && metaLeader >= 0 && (!slices.ContainsFunc(target, func(r int32) bool { return !slices.Contains(metaISR, r) })):
			if slices.Contains(target, metaLeader) {
				setReplicas(target, now)
				target = nil
				break
			}
			for _, r := range target {
				if nodes[r].alive && slices.Contains(metaISR, r) {
					inflight = nil
					clear(acks) // produces waiting on the old leader fail
					elect(r, now)
					ln = nodes[metaLeader]
					break
				}
			}
		}
		if metaLeader < 0 {
			var candidates []int32
			for _, n := range nodes {
				if n.alive && (rules.unclean || slices.Contains(metaISR, n.id)) {
					candidates = append(candidates, n.id)
				}
			}
			if len(candidates) > 0 {
				inflight = nil
				clear(acks) // the old leader's waiting produces fail (NOT_LEADER_OR_FOLLOWER)
				elect(candidates[rng.Intn(len(candidates))], now)
				ln = nodes[metaLeader]
			}
		}

		// Invariants.
		if ln != nil {
			hw := leader.HighWatermark()
			if hw < lastHW[metaEpoch] {
				return st, fail("epoch %d: high watermark went from %d to %d", metaEpoch, lastHW[metaEpoch], hw)
			}
			lastHW[metaEpoch] = hw
			if hw > int64(len(ln.log)) {
				return st, fail("high watermark %d past the leader's log end %d", hw, len(ln.log))
			}
			for ; ln.ok < hw; ln.ok++ {
				o := ln.ok
				if c, ok := committed[o]; ok && c != ln.log[o] {
					return st, fail("committed offset %d changed from %v to %v (leader %d, epoch %d)", o, c, ln.log[o], metaLeader, metaEpoch)
				}
				if _, ok := committed[o]; !ok {
					committed[o] = ln.log[o]
					st.commits++
				}
			}
			commitEnd = max(commitEnd, hw)
			for o, id := range acks {
				if o < hw {
					if ln.log[o].id != id {
						return st, fail("acks=all answered for %d at %d, which now holds %v", id, o, ln.log[o])
					}
					delete(acks, o)
				}
			}
			// A consumer reads below the watermark only.
			if hw > 0 {
				o := rng.Int63n(hw)
				if ln.log[o] != committed[o] {
					return st, fail("a consumer read %v at %d, committed %v", ln.log[o], o, committed[o])
				}
			}
		}
		for _, r := range metaISR {
			n := nodes[r]
			if !n.alive && n.id != metaLeader && int64(len(n.log)) < commitEnd && n.seen == -2 {
				continue // back from a crash, not truncated yet: its log is checked once it is
			}
			for ; n.ok < commitEnd; n.ok++ {
				if n.ok >= int64(len(n.log)) || n.log[n.ok] != committed[n.ok] {
					return st, fail("replica %d of the committed ISR %v lacks committed offset %d", r, metaISR, n.ok)
				}
			}
		}
	}
	return st, nil
}

// TestModel runs the model over 2,000 seeds.
func TestModel(t *testing.T) {
	seeds := int64(2000)
	if testing.Short() {
		seeds = 100
	}
	var total modelStats
	for seed := range seeds {
		st, err := runModel(seed, modelRules{})
		if err != nil {
			t.Fatal(err)
		}
		total.commits += st.commits
		total.elections += st.elections
		total.isrChanges += st.isrChanges
		total.wipes += st.wipes
		total.reassignments += st.reassignments
	}
	if total.commits == 0 || total.elections == 0 || total.isrChanges == 0 || total.wipes == 0 || total.reassignments == 0 {
		t.Fatalf("the model exercised too little: %+v", total)
	}
	t.Logf("%d seeds: %+v", seeds, total)
}

// TestModelFindsABrokenRule: the model must catch a leader that computes
// its watermark over an ISR shrink not committed yet; an unclean election;
// a replica back on an empty disk that stays in the ISR; an ISR addition
// committed after its broker restarted (seed 127 of an earlier version:
// proposed, then the broker came back on an empty disk); one committed
// against the same ISR after a reassignment removed the member it adds and
// added it back with a new, empty copy (seed 153 then); and a follower that
// truncates in one round when it lacks the epoch the leader answered with
// (the first version of TruncationOffset did, bounded by the leader's end:
// it kept a record of an older epoch at an offset the leader had
// rewritten; seed 1196 then). That last one shows only where restarted
// replicas keep their ISR membership and no disk is wiped (a wiped or
// removed copy has no divergent tail left). Otherwise the model could not
// catch anything.
func TestModelFindsABrokenRule(t *testing.T) {
	for _, rules := range []modelRules{{hwFromProposal: true}, {unclean: true}, {oneRound: true, noWipesOrMoves: true, staysInISR: true}, {staysInISR: true}, {staleEpochs: true}, {noPartitionEpoch: true}} {
		found := false
		for seed := range int64(2000) {
			if _, err := runModel(seed, rules); err != nil {
				t.Logf("%+v: %v", rules, err)
				found = true
				break
			}
		}
		if !found {
			t.Errorf("rules %+v never broke an invariant", rules)
		}
	}
}

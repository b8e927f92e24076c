package lease

import (
	"fmt"
	"math/rand"
	"testing"
	"time"
)

// simResult is what one simulated run saw.
type simResult struct {
	takeover time.Duration // real time A took over; -1 if never
	lastAct  time.Duration // real time of B's last action; -1 if none
	acts     int
}

// simulate runs a holder B and a watcher A against a linearizable store
// for one seed. Time is real milliseconds; each broker's monotonic clock
// runs at its own rate within [1-rho, 1+rho]. B renews every TTL/3 of its
// clock by a compare-and-swap on the version it last wrote, acts
// (acknowledges) at random moments when its Holder says valid, and is
// paused (SIGSTOP) or stops for good at random. A reads B's lease every
// 500 ms of its clock and, when its Watcher says expired, revokes the lease
// by a compare-and-swap on the version it watched; it leads from the
// moment the revoke is known to have succeeded. Store requests take effect
// at a random instant between send and answer; requests are dropped and
// answers lost at random (a lost answer is settled by reading the object
// back, as the retry layer does).
func simulate(seed int64, cfg Config, rho float64) simResult {
	rng := rand.New(rand.NewSource(seed))
	rate := func() float64 { return 1 - rho + 2*rho*rng.Float64() }
	rateA, rateB := rate(), rate()
	clockA := func(t time.Duration) time.Duration { return time.Duration(float64(t) * rateA) }
	clockB := func(t time.Duration) time.Duration { return time.Duration(float64(t)*rateB) + 5*time.Second }
	latency := func() time.Duration { return time.Duration(1+rng.Intn(300)) * time.Millisecond }

	type lease struct {
		version int
		writer  byte // 'B' renewing, 'A' revoked
	}
	type req struct {
		who            byte // 'B' renew, 'R' A's revoke, 'r' A's read
		effect, answer time.Duration
		applied        bool
		dropped        bool // never reaches the store: the answer is a timeout
		expect         int
		ok             bool // the CAS took effect
		read           lease
		id             uint64
	}
	st := lease{version: 1, writer: 'B'}
	h, w := NewHolder(cfg), NewWatcher(cfg)
	h.Succeeded(h.Sending(clockB(0)))
	bKnown := 1

	var inflight []*req
	res := simResult{takeover: -1, lastAct: -1}
	crashAt := time.Duration(20+rng.Intn(100)) * time.Second // B stops for good
	var pausedUntil time.Duration
	nextRenewB := clockB(0) + cfg.TTL/3
	nextReadA := clockA(0)
	aBusy := false
	const end = 200 * time.Second
	for t := time.Duration(0); t < end; t += time.Millisecond {
		kept := inflight[:0]
		var added []*req
		for _, r := range inflight {
			if !r.applied && !r.dropped && t >= r.effect {
				r.applied = true
				switch r.who {
				case 'r':
					r.read = st
				case 'B':
					if r.ok = st.version == r.expect && st.writer == 'B'; r.ok {
						st.version++
					}
				case 'R':
					if r.ok = st.version == r.expect; r.ok {
						st = lease{version: st.version + 1, writer: 'A'}
					}
				}
			}
			if t < r.answer || (r.who == 'B' && t < pausedUntil) {
				kept = append(kept, r) // a paused B handles its answers later
				continue
			}
			switch r.who {
			case 'r':
				aBusy = false
				if r.applied {
					w.Observe(fmt.Sprint(r.read.version), false, clockA(t))
					if w.Expired(clockA(t)) {
						lat := latency()
						added = append(added, &req{who: 'R', expect: r.read.version, effect: t + time.Duration(rng.Int63n(int64(lat)+1)), answer: t + lat, dropped: rng.Intn(10) == 0})
						aBusy = true
					}
				}
			case 'R':
				aBusy = false
				if r.ok {
					res.takeover = t
				}
			case 'B':
				switch {
				case r.dropped:
					h.Failed(r.id, false)
				case r.ok:
					bKnown++
					h.Succeeded(r.id)
				default:
					h.Failed(r.id, true) // precondition: someone else wrote the lease
				}
			}
		}
		inflight = append(kept, added...)

		if t >= pausedUntil && t < crashAt && !h.Lost() {
			if rng.Intn(20000) == 0 {
				pausedUntil = t + time.Duration(rng.Intn(int(3*cfg.TTL/time.Millisecond)))*time.Millisecond
			} else {
				if clockB(t) >= nextRenewB {
					lat := latency()
					inflight = append(inflight, &req{who: 'B', id: h.Sending(clockB(t)), expect: bKnown,
						effect: t + time.Duration(rng.Int63n(int64(lat)+1)), answer: t + lat, dropped: rng.Intn(10) == 0})
					nextRenewB = clockB(t) + cfg.TTL/3
				}
				if rng.Intn(50) == 0 && h.Valid(clockB(t)) {
					res.acts++
					res.lastAct = t
				}
			}
		}

		if res.takeover < 0 && !aBusy && clockA(t) >= nextReadA {
			lat := latency()
			inflight = append(inflight, &req{who: 'r', effect: t + time.Duration(rng.Int63n(int64(lat)+1)), answer: t + lat, dropped: rng.Intn(10) == 0})
			aBusy = true
			nextReadA = clockA(t) + 500*time.Millisecond
		}
	}
	return res
}

// TestLeaseSimulation: over many seeds with clocks drifting by up to 15%,
// pauses, lost requests and lost answers, the watcher never takes over
// while the holder may still act, and it does take over once the holder
// is gone.
func TestLeaseSimulation(t *testing.T) {
	cfg := Config{TTL: 12 * time.Second, Margin: 2 * time.Second}
	seeds := 1000
	if testing.Short() {
		seeds = 50
	}
	tookOver, acted := 0, 0
	for seed := int64(1); seed <= int64(seeds); seed++ {
		r := simulate(seed, cfg, 0.15)
		if r.takeover >= 0 && r.lastAct >= r.takeover {
			t.Fatalf("seed %d: the watcher took over at %v but the holder still acted at %v", seed, r.takeover, r.lastAct)
		}
		if r.takeover >= 0 {
			tookOver++
		}
		if r.acts > 0 {
			acted++
		}
	}
	if acted < seeds*9/10 {
		t.Fatalf("the holder acted in only %d of %d runs: too little to prove anything", acted, seeds)
	}
	if tookOver < seeds*9/10 {
		t.Fatalf("the watcher took over in only %d of %d runs, though the holder always stops renewing", tookOver, seeds)
	}
}

// TestLeaseSimulationFindsABrokenRule: the same simulation with no margin
// against 15% drift must find overlaps, or it could not catch a bug.
func TestLeaseSimulationFindsABrokenRule(t *testing.T) {
	cfg := Config{TTL: 12 * time.Second, Margin: 0}
	for seed := int64(1); seed <= 300; seed++ {
		if r := simulate(seed, cfg, 0.15); r.takeover >= 0 && r.lastAct >= r.takeover {
			return
		}
	}
	t.Fatal("no overlap found with margin 0 and 15% drift: the simulation is too weak")
}

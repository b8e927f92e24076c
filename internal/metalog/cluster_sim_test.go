package metalog

import (
	"fmt"
	"math/rand"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tiercel/tiercel/internal/lease"
)

// The control plane as a whole, simulated: three brokers, each with its own
// monotonic clock (rates within 1 ± rho), its lease (lease.Holder, renewed
// by compare-and-swap every TTL/3), watchers of the others' leases
// (lease.Watcher: read every TTL/6, revoke by compare-and-swap on the
// version watched once expired), and its own copy of the metadata State,
// caught up from a shared log of create-only entries. A broker that revoked
// another's lease appends SetLeader ops for the partitions its state says
// the other leads (conditional: only the first in log order applies). Store
// requests take effect at a random instant between send and answer; answers
// are lost at random (the sender then reads the object back, as the retry
// layer does); brokers are paused (SIGSTOP) at random, and one broker may
// stop for good. A broker whose renewal finds its lease taken stops
// leading, and comes back after a while as a new incarnation that first
// waits out the lease and registers in the log; takeovers name the
// incarnation whose lease they revoked.
//
// Checked at every step: at most one running broker may acknowledge writes
// for a partition (its applied state names it leader and its Holder says
// valid); every broker's leader epochs only grow; at the end every broker's
// state, caught up, equals a replay of the log, in which each partition's
// epoch grew by one per SetLeader that applied.

type simReq struct {
	effect, answer time.Duration
	done, lost     bool
	run            func() // at effect time, against the store
	reply          func() // at answer time, at the sender (unless lost)
	settle         func() // at answer time if the answer was lost
	from           int
}

type simLease struct {
	version int
	owner   int // the broker whose lease it is
	inc     int // the incarnation that last renewed it
	counter int
	revoked bool
}

type simBroker struct {
	id          int
	rate        float64
	inc         int
	holder      *lease.Holder
	version     int // the lease version it last wrote (0: must re-acquire)
	counter     int
	lost        bool
	backAt      time.Duration // real time a lost broker starts again
	acquiring   bool
	watchers    map[int]*lease.Watcher
	nextRenew   time.Duration // local
	nextRead    map[int]time.Duration
	state       State
	pausedUntil time.Duration
	deadFrom    time.Duration // real time it stops for good; 0 = never
	busy        bool          // a renewal or acquisition in flight
	revoking    map[int]bool
	epochs      map[string]int32
}

func (b *simBroker) local(real time.Duration) time.Duration {
	return time.Duration(float64(real)*b.rate) + time.Duration(b.id)*time.Hour
}

// simFailure is a broken invariant, raised as a panic inside the
// simulation and returned by simulateCluster.
type simFailure struct{ msg string }

func fatal(format string, args ...any) { panic(simFailure{fmt.Sprintf(format, args...)}) }

func simulateCluster(seed int64, cfg lease.Config, rho float64, naming bool) (takeovers int, err error) {
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(simFailure)
			if !ok {
				panic(r)
			}
			err = fmt.Errorf("%s", f.msg)
		}
	}()
	rng := rand.New(rand.NewSource(seed))
	const n, partitions, step = 3, 6, 5 * time.Millisecond
	duration := 120 * time.Second
	latency := func() time.Duration { return time.Duration(1+rng.Intn(250)) * time.Millisecond }

	leases := make([]simLease, n)
	var log []Entry
	brokers := make([]*simBroker, n)
	leaders := make([]int32, partitions)
	for p := range leaders {
		leaders[p] = int32(p % n)
	}
	first := []Op{{CreateTopic: &CreateTopic{Name: "t", ID: "T", Leaders: leaders}}}
	for i := range n {
		first = append(first, Op{RegisterBroker: &RegisterBroker{ID: int32(i), Incarnation: "1"}})
	}
	log = append(log, Entry{Seq: 1, Ops: first})
	for i := range brokers {
		b := &simBroker{id: i, rate: 1 - rho + 2*rho*rng.Float64(), inc: 1, holder: lease.NewHolder(cfg), watchers: map[int]*lease.Watcher{},
			nextRead: map[int]time.Duration{}, state: NewState(), revoking: map[int]bool{}, epochs: map[string]int32{}}
		leases[i] = simLease{version: 1, owner: i, inc: 1, counter: 1}
		b.version, b.counter = 1, 1
		b.holder.Succeeded(b.holder.Sending(b.local(0)))
		b.nextRenew = b.local(0) + cfg.TTL/3
		brokers[i] = b
	}
	if rng.Intn(2) == 0 {
		brokers[rng.Intn(n)].deadFrom = time.Duration(10+rng.Intn(60)) * time.Second
	}

	var inflight []*simReq
	send := func(from int, now time.Duration, r *simReq) {
		r.from = from
		r.effect = now + latency()
		r.answer = r.effect + latency()
		r.lost = rng.Intn(20) == 0
		inflight = append(inflight, r)
	}
	catchUp := func(b *simBroker) {
		for b.state.Seq < int64(len(log)) {
			if _, err := b.state.Apply(log[b.state.Seq]); err != nil {
				fatal("seed %d: broker %d applying entry %d: %v", seed, b.id, b.state.Seq+1, err)
			}
		}
		if tp := b.state.Topics["t"]; tp != nil {
			for p, l := range tp.Leaders {
				key := fmt.Sprint(p)
				if l.Epoch < b.epochs[key] {
					fatal("seed %d: broker %d saw partition %d's epoch go from %d to %d", seed, b.id, p, b.epochs[key], l.Epoch)
				}
				b.epochs[key] = l.Epoch
			}
		}
	}
	running := func(b *simBroker, now time.Duration) bool {
		return now >= b.pausedUntil && (b.deadFrom == 0 || now < b.deadFrom)
	}

	for now := time.Duration(0); now < duration; now += step {
		// The store, then the answers.
		for _, r := range inflight {
			if !r.done && now >= r.effect && r.run != nil {
				r.run()
				r.run = nil
			}
		}
		var kept, answered []*simReq
		for _, r := range inflight {
			if now < r.answer || !running(brokers[r.from], now) {
				kept = append(kept, r) // a paused process reads its answers when it wakes
			} else {
				answered = append(answered, r)
			}
		}
		inflight = kept // answers may send new requests
		for _, r := range answered {
			if r.lost {
				if r.settle != nil {
					r.settle()
				}
			} else if r.reply != nil {
				r.reply()
			}
		}

		for _, b := range brokers {
			if !running(b, now) {
				continue
			}
			if rng.Intn(4000) == 0 { // SIGSTOP for up to 3 TTLs
				b.pausedUntil = now + time.Duration(rng.Int63n(int64(3*cfg.TTL)))
				continue
			}
			ln := b.local(now)
			if b.state.Seq < int64(len(log)) && rng.Intn(20) == 0 {
				catchUp(b)
			}
			switch {
			case b.lost && now >= b.backAt && !b.acquiring:
				// A new incarnation: wait out the lease like a fresh start.
				b.acquiring, b.lost, b.inc = true, false, b.inc+1
				b.holder = lease.NewHolder(cfg)
				b.version = 0
				b.watchers[b.id] = lease.NewWatcher(cfg)
				b.nextRead[b.id] = ln
			case b.lost:
			case b.acquiring:
				if ln < b.nextRead[b.id] || b.busy {
					break
				}
				b.busy, b.nextRead[b.id] = true, ln+cfg.TTL/6
				var seen simLease
				send(b.id, now, &simReq{run: func() { seen = leases[b.id] }, reply: func() {
					b.busy = false
					w := b.watchers[b.id]
					w.Observe(fmt.Sprint(seen.version), seen.revoked, b.local(now))
					if !w.Expired(b.local(now)) {
						return
					}
					b.busy = true
					id := b.holder.Sending(b.local(now))
					var ok bool
					mine := simLease{owner: b.id, inc: b.inc, counter: seen.counter + 1}
					r := &simReq{run: func() {
						if leases[b.id].version == seen.version {
							mine.version = seen.version + 1
							leases[b.id], ok = mine, true
						}
					}}
					r.reply = func() {
						b.busy = false
						if ok {
							b.holder.Succeeded(id)
							b.version, b.counter, b.acquiring = mine.version, mine.counter, false
							b.nextRenew = b.local(now) + cfg.TTL/3
							// Registered before leading anything: a
							// takeover of the old incarnation appended
							// after this is skipped.
							catchUp(b)
							log = append(log, Entry{Seq: int64(len(log)) + 1, Writer: int32(b.id),
								Ops: []Op{{RegisterBroker: &RegisterBroker{ID: int32(b.id), Incarnation: fmt.Sprint(b.inc)}}}})
							catchUp(b)
						} else {
							b.holder.Failed(id, false)
						}
					}
					r.settle = r.reply // read back: the same outcome
					send(b.id, now, r)
				}, settle: func() { b.busy = false }})
			default:
				if ln >= b.nextRenew && !b.busy {
					b.busy = true
					id := b.holder.Sending(ln)
					b.counter++
					expect, mine := b.version, simLease{owner: b.id, inc: b.inc, counter: b.counter}
					var ok bool
					r := &simReq{run: func() {
						if leases[b.id].version == expect {
							mine.version = expect + 1
							leases[b.id], ok = mine, true
						}
					}}
					r.reply = func() {
						b.busy = false
						b.nextRenew = b.local(now) + cfg.TTL/3
						if ok {
							b.holder.Succeeded(id)
							b.version = mine.version
							return
						}
						b.holder.Failed(id, true) // someone else wrote it: lost for good
						b.lost, b.backAt = true, now+time.Duration(rng.Intn(20))*time.Second
					}
					r.settle = r.reply // the retry layer reads it back
					send(b.id, now, r)
				}
				b.watch(now, ln, cfg, rng, brokers, leases, &log, send, catchUp, &takeovers, naming)
			}
		}

		// At most one running broker may acknowledge for each partition.
		for p := range partitions {
			var acking []int
			for _, b := range brokers {
				tp := b.state.Topics["t"]
				if tp == nil || !running(b, now) || b.lost || b.acquiring {
					continue
				}
				if tp.Leaders[p].Broker == int32(b.id) && b.holder.Valid(b.local(now)) {
					acking = append(acking, b.id)
				}
			}
			if len(acking) > 1 {
				fatal("seed %d: at %v brokers %v may all acknowledge writes for partition %d", seed, now, acking, p)
			}
		}
	}

	// Every broker converges on the log's state; epochs grew by one per
	// applied leader change.
	replay := NewState()
	changes := make([]int32, partitions)
	for _, e := range log {
		done, err := replay.Apply(e)
		if err != nil {
			fatal("%v", err)
		}
		for i, op := range e.Ops {
			if op.SetLeader != nil && done[i] {
				changes[op.SetLeader.Partition]++
			}
		}
	}
	for _, b := range brokers {
		catchUp(b)
		if !sameState(b.state, replay) {
			fatal("seed %d: broker %d's state differs from a replay of the log", seed, b.id)
		}
	}
	for p, l := range replay.Topics["t"].Leaders {
		if l.Epoch != changes[p] {
			fatal("seed %d: partition %d at epoch %d after %d leader changes", seed, p, l.Epoch, changes[p])
		}
	}
	return takeovers, nil
}

// watch reads the other brokers' leases every TTL/6 of b's clock and,
// once one has not changed for TTL + margin (lease.Watcher), revokes it by
// compare-and-swap on the version watched and moves its partitions.
func (b *simBroker) watch(now, ln time.Duration, cfg lease.Config, rng *rand.Rand, brokers []*simBroker, leases []simLease, log *[]Entry,
	send func(int, time.Duration, *simReq), catchUp func(*simBroker), takeovers *int, naming bool) {
	for _, o := range brokers {
		if o.id == b.id || b.revoking[o.id] || ln < b.nextRead[o.id] {
			continue
		}
		b.nextRead[o.id] = ln + cfg.TTL/6
		if b.watchers[o.id] == nil {
			b.watchers[o.id] = lease.NewWatcher(cfg)
		}
		w := b.watchers[o.id]
		var seen simLease
		b.revoking[o.id] = true
		send(b.id, now, &simReq{run: func() { seen = leases[o.id] }, settle: func() { b.revoking[o.id] = false }, reply: func() {
			at := brokers[b.id].local(now) // the answer's arrival, on b's clock
			w.Observe(fmt.Sprint(seen.version), seen.revoked, at)

			if !w.Expired(at) || seen.revoked {
				b.revoking[o.id] = false
				return
			}
			var ok bool
			r := &simReq{run: func() {
				if leases[o.id].version == seen.version {
					leases[o.id] = simLease{version: seen.version + 1, owner: o.id, inc: seen.inc, counter: seen.counter + 1, revoked: true}
					ok = true
				}
			}}
			r.reply = func() {
				b.revoking[o.id] = false
				if !ok {
					b.watchers[o.id] = lease.NewWatcher(cfg) // renewed meanwhile: watch again
					return
				}
				// Revoked: move what o leads, as b's caught-up state says.
				catchUp(b)
				var ops []Op
				tp := b.state.Topics["t"]
				for p, l := range tp.Leaders {
					if l.Broker == int32(o.id) {
						to := int32(brokers[rng.Intn(len(brokers))].id)
						if to == int32(o.id) {
							to = int32(b.id)
						}
						op := &SetLeader{Topic: "t", Partition: int32(p), Leader: to, Expect: l}
						if naming {
							op.ExpectIncarnation = fmt.Sprint(seen.inc)
						}
						ops = append(ops, Op{SetLeader: op})
					}
				}
				if len(ops) > 0 {
					*log = append(*log, Entry{Seq: int64(len(*log)) + 1, Writer: int32(b.id), Ops: ops})
					*takeovers++
				}
				b.watchers[o.id] = lease.NewWatcher(cfg)
			}
			r.settle = r.reply // read back: the same outcome
			send(b.id, now, r)
		}})
	}
}

// TestClusterSimulation runs the simulation above over thousands of seeds
// (each run is independent, so they share the cores) with clock rates
// within 10% and a margin of a sixth of the TTL.
func TestClusterSimulation(t *testing.T) {
	seeds := int64(2000)
	if testing.Short() {
		seeds = 30
	}
	cfg := lease.Config{TTL: 3 * time.Second, Margin: 500 * time.Millisecond}
	var (
		mu      sync.Mutex
		total   int
		failure error
		next    atomic.Int64
		wg      sync.WaitGroup
	)
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seed := next.Add(1) - 1; seed < seeds; seed = next.Add(1) - 1 {
				n, err := simulateCluster(seed, cfg, 0.10, true)
				mu.Lock()
				total += n
				if err != nil && failure == nil {
					failure = fmt.Errorf("seed %d: %w", seed, err)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if failure != nil {
		t.Fatal(failure)
	}
	if total == 0 {
		t.Fatal("no takeover happened in any run: the simulation proves nothing")
	}
	t.Logf("%d seeds, %d takeovers", seeds, total)
}

// TestClusterSimulationFindsABrokenRule: with no margin and clock rates
// 30% apart, the same simulation must find two brokers acknowledging at
// once in some seed; otherwise it could not find anything.
func TestClusterSimulationFindsABrokenRule(t *testing.T) {
	cfg := lease.Config{TTL: 3 * time.Second, Margin: 0}
	for seed := range int64(300) {
		if _, err := simulateCluster(seed, cfg, 0.30, true); err != nil {
			t.Logf("seed %d found it: %v", seed, err)
			return
		}
	}
	t.Fatal("a rule with no margin and fast-drifting clocks was never caught")
}

// TestClusterSimulationLateTakeover: the bug 2,000 seeds found (seed 3944
// of the same model shows it): a broker revokes a paused leader's lease,
// then is paused itself before appending its takeover; the old leader
// comes back as a new incarnation, waits out its lease, acquires it and
// leads again; the takeover entry lands after that and moves a partition
// away from a leader that does not know yet, so two brokers acknowledge.
// Takeovers that name the incarnation they revoked are skipped once the
// broker registered a newer one; without the name the seed fails.
func TestClusterSimulationLateTakeover(t *testing.T) {
	cfg := lease.Config{TTL: 3 * time.Second, Margin: 500 * time.Millisecond}
	if _, err := simulateCluster(3944, cfg, 0.10, false); err == nil {
		t.Fatal("seed 3944 no longer shows the late takeover without incarnations: the model changed; find another seed")
	}
	if _, err := simulateCluster(3944, cfg, 0.10, true); err != nil {
		t.Fatalf("with the incarnation named: %v", err)
	}
}

package gossip

import (
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func ids(ms []Member) []int32 {
	var out []int32
	for _, m := range ms {
		out = append(out, m.BrokerID)
	}
	return out
}

// TestMembershipOverMockNetwork: three brokers on memberlist's in-memory
// transport find each other through one seed, see each other's metadata,
// pass metadata hints along, and see a graceful leave.
func TestMembershipOverMockNetwork(t *testing.T) {
	var mock memberlist.MockNetwork
	var hints [4]atomic.Int64
	var leases [4]atomic.Value // what each node heard of broker 2's lease
	var changes atomic.Int64
	var nodes []*Node
	// MockNetwork is not safe to grow while its transports run.
	transports := []*memberlist.MockTransport{nil, mock.NewTransport(NodeName(1)), mock.NewTransport(NodeName(2)), mock.NewTransport(NodeName(3))}
	for id := int32(1); id <= 3; id++ {
		cfg := Config{
			Meta:      Meta{BrokerID: id, KafkaAddr: "127.0.0.1:" + string(rune('0'+id)), Rack: "zone-" + string(rune('a'+id-1)), Version: "test"},
			Transport: transports[id],
			Local:     true,
			OnHint:    func(seq int64) { hints[id].Store(seq) },
			OnLease: func(broker int32, version string) {
				if broker == 2 {
					leases[id].Store(version)
				}
			},
			OnChange: func() { changes.Add(1) },
		}
		if id > 1 {
			cfg.Seeds = []string{nodes[0].Addr()}
		}
		n, err := Start(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(n.Shutdown)
		nodes = append(nodes, n)
	}
	for _, n := range nodes {
		waitFor(t, "every node to see three brokers", func() bool { return len(n.Members()) == 3 })
	}
	ms := nodes[2].Members()
	if got := ids(ms); got[0] != 1 || got[1] != 2 || got[2] != 3 {
		t.Fatalf("members %v, want ordered by id", got)
	}
	if ms[1].Rack != "zone-b" || ms[1].KafkaAddr != nodes[1].cfg.Meta.KafkaAddr || ms[1].Name != "broker-2" {
		t.Fatalf("broker 2 seen as %+v", ms[1])
	}
	if changes.Load() == 0 {
		t.Fatal("no membership change was reported")
	}

	nodes[1].Announce(42)
	waitFor(t, "the hint to reach brokers 1 and 3", func() bool { return hints[1].Load() == 42 && hints[3].Load() == 42 })
	nodes[0].Announce(7) // older than what everyone has: not passed on as news
	time.Sleep(200 * time.Millisecond)
	if hints[3].Load() != 42 {
		t.Fatalf("an older hint replaced a newer one: %d", hints[3].Load())
	}

	nodes[1].Announce(43)
	nodes[1].AnnounceLease("v7") // must not displace the hint in the queue, nor it the lease
	waitFor(t, "broker 2's lease version to reach brokers 1 and 3", func() bool {
		return leases[1].Load() == "v7" && leases[3].Load() == "v7" && hints[3].Load() == 43
	})
	if leases[2].Load() != nil {
		t.Fatal("a broker was told of its own lease")
	}

	if err := nodes[2].Leave(time.Second); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "brokers 1 and 2 to see broker 3 leave", func() bool {
		return len(nodes[0].Members()) == 2 && len(nodes[1].Members()) == 2
	})
}

// TestLateSeedAndRealNetwork: over loopback, a broker whose seed is not up
// yet keeps trying and joins when it comes; a hint announced before they
// met reaches it in the full state sync.
func TestLateSeedAndRealNetwork(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	seedAddr := ln.Addr().String()
	ln.Close()
	var got atomic.Int64
	second, err := Start(Config{Meta: Meta{BrokerID: 2, KafkaAddr: "k2"}, BindAddr: "127.0.0.1:0", Local: true,
		Seeds: []string{seedAddr}, OnHint: func(seq int64) { got.Store(seq) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(second.Shutdown)
	time.Sleep(300 * time.Millisecond) // a few failed joins
	first, err := Start(Config{Meta: Meta{BrokerID: 1, KafkaAddr: "k1"}, BindAddr: seedAddr, Local: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(first.Shutdown)
	first.Announce(9)
	waitFor(t, "both to see two brokers", func() bool { return len(first.Members()) == 2 && len(second.Members()) == 2 })
	waitFor(t, "the earlier hint to arrive", func() bool { return got.Load() == 9 })
}

// TestSameIDConflict: a second process gossiping with an id already in the
// cluster is reported as a conflict.
func TestSameIDConflict(t *testing.T) {
	var mock memberlist.MockNetwork
	var conflict atomic.Bool
	onConflict := func(Member) { conflict.Store(true) }
	ta, tb, tc := mock.NewTransport("a"), mock.NewTransport("b"), mock.NewTransport("c")
	a, err := Start(Config{Meta: Meta{BrokerID: 1, KafkaAddr: "a"}, Transport: ta, Local: true, OnConflict: onConflict})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Shutdown)
	b, err := Start(Config{Meta: Meta{BrokerID: 2, KafkaAddr: "b"}, Transport: tb, Local: true, Seeds: []string{a.Addr()}, OnConflict: onConflict})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Shutdown)
	waitFor(t, "two members", func() bool { return len(a.Members()) == 2 })
	c, err := Start(Config{Meta: Meta{BrokerID: 1, KafkaAddr: "c"}, Transport: tc, Local: true, Seeds: []string{b.Addr()}, OnConflict: onConflict})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Shutdown)
	waitFor(t, "the duplicate id to be reported", conflict.Load)
}

// TestRestartAtNewAddress: a broker that comes back on another address (a
// new pod IP, or a port picked at random) is seen there by the others
// within seconds, whether its previous process left gracefully or
// crashed: memberlist refuses a known name at a new address while the old
// entry lives, so the others kept dialling the dead address (seen as a
// follower failing to reach its new leader for 30 s).
func TestRestartAtNewAddress(t *testing.T) {
	if testing.Short() {
		// The race stage of make test runs -short: memberlist's local
		// timings (200 ms probes) under the race detector on a loaded
		// machine make this a test of the machine. The unit stage runs it.
		t.Skip("timing-bound: runs in the unit stage, not under -short")
	}
	for _, graceful := range []bool{true, false} {
		name := "crash"
		if graceful {
			name = "leave"
		}
		t.Run(name, func(t *testing.T) {
			start := func(id int32, kafka string, seeds ...string) *Node {
				n, err := Start(Config{Meta: Meta{BrokerID: id, KafkaAddr: kafka}, BindAddr: "127.0.0.1:0", Local: true, Seeds: seeds})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(n.Shutdown)
				return n
			}
			n1 := start(1, "k1")
			waitFor(t, "node 1 to know its address", func() bool { return n1.Addr() != "" })
			n2 := start(2, "k2", n1.Addr())
			old := start(3, "k3-old", n1.Addr())
			sees := func(n *Node, kafka string) func() bool {
				return func() bool {
					for _, m := range n.Members() {
						if m.BrokerID == 3 {
							return m.KafkaAddr == kafka
						}
					}
					return false
				}
			}
			waitFor(t, "everyone to see broker 3", func() bool { return sees(n1, "k3-old")() && sees(n2, "k3-old")() })
			if graceful {
				if err := old.Leave(time.Second); err != nil {
					t.Fatal(err)
				}
			} else {
				old.Shutdown()
			}
			began := time.Now()
			start(3, "k3-new", n2.Addr())
			waitFor(t, "brokers 1 and 2 to see broker 3 at its new address", func() bool { return sees(n1, "k3-new")() && sees(n2, "k3-new")() })
			t.Logf("seen at the new address after %v", time.Since(began).Round(time.Millisecond))
		})
	}
}

package e2e

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/tiercel/tiercel/internal/brokertest"
	"github.com/tiercel/tiercel/internal/testservers"
)

// netns is a bridge in this network namespace with one network namespace
// per broker attached to it by a veth pair: 10.231.N.1 is the bridge (where
// the object store listens and the test's clients connect from), broker i
// is 10.231.N.(i+2). Every namespace, link and route is removed at cleanup.
type netns struct {
	t      *testing.T
	prefix string // 10.231.N.
	names  []string
	bridge string
}

// newNetns builds the namespaces, or fails the test saying why: the
// network-fault tests must not skip silently where they cannot run.
func newNetns(t *testing.T, n int) *netns {
	t.Helper()
	// A subnet no bridge here uses (a run killed before its cleanup may
	// have left one behind).
	id := rand.IntN(200) + 20
	for tries := 0; exec.Command("ip", "link", "show", fmt.Sprintf("tcbr%d", id)).Run() == nil && tries < 100; tries++ {
		id = rand.IntN(200) + 20
	}
	ns := &netns{t: t, prefix: fmt.Sprintf("10.231.%d.", id), bridge: fmt.Sprintf("tcbr%d", id)}
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("network namespaces are unavailable here (this test needs root and iproute2): ip %s: %v\n%s",
				strings.Join(args, " "), err, out)
		}
	}
	t.Cleanup(func() {
		for _, name := range ns.names {
			_ = exec.Command("ip", "netns", "del", name).Run()
		}
		_ = exec.Command("ip", "link", "del", ns.bridge).Run()
	})
	run("link", "add", ns.bridge, "type", "bridge")
	run("addr", "add", ns.prefix+"1/24", "dev", ns.bridge)
	run("link", "set", ns.bridge, "up")
	for i := range n {
		name, host, peer := fmt.Sprintf("tcns%d-%d", id, i), fmt.Sprintf("tcv%d-%d", id, i), fmt.Sprintf("tcp%d-%d", id, i)
		run("netns", "add", name)
		ns.names = append(ns.names, name)
		run("link", "add", host, "type", "veth", "peer", "name", peer)
		run("link", "set", peer, "netns", name)
		run("link", "set", host, "master", ns.bridge)
		run("link", "set", host, "up")
		run("netns", "exec", name, "ip", "addr", "add", ns.ip(i)+"/24", "dev", peer)
		run("netns", "exec", name, "ip", "link", "set", peer, "up")
		run("netns", "exec", name, "ip", "link", "set", "lo", "up")
	}
	return ns
}

func (ns *netns) host() string    { return ns.prefix + "1" }
func (ns *netns) ip(i int) string { return fmt.Sprintf("%s%d", ns.prefix, i+2) }

// wrap runs a command in broker i's namespace.
func (ns *netns) wrap(i int) []string { return []string{"ip", "netns", "exec", ns.names[i]} }

// isolate cuts broker i off from every other broker, both ways, leaving
// its path to the bridge (the object store, the clients) intact; heal
// undoes it.
func (ns *netns) isolate(i int) { ns.routes("add", i) }
func (ns *netns) heal(i int)    { ns.routes("del", i) }

func (ns *netns) routes(op string, i int) {
	ns.t.Helper()
	for j := range ns.names {
		if j == i {
			continue
		}
		for _, r := range [][2]int{{i, j}, {j, i}} {
			if out, err := exec.Command("ip", "netns", "exec", ns.names[r[0]], "ip", "route", op, "blackhole", ns.ip(r[1])+"/32").CombinedOutput(); err != nil {
				ns.t.Fatalf("ip route %s blackhole in %s: %v\n%s", op, ns.names[r[0]], err, out)
			}
		}
	}
}

// TestNetworkIsolatedLeader: three brokers, each in its own network
// namespace, RF 3 with min.insync.replicas=2, idempotent acks=all
// producers and a group consumer running. The leader of a partition is cut
// off from the other two brokers while it still reaches the bucket and the
// clients: it cannot replicate, so it acknowledges nothing more; the other
// two (a majority) fence it by revoking its lease, which it keeps
// renewing; it finds out at its next renewal and exits; an in-sync replica
// leads its partitions. After the network heals and it restarts, every
// acknowledged record is there exactly once and in order, and the consumer
// was never delivered a record that is not in the final log.
func TestNetworkIsolatedLeader(t *testing.T) {
	const (
		partitions = 3
		topic      = "isolated"
	)
	ns := newNetns(t, 3)
	srv := testservers.StartVersityGWOn(t, ns.host())
	_, url := s3Bucket(t, srv, "isolated")
	var procs []*brokertest.Process
	var addrs []string
	for i := range 3 {
		addrs = append(addrs, ns.ip(i)+":29092")
	}
	for i := range 3 {
		var seeds []string
		for j := range 3 {
			if j != i {
				seeds = append(seeds, ns.ip(j)+":7946")
			}
		}
		sets := append([]string{fmt.Sprintf("node.id=%d", i+1), "tiercel.objstore.url=" + url,
			"tiercel.gossip.listener=" + ns.ip(i) + ":7946", "tiercel.gossip.seeds=" + strings.Join(seeds, ","),
			"tiercel.http.addr=" + ns.ip(i) + ":9644",
			"tiercel.gossip.local=true", "tiercel.metadata.poll.ms=200", fmt.Sprintf("broker.rack=zone-%d", i),
			"tiercel.lease.ttl.ms=3000", "tiercel.lease.margin.ms=500", "replica.lag.time.max.ms=15000",
			"tiercel.replica.isr.check.ms=200", "replica.fetch.wait.max.ms=100", "replica.fetch.backoff.ms=100"}, fastTiering...)
		procs = append(procs, brokertest.StartProcessUnder(t, ns.wrap(i), addrs[i], t.TempDir(), sets...))
	}
	for _, a := range addrs {
		waitBrokers(t, a, 3)
	}
	adm, admCl := newAdmin(t, addrs[0])
	defer admCl.Close()
	configs := map[string]*string{"min.insync.replicas": kadm.StringPtr("2")}
	if resp, err := adm.CreateTopic(context.Background(), partitions, 3, configs, topic); err != nil || resp.Err != nil {
		t.Fatalf("create: %v %v", err, resp.Err)
	}
	inSync := func(addr string, down int) func() bool {
		return func() bool {
			parts := partitionsOf(t, addr, topic)
			if len(parts) != partitions {
				return false
			}
			for _, p := range parts {
				if p.ErrorCode != 0 || p.Leader < 0 || p.Leader == int32(down) || len(p.ISR) != 3-min(down, 1) {
					return false
				}
			}
			return true
		}
	}
	brokertest.WaitFor(t, "the topic in sync on three", inSync(addrs[0], 0))
	reader := startLiveReader(t, addrs, topic, "isolated-readers")

	acked := produceThroughKills(t, procs[0], topic, killLoad{
		partitions: partitions, producers: 2, cycles: 1, seeds: addrs, padding: 50, interval: 100 * time.Microsecond,
		pause: func() time.Duration { return 2 * time.Second },
		disrupt: func(int) {
			var victim int
			for _, p := range partitionsOf(t, addrs[0], topic) {
				if p.Partition == 0 {
					victim = int(p.Leader) - 1
				}
			}
			other := (victim + 1) % 3
			ns.isolate(victim)
			began := time.Now()
			brokertest.WaitFor(t, "the isolated leader's partitions led by the others", inSync(addrs[other], victim+1))
			t.Logf("broker %d isolated; its partitions led by in-sync replicas after %v", victim+1, time.Since(began).Round(time.Millisecond))
			// The survivors' metrics show the partitions they lead with
			// two of three in sync: under-replicated and at min ISR.
			brokertest.WaitFor(t, "the replication metrics to show the lost replica", func() bool {
				under, atMin := 0.0, 0.0
				for j := range 3 {
					if j != victim {
						under += metricValue(t, "http://"+ns.ip(j)+":9644/metrics", "tiercel_partitions_under_replicated")
						atMin += metricValue(t, "http://"+ns.ip(j)+":9644/metrics", "tiercel_partitions_at_min_isr")
					}
				}
				return under == partitions && atMin == partitions
			})
			err, exited := procs[victim].WaitExit(20 * time.Second)
			if !exited || err == nil || !strings.Contains(procs[victim].Output(), "another process took this broker's lease") {
				t.Fatalf("the isolated broker %d: exited %v with %v; output:\n%s", victim+1, exited, err, procs[victim].Output())
			}
			ns.heal(victim)
			procs[victim].Restart()
			brokertest.WaitFor(t, "all three in sync again", inSync(addrs[other], 0))
			brokertest.WaitFor(t, "the replication metrics back to zero", func() bool {
				sum := 0.0
				for j := range 3 {
					sum += metricValue(t, "http://"+ns.ip(j)+":9644/metrics", "tiercel_partitions_under_replicated")
				}
				return sum == 0
			})
		},
	})
	if len(acked) < 1000 {
		t.Fatalf("only %d records acknowledged: too little load to prove anything", len(acked))
	}
	log := readAll(t, addrs[0], topic, partitions)
	checkLog(t, log, acked)
	reader.check(t, acked)
	reader.mu.Lock()
	defer reader.mu.Unlock()
	for p, offs := range reader.at {
		for off, v := range offs {
			if off >= int64(len(log[p])) || log[p][off] != v {
				t.Errorf("partition %d offset %d: the consumer was delivered %q, which is not in the final log there", p, off, v)
			}
		}
	}
}

// metricValue is the value of a gauge without labels in a Prometheus
// text page at url (-1 if the page or the gauge is missing).
func metricValue(t *testing.T, url, name string) float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(body), "\n") {
		if rest, ok := strings.CutPrefix(line, name); ok && (strings.HasPrefix(rest, " ") || strings.HasPrefix(rest, "{")) {
			fields := strings.Fields(line)
			v, err := strconv.ParseFloat(fields[len(fields)-1], 64)
			if err == nil {
				return v
			}
		}
	}
	return -1
}

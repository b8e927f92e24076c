package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/tiercel/tiercel/internal/brokertest"
	"github.com/tiercel/tiercel/internal/testservers"
)

// TestReplicationCrashes: three broker processes on versitygw, a topic
// with replication factor 3 (one replica per rack), min.insync.replicas=2,
// idempotent acks=all producers and a group consumer running throughout,
// through: kill -9 of a broker (a leader of some partitions and a follower
// of the others); kill -9 of two brokers one after the other (acks=all is
// refused while one is left, then resumes); a broker restarted on an empty
// data directory (it copies the local tail from the leader and rejoins
// the ISR); a leader frozen with SIGSTOP past its lease (in-sync followers
// take over; woken, it finds its lease revoked and exits); a leader killed
// and restarted at once on an empty disk, before any takeover (its
// registration moves its partitions to in-sync replicas: it must not lead
// from the empty copy). Afterwards every
// acknowledged record is in the log exactly once and in order, the
// consumer was never delivered a record that is not in the final log at
// the same offset (nothing above the high watermark), and every in-sync
// replica holds the same records (compared on disk).
func TestReplicationCrashes(t *testing.T) { replicationCrashes(t, 3, 3) }

// TestReplicationCrashesFive is TestReplicationCrashes on five brokers,
// each partition's three replicas on three of them, and one more cycle:
// partition 0 reassigned from its leader to a broker that held no replica,
// the leader killed -9 right after; the reassignment completes under the
// new leader, the restarted broker deletes its copy, the new replica's
// copy is compared on disk with the others.
func TestReplicationCrashesFive(t *testing.T) { replicationCrashes(t, 5, 5) }

func replicationCrashes(t *testing.T, brokers, partitions int) {
	const topic = "rep"
	srv := testservers.StartVersityGW(t)
	sets := append([]string{"tiercel.lease.ttl.ms=3000", "tiercel.lease.margin.ms=500", "replica.lag.time.max.ms=3000",
		"tiercel.replica.isr.check.ms=200", "replica.fetch.wait.max.ms=100", "replica.fetch.backoff.ms=100"}, fastTiering...)
	procs, _ := s3Cluster(t, srv, "replication", brokers, sets...)
	var addrs []string
	for _, p := range procs {
		addrs = append(addrs, p.Addr())
	}
	adm, admCl := newAdmin(t, addrs[0])
	defer admCl.Close()
	configs := map[string]*string{"min.insync.replicas": kadm.StringPtr("2")}
	for k, v := range tinySegments {
		configs[k] = v
	}
	if resp, err := adm.CreateTopic(context.Background(), int32(partitions), 3, configs, topic); err != nil || resp.Err != nil {
		t.Fatalf("create: %v %v", err, resp.Err)
	}
	for _, a := range addrs {
		waitTopic(t, a, topic, partitions)
	}
	reader := startLiveReader(t, addrs, topic, "rep-readers")

	// waitISR waits until the broker at addr reports every partition led,
	// with its live replicas (every broker but those down) in sync.
	waitISR := func(addr string, down ...int) {
		t.Helper()
		brokertest.WaitFor(t, fmt.Sprintf("every partition led, its replicas but brokers %v in sync", down), func() bool {
			parts := partitionsOf(t, addr, topic)
			if len(parts) != partitions {
				return false
			}
			for _, p := range parts {
				want := slices.DeleteFunc(slices.Clone(p.Replicas), func(r int32) bool { return slices.Contains(down, int(r)) })
				isr := slices.Clone(p.ISR)
				slices.Sort(want)
				slices.Sort(isr)
				if p.ErrorCode != 0 || p.Leader < 0 || !slices.Equal(isr, want) {
					return false
				}
			}
			return true
		})
	}
	leaderOf := func(addr string, part int32) int32 {
		for _, p := range partitionsOf(t, addr, topic) {
			if p.Partition == part {
				return p.Leader
			}
		}
		return -1
	}
	other := func(not ...int) int {
		for i := range procs {
			if !slices.Contains(not, i) {
				return i
			}
		}
		return -1
	}
	cycles := 5
	var reassigned struct {
		target []int32
		from   int32 // the leader it removed
	}
	if brokers > 3 {
		cycles++ // a reassignment whose leader is killed on the way
	}
	acked := produceThroughKills(t, procs[0], topic, killLoad{
		partitions: partitions, producers: 2, cycles: cycles, seeds: addrs, padding: 50, interval: 100 * time.Microsecond,
		pause: func() time.Duration { return 2 * time.Second },
		disrupt: func(c int) {
			switch c {
			case 0: // kill -9 the leader of partition 0
				victim := int(leaderOf(addrs[1], 0)) - 1
				procs[victim].Kill()
				began := time.Now()
				waitISR(addrs[other(victim)], victim+1)
				t.Logf("cycle 0: broker %d killed; its partitions led by in-sync replicas after %v", victim+1, time.Since(began).Round(time.Millisecond))
				procs[victim].Restart()
				waitISR(addrs[0])
			case 1: // kill -9 two brokers one after the other
				procs[1].Kill()
				waitISR(addrs[0], 2)
				procs[2].Kill()
				waitISR(addrs[0], 2, 3)
				time.Sleep(time.Second) // producers are refused (NOT_ENOUGH_REPLICAS) and retry
				procs[1].Restart()
				procs[2].Restart()
				waitISR(addrs[0])
				t.Logf("cycle 1: brokers 2 and 3 killed in turn and restarted; all back in sync")
			case 2: // a broker restarted on an empty disk
				procs[2].Kill()
				waitISR(addrs[0], 3)
				procs[2].MoveTo(t.TempDir())
				procs[2].Restart()
				waitISR(addrs[0])
				t.Logf("cycle 2: broker 3 restarted on an empty disk and caught up")
			case 3: // a leader frozen past its lease
				victim := int(leaderOf(addrs[0], 1)) - 1
				procs[victim].Signal(syscall.SIGSTOP)
				began := time.Now()
				brokertest.WaitFor(t, "the frozen leader's partitions to move", func() bool {
					for _, p := range partitionsOf(t, addrs[other(victim)], topic) {
						if p.Leader == int32(victim+1) || p.Leader < 0 || p.ErrorCode != 0 {
							return false
						}
					}
					return true
				})
				t.Logf("cycle 3: broker %d frozen; its partitions moved after %v", victim+1, time.Since(began).Round(time.Millisecond))
				procs[victim].Signal(syscall.SIGCONT)
				err, exited := procs[victim].WaitExit(15 * time.Second)
				if !exited || err == nil || !strings.Contains(procs[victim].Output(), "another process took this broker's lease") {
					t.Fatalf("broker %d after SIGCONT: exited %v with %v; output:\n%s", victim+1, exited, err, procs[victim].Output())
				}
				procs[victim].Restart()
				waitISR(addrs[other(victim)])
			case 4: // a leader killed, its disk wiped, restarted at once (before any takeover)
				victim := int(leaderOf(addrs[0], 0)) - 1
				procs[victim].Kill()
				procs[victim].MoveTo(t.TempDir())
				procs[victim].Restart()
				waitISR(addrs[other(victim)])
				t.Logf("cycle 4: broker %d, a leader, restarted at once on an empty disk; all back in sync", victim+1)
			case 5: // partition 0's leader reassigned away and killed -9 right after
				var rs []int32
				for _, p := range partitionsOf(t, addrs[0], topic) {
					if p.Partition == 0 {
						rs, reassigned.from = p.Replicas, p.Leader
					}
				}
				for id := int32(1); id <= int32(brokers); id++ {
					if !slices.Contains(rs, id) {
						reassigned.target = append(slices.DeleteFunc(slices.Clone(rs), func(r int32) bool { return r == reassigned.from }), id)
						break
					}
				}
				// In sync is not yet live everywhere: a broker restarted in
				// cycle 4 may still be joining another's gossip view, and
				// a reassignment names live brokers only.
				for _, a := range addrs {
					waitBrokers(t, a, brokers)
				}
				req := kadm.AlterPartitionAssignmentsReq{}
				req.Assign(topic, 0, reassigned.target)
				victim := int(reassigned.from) - 1
				res, err := adm.AlterPartitionAssignments(context.Background(), req)
				if err != nil || res[topic][0].Err != nil {
					t.Fatalf("reassign partition 0 to %v: %v %+v", reassigned.target, err, res)
				}
				procs[victim].Kill()
				brokertest.WaitFor(t, "partition 0 led by another broker", func() bool {
					l := leaderOf(addrs[other(victim)], 0)
					return l >= 0 && l != reassigned.from
				})
				procs[victim].Restart()
				for _, a := range addrs {
					brokertest.WaitFor(t, "the reassignment done as "+a+" sees it", func() bool {
						for _, p := range partitionsOf(t, a, topic) {
							if p.Partition == 0 {
								return slices.Equal(p.Replicas, reassigned.target) && len(p.ISR) == 3
							}
						}
						return false
					})
				}
				t.Logf("cycle 5: partition 0 reassigned from %v to %v, its leader %d killed on the way; done", rs, reassigned.target, reassigned.from)
			}
		},
	})
	if len(acked) < 1000 {
		t.Fatalf("only %d records acknowledged: too little load to prove anything", len(acked))
	}
	waitISR(addrs[0])
	log := readAll(t, addrs[0], topic, partitions)
	checkLog(t, log, acked)
	reader.check(t, acked)
	reader.mu.Lock()
	for p, offs := range reader.at {
		for off, v := range offs {
			if off >= int64(len(log[p])) || log[p][off] != v {
				t.Errorf("partition %d offset %d: the consumer was delivered %q, which is not in the final log there", p, off, v)
			}
		}
	}
	reader.mu.Unlock()

	// Every replica holds the same records at the same offsets: wait for
	// the followers to fetch the last ones, stop all three at once (no
	// handoff moves anything), compare.
	ends := map[int32]int64{}
	for p, vs := range log {
		ends[p] = int64(len(vs))
	}
	replicas := map[int32][]int32{}
	for _, p := range partitionsOf(t, addrs[0], topic) {
		replicas[p.Partition] = p.Replicas
	}
	time.Sleep(time.Second)
	for _, p := range procs {
		p.Kill()
	}
	if reassigned.target != nil {
		if !slices.Equal(replicas[0], reassigned.target) {
			t.Fatalf("partition 0 has replicas %v after its reassignment to %v", replicas[0], reassigned.target)
		}
		if _, vs := brokertest.DiskLog(t, procs[reassigned.from-1].DataDir(), topic, 0); len(vs) != 0 {
			t.Errorf("broker %d, reassigned away from partition 0, still holds %d of its records", reassigned.from, len(vs))
		}
	}
	for part := range int32(partitions) {
		if len(replicas[part]) != 3 {
			t.Fatalf("partition %d has replicas %v", part, replicas[part])
		}
		for _, r := range replicas[part] {
			i, p := r-1, procs[r-1]
			start, vs := brokertest.DiskLog(t, p.DataDir(), topic, part)
			if start+int64(len(vs)) != ends[part] {
				t.Errorf("partition %d: broker %d's copy ends at %d, the log at %d", part, i+1, start+int64(len(vs)), ends[part])
				continue
			}
			for j, v := range vs {
				if want := log[part][start+int64(j)]; v != want {
					t.Fatalf("partition %d offset %d: broker %d holds %q, the log %q", part, start+int64(j), i+1, v, want)
				}
			}
		}
	}
}

// TestNotEnoughReplicasAfterAppend: with min.insync.replicas=3, an acks=all
// produce appended while all three replicas were in sync waits for a
// follower that has stopped (SIGSTOP); when the leader drops it from the
// ISR after replica.lag.time.max.ms, the produce is answered
// NOT_ENOUGH_REPLICAS_AFTER_APPEND (the record is in the log, but fewer
// replicas than required hold it), and the next one NOT_ENOUGH_REPLICAS.
func TestNotEnoughReplicasAfterAppend(t *testing.T) {
	srv := testservers.StartVersityGW(t)
	procs, _ := s3Cluster(t, srv, "after-append", 3, "replica.lag.time.max.ms=2000", "tiercel.replica.isr.check.ms=100",
		"replica.fetch.wait.max.ms=100")
	addr := procs[0].Addr()
	_, cl := newAdmin(t, addr)
	defer cl.Close()
	if err := brokertest.CreateTopicWithReplicas(context.Background(), cl, "strict", [][]int32{{1, 2, 3}}, map[string]string{"min.insync.replicas": "3"}); err != nil {
		t.Fatal(err)
	}
	brokertest.WaitFor(t, "the topic in sync on three", func() bool {
		ps := partitionsOf(t, addr, "strict")
		return len(ps) == 1 && len(ps[0].ISR) == 3
	})
	produce := func() int16 {
		t.Helper()
		code, err := brokertest.ProduceOne(context.Background(), addr, "strict", -1)
		if err != nil {
			t.Fatal(err)
		}
		return code
	}
	if code := produce(); code != 0 {
		t.Fatalf("acks=all with three in sync: %v", kerr.ErrorForCode(code))
	}
	procs[2].Signal(syscall.SIGSTOP)
	defer procs[2].Signal(syscall.SIGCONT)
	began := time.Now()
	if code := produce(); code != kerr.NotEnoughReplicasAfterAppend.Code {
		t.Fatalf("acks=all while a follower stopped and left the ISR: %v, want NOT_ENOUGH_REPLICAS_AFTER_APPEND", kerr.ErrorForCode(code))
	}
	t.Logf("answered NOT_ENOUGH_REPLICAS_AFTER_APPEND after %v", time.Since(began).Round(time.Millisecond))
	if code := produce(); code != kerr.NotEnoughReplicas.Code {
		t.Fatalf("acks=all with two in sync: %v, want NOT_ENOUGH_REPLICAS", kerr.ErrorForCode(code))
	}
}

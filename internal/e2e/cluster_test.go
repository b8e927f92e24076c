package e2e

import (
	"context"
	"encoding/base64"
	"fmt"
	"math/rand"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tiercel/tiercel/internal/brokertest"
	"github.com/tiercel/tiercel/internal/testservers"
	s3store "github.com/tiercel/tiercel/objstore/s3"
	"github.com/tiercel/tiercel/tiering"
)

// s3Bucket creates bucket on srv and returns it with the URL a broker
// process opens it by (its credentials set in the environment).
func s3Bucket(t *testing.T, srv testservers.S3, bucket string) (*s3store.Bucket, string) {
	t.Helper()
	b, err := s3store.New(context.Background(), s3store.Config{Bucket: bucket, Endpoint: srv.Endpoint, PathStyle: true, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.CreateBucket(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	t.Setenv("AWS_REGION", "us-east-1")
	return b, "s3://" + bucket + "?endpoint=" + srv.Endpoint
}

// s3Cluster starts n broker processes that gossip with each other and share
// one bucket of srv, which it returns too.
func s3Cluster(t *testing.T, srv testservers.S3, bucket string, n int, sets ...string) ([]*brokertest.Process, *s3store.Bucket) {
	t.Helper()
	b, url := s3Bucket(t, srv, bucket)
	addrs := brokertest.FreeAddrs(t, 2*n)
	gossip, kafka := addrs[:n], addrs[n:]
	var procs []*brokertest.Process
	for i := range n {
		s := append([]string{
			fmt.Sprintf("node.id=%d", i+1),
			"tiercel.objstore.url=" + url,
			"tiercel.gossip.listener=" + gossip[i],
			"tiercel.gossip.local=true",
			"tiercel.metadata.poll.ms=200",
			fmt.Sprintf("broker.rack=zone-%d", i%3),
		}, sets...)
		var seeds []string
		for j, g := range gossip {
			if j != i {
				seeds = append(seeds, g)
			}
		}
		s = append(s, "tiercel.gossip.seeds="+joinComma(seeds))
		procs = append(procs, brokertest.StartProcessUnder(t, nil, kafka[i], t.TempDir(), s...))
	}
	for _, p := range procs {
		waitBrokers(t, p.Addr(), n)
	}
	return procs, b
}

func joinComma(ss []string) string {
	out := ""
	for i, s := range ss {
		if i > 0 {
			out += ","
		}
		out += s
	}
	return out
}

// waitBrokers waits until the broker at addr itself lists n brokers.
func waitBrokers(t *testing.T, addr string, n int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	brokertest.WaitFor(t, fmt.Sprintf("%s to list %d brokers", addr, n), func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		resp, err := cl.SeedBrokers()[0].Request(ctx, kmsg.NewPtrMetadataRequest())
		return err == nil && len(resp.(*kmsg.MetadataResponse).Brokers) == n
	})
}

// waitTopic waits until the broker at addr itself lists topic with n
// partitions, each with a leader.
func waitTopic(t *testing.T, addr, topic string, n int) {
	t.Helper()
	brokertest.WaitFor(t, fmt.Sprintf("%s to list %s with leaders", addr, topic), func() bool {
		ps := partitionsOf(t, addr, topic)
		if len(ps) != n {
			return false
		}
		for _, p := range ps {
			if p.ErrorCode != 0 || p.Leader < 0 {
				return false
			}
		}
		return true
	})
}

// partitionsOf asks the broker at addr itself (kadm's Metadata answers from
// the client's cache) for a topic's partitions.
func partitionsOf(t *testing.T, addr, topic string) []kmsg.MetadataResponseTopicPartition {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req := kmsg.NewPtrMetadataRequest()
	req.Topics = []kmsg.MetadataRequestTopic{{Topic: kmsg.StringPtr(topic)}}
	resp, err := cl.SeedBrokers()[0].Request(ctx, req)
	if err != nil {
		return nil
	}
	for _, tp := range resp.(*kmsg.MetadataResponse).Topics {
		if tp.Topic != nil && *tp.Topic == topic {
			return tp.Partitions
		}
	}
	return nil
}

// TestClusterRollingRestart: three broker processes on versitygw and on
// MinIO. Topics are created through any broker; while idempotent acks=all
// producers run, every broker in turn is stopped with SIGTERM (it hands
// its partitions to the others: roll, upload, new leader at epoch + 1)
// and started again. Replication factor 1, and still every acknowledged
// record is there exactly once, in order per producer and partition; a
// group consumer reading all along (its coordinator moving too) is
// delivered every one of them, never two records at one offset.
func TestClusterRollingRestart(t *testing.T) {
	servers := []struct {
		name string
		srv  testservers.S3
	}{{"versitygw", testservers.StartVersityGW(t)}, {"minio", testservers.StartMinIO(t)}}
	for _, s := range servers {
		t.Run(s.name, func(t *testing.T) {
			const partitions = 6
			procs, _ := s3Cluster(t, s.srv, "rolling", 3, append([]string{"auto.leader.rebalance.enable=true", "tiercel.leader.rebalance.join.delay.ms=500"}, fastTiering...)...)
			// Admin through a broker other than the first.
			adm, admCl := newAdmin(t, procs[1].Addr())
			if _, err := adm.CreateTopic(context.Background(), partitions, 1, tinySegments, "rolling"); err != nil {
				t.Fatal(err)
			}
			admCl.Close()
			var addrs []string
			for _, p := range procs {
				addrs = append(addrs, p.Addr())
				waitTopic(t, p.Addr(), "rolling", partitions)
			}
			reader := startLiveReader(t, addrs, "rolling", "rolling-readers")
			rng := rand.New(rand.NewSource(time.Now().UnixNano()))
			acked := produceThroughKills(t, procs[0], "rolling", killLoad{
				partitions: partitions, producers: 2, cycles: len(procs), padding: 100, seeds: addrs,
				pause: func() time.Duration { return time.Duration(500+rng.Intn(700)) * time.Millisecond },
				disrupt: func(c int) {
					began := time.Now()
					procs[c].Stop()
					stopped := time.Since(began)
					procs[c].Restart()
					for _, p := range procs {
						waitBrokers(t, p.Addr(), len(procs))
					}
					t.Logf("broker %d: SIGTERM to exit %v, back in the cluster after %v", c+1, stopped.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
				},
			})
			if len(acked) < 1000 {
				t.Fatalf("only %d records acknowledged: too little load to prove anything", len(acked))
			}
			checkLog(t, readAll(t, procs[2].Addr(), "rolling", partitions), acked)
			reader.check(t, acked)
		})
	}
}

// TestClusterFrozenLeader: with unclean.leader.election.enable, a broker
// frozen with SIGSTOP past its lease is replaced: the others revoke its
// lease and move its partitions (epoch + 1) while producers keep going.
// After SIGCONT it acknowledges nothing more and writes no manifest: its
// next renewal finds the lease revoked and it exits, saying why. Records
// it had acknowledged but not tiered are the only ones allowed to be lost
// (replication factor 1); nothing is duplicated or reordered.
func TestClusterFrozenLeader(t *testing.T) {
	for _, s := range []struct {
		name string
		srv  testservers.S3
	}{{"versitygw", testservers.StartVersityGW(t)}, {"minio", testservers.StartMinIO(t)}} {
		t.Run(s.name, func(t *testing.T) {
			const partitions = 6
			sets := append([]string{"unclean.leader.election.enable=true", "tiercel.lease.ttl.ms=2000", "tiercel.lease.margin.ms=500"}, fastTiering...)
			procs, b := s3Cluster(t, s.srv, "frozen", 3, sets...)
			adm, admCl := newAdmin(t, procs[2].Addr())
			defer admCl.Close()
			if _, err := adm.CreateTopic(context.Background(), partitions, 1, tinySegments, "frozen"); err != nil {
				t.Fatal(err)
			}
			var addrs []string
			for _, p := range procs {
				addrs = append(addrs, p.Addr())
				waitTopic(t, p.Addr(), "frozen", partitions)
			}
			led := map[int32]bool{} // partitions broker 1 led when it froze
			acked := produceThroughKills(t, procs[0], "frozen", killLoad{
				partitions: partitions, producers: 2, cycles: 1, padding: 100, seeds: addrs[1:],
				pause: func() time.Duration { return time.Second },
				disrupt: func(int) {
					for _, p := range partitionsOf(t, procs[1].Addr(), "frozen") {
						if p.Leader == 1 {
							led[p.Partition] = true
						}
					}
					if len(led) == 0 {
						t.Fatal("broker 1 leads no partition of the topic")
					}
					procs[0].Signal(syscall.SIGSTOP)
					began := time.Now()
					brokertest.WaitFor(t, "broker 1's partitions to move while it is frozen", func() bool {
						parts := partitionsOf(t, procs[1].Addr(), "frozen")
						if len(parts) != partitions {
							return false
						}
						for _, l := range parts {
							if led[l.Partition] && (l.Leader == 1 || l.Leader < 0 || l.LeaderEpoch < 1) {
								return false
							}
						}
						return true
					})
					t.Logf("broker 1's %d partitions moved %v after SIGSTOP", len(led), time.Since(began).Round(time.Millisecond))
					procs[0].Signal(syscall.SIGCONT)
					err, exited := procs[0].WaitExit(15 * time.Second)
					if !exited {
						t.Fatal("broker 1 kept running after SIGCONT with its lease revoked")
					}
					if err == nil || !strings.Contains(procs[0].Output(), "another process took this broker's lease") {
						t.Fatalf("broker 1 exited with %v; output:\n%s", err, procs[0].Output())
					}
					procs[0].Restart()
				},
			})
			if len(acked) < 1000 {
				t.Fatalf("only %d records acknowledged: too little load to prove anything", len(acked))
			}
			// No manifest went back to broker 1's epoch.
			md, err := adm.Metadata(context.Background(), "frozen")
			if err != nil {
				t.Fatal(err)
			}
			id := md.Topics["frozen"].ID
			for p := range led {
				m, _, err := tiering.ManifestStore{Bucket: b}.Load(context.Background(), base64.RawURLEncoding.EncodeToString(id[:]), p)
				if err != nil {
					t.Fatal(err)
				}
				if m.LeaderEpoch < md.Topics["frozen"].Partitions[p].LeaderEpoch {
					t.Fatalf("partition %d: manifest at epoch %d, the leader's is %d", p, m.LeaderEpoch, md.Topics["frozen"].Partitions[p].LeaderEpoch)
				}
			}
			checkLogLosing(t, readAll(t, procs[1].Addr(), "frozen", partitions), acked, func(v string) bool {
				_, seq := splitValue(t, v)
				return led[int32(seq%partitions)]
			})
		})
	}
}

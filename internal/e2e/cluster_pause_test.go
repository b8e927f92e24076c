package e2e

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/tiercel/tiercel/internal/brokertest"
	"github.com/tiercel/tiercel/internal/testservers"
)

// TestClusterPauseResume: three broker processes on versitygw and on
// MinIO, idempotent acks=all producers running. `tiercel cluster pause`
// parks every partition in the bucket (group offsets included) and says
// the brokers may be stopped; they are stopped with SIGTERM and started
// again on the same addresses with empty data directories. The cluster
// resumes by itself; every acknowledged record is there exactly once, in
// order, and a group's committed offsets survived. A pause while a broker
// is down is refused with a reason.
func TestClusterPauseResume(t *testing.T) {
	servers := []struct {
		name string
		srv  testservers.S3
	}{{"versitygw", testservers.StartVersityGW(t)}, {"minio", testservers.StartMinIO(t)}}
	bin := brokertest.Binary(t)
	for _, s := range servers {
		t.Run(s.name, func(t *testing.T) {
			const partitions = 6
			procs, _ := s3Cluster(t, s.srv, "pausing", 3, fastTiering...)
			tiercel := func(args ...string) (string, error) {
				out, err := exec.Command(bin, append([]string{"--bootstrap-server", procs[1].Addr()}, args...)...).CombinedOutput()
				return string(out), err
			}
			adm, admCl := newAdmin(t, procs[1].Addr())
			defer admCl.Close()
			if _, err := adm.CreateTopic(context.Background(), partitions, 1, tinySegments, "pausing"); err != nil {
				t.Fatal(err)
			}
			commit := kadm.Offsets{}
			for p := range int32(partitions) {
				commit.Add(kadm.Offset{Topic: "pausing", Partition: p, At: int64(p) + 1, LeaderEpoch: -1})
			}
			var addrs []string
			for _, p := range procs {
				addrs = append(addrs, p.Addr())
				waitTopic(t, p.Addr(), "pausing", partitions)
			}
			reader := startLiveReader(t, addrs, "pausing", "pause-readers")
			acked := produceThroughKills(t, procs[0], "pausing", killLoad{
				partitions: partitions, producers: 2, cycles: 1, padding: 100, seeds: addrs,
				pause: func() time.Duration { return 1500 * time.Millisecond },
				disrupt: func(int) {
					if r, err := adm.CommitOffsets(context.Background(), "keeper", commit); err != nil || r.Error() != nil {
						t.Fatalf("commit: %v %v", err, r.Error())
					}
					began := time.Now()
					out, err := tiercel("cluster", "pause", "--wait", "60s")
					if err != nil || !strings.Contains(out, "every broker may be stopped") {
						t.Fatalf("cluster pause: %v\n%s", err, out)
					}
					paused := time.Since(began)
					for _, p := range procs {
						p.Stop()
						p.MoveTo(t.TempDir())
					}
					for _, p := range procs {
						p.Restart()
					}
					for _, p := range procs {
						waitBrokers(t, p.Addr(), len(procs))
					}
					brokertest.WaitFor(t, "every partition adopted", func() bool {
						for _, p := range partitionsOf(t, procs[0].Addr(), "pausing") {
							if p.Leader < 0 {
								return false
							}
						}
						return true
					})
					t.Logf("%s: paused in %v, %v to stop, restart on empty disks and resume", out, paused.Round(time.Millisecond), (time.Since(began) - paused).Round(time.Millisecond))
				},
			})
			if len(acked) < 500 {
				t.Fatalf("only %d records acknowledged: too little load to prove anything", len(acked))
			}
			checkLog(t, readAll(t, procs[2].Addr(), "pausing", partitions), acked)
			reader.check(t, acked)

			adm2, cl2 := newAdmin(t, procs[2].Addr())
			defer cl2.Close()
			fetched, err := adm2.FetchOffsets(context.Background(), "keeper")
			if err != nil || fetched.Error() != nil {
				t.Fatalf("group offsets after resume: %v %v", err, fetched.Error())
			}
			for p := range int32(partitions) {
				if o, ok := fetched.Lookup("pausing", p); !ok || o.At != int64(p)+1 {
					t.Fatalf("partition %d: committed %+v after resume, want %d", p, o, p+1)
				}
			}

			// A broker down: its partitions cannot be parked.
			procs[2].Kill()
			brokertest.WaitFor(t, "the killed broker's partitions offline", func() bool {
				for _, p := range partitionsOf(t, procs[0].Addr(), "pausing") {
					if p.Leader < 0 {
						return true
					}
				}
				return false
			})
			out, err := tiercel("cluster", "pause", "--wait", "30s")
			if err == nil || !strings.Contains(out, "offline") {
				t.Fatalf("pause with a broker down: %v, want a refusal naming the offline partitions\n%s", err, out)
			}
		})
	}
}

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/tiercel/tiercel/internal/brokertest"
	"github.com/tiercel/tiercel/internal/testservers"
	"github.com/tiercel/tiercel/objstore/mem"
)

// memCluster starts three in-process brokers (ids 1..3, racks r1..r3) on
// an in-memory bucket, gossiping through the first, with extra settings,
// and waits until each lists all three.
func memCluster(t *testing.T, bucketName string, extra ...string) []*brokertest.Broker {
	t.Helper()
	bucket := mem.New(bucketName)
	var brokers []*brokertest.Broker
	for i := 1; i <= 3; i++ {
		sets := append([]string{fmt.Sprintf("node.id=%d", i), "tiercel.gossip.listener=127.0.0.1:0", "tiercel.gossip.local=true",
			"tiercel.metadata.poll.ms=100", fmt.Sprintf("broker.rack=r%d", i)}, extra...)
		if i > 1 {
			sets = append(sets, "tiercel.gossip.seeds="+brokers[0].GossipAddr())
		}
		brokers = append(brokers, brokertest.StartWithBucket(t, t.TempDir(), bucket, sets...))
	}
	for _, b := range brokers {
		waitBrokers(t, b.Addr(), 3)
	}
	return brokers
}

// TestClusterCLI: `tiercel cluster brokers|status|reassign|drain|
// elect-leaders` against three brokers, with the numbers checked against
// the cluster's own metadata, and bad input answered with a readable error.
func TestClusterCLI(t *testing.T) {
	brokers := memCluster(t, "cli-cluster")
	bin := brokertest.Binary(t)
	tiercel := func(args ...string) (string, error) {
		out, err := exec.Command(bin, append([]string{"--bootstrap-server", brokers[0].Addr()}, args...)...).CombinedOutput()
		return string(out), err
	}
	adm, cl := newAdmin(t, brokers[0].Addr())
	defer cl.Close()
	if _, err := adm.CreateTopic(context.Background(), 6, 1, nil, "c"); err != nil {
		t.Fatal(err)
	}
	led := func() map[int32][]int32 {
		out := map[int32][]int32{}
		for _, p := range partitionsOf(t, brokers[0].Addr(), "c") {
			out[p.Leader] = append(out[p.Leader], p.Partition)
		}
		return out
	}
	brokertest.WaitFor(t, "the topic on every broker", func() bool { return len(led()) == 3 })

	out, err := tiercel("cluster", "brokers", "-o", "json")
	var bs []struct {
		ID   int32  `json:"id"`
		Rack string `json:"rack"`
	}
	if err != nil || json.Unmarshal([]byte(out), &bs) != nil || len(bs) != 3 || bs[1].ID != 2 || bs[1].Rack != "r2" {
		t.Fatalf("cluster brokers: %v\n%s", err, out)
	}

	if out, err := tiercel("cluster", "drain", "2", "--wait", "20s"); err != nil {
		t.Fatalf("drain: %v\n%s", err, out)
	}
	if l := led(); len(l[2]) != 0 || len(l[1])+len(l[3]) != 6 {
		t.Fatalf("after draining broker 2: %v", l)
	}
	out, err = tiercel("cluster", "status", "-o", "json")
	var st struct {
		Leading map[string]int `json:"partitions_led"`
		Offline []string       `json:"offline"`
	}
	if err != nil || json.Unmarshal([]byte(out), &st) != nil || st.Leading["2"] != 0 || len(st.Offline) != 0 {
		t.Fatalf("cluster status after the drain: %v\n%s", err, out)
	}

	if out, err := tiercel("cluster", "reassign", "c", "0", "2", "--wait", "20s"); err != nil {
		t.Fatalf("reassign: %v\n%s", err, out)
	}
	if l := led(); len(l[2]) != 1 || l[2][0] != 0 {
		t.Fatalf("after moving c-0 to broker 2: %v", l)
	}
	if out, err := tiercel("cluster", "elect-leaders", "--wait", "20s"); err != nil {
		t.Fatalf("elect-leaders: %v\n%s", err, out)
	}
	if l := led(); len(l[1]) != 2 || len(l[2]) != 2 || len(l[3]) != 2 {
		t.Fatalf("after the preferred election every broker should lead 2 partitions again: %v", l)
	}

	// Pause parks every partition (status says so), resume brings them back.
	if out, err := tiercel("cluster", "pause", "--wait", "20s"); err != nil || !strings.Contains(out, "6 partitions parked") {
		t.Fatalf("pause: %v\n%s", err, out)
	}
	var paused struct {
		Paused  bool     `json:"paused"`
		Offline []string `json:"offline"`
	}
	if out, err := tiercel("cluster", "status", "-o", "json"); err != nil || json.Unmarshal([]byte(out), &paused) != nil || !paused.Paused || len(paused.Offline) != 6 {
		t.Fatalf("status while paused: %v\n%s", err, out)
	}
	if out, err := tiercel("cluster", "resume", "--wait", "20s"); err != nil || !strings.Contains(out, "cluster resumed: done") {
		t.Fatalf("resume: %v\n%s", err, out)
	}
	if l := led(); len(l[1]) != 2 || len(l[2]) != 2 || len(l[3]) != 2 {
		t.Fatalf("after resume every broker should lead its 2 partitions again: %v", l)
	}
	paused.Paused = true
	if out, err := tiercel("cluster", "status", "-o", "json"); err != nil || json.Unmarshal([]byte(out), &paused) != nil || paused.Paused {
		t.Fatalf("status after resume: %v\n%s", err, out)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"cluster", "reassign", "c", "0", "9"}, "not live"},
		{[]string{"cluster", "reassign", "missing", "0", "1"}, "UNKNOWN_TOPIC_OR_PARTITION"},
		{[]string{"cluster", "reassign", "c", "x", "1"}, "are numbers"},
		{[]string{"cluster", "drain", "9"}, "not a live broker"},
	} {
		out, err := tiercel(c.args...)
		if err == nil || !strings.Contains(out, c.want) {
			t.Errorf("tiercel %v: %v, want an error saying %q\n%s", c.args, err, c.want, out)
		}
	}
}

// TestServeBadObjectStore: a broker pointed at a bucket that does not
// exist, or with credentials the store does not know, fails at start with
// a message that says which, and a non-zero exit; with MinIO too.
func TestServeBadObjectStore(t *testing.T) {
	bin := brokertest.Binary(t)
	for _, s := range []struct {
		name string
		srv  testservers.S3
	}{{"versitygw", testservers.StartVersityGW(t)}, {"minio", testservers.StartMinIO(t)}} {
		t.Run(s.name, func(t *testing.T) {
			for _, c := range []struct {
				bucket, key, want string
			}{
				{"no-such-bucket", s.srv.AccessKey, "the bucket does not exist"},
				{"no-such-bucket", "not-a-key", "wrong credentials"},
			} {
				cmd := exec.Command(bin, "serve", "--data-dir", t.TempDir(), "--kafka-addr", "127.0.0.1:0", "--http-addr", "",
					"--objstore", "s3://"+c.bucket+"?endpoint="+s.srv.Endpoint)
				cmd.Env = append(cmd.Environ(), "AWS_ACCESS_KEY_ID="+c.key, "AWS_SECRET_ACCESS_KEY="+s.srv.SecretKey, "AWS_REGION=us-east-1")
				done := make(chan struct{})
				var out []byte
				var err error
				go func() { out, err = cmd.CombinedOutput(); close(done) }()
				select {
				case <-done:
				case <-time.After(90 * time.Second):
					_ = cmd.Process.Kill()
					t.Fatalf("serve with %s did not give up within 90s", c.want)
				}
				if err == nil || !strings.Contains(string(out), c.want) {
					t.Errorf("serve on bucket %s with key %s: %v, want an error saying %q\n%s", c.bucket, c.key, err, c.want, out)
				}
			}
		})
	}
}

// TestClusterStatusReplication: `cluster status` shows replicated
// partitions that are under-replicated, at min.insync.replicas and under
// it, as brokers of a replication-factor-3 topic stop.
func TestClusterStatusReplication(t *testing.T) {
	brokers := memCluster(t, "cli-replication", "replica.lag.time.max.ms=1000", "tiercel.replica.isr.check.ms=100")
	bin := brokertest.Binary(t)
	status := func() (st struct {
		UnderReplicated []string `json:"under_replicated"`
		AtMinISR        []string `json:"at_min_isr"`
		UnderMinISR     []string `json:"under_min_isr"`
	}) {
		t.Helper()
		out, err := exec.Command(bin, "--bootstrap-server", brokers[0].Addr(), "cluster", "status", "-o", "json").CombinedOutput()
		if err != nil || json.Unmarshal(out, &st) != nil {
			t.Fatalf("cluster status: %v\n%s", err, out)
		}
		return st
	}
	_, cl := newAdmin(t, brokers[0].Addr())
	defer cl.Close()
	// Led by broker 1 (it stays up), followed by 2 and 3.
	if err := brokertest.CreateTopicWithReplicas(context.Background(), cl, "rc", [][]int32{{1, 2, 3}}, map[string]string{"min.insync.replicas": "2"}); err != nil {
		t.Fatal(err)
	}
	for _, b := range brokers {
		brokertest.WaitFor(t, "the topic in sync on three, on every broker", func() bool {
			ps := partitionsOf(t, b.Addr(), "rc")
			return len(ps) == 1 && len(ps[0].ISR) == 3
		})
	}
	// The replicas move with `cluster reassign` (here down to two and back
	// to three); `cluster drain` says why it cannot take a broker out of a
	// partition on every live broker; bad lists are refused.
	tiercel := func(args ...string) (string, error) {
		out, err := exec.Command(bin, append([]string{"--bootstrap-server", brokers[0].Addr()}, args...)...).CombinedOutput()
		return string(out), err
	}
	for _, to := range []string{"1,2", "1,2,3"} {
		out, err := tiercel("cluster", "reassign", "rc", "0", to, "--wait", "20s")
		if err != nil || !strings.Contains(out, "moving to brokers") || !strings.Contains(out, "done") {
			t.Fatalf("reassign rc-0 to %s: %v\n%s", to, err, out)
		}
		if ps := partitionsOf(t, brokers[2].Addr(), "rc"); len(ps) != 1 || fmt.Sprint(ps[0].Replicas) != "["+strings.ReplaceAll(to, ",", " ")+"]" {
			t.Fatalf("after reassigning rc-0 to %s: %+v", to, ps)
		}
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"cluster", "drain", "2"}, "has a replica on every other live broker"},
		{[]string{"cluster", "reassign", "rc", "0", "1,x"}, "comma-separated list"},
		{[]string{"cluster", "reassign", "rc", "0", "1,1"}, "twice"},
		{[]string{"cluster", "reassign", "rc", "0", "1,7"}, "broker 7 is not live"},
	} {
		out, err := tiercel(c.args...)
		if err == nil || !strings.Contains(out, c.want) {
			t.Errorf("tiercel %v: %v, want an error saying %q\n%s", c.args, err, c.want, out)
		}
	}
	brokertest.WaitFor(t, "rc-0 in sync on three again", func() bool {
		ps := partitionsOf(t, brokers[0].Addr(), "rc")
		return len(ps) == 1 && len(ps[0].ISR) == 3
	})
	if st := status(); len(st.UnderReplicated)+len(st.AtMinISR)+len(st.UnderMinISR) != 0 {
		t.Fatalf("all in sync, status says %+v", st)
	}
	brokers[2].Close()
	brokertest.WaitFor(t, "rc-0 at min ISR", func() bool {
		st := status()
		return fmt.Sprint(st.UnderReplicated, st.AtMinISR, st.UnderMinISR) == "[rc-0] [rc-0] []"
	})
	brokers[1].Close()
	brokertest.WaitFor(t, "rc-0 under min ISR", func() bool {
		st := status()
		return fmt.Sprint(st.UnderReplicated, st.AtMinISR, st.UnderMinISR) == "[rc-0] [] [rc-0]"
	})
	out, err := exec.Command(bin, "--bootstrap-server", brokers[0].Addr(), "cluster", "status").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "under min ISR: rc-0 (acks=all produces are refused)") {
		t.Fatalf("cluster status: %v\n%s", err, out)
	}
}

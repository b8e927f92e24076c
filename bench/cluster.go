package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	s3store "github.com/tiercel/tiercel/objstore/s3"
)

// ClusterReport holds the control-plane figures of issue 7: three broker
// processes on versitygw, default lease and gossip timings.
type ClusterReport struct {
	PropagationMedianMs float64 `json:"topic_propagation_median_ms"`
	PropagationMaxMs    float64 `json:"topic_propagation_max_ms"`
	HandoffMs           float64 `json:"sigterm_to_writes_elsewhere_ms"`
	UncleanMs           float64 `json:"sigkill_to_writes_elsewhere_ms"` // unclean election, RF 1
	LeaseTTLMs          int64   `json:"lease_ttl_ms"`
	IdleReqPerSec1      float64 `json:"idle_requests_per_s_per_broker_1_partition"`
	IdleReqPerSecMany   float64 `json:"idle_requests_per_s_per_broker_many"`
	IdlePartitions      int     `json:"idle_partitions"`
	PausePartitions     int     `json:"pause_partitions"`
	PauseMs             float64 `json:"pause_ms"`                  // tiercel cluster pause, every partition parked
	ResumeMs            float64 `json:"resume_on_empty_disks_ms"`  // brokers started on empty disks to every partition led
	ResumeFirstFetchMs  float64 `json:"resume_to_first_record_ms"` // ... to a record read from a parked partition
}

// Summary is the report as lines of text.
func (c ClusterReport) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "cluster control plane (3 broker processes, versitygw on this machine)\n")
	fmt.Fprintf(&b, "  topic creation visible on every broker: median %.0f ms, max %.0f ms (goal <= 500) %s\n", c.PropagationMedianMs, c.PropagationMaxMs, ok(c.PropagationMaxMs <= 500))
	fmt.Fprintf(&b, "  SIGTERM of a leader to writes accepted elsewhere: %.0f ms (goal <= 2000) %s\n", c.HandoffMs, ok(c.HandoffMs <= 2000))
	fmt.Fprintf(&b, "  SIGKILL of a leader to writes accepted elsewhere (unclean election, RF 1): %.0f ms (goal <= lease TTL %d ms + 2000) %s\n", c.UncleanMs, c.LeaseTTLMs, ok(c.UncleanMs <= float64(c.LeaseTTLMs+2000)))
	fmt.Fprintf(&b, "  idle object-store requests per second per broker: %.2f with 1 partition, %.2f with %d (goal <= 1, flat) %s\n", c.IdleReqPerSec1, c.IdleReqPerSecMany, c.IdlePartitions, ok(c.IdleReqPerSecMany <= 1 && c.IdleReqPerSec1 <= 1))
	fmt.Fprintf(&b, "  pause of %d partitions: %.0f ms; brokers started on empty disks to every partition led: %.0f ms, to the first record read: %.0f ms\n", c.PausePartitions, c.PauseMs, c.ResumeMs, c.ResumeFirstFetchMs)
	return b.String()
}

type clusterBroker struct {
	id                  int
	cmd                 *exec.Cmd
	kafka, http, gossip string
	data                string
	sets                []string
}

// start runs the broker process and waits until it answers.
func (br *clusterBroker) start(ctx context.Context, binary string) error {
	var err error
	br.cmd, err = startBroker(ctx, binary, br.data, br.kafka, br.http, br.sets...)
	return err
}

// newBenchCluster starts versitygw under dir with a bucket, and n broker
// processes of binary (ids 1..n, racks zone-0.., gossiping with each other,
// extra settings added) on data directories of their own. stop kills the
// brokers still running and versitygw; it is returned with a start error
// too, for the brokers that did start.
func newBenchCluster(ctx context.Context, binary, versitygw, dir, bucket string, n int, extra ...string) ([]*clusterBroker, func(), error) {
	endpoint, stopGW, err := startVersityGW(ctx, versitygw, dir)
	if err != nil {
		return nil, nil, err
	}
	b, err := s3store.New(ctx, s3store.Config{Bucket: bucket, Endpoint: endpoint, PathStyle: true})
	if err == nil {
		err = b.CreateBucket(ctx)
	}
	if err != nil {
		stopGW()
		return nil, nil, err
	}
	url := "s3://" + bucket + "?endpoint=" + endpoint + "&unsigned_payload=true"
	brokers := make([]*clusterBroker, n)
	for i := range brokers {
		data, err := os.MkdirTemp(dir, "tiercel-bench-"+bucket+"-")
		if err != nil {
			stopGW()
			return nil, nil, err
		}
		brokers[i] = &clusterBroker{id: i + 1, kafka: freeAddr(), http: freeAddr(), gossip: freeAddr(), data: data}
	}
	for i, br := range brokers {
		br.sets = append([]string{fmt.Sprintf("node.id=%d", br.id), "tiercel.objstore.url=" + url, "tiercel.gossip.listener=" + br.gossip,
			fmt.Sprintf("broker.rack=zone-%d", i)}, extra...)
		var seeds []string
		for _, o := range brokers {
			if o != br {
				seeds = append(seeds, o.gossip)
			}
		}
		br.sets = append(br.sets, "tiercel.gossip.seeds="+strings.Join(seeds, ","))
	}
	stop := func() {
		for _, br := range brokers {
			if br.cmd != nil && br.cmd.ProcessState == nil {
				_ = br.cmd.Process.Kill()
				_ = br.cmd.Wait()
			}
		}
		stopGW()
	}
	for _, br := range brokers {
		if err := br.start(ctx, binary); err != nil {
			return nil, stop, err
		}
	}
	return brokers, stop, nil
}

// RunCluster measures the control plane: metadata propagation, handoff on
// SIGTERM, takeover after SIGKILL with unclean election, and the requests
// idle brokers make with 1 and with idleParts partitions.
func RunCluster(ctx context.Context, binary, versitygw, dir string, idleParts int, logf func(string, ...any)) (ClusterReport, error) {
	const ttlMs = 12000 // the default tiercel.lease.ttl.ms
	rep := ClusterReport{LeaseTTLMs: ttlMs, IdlePartitions: idleParts}
	brokers, stop, err := newBenchCluster(ctx, binary, versitygw, dir, "cluster", 3, "unclean.leader.election.enable=true")
	if stop != nil {
		defer stop()
	}
	if err != nil {
		return rep, err
	}
	startOne := func(br *clusterBroker) error { return br.start(ctx, binary) }
	ask := func(br *clusterBroker, topic string) (*kmsg.MetadataResponse, error) {
		return askBroker(ctx, br, topic)
	}
	waitFor := waitUntil("cluster bench", 2*time.Millisecond)
	for _, br := range brokers {
		if err := waitFor("brokers to find each other", time.Minute, func() bool {
			md, err := ask(br, "")
			return err == nil && len(md.Brokers) == 3
		}); err != nil {
			return rep, err
		}
	}
	logf("cluster: 3 brokers up")

	// Metadata propagation: a topic created through broker 1, polled on
	// brokers 2 and 3 until their own answers hold it.
	adm1Cl, err := kgo.NewClient(kgo.SeedBrokers(brokers[0].kafka))
	if err != nil {
		return rep, err
	}
	defer adm1Cl.Close()
	adm := kadm.NewClient(adm1Cl)
	var props []float64
	for i := range 10 {
		name := fmt.Sprintf("prop-%d", i)
		began := time.Now()
		if _, err := adm.CreateTopic(ctx, 3, 1, nil, name); err != nil {
			return rep, err
		}
		for _, br := range brokers[1:] {
			if err := waitFor("topic propagation", 30*time.Second, func() bool {
				md, err := ask(br, name)
				return err == nil && len(md.Topics) == 1 && md.Topics[0].ErrorCode == 0 && len(md.Topics[0].Partitions) == 3
			}); err != nil {
				return rep, err
			}
		}
		props = append(props, float64(time.Since(began).Microseconds())/1000)
	}
	sort.Float64s(props)
	rep.PropagationMedianMs, rep.PropagationMaxMs = props[len(props)/2], props[len(props)-1]
	logf("cluster: propagation median %.0f ms", rep.PropagationMedianMs)

	// A group commit creates __consumer_offsets: its partitions move with
	// every handoff below, as in a cluster with consumers.
	commit := kadm.Offsets{}
	commit.Add(kadm.Offset{Topic: "prop-0", Partition: 0, At: 0, LeaderEpoch: -1})
	if r, err := adm.CommitOffsets(ctx, "bench", commit); err != nil || r.Error() != nil {
		return rep, fmt.Errorf("cluster bench: a group commit: %v %v", err, r.Error())
	}

	// Handoff and unclean takeover: one producer writing one record at a
	// time to a partition led by broker 3; the figure is from the signal
	// to the first acknowledgement by a broker that is not broker 3.
	moveTime := func(sig syscall.Signal, topic string) (float64, error) {
		if _, err := adm.CreateTopic(ctx, 3, 1, nil, topic); err != nil {
			return 0, err
		}
		var part int32 = -1
		if err := waitFor("the topic on broker 1", 30*time.Second, func() bool {
			md, err := ask(brokers[0], topic)
			if err != nil || len(md.Topics) != 1 {
				return false
			}
			for _, p := range md.Topics[0].Partitions {
				if p.Leader == 3 {
					part = p.Partition
				}
			}
			return part >= 0
		}); err != nil {
			return 0, fmt.Errorf("%w (broker 3 leads no partition of %s)", err, topic)
		}
		for _, br := range brokers {
			if err := waitFor("the topic on every broker", 30*time.Second, func() bool {
				md, err := ask(br, topic)
				return err == nil && len(md.Topics) == 1 && md.Topics[0].ErrorCode == 0
			}); err != nil {
				return 0, err
			}
		}
		cl, err := kgo.NewClient(kgo.SeedBrokers(brokers[0].kafka, brokers[1].kafka), kgo.DefaultProduceTopic(topic),
			kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.RetryBackoffFn(func(int) time.Duration { return 10 * time.Millisecond }),
			kgo.MetadataMinAge(10*time.Millisecond), kgo.RecordRetries(1<<30))
		if err != nil {
			return 0, err
		}
		defer cl.Close()
		var signalled atomic.Int64 // unix nanos of the signal
		var moved atomic.Int64     // unix nanos of the first ack after the move
		done := make(chan error, 1)
		go func() {
			for moved.Load() == 0 {
				if err := cl.ProduceSync(ctx, &kgo.Record{Partition: part, Value: []byte("x")}).FirstErr(); err != nil {
					done <- fmt.Errorf("cluster bench: producing to %s/%d around %v of broker 3 (signalled: %v): %w", topic, part, sig, signalled.Load() != 0, err)
					return
				}
				if s := signalled.Load(); s != 0 {
					md, err := ask(brokers[0], topic)
					if err == nil && md.Topics[0].Partitions[part].Leader != 3 && md.Topics[0].Partitions[part].Leader >= 0 {
						moved.Store(time.Now().UnixNano())
					}
				}
			}
			done <- nil
		}()
		time.Sleep(time.Second)
		signalled.Store(time.Now().UnixNano())
		_ = brokers[2].cmd.Process.Signal(sig)
		select {
		case err := <-done:
			if err != nil {
				return 0, err
			}
		case <-time.After(2 * time.Minute):
			return 0, fmt.Errorf("cluster bench: no write accepted elsewhere within 2 minutes of %v", sig)
		}
		_ = brokers[2].cmd.Wait()
		return float64(moved.Load()-signalled.Load()) / 1e6, nil
	}
	if rep.HandoffMs, err = moveTime(syscall.SIGTERM, "handoff"); err != nil {
		return rep, err
	}
	logf("cluster: SIGTERM to writes elsewhere %.0f ms", rep.HandoffMs)
	if err := startOne(brokers[2]); err != nil {
		return rep, err
	}
	if err := waitFor("broker 3 back", time.Minute, func() bool { md, err := ask(brokers[0], ""); return err == nil && len(md.Brokers) == 3 }); err != nil {
		return rep, err
	}
	if rep.UncleanMs, err = moveTime(syscall.SIGKILL, "unclean"); err != nil {
		return rep, err
	}
	logf("cluster: SIGKILL to writes elsewhere %.0f ms", rep.UncleanMs)
	if err := startOne(brokers[2]); err != nil {
		return rep, err
	}

	// Idle requests per broker: once with the topics so far (a few
	// partitions), once with idleParts more.
	idle := func() (float64, error) {
		time.Sleep(5 * time.Second) // settle: uploads of the topics just created
		var before, after float64
		for _, br := range brokers {
			n, err := metricSum(br.http, "tiercel_objstore_requests_total")
			if err != nil {
				return 0, err
			}
			before += n
		}
		const window = 30 * time.Second
		time.Sleep(window)
		for _, br := range brokers {
			n, err := metricSum(br.http, "tiercel_objstore_requests_total")
			if err != nil {
				return 0, err
			}
			after += n
		}
		return (after - before) / window.Seconds() / float64(len(brokers)), nil
	}
	if rep.IdleReqPerSec1, err = idle(); err != nil {
		return rep, err
	}
	if idleParts > 0 {
		for created := 0; created < idleParts; created += 1000 {
			if _, err := adm.CreateTopic(ctx, int32(min(1000, idleParts-created)), 1, nil, fmt.Sprintf("idle-%d", created)); err != nil {
				return rep, err
			}
		}
		if rep.IdleReqPerSecMany, err = idle(); err != nil {
			return rep, err
		}
	}
	logf("cluster: idle %.2f / %.2f requests/s per broker", rep.IdleReqPerSec1, rep.IdleReqPerSecMany)

	if err := measurePause(ctx, &rep, binary, dir, brokers, startOne, ask, waitFor); err != nil {
		return rep, err
	}
	logf("cluster: pause %.0f ms, resume on empty disks %.0f ms (first record %.0f ms)", rep.PauseMs, rep.ResumeMs, rep.ResumeFirstFetchMs)
	return rep, nil
}

// measurePause pauses the cluster with the CLI, stops every broker, starts
// them again on empty data directories, and times the pause, the adoption
// of every partition, and the first record read from a partition that was
// parked (prop-0, written to first).
func measurePause(ctx context.Context, rep *ClusterReport, binary, dir string, brokers []*clusterBroker, startOne func(*clusterBroker) error,
	ask func(*clusterBroker, string) (*kmsg.MetadataResponse, error), waitFor func(string, time.Duration, func() bool) error) error {
	p, err := kgo.NewClient(kgo.SeedBrokers(brokers[0].kafka), kgo.DefaultProduceTopic("prop-0"))
	if err != nil {
		return err
	}
	err = p.ProduceSync(ctx, &kgo.Record{Value: []byte("before the pause")}).FirstErr()
	p.Close()
	if err != nil {
		return err
	}
	began := time.Now()
	if out, err := exec.CommandContext(ctx, binary, "--bootstrap-server", brokers[0].kafka, "cluster", "pause", "--wait", "10m").CombinedOutput(); err != nil {
		return fmt.Errorf("cluster bench: pause: %v\n%s", err, out)
	}
	rep.PauseMs = float64(time.Since(began).Microseconds()) / 1000
	for _, br := range brokers {
		_ = br.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, br := range brokers {
		_ = br.cmd.Wait()
		if br.data, err = os.MkdirTemp(dir, "tiercel-bench-cluster-"); err != nil {
			return err
		}
	}
	began = time.Now()
	for _, br := range brokers {
		if err := startOne(br); err != nil {
			return err
		}
	}
	if err := waitFor("every partition adopted", 10*time.Minute, func() bool {
		md, err := ask(brokers[0], "")
		if err != nil || len(md.Brokers) != 3 {
			return false
		}
		n := 0
		for _, t := range md.Topics {
			for _, p := range t.Partitions {
				if p.Leader < 0 {
					return false
				}
				n++
			}
		}
		rep.PausePartitions = n
		return true
	}); err != nil {
		return err
	}
	rep.ResumeMs = float64(time.Since(began).Microseconds()) / 1000
	c, err := kgo.NewClient(kgo.SeedBrokers(brokers[1].kafka), kgo.ConsumeTopics("prop-0"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return err
	}
	defer c.Close()
	for {
		fs := c.PollFetches(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if fs.NumRecords() > 0 {
			rep.ResumeFirstFetchMs = float64(time.Since(began).Microseconds()) / 1000
			return nil
		}
	}
}

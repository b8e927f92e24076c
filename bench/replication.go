package bench

import (
	"context"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ReplicationReport holds the replication figures: three broker processes
// on this machine (they share its cores and disk), versitygw for the
// metadata, topics not tiered so that only replication is measured.
type ReplicationReport struct {
	RF1            Result  `json:"rf1_acks_all"`
	RF3            Result  `json:"rf3_acks_all"`
	Ratio          float64 `json:"rf3_over_rf1"`
	Fixed          Result  `json:"rf3_fixed_rate"`
	FixedPipelined Result  `json:"rf3_fixed_rate_5_in_flight"`
	FixedRateMBps  float64 `json:"fixed_rate_mb_per_s"`
	// The same two fixed-rate runs on a topic with Kafka's durability
	// rule (flush.policy=interval, flush.ms=1000): acknowledged once the
	// in-sync replicas hold the batch, fsynced once a second.
	FixedKafkaRule          Result  `json:"rf3_fixed_rate_kafka_rule"`
	FixedKafkaRulePipelined Result  `json:"rf3_fixed_rate_kafka_rule_5_in_flight"`
	FailoverMs              float64 `json:"sigkill_leader_to_writes_ms"`
	LeaseTTLMs              int64   `json:"lease_ttl_ms"`
	CatchUpMiB              float64 `json:"catch_up_mib"`
	CatchUpSeconds          float64 `json:"catch_up_seconds"`
	CatchUpMiBps            float64 `json:"catch_up_mib_per_s"`
	// The machine's limits, measured in the same run: one fdatasync'd
	// sequential writer, and first touches of fresh memory.
	DiskMiBps        float64 `json:"disk_append_1mib_mib_per_s"`
	FreshMemoryMiBps float64 `json:"fresh_memory_mib_per_s"`
}

// Summary is the report as lines of text.
func (r ReplicationReport) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "replication (3 broker processes on this machine, acks=all, 1 KB records, 6 partitions, topics not tiered)\n")
	fmt.Fprintf(&b, "  machine: fdatasync'd appends, 1 MiB %.0f MiB/s; first touch of fresh memory %.0f MiB/s\n", r.DiskMiBps, r.FreshMemoryMiBps)
	fmt.Fprintf(&b, "  RF 1: %s\n  RF 3: %s\n", r.RF1, r.RF3)
	if r.DiskMiBps > 0 {
		fmt.Fprintf(&b, "  disk bytes written per second ÷ the disk's fdatasync'd append rate: RF 1 %.2f, RF 3 %.2f (three copies)\n", r.RF1.MiBPerSec/r.DiskMiBps, 3*r.RF3.MiBPerSec/r.DiskMiBps)
	}
	fmt.Fprintf(&b, "  RF 3 / RF 1 throughput: %.2f (goal >= 0.6) %s\n", r.Ratio, ok(r.Ratio >= 0.6))
	fmt.Fprintf(&b, "  RF 3 at a fixed %.0f MB/s, idempotent (1 request in flight per broker): p99 %.2f ms (goal <= 10) %s; p50 %.2f ms, p99.9 %.2f ms\n", r.FixedRateMBps, r.Fixed.P99Ms, ok(r.Fixed.P99Ms > 0 && r.Fixed.P99Ms <= 10), r.Fixed.P50Ms, r.Fixed.P999Ms)
	fmt.Fprintf(&b, "  RF 3 at a fixed %.0f MB/s, 5 requests in flight per broker (the Java producer's default): p99 %.2f ms (goal <= 10) %s; p50 %.2f ms, p99.9 %.2f ms\n", r.FixedRateMBps, r.FixedPipelined.P99Ms, ok(r.FixedPipelined.P99Ms > 0 && r.FixedPipelined.P99Ms <= 10), r.FixedPipelined.P50Ms, r.FixedPipelined.P999Ms)
	fmt.Fprintf(&b, "  the same with Kafka's durability rule (flush.policy=interval, flush.ms=1000: acknowledged when the in-sync replicas hold the batch): p99 %.2f ms idempotent %s, %.2f ms 5 in flight %s; p50 %.2f / %.2f ms\n",
		r.FixedKafkaRule.P99Ms, ok(r.FixedKafkaRule.P99Ms > 0 && r.FixedKafkaRule.P99Ms <= 10), r.FixedKafkaRulePipelined.P99Ms, ok(r.FixedKafkaRulePipelined.P99Ms > 0 && r.FixedKafkaRulePipelined.P99Ms <= 10),
		r.FixedKafkaRule.P50Ms, r.FixedKafkaRulePipelined.P50Ms)
	fmt.Fprintf(&b, "  SIGKILL of a leader to writes accepted by an in-sync replica: %.0f ms (goal <= lease TTL %d ms + 2000) %s\n", r.FailoverMs, r.LeaseTTLMs, ok(r.FailoverMs <= float64(r.LeaseTTLMs+2000)))
	fmt.Fprintf(&b, "  follower on an empty disk back in the ISR: %.0f MiB in %.1f s = %.0f MiB/s\n", r.CatchUpMiB, r.CatchUpSeconds, r.CatchUpMiBps)
	return b.String()
}

// RunReplication measures replication: produce throughput with three
// replicas against one, the p99 latency at a fixed rate, the time from
// SIGKILL of a leader to writes accepted by another replica, and how fast
// a follower restarted on an empty disk copies the log and rejoins the ISR.
func RunReplication(ctx context.Context, binary, versitygw, dir string, d time.Duration, sets []string, logf func(string, ...any)) (ReplicationReport, error) {
	const ttlMs = 12000 // the default tiercel.lease.ttl.ms
	rep := ReplicationReport{LeaseTTLMs: ttlMs, FixedRateMBps: 20}
	var err error
	if rep.DiskMiBps, err = DiskAppend(dir, 1<<20, 4*time.Second); err != nil {
		return rep, err
	}
	if rep.FreshMemoryMiBps, err = FreshMemory(512); err != nil {
		return rep, err
	}
	brokers, stop, err := newBenchCluster(ctx, binary, versitygw, dir, "replication", 3, sets...)
	if stop != nil {
		defer stop()
	}
	if err != nil {
		return rep, err
	}
	seeds := []string{brokers[0].kafka, brokers[1].kafka}
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		return rep, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ask := func(topic string) []kmsg.MetadataResponseTopicPartition {
		md, err := askBroker(ctx, brokers[0], topic)
		if err != nil || len(md.Topics) != 1 {
			return nil
		}
		return md.Topics[0].Partitions
	}
	waitFor := waitUntil("replication bench", 5*time.Millisecond)
	inSync := func(topic string, n int) func() bool {
		return func() bool {
			ps := ask(topic)
			if len(ps) == 0 {
				return false
			}
			for _, p := range ps {
				if p.ErrorCode != 0 || len(p.ISR) != n {
					return false
				}
			}
			return true
		}
	}
	if err := waitFor("brokers to find each other", time.Minute, func() bool {
		md, err := adm.BrokerMetadata(ctx)
		return err == nil && len(md.Brokers) == 3
	}); err != nil {
		return rep, err
	}
	plain := map[string]*string{"remote.storage.enable": kadm.StringPtr("false"), "min.insync.replicas": kadm.StringPtr("2")}
	kafkaRule := map[string]*string{"flush.policy": kadm.StringPtr("interval"), "flush.ms": kadm.StringPtr("1000")}
	for k, v := range plain {
		kafkaRule[k] = v
	}
	for _, t := range []struct {
		name    string
		rf      int16
		configs map[string]*string
	}{{"rf1", 1, plain}, {"rf3", 3, plain}, {"rf3-kafka-rule", 3, kafkaRule}} {
		if r, err := adm.CreateTopic(ctx, 6, t.rf, t.configs, t.name); err != nil || r.Err != nil {
			return rep, fmt.Errorf("replication bench: create %s: %v %v", t.name, err, r.Err)
		}
		if err := waitFor(t.name+" in sync", time.Minute, inSync(t.name, int(t.rf))); err != nil {
			return rep, err
		}
	}
	// Each measurement starts on a quiet disk: the gigabytes the one before
	// wrote are written back first, or the kernel's writeback throttling
	// lands on whichever runs second.
	quiet := func() {
		syscall.Sync()
		time.Sleep(2 * time.Second)
	}
	w := Workload{Brokers: seeds, RecordSize: 1000, Duration: d, Acks: "all", Topic: "rf3", RateBytes: rep.FixedRateMBps * 1e6}
	quiet()
	if rep.Fixed, err = Produce(ctx, w); err != nil {
		return rep, err
	}
	logf("replication: RF 3 at %.0f MB/s p99 %.2f ms", rep.FixedRateMBps, rep.Fixed.P99Ms)
	w.InFlight = 5
	quiet()
	if rep.FixedPipelined, err = Produce(ctx, w); err != nil {
		return rep, err
	}
	logf("replication: RF 3 at %.0f MB/s, 5 in flight, p99 %.2f ms", rep.FixedRateMBps, rep.FixedPipelined.P99Ms)
	w.Topic, w.InFlight = "rf3-kafka-rule", 0
	quiet()
	if rep.FixedKafkaRule, err = Produce(ctx, w); err != nil {
		return rep, err
	}
	w.InFlight = 5
	quiet()
	if rep.FixedKafkaRulePipelined, err = Produce(ctx, w); err != nil {
		return rep, err
	}
	logf("replication: RF 3 at %.0f MB/s with Kafka's durability rule, p99 %.2f ms (5 in flight %.2f ms)", rep.FixedRateMBps, rep.FixedKafkaRule.P99Ms, rep.FixedKafkaRulePipelined.P99Ms)
	// Deleted so that the catch-up below copies the same data as before.
	if _, err := adm.DeleteTopics(ctx, "rf3-kafka-rule"); err != nil {
		return rep, err
	}
	w.Topic, w.InFlight = "rf3", 0
	w.RateBytes = 0
	quiet()
	if rep.RF3, err = Produce(ctx, w); err != nil {
		return rep, err
	}
	logf("replication: RF 3 %.1f MiB/s", rep.RF3.MiBPerSec)
	w.Topic = "rf1"
	quiet()
	if rep.RF1, err = Produce(ctx, w); err != nil {
		return rep, err
	}
	logf("replication: RF 1 %.1f MiB/s", rep.RF1.MiBPerSec)
	rep.Ratio = rep.RF3.MiBPerSec / rep.RF1.MiBPerSec

	// Failover: one partition led by broker 3, a producer writing one
	// record at a time; from SIGKILL to the first write acknowledged by
	// another leader.
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = "failover", -1, -1
	a := kmsg.NewCreateTopicsRequestTopicReplicaAssignment()
	a.Replicas = []int32{3, 1, 2}
	rt.ReplicaAssignment = append(rt.ReplicaAssignment, a)
	for k, v := range plain {
		c := kmsg.NewCreateTopicsRequestTopicConfig()
		c.Name, c.Value = k, v
		rt.Configs = append(rt.Configs, c)
	}
	req.Topics = append(req.Topics, rt)
	if resp, err := req.RequestWith(ctx, cl); err != nil || resp.Topics[0].ErrorCode != 0 {
		return rep, fmt.Errorf("replication bench: create failover: %v %+v", err, resp)
	}
	if err := waitFor("failover in sync", time.Minute, inSync("failover", 3)); err != nil {
		return rep, err
	}
	for _, br := range brokers {
		if err := waitFor("failover on every broker", time.Minute, func() bool {
			md, err := askBroker(ctx, br, "failover")
			return err == nil && len(md.Topics) == 1 && md.Topics[0].ErrorCode == 0
		}); err != nil {
			return rep, err
		}
	}
	pcl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic("failover"),
		kgo.RetryBackoffFn(func(int) time.Duration { return 10 * time.Millisecond }), kgo.MetadataMinAge(10*time.Millisecond), kgo.RecordRetries(1<<30))
	if err != nil {
		return rep, err
	}
	defer pcl.Close()
	for range 100 { // warm: connections and producer id
		if err := pcl.ProduceSync(ctx, &kgo.Record{Value: []byte("x")}).FirstErr(); err != nil {
			return rep, err
		}
	}
	killed := time.Now()
	_ = brokers[2].cmd.Process.Signal(syscall.SIGKILL)
	_ = brokers[2].cmd.Wait()
	for {
		if err := pcl.ProduceSync(ctx, &kgo.Record{Value: []byte("x")}).FirstErr(); err != nil {
			return rep, err
		}
		if ps := ask("failover"); len(ps) == 1 && ps[0].Leader != 3 && ps[0].Leader >= 0 {
			break
		}
		if time.Since(killed) > 2*time.Minute {
			return rep, fmt.Errorf("replication bench: no write accepted elsewhere within 2 minutes of SIGKILL")
		}
	}
	rep.FailoverMs = float64(time.Since(killed).Microseconds()) / 1000
	logf("replication: SIGKILL to writes by another replica %.0f ms", rep.FailoverMs)

	// Catch-up: broker 3 back on an empty disk copies the rf3 partitions.
	ends, err := adm.ListEndOffsets(ctx, "rf3")
	if err != nil {
		return rep, err
	}
	var records int64
	ends.Each(func(o kadm.ListedOffset) { records += o.Offset })
	if err := os.RemoveAll(brokers[2].data); err != nil {
		return rep, err
	}
	if err := os.MkdirAll(brokers[2].data, 0o755); err != nil {
		return rep, err
	}
	began := time.Now()
	if err := brokers[2].start(ctx, binary); err != nil {
		return rep, err
	}
	if err := waitFor("broker 3 back in the ISR of rf3", 10*time.Minute, inSync("rf3", 3)); err != nil {
		return rep, err
	}
	rep.CatchUpSeconds = time.Since(began).Seconds()
	rep.CatchUpMiB = float64(records*int64(w.RecordSize)) / (1 << 20)
	rep.CatchUpMiBps = rep.CatchUpMiB / rep.CatchUpSeconds
	logf("replication: catch-up %.0f MiB in %.1f s", rep.CatchUpMiB, rep.CatchUpSeconds)
	return rep, nil
}

// askBroker asks exactly broker br for topic's metadata (every topic's
// for "").
func askBroker(ctx context.Context, br *clusterBroker, topic string) (*kmsg.MetadataResponse, error) {
	c, err := kgo.NewClient(kgo.SeedBrokers(br.kafka))
	if err != nil {
		return nil, err
	}
	defer c.Close()
	req := kmsg.NewPtrMetadataRequest()
	if topic != "" {
		req.Topics = []kmsg.MetadataRequestTopic{{Topic: kmsg.StringPtr(topic)}}
	}
	resp, err := c.SeedBrokers()[0].Request(ctx, req)
	if err != nil {
		return nil, err
	}
	return resp.(*kmsg.MetadataResponse), nil
}

// waitUntil returns a function that polls cond every poll until it holds,
// or fails after limit naming what it waited for.
func waitUntil(bench string, poll time.Duration) func(what string, limit time.Duration, cond func() bool) error {
	return func(what string, limit time.Duration, cond func() bool) error {
		deadline := time.Now().Add(limit)
		for !cond() {
			if time.Now().After(deadline) {
				return fmt.Errorf("%s: %s: not within %v", bench, what, limit)
			}
			time.Sleep(poll)
		}
		return nil
	}
}

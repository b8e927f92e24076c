package bench

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tiercel/tiercel/objstore"
	s3store "github.com/tiercel/tiercel/objstore/s3"
)

// TieringReport holds the tiering figures of `make bench`, all against
// versitygw on this machine.
type TieringReport struct {
	ProduceOffMiBs   float64 `json:"produce_tiering_off_mib_s"`
	ProduceOnMiBs    float64 `json:"produce_tiering_on_mib_s"`
	ProduceRatio     float64 `json:"produce_on_over_off"`
	CPUPerGiBOff     float64 `json:"broker_cpu_s_per_gib_tiering_off"`
	CPUPerGiBOn      float64 `json:"broker_cpu_s_per_gib_tiering_on"` // uploads included
	SegmentBytes     int64   `json:"segment_bytes"`
	TieredGiB        float64 `json:"tiered_gib"`
	PutsPerGiB       float64 `json:"object_puts_per_gib_tiered"`
	RawGetMiBs       float64 `json:"raw_parallel_get_mib_s"`
	CatchUpMiBs      float64 `json:"catch_up_mib_s"` // record batch bytes served from the bucket per second
	CatchUpRatio     float64 `json:"catch_up_over_raw_get"`
	CatchUpGiB       float64 `json:"catch_up_gib"`
	CatchUpParts     int     `json:"catch_up_partitions"`
	IdlePartitions   int     `json:"idle_partitions"`
	IdleReqPerMinute float64 `json:"idle_requests_per_minute"`
}

// Summary is the report as lines of text.
func (t TieringReport) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "tiering (versitygw on this machine)\n")
	fmt.Fprintf(&b, "  produce, tiering on / off:   %7.1f / %7.1f MiB/s = %.2f (goal >= 0.90) %s\n", t.ProduceOnMiBs, t.ProduceOffMiBs, t.ProduceRatio, ok(t.ProduceRatio >= 0.9))
	fmt.Fprintf(&b, "  broker CPU per GiB produced, tiering on / off: %.2f / %.2f s (the rest of the gap is versitygw and the client on the same 2 cores and disk)\n", t.CPUPerGiBOn, t.CPUPerGiBOff)
	fmt.Fprintf(&b, "  object PUTs per GiB tiered:  %7.2f (%.2f GiB in segments of %d MiB; goal <= 8) %s\n", t.PutsPerGiB, t.TieredGiB, t.SegmentBytes>>20, ok(t.PutsPerGiB <= 8))
	fmt.Fprintf(&b, "  catch-up of %d partitions from the bucket: %7.1f MiB/s, raw parallel GET %7.1f MiB/s = %.2f (goal >= 0.70) %s\n", t.CatchUpParts, t.CatchUpMiBs, t.RawGetMiBs, t.CatchUpRatio, ok(t.CatchUpRatio >= 0.7))
	fmt.Fprintf(&b, "  idle broker with %d tiered partitions: %.1f object-store requests per minute (goal 0) %s\n", t.IdlePartitions, t.IdleReqPerMinute, ok(t.IdleReqPerMinute == 0))
	return b.String()
}

// startVersityGW runs versitygw's posix backend under dir, with the
// credentials the brokers and this process use set in the environment
// unless already there.
func startVersityGW(ctx context.Context, bin, dir string) (endpoint string, stop func(), err error) {
	for k, v := range map[string]string{"AWS_ACCESS_KEY_ID": "tiercel", "AWS_SECRET_ACCESS_KEY": "tiercel-secret", "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"} {
		if os.Getenv(k) == "" {
			os.Setenv(k, v)
		}
	}
	addr := freeAddr()
	root := filepath.Join(dir, "versitygw")
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", nil, err
	}
	cmd := exec.Command(bin, "--access", os.Getenv("AWS_ACCESS_KEY_ID"), "--secret", os.Getenv("AWS_SECRET_ACCESS_KEY"), "--port", addr, "posix", root)
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("versitygw (%s): %w; run scripts/install-test-tools.sh", bin, err)
	}
	stop = func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }
	endpoint = "http://" + addr
	deadline := time.Now().Add(20 * time.Second)
	for {
		if resp, err := http.Get(endpoint); err == nil {
			resp.Body.Close()
			return endpoint, stop, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			stop()
			return "", nil, fmt.Errorf("versitygw did not answer on %s", endpoint)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// metricSum adds up the samples of a Prometheus metric whose labels
// contain every filter ("op=\"put\"").
func metricSum(httpAddr, name string, filters ...string) (float64, error) {
	resp, err := http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		match := true
		for _, f := range filters {
			match = match && strings.Contains(line, f)
		}
		if !match {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err == nil {
			sum += v
		}
	}
	return sum, sc.Err()
}

// RunTiering measures tiering against versitygw: produce throughput with
// tiering on and off, object PUTs per GiB tiered, catch-up consumption of
// 16 partitions entirely from the bucket against the store's raw parallel
// GET throughput, and the requests an idle broker makes.
func RunTiering(ctx context.Context, binary, versitygw, dir string, logf func(string, ...any)) (TieringReport, error) {
	const (
		segmentBytes = 512 << 20
		producePart  = 4
		catchParts   = 16
		catchBytes   = 1536 << 20
		idleParts    = 1000
	)
	rep := TieringReport{SegmentBytes: segmentBytes, CatchUpParts: catchParts, IdlePartitions: idleParts}
	endpoint, stop, err := startVersityGW(ctx, versitygw, dir)
	if err != nil {
		return rep, err
	}
	defer stop()
	seq := 0
	newBucket := func() (string, objstore.Bucket, error) {
		seq++
		name := fmt.Sprintf("bench-%d", seq)
		b, err := s3store.New(ctx, s3store.Config{Bucket: name, Endpoint: endpoint, PathStyle: true})
		if err != nil {
			return "", nil, err
		}
		// Uploads as over HTTPS (no SHA-256 of the body), which is how
		// a deployment talks to its store; plain HTTP signs bodies.
		return "s3://" + name + "?endpoint=" + endpoint + "&unsigned_payload=true", b, b.CreateBucket(ctx)
	}
	type broker struct {
		cmd             *exec.Cmd
		kafka, http     string
		bucketURL, data string
	}
	start := func(tiered bool, sets ...string) (*broker, objstore.Bucket, error) {
		br := &broker{kafka: freeAddr(), http: freeAddr()}
		var err error
		if br.data, err = os.MkdirTemp(dir, "tiercel-bench-tiering-"); err != nil {
			return nil, nil, err
		}
		var b objstore.Bucket
		if tiered {
			if br.bucketURL, b, err = newBucket(); err != nil {
				return nil, nil, err
			}
			sets = append(sets, "tiercel.objstore.url="+br.bucketURL)
		} else {
			sets = append(sets, "remote.log.storage.system.enable=false")
		}
		br.cmd, err = startBroker(ctx, binary, br.data, br.kafka, br.http, sets...)
		return br, b, err
	}
	stopBroker := func(br *broker) {
		if br != nil && br.cmd != nil {
			_ = br.cmd.Process.Kill()
			_ = br.cmd.Wait()
			_ = os.RemoveAll(br.data)
		}
	}

	// Produce with tiering off and on, alternating, fresh brokers each
	// time; the figures are the means of the two runs of each.
	seg := fmt.Sprintf("log.segment.bytes=%d", segmentBytes)
	var offs, ons, cpuOff, cpuOn []float64
	var last *broker
	for i, tiered := range []bool{false, true, false, true} {
		br, _, err := start(tiered, seg, "remote.log.manager.task.interval.ms=1000")
		if err != nil {
			stopBroker(br)
			return rep, err
		}
		w := Workload{Brokers: []string{br.kafka}, Topic: "bench-tier", Partitions: producePart, RecordSize: 1024, Duration: 15 * time.Second, Acks: "all"}
		if err := EnsureTopic(ctx, w); err != nil {
			stopBroker(br)
			return rep, err
		}
		cpu0, _, _ := ProcStat(br.cmd.Process.Pid)
		r, err := Produce(ctx, w)
		if err != nil {
			stopBroker(br)
			return rep, err
		}
		if tiered {
			// The uploads of what was produced finish after the run: count them.
			time.Sleep(3 * time.Second)
		}
		cpu1, _, _ := ProcStat(br.cmd.Process.Pid)
		perGiB := (cpu1 - cpu0) / (float64(r.Bytes) / (1 << 30))
		logf("produce with tiering %v: %.1f MiB/s", map[bool]string{false: "off", true: "on"}[tiered], r.MiBPerSec)
		if tiered {
			ons, cpuOn = append(ons, r.MiBPerSec), append(cpuOn, perGiB)
		} else {
			offs, cpuOff = append(offs, r.MiBPerSec), append(cpuOff, perGiB)
		}
		if i == 3 {
			last = br
		} else {
			stopBroker(br)
		}
	}
	defer func() { stopBroker(last) }()
	rep.ProduceOffMiBs, rep.ProduceOnMiBs = mean(offs), mean(ons)
	rep.CPUPerGiBOff, rep.CPUPerGiBOn = mean(cpuOff), mean(cpuOn)
	rep.ProduceRatio = rep.ProduceOnMiBs / rep.ProduceOffMiBs

	// Requests per GiB: wait until every closed segment is tiered.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		lag, err := metricSum(last.http, "tiercel_tiering_lag_bytes")
		if err != nil {
			return rep, err
		}
		if lag == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	puts, err := metricSum(last.http, "tiercel_objstore_requests_total", `op="put"`)
	if err != nil {
		return rep, err
	}
	uploaded, err := metricSum(last.http, "tiercel_tiering_uploaded_bytes_total")
	if err != nil {
		return rep, err
	}
	rep.TieredGiB = uploaded / (1 << 30)
	if uploaded > 0 {
		rep.PutsPerGiB = puts / rep.TieredGiB
	}
	logf("%.0f object PUTs (catalog, segments, manifests) for %.2f GiB tiered", puts, rep.TieredGiB)
	stopBroker(last)
	last = nil

	// Catch-up: 16 partitions whose every closed segment is only in the bucket.
	br, bucket, err := start(true, "remote.log.manager.task.interval.ms=500", "log.retention.check.interval.ms=500", "log.segment.bytes=33554432", "log.local.retention.bytes=0")
	last = br
	if err != nil {
		return rep, err
	}
	w := Workload{Brokers: []string{br.kafka}, Topic: "bench-catchup", Partitions: catchParts, RecordSize: 1024, Records: catchBytes / 1024, Acks: "all"}
	if err := EnsureTopic(ctx, w); err != nil {
		return rep, err
	}
	logf("producing %d MiB over %d partitions to tier", catchBytes>>20, catchParts)
	if _, err := Produce(ctx, w); err != nil {
		return rep, err
	}
	// Roll the active segments too, so everything is read from the bucket.
	cl, err := kgo.NewClient(kgo.SeedBrokers(br.kafka))
	if err != nil {
		return rep, err
	}
	adm := kadm.NewClient(cl)
	defer cl.Close()
	if _, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "segment.ms", Value: kadm.StringPtr("1000")}}, "bench-catchup"); err != nil {
		return rep, err
	}
	ends, err := adm.ListEndOffsets(ctx, "bench-catchup")
	if err != nil {
		return rep, err
	}
	deadline = time.Now().Add(3 * time.Minute)
	for {
		local, err := adm.ListOffsetsAfterMilli(ctx, -4, "bench-catchup")
		if err != nil {
			return rep, err
		}
		done := true
		ends.Each(func(o kadm.ListedOffset) {
			if l, ok := local.Lookup("bench-catchup", o.Partition); !ok || l.Offset < o.Offset {
				done = false
			}
		})
		if done {
			break
		}
		if time.Now().After(deadline) {
			return rep, fmt.Errorf("catch-up topic not tiered within 3 minutes")
		}
		time.Sleep(500 * time.Millisecond)
	}
	md, err := adm.Metadata(ctx, "bench-catchup")
	if err != nil {
		return rep, err
	}
	id := md.Topics["bench-catchup"].ID
	idText := base64.RawURLEncoding.EncodeToString(id[:])
	var keys []string
	var total int64
	if err := bucket.List(ctx, "topics/", objstore.ListOptions{}, func(o objstore.ObjectInfo) error {
		if strings.Contains(o.Key, "/"+idText+"/") && strings.HasSuffix(o.Key, ".seg") {
			keys = append(keys, o.Key)
			total += o.Size
		}
		return nil
	}); err != nil {
		return rep, err
	}
	rep.CatchUpGiB = float64(total) / (1 << 30)
	var gets []float64
	for range 2 {
		took, err := parallel(keys, catchParts, func(k string) error {
			rc, _, err := bucket.Get(ctx, k, 0, -1)
			if err != nil {
				return err
			}
			defer rc.Close()
			_, err = io.Copy(io.Discard, rc)
			return err
		})
		if err != nil {
			return rep, err
		}
		gets = append(gets, mibPerSec(total, took))
	}
	rep.RawGetMiBs = max(gets[0], gets[1])
	logf("raw parallel GET of %d segment objects (%.2f GiB) with %d workers: %.1f MiB/s", len(keys), rep.CatchUpGiB, catchParts, rep.RawGetMiBs)
	before, err := metricSum(br.http, "tiercel_tiering_remote_fetch_bytes_total")
	if err != nil {
		return rep, err
	}
	began := time.Now()
	if _, err := Consume(ctx, w); err != nil {
		return rep, err
	}
	took := time.Since(began)
	after, err := metricSum(br.http, "tiercel_tiering_remote_fetch_bytes_total")
	if err != nil {
		return rep, err
	}
	rep.CatchUpMiBs = mibPerSec(int64(after-before), took)
	rep.CatchUpRatio = rep.CatchUpMiBs / rep.RawGetMiBs
	logf("catch-up from offset 0: %.0f MiB of batches from the bucket in %.1f s = %.1f MiB/s", (after-before)/(1<<20), took.Seconds(), rep.CatchUpMiBs)
	stopBroker(br)
	last = nil

	// An idle broker with many tiered partitions.
	br, _, err = start(true)
	last = br
	if err != nil {
		return rep, err
	}
	if err := EnsureTopic(ctx, Workload{Brokers: []string{br.kafka}, Topic: "bench-idle", Partitions: idleParts}); err != nil {
		return rep, err
	}
	time.Sleep(5 * time.Second)
	r0, err := metricSum(br.http, "tiercel_objstore_requests_total")
	if err != nil {
		return rep, err
	}
	const idleFor = 40 * time.Second // longer than remote.log.manager.task.interval.ms
	time.Sleep(idleFor)
	r1, err := metricSum(br.http, "tiercel_objstore_requests_total")
	if err != nil {
		return rep, err
	}
	rep.IdleReqPerMinute = (r1 - r0) / idleFor.Minutes()
	logf("idle broker with %d partitions: %.0f object-store requests in %v", idleParts, r1-r0, idleFor)
	return rep, nil
}

func mean(xs []float64) float64 {
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

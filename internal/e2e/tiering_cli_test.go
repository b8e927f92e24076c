package e2e

import (
	"context"
	"encoding/json"
	"math/rand"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tiercel/tiercel/broker"
	"github.com/tiercel/tiercel/internal/brokertest"
	"github.com/tiercel/tiercel/objstore"
	"github.com/tiercel/tiercel/objstore/fs"
	"github.com/tiercel/tiercel/tiering"
)

// TestTieringCLIAndMetrics runs `tiercel serve` tiering to a file:// store
// and checks what an operator sees: `tiercel tiering status`, the tiering
// and object-store metrics, `tiercel log dump --objstore` of a segment
// object, and `tiercel tiering gc` removing planted orphans (dry run
// first) while every named segment stays readable.
func TestTieringCLIAndMetrics(t *testing.T) {
	bin := brokertest.Binary(t)
	storeDir := t.TempDir()
	url := "file://" + storeDir
	kafkaAddr, httpAddr := freePort(t), freePort(t)
	args := []string{"--data-dir", t.TempDir(), "--kafka-addr", kafkaAddr, "--http-addr", httpAddr, "--objstore", url,
		"--set", "log.segment.bytes=8192", "--set", "log.roll.ms=300", "--set", "log.local.retention.bytes=16384"}
	for _, s := range fastTiering {
		args = append(args, "--set", s)
	}
	cmd, done := startServe(t, bin, args...)
	waitHTTP(t, "http://"+httpAddr+"/readyz", 200)

	adm, cl := newAdmin(t, kafkaAddr)
	defer cl.Close()
	if _, err := adm.CreateTopic(context.Background(), 2, 1, nil, "ops"); err != nil {
		t.Fatal(err)
	}
	model := sent{}
	produceInto(t, kafkaAddr, "ops", 600, rand.New(rand.NewSource(1)), model)
	waitTiered(t, adm, "ops", model)
	checkAll(t, kafkaAddr, "ops", model)

	tiercel := func(args ...string) (string, error) {
		out, err := exec.Command(bin, args...).CombinedOutput()
		return string(out), err
	}
	out, err := tiercel("tiering", "status", "--http-addr", httpAddr, "-o", "json")
	if err != nil {
		t.Fatalf("tiering status: %v\n%s", err, out)
	}
	var status []broker.TieringPartition
	if err := json.Unmarshal([]byte(out), &status); err != nil {
		t.Fatalf("tiering status -o json: %v\n%s", err, out)
	}
	if len(status) != 2 {
		t.Fatalf("tiering status lists %d partitions, want 2:\n%s", len(status), out)
	}
	for _, p := range status {
		if p.Topic != "ops" || p.RemoteEnd < int64(len(model[p.Partition])) || p.RemoteSegments == 0 || p.LocalStart == 0 || p.LastUpload.IsZero() {
			t.Errorf("tiering status of partition %d: %+v", p.Partition, p)
		}
	}
	if out, err := tiercel("tiering", "status", "--http-addr", httpAddr); err != nil || !strings.Contains(out, "PENDING-BYTES") || !strings.Contains(out, "ops") {
		t.Errorf("tiering status table: %v\n%s", err, out)
	}
	if out, err := tiercel("tiering", "status", "--http-addr", freePort(t)); err == nil || !strings.Contains(out, "is the broker running") {
		t.Errorf("tiering status against nothing: %v\n%s", err, out)
	}

	metrics := get(t, "http://"+httpAddr+"/metrics", 200)
	for _, want := range []string{"tiercel_tiering_uploaded_bytes_total", "tiercel_tiering_uploaded_segments_total", "tiercel_tiering_remote_fetch_bytes_total",
		"tiercel_tiering_cache_misses_total", "tiercel_tiering_lag_bytes", "tiercel_tiering_remote_read_duration_seconds_bucket",
		`tiercel_objstore_requests_total{`, `op="put"`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s:\n%s", want, grepLines(metrics, "tiercel_tiering"))
		}
	}

	// A segment object dumped from the bucket.
	inner, err := fs.New(storeDir)
	if err != nil {
		t.Fatal(err)
	}
	segs, _ := bucketKeys(t, inner)
	out, err = tiercel("log", "dump", "--objstore", url, "--print-data-log", segs[0])
	if err != nil || !strings.Contains(out, "part: log") || !strings.Contains(out, "part: index") || !strings.Contains(out, "| offset:") || !strings.Contains(out, "isvalid: true") {
		t.Fatalf("log dump --objstore: %v\n%s", err, out)
	}
	if out, err := tiercel("log", "dump", "--objstore", url, "topics/none.seg"); err == nil || !strings.Contains(out, "not found") {
		t.Errorf("log dump of a missing object: %v\n%s", err, out)
	}

	// Orphans: an upload whose manifest update never landed, and a topic
	// the catalog does not know. Both were "uploaded" two hours ago.
	ctx := context.Background()
	old := time.Now().Add(-2 * time.Hour).UnixMilli()
	id := topicID(t, adm, "ops")
	planted := []string{
		tiering.SegmentKey(id, 0, 999999, 0, old),
		tiering.SegmentKey("AAAAAAAAAAAAAAAAAAAAAA", 0, 0, 0, old),
		tiering.ManifestKey("AAAAAAAAAAAAAAAAAAAAAA", 0),
	}
	for _, k := range planted {
		if _, err := inner.Put(ctx, k, strings.NewReader("x"), objstore.PutOptions{Size: 1}); err != nil {
			t.Fatal(err)
		}
	}
	out, err = tiercel("tiering", "gc", url, "--dry-run")
	if err != nil || strings.Count(out, "would delete topics/") != 3 {
		t.Fatalf("tiering gc --dry-run: %v\n%s", err, out)
	}
	for _, k := range planted {
		if _, err := inner.Head(ctx, k); err != nil {
			t.Fatalf("the dry run deleted %s", k)
		}
	}
	out, err = tiercel("tiering", "gc", url, "--grace", "1m")
	if err != nil || !strings.Contains(out, "3 orphaned objects deleted") {
		t.Fatalf("tiering gc: %v\n%s", err, out)
	}
	for _, k := range planted {
		if _, err := inner.Head(ctx, k); err == nil {
			t.Errorf("gc left %s", k)
		}
	}
	if n := collectAndCheck(t, inner); n != 0 {
		t.Errorf("%d orphans were left after tiering gc", n)
	}
	checkAll(t, kafkaAddr, "ops", model)
	if out, err := tiercel("tiering", "gc", "file://"+t.TempDir()); err == nil || !strings.Contains(out, "no Tiercel metadata log") {
		t.Errorf("tiering gc of an empty store: %v\n%s", err, out)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve exited with %v after SIGTERM", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop")
	}
}

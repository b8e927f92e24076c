package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tiercel/tiercel/internal/brokertest"
)

// run executes the tiercel command line against addr with stdin, and
// returns stdout and the error.
func run(t *testing.T, addr, stdin string, args ...string) (string, error) {
	t.Helper()
	root := NewRoot()
	var out bytes.Buffer
	root.SetArgs(append([]string{"--bootstrap-server", addr}, args...))
	root.SetIn(strings.NewReader(stdin))
	root.SetOut(&out)
	root.SetErr(&out)
	err := root.Execute()
	return out.String(), err
}

func mustRun(t *testing.T, addr, stdin string, args ...string) string {
	t.Helper()
	out, err := run(t, addr, stdin, args...)
	if err != nil {
		t.Fatalf("tiercel %v: %v\n%s", args, err, out)
	}
	return out
}

func TestTopicCommands(t *testing.T) {
	b := brokertest.Start(t)
	a := b.Addr()
	if out := mustRun(t, a, "", "topic", "create", "orders", "--partitions", "3", "--config", "retention.ms=60000"); !strings.Contains(out, "Created topic orders") {
		t.Fatalf("create: %q", out)
	}
	mustRun(t, a, "", "topic", "create", "--topic", "orders", "--if-not-exists")
	_, err := run(t, a, "", "topic", "create", "orders")
	if err == nil || !strings.Contains(err.Error(), "TOPIC_ALREADY_EXISTS") {
		t.Fatalf("duplicate create: %v", err)
	}
	mustRun(t, a, "", "topic", "create", "audit")
	if out := mustRun(t, a, "", "topic", "list"); out != "audit\norders\n" {
		t.Fatalf("list: %q", out)
	}
	out := mustRun(t, a, "", "topic", "describe", "orders")
	if !strings.Contains(out, "PartitionCount: 3") || !strings.Contains(out, "retention.ms=60000") || strings.Count(out, "Leader: 1") != 3 {
		t.Fatalf("describe: %q", out)
	}
	mustRun(t, a, "", "topic", "alter", "orders", "--partitions", "4", "--config", "max.message.bytes=4096", "--delete-config", "retention.ms")
	var views []topicView
	if err := json.Unmarshal([]byte(mustRun(t, a, "", "-o", "json", "topic", "describe", "orders")), &views); err != nil {
		t.Fatal(err)
	}
	if len(views) != 1 || len(views[0].Partitions) != 4 || views[0].Configs["max.message.bytes"] != "4096" || views[0].Configs["retention.ms"] != "" {
		t.Fatalf("after alter: %+v", views)
	}
	_, err = run(t, a, "", "topic", "alter", "orders", "--config", "cleanup.policy=shred")
	if err == nil || !strings.Contains(err.Error(), "INVALID_CONFIG") {
		t.Fatalf("invalid config: %v", err)
	}
	mustRun(t, a, "", "topic", "delete", "audit")
	mustRun(t, a, "", "topic", "delete", "audit", "--if-exists")
	_, err = run(t, a, "", "topic", "delete", "audit")
	if err == nil || !strings.Contains(err.Error(), "UNKNOWN_TOPIC_OR_PARTITION") {
		t.Fatalf("deleting a missing topic: %v", err)
	}
	_, err = run(t, a, "", "topic", "create", "bad name")
	if err == nil || !strings.Contains(err.Error(), "INVALID_TOPIC_EXCEPTION") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("invalid name: %v", err)
	}
}

func TestProduceConsumeOffsets(t *testing.T) {
	b := brokertest.Start(t)
	a := b.Addr()
	mustRun(t, a, "", "topic", "create", "events", "--partitions", "1")
	before := time.Now().UnixMilli()
	mustRun(t, a, "h1:x,h2:y\tk1:hello\nh1:z\tk2:world\n", "produce", "--topic", "events",
		"--property", "parse.key=true", "--property", "key.separator=:", "--property", "parse.headers=true", "--compression-type", "zstd")
	mustRun(t, a, "plain\n", "produce", "--topic", "events", "--header", "src=cli", "--acks", "1", "--sync")

	out := mustRun(t, a, "", "consume", "--topic", "events", "--from-beginning", "--max-messages", "3",
		"--property", "print.key=true", "--property", "print.offset=true", "--property", "print.headers=true", "--property", "key.separator=|")
	want := "Offset:0|h1:x,h2:y|k1|hello\nOffset:1|h1:z|k2|world\nOffset:2|src:cli|null|plain\n"
	if out != want {
		t.Fatalf("consume:\n%q\nwant\n%q", out, want)
	}
	out = mustRun(t, a, "", "-o", "json", "consume", "--topic", "events", "--partition", "0", "--offset", "1", "--max-messages", "1")
	var rec map[string]any
	if err := json.Unmarshal([]byte(out), &rec); err != nil {
		t.Fatalf("json consume %q: %v", out, err)
	}
	if rec["offset"] != float64(1) || rec["key"] != "k2" || rec["value"] != "world" || rec["headers"].(map[string]any)["h1"] != "z" {
		t.Fatalf("json record %v", rec)
	}
	if out := mustRun(t, a, "", "consume", "--topic", "events", "--from-beginning", "--timeout-ms", "1000"); strings.Count(out, "\n") != 3 {
		t.Fatalf("consume until idle: %q", out)
	}
	if out := mustRun(t, a, "", "offsets", "--topic", "events"); out != "events:0:3\n" {
		t.Fatalf("offsets latest: %q", out)
	}
	if out := mustRun(t, a, "", "offsets", "--topic", "events", "--time", "earliest"); out != "events:0:0\n" {
		t.Fatalf("offsets earliest: %q", out)
	}
	if out := mustRun(t, a, "", "offsets", "--topic", "events", "--time", "9999999999999"); out != "events:0:3\n" {
		t.Fatalf("offsets after every timestamp: %q", out)
	}
	if out := mustRun(t, a, "", "offsets", "--topic", "events", "--time", itoa(before-60000)); out != "events:0:0\n" {
		t.Fatalf("offsets by time: %q", out)
	}
	_, err := run(t, a, "x:y\n", "produce", "--topic", "events", "--property", "parse.key=true")
	if err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("a line without the key separator: %v", err)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestClientErrors(t *testing.T) {
	b := brokertest.Start(t, "auto.create.topics.enable=false")
	_, err := run(t, b.Addr(), "x\n", "produce", "--topic", "missing")
	if err == nil || !strings.Contains(err.Error(), "UNKNOWN_TOPIC_OR_PARTITION") {
		t.Fatalf("produce to a missing topic: %v", err)
	}
	_, err = run(t, b.Addr(), "", "offsets", "--topic", "missing")
	if err == nil || !strings.Contains(err.Error(), "UNKNOWN_TOPIC_OR_PARTITION") {
		t.Fatalf("offsets of a missing topic: %v", err)
	}
	_, err = run(t, b.Addr(), "", "topic", "create", "zero", "--partitions", "0")
	if err == nil || !strings.Contains(err.Error(), "INVALID_PARTITIONS") {
		t.Fatalf("zero partitions: %v", err)
	}
	for _, args := range [][]string{{"consume", "--topic", "x", "--group", "g"}, {"consume", "--topic", "x"}} {
		_, err = run(t, b.Addr(), "", args...)
		if err == nil || !strings.Contains(err.Error(), `topic "x": UNKNOWN_TOPIC_OR_PARTITION`) {
			t.Fatalf("%v on a missing topic: %v", args, err)
		}
	}
	start := time.Now()
	_, err = run(t, "127.0.0.1:1", "", "topic", "list")
	if err == nil || !strings.Contains(err.Error(), "cannot reach a broker at 127.0.0.1:1") {
		t.Fatalf("unreachable broker: %v", err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("took %v to report an unreachable broker", d)
	}
}

func TestLogDump(t *testing.T) {
	b := brokertest.Start(t)
	a := b.Addr()
	mustRun(t, a, "", "topic", "create", "dump", "--partitions", "1")
	mustRun(t, a, "k:v1\nk:v2\n", "produce", "--topic", "dump", "--property", "parse.key=true", "--property", "key.separator=:", "--sync")
	seg := filepath.Join(b.DataDir(), "dump-0", "00000000000000000000.log")
	out := mustRun(t, a, "", "log", "dump", seg, "--print-data-log")
	if !strings.Contains(out, "baseOffset: 0") || !strings.Contains(out, "isvalid: true") || !strings.Contains(out, "payload: v2") {
		t.Fatalf("dump: %s", out)
	}
	var bv batchView
	line := strings.SplitN(mustRun(t, a, "", "-o", "json", "log", "dump", seg), "\n", 3)[1]
	if err := json.Unmarshal([]byte(line), &bv); err != nil || !bv.CRCValid || bv.Compression != "none" {
		t.Fatalf("json dump %q: %v", line, err)
	}
	data, _ := os.ReadFile(seg)
	bad := filepath.Join(t.TempDir(), "00000000000000000000.log")
	corrupt := append([]byte(nil), data...)
	corrupt[len(corrupt)-1] ^= 0xff
	os.WriteFile(bad, append(corrupt, 1, 2, 3), 0o644)
	out, err := run(t, a, "", "log", "dump", bad)
	if err == nil || !strings.Contains(err.Error(), "position") || !strings.Contains(out, "isvalid: false") {
		t.Fatalf("corrupt segment: %v\n%s", err, out)
	}
}

func TestObjstoreCommands(t *testing.T) {
	// The AWS credential chain must never look beyond this machine.
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	u := "file://" + t.TempDir()
	if out := mustRun(t, "x", "hello", "objstore", "put", u, "a/b.txt"); !strings.Contains(out, "stored a/b.txt (5 bytes") {
		t.Fatalf("put: %q", out)
	}
	if _, err := run(t, "x", "again", "objstore", "put", "--if-not-exists", u, "a/b.txt"); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("create-only over an existing key: %v", err)
	}
	if out := mustRun(t, "x", "", "objstore", "cat", u, "a/b.txt"); out != "hello" {
		t.Fatalf("cat: %q", out)
	}
	if out := mustRun(t, "x", "", "objstore", "ls", u, "a/"); !strings.Contains(out, "5     a/b.txt") {
		t.Fatalf("ls: %q", out)
	}
	mustRun(t, "x", "", "objstore", "rm", u, "a/b.txt")
	if _, err := run(t, "x", "", "objstore", "cat", u, "a/b.txt"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("cat after rm: %v", err)
	}
	if _, err := run(t, "x", "", "objstore", "ls", "ftp://nowhere/x"); err == nil || !strings.Contains(err.Error(), "unsupported URL scheme") {
		t.Fatalf("bad scheme: %v", err)
	}
	if _, err := run(t, "x", "", "objstore", "ls", "s3://bucket/p?endpoint=http://127.0.0.1:1&region=us-east-1"); err == nil || !strings.Contains(err.Error(), "did not answer") {
		t.Fatalf("unreachable S3 endpoint: %v", err)
	}
}

func TestObjstoreBenchSmoke(t *testing.T) {
	u := "file://" + t.TempDir()
	out := mustRun(t, "x", "", "objstore", "bench", u, "--sizes-mib", "1", "--concurrency", "1,2", "--per-worker", "1", "--ranges", "5", "--raw-dir", t.TempDir())
	for _, want := range []string{"tiercel   ", "raw-disk", "put", "get", "range-get", "x2"} {
		if !strings.Contains(out, want) {
			t.Fatalf("bench output lacks %q:\n%s", want, out)
		}
	}
}

func TestGroupCommands(t *testing.T) {
	b := brokertest.Start(t, "group.initial.rebalance.delay.ms=0")
	a := b.Addr()
	mustRun(t, a, "", "topic", "create", "lag", "--partitions", "2")
	cl, err := kgo.NewClient(kgo.SeedBrokers(a), kgo.DefaultProduceTopic("lag"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	produce := func(p int32, n int) {
		for range n {
			if err := cl.ProduceSync(context.Background(), &kgo.Record{Partition: p, Value: []byte("v")}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	produce(0, 10)
	produce(1, 5)
	if out := mustRun(t, a, "", "consume", "--topic", "lag", "--group", "cg", "--from-beginning", "--max-messages", "15"); strings.Count(out, "\n") != 15 {
		t.Fatalf("group consume: %q", out)
	}
	produce(0, 5)

	var views []groupView
	if err := json.Unmarshal([]byte(mustRun(t, a, "", "-o", "json", "group", "describe", "cg")), &views); err != nil {
		t.Fatal(err)
	}
	if len(views) != 1 || views[0].State != "Empty" || len(views[0].Offsets) != 2 {
		t.Fatalf("describe: %+v", views)
	}
	for _, r := range views[0].Offsets {
		want := map[int32][3]int64{0: {10, 15, 5}, 1: {5, 5, 0}}[r.Partition]
		if r.Current == nil || r.Lag == nil || *r.Current != want[0] || r.LogEnd != want[1] || *r.Lag != want[2] {
			t.Fatalf("partition %d: current %v end %d lag %v, want %v", r.Partition, r.Current, r.LogEnd, r.Lag, want)
		}
	}
	out := mustRun(t, a, "", "group", "describe", "cg")
	if !strings.Contains(out, "has no active members") || !strings.Contains(out, "LOG-END-OFFSET") {
		t.Fatalf("describe table: %q", out)
	}
	if out := mustRun(t, a, "", "group", "list"); out != "cg\n" {
		t.Fatalf("list: %q", out)
	}
	if out := mustRun(t, a, "", "group", "list", "--state", "Stable"); strings.Contains(out, "cg") {
		t.Fatalf("list --state Stable: %q", out)
	}

	committed := func() string {
		var vs []groupView
		if err := json.Unmarshal([]byte(mustRun(t, a, "", "-o", "json", "group", "describe", "cg")), &vs); err != nil {
			t.Fatal(err)
		}
		var parts []string
		for _, r := range vs[0].Offsets {
			parts = append(parts, fmt.Sprintf("%d=%d", r.Partition, *r.Current))
		}
		return strings.Join(parts, " ")
	}
	out = mustRun(t, a, "", "group", "reset-offsets", "--group", "cg", "--topic", "lag", "--to-earliest")
	if !strings.Contains(out, "Dry run") || committed() != "0=10 1=5" {
		t.Fatalf("a dry run changed something: %q / %s", out, committed())
	}
	steps := []struct {
		args []string
		want string
	}{
		{[]string{"--to-earliest"}, "0=0 1=0"},
		{[]string{"--shift-by", "3"}, "0=3 1=3"},
		{[]string{"--shift-by", "-10"}, "0=0 1=0"},
		{[]string{"--to-offset", "100"}, "0=15 1=5"},
		{[]string{"--to-datetime", "0"}, "0=0 1=0"},
		{[]string{"--to-latest"}, "0=15 1=5"},
	}
	for _, s := range steps {
		mustRun(t, a, "", append([]string{"group", "reset-offsets", "--group", "cg", "--topic", "lag", "--execute"}, s.args...)...)
		if got := committed(); got != s.want {
			t.Fatalf("reset %v: %s, want %s", s.args, got, s.want)
		}
	}
	mustRun(t, a, "", "group", "reset-offsets", "--group", "cg", "--topic", "lag:1", "--to-offset", "2", "--execute")
	if got := committed(); got != "0=15 1=2" {
		t.Fatalf("reset of one partition: %s", got)
	}

	// A group with an active member refuses resets and deletion.
	member, err := kgo.NewClient(kgo.SeedBrokers(a), kgo.ConsumerGroup("cg"), kgo.ConsumeTopics("lag"))
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; {
		member.PollRecords(context.Background(), 1)
		if out := mustRun(t, a, "", "group", "list", "--state", "Stable"); strings.Contains(out, "cg") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the member never made the group stable")
		}
	}
	_, err = run(t, a, "", "group", "reset-offsets", "--group", "cg", "--all-topics", "--to-earliest", "--execute")
	if err == nil || !strings.Contains(err.Error(), "inactive") {
		t.Fatalf("reset of an active group: %v", err)
	}
	if out := mustRun(t, a, "", "group", "describe", "cg", "--members"); !strings.Contains(out, "lag:0,1") {
		t.Fatalf("members: %q", out)
	}
	_, err = run(t, a, "", "group", "delete", "cg")
	if err == nil || !strings.Contains(err.Error(), "NON_EMPTY_GROUP") {
		t.Fatalf("delete of an active group: %v", err)
	}
	member.Close()
	if out := mustRun(t, a, "", "group", "delete", "cg"); out != "Deleted group cg\n" {
		t.Fatalf("delete: %q", out)
	}
	if out := mustRun(t, a, "", "group", "describe", "cg"); !strings.Contains(out, "does not exist") {
		t.Fatalf("describe after delete: %q", out)
	}
	_, err = run(t, a, "", "group", "reset-offsets", "--group", "cg", "--topic", "lag")
	if err == nil || !strings.Contains(err.Error(), "exactly one") {
		t.Fatalf("reset without a target: %v", err)
	}
}

// TestGroupCommandsKIP848: describe and reset-offsets know consumer groups
// (group.protocol=consumer), which DescribeGroups does not show.
func TestGroupCommandsKIP848(t *testing.T) {
	b := brokertest.Start(t, "group.consumer.heartbeat.interval.ms=200")
	a := b.Addr()
	mustRun(t, a, "", "topic", "create", "n", "--partitions", "3")
	member, err := kgo.NewClient(kgo.SeedBrokers(a), kgo.ConsumerGroup("ng"), kgo.ConsumeTopics("n"),
		kgo.Balancers(kgo.CooperativeStickyBalancer()), kgo.ServerSideBalancer())
	if err != nil {
		t.Fatal(err)
	}
	defer member.Close()
	var views []groupView
	for deadline := time.Now().Add(20 * time.Second); ; {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		member.PollRecords(ctx, 1)
		cancel()
		views = nil
		if err := json.Unmarshal([]byte(mustRun(t, a, "", "-o", "json", "group", "describe", "ng")), &views); err != nil {
			t.Fatal(err)
		}
		if len(views) == 1 && views[0].State == "Stable" && len(views[0].Members) == 1 && len(views[0].Offsets) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never stable: %+v", views)
		}
	}
	if views[0].Protocol != "uniform" || len(views[0].Members[0].Assignment["n"]) != 3 {
		t.Fatalf("describe: %+v", views[0])
	}
	if out := mustRun(t, a, "", "group", "list", "--type", "consumer"); !strings.Contains(out, "ng") || !strings.Contains(out, "Stable") {
		t.Fatalf("list --type consumer: %q", out)
	}
	_, err = run(t, a, "", "group", "reset-offsets", "--group", "ng", "--all-topics", "--to-earliest", "--execute")
	if err == nil || !strings.Contains(err.Error(), "inactive") {
		t.Fatalf("reset of an active consumer group: %v", err)
	}
}

// TestBenchProduceIsNotPaced: `bench produce` without --rate-mb runs as
// fast as it can (the suite's own --rate-mb default once leaked into it
// through a shared variable and paced it at 20 MB/s).
func TestBenchProduceIsNotPaced(t *testing.T) {
	root := NewRoot()
	for _, name := range []string{"produce", "consume", "e2e"} {
		cmd, _, err := root.Find([]string{"bench", name})
		if err != nil {
			t.Fatal(err)
		}
		if v := cmd.Flags().Lookup("rate-mb").Value.String(); v != "0" {
			t.Errorf("bench %s --rate-mb defaults to %s, want 0", name, v)
		}
	}
	suite, _, _ := root.Find([]string{"bench", "suite"})
	if v := suite.Flags().Lookup("rate-mb").Value.String(); v != "20" {
		t.Errorf("bench suite --rate-mb defaults to %s, want 20", v)
	}
}

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tiercel/tiercel/internal/brokertest"
)

// TestKcat runs kcat as a user would (the README's example): metadata as
// JSON, keyed produce with an idempotent producer and compression, a
// consume to the end with a format string, and a consumer group that
// commits on exit.
func TestKcat(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Fatalf("kcat is not installed: run scripts/install-test-tools.sh (make test does): %v", err)
	}
	b := brokertest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	run := func(stdin string, args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, kcat, append([]string{"-b", b.Addr()}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("kcat %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
		}
		return string(out)
	}

	const topic, group, n = "kcat", "kcat-group", 120
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(ctx, 3, 1, nil, topic); err != nil {
		t.Fatal(err)
	}

	var md struct {
		Brokers []struct {
			ID   int32  `json:"id"`
			Name string `json:"name"`
		} `json:"brokers"`
		Topics []struct {
			Topic      string            `json:"topic"`
			Partitions []json.RawMessage `json:"partitions"`
		} `json:"topics"`
	}
	if err := json.Unmarshal([]byte(run("", "-L", "-J", "-t", topic)), &md); err != nil {
		t.Fatal(err)
	}
	if len(md.Brokers) != 1 || len(md.Topics) != 1 || md.Topics[0].Topic != topic || len(md.Topics[0].Partitions) != 3 {
		t.Fatalf("kcat -L: %+v", md)
	}

	var in strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&in, "k%d:v%d\n", i%7, i)
	}
	run(in.String(), "-P", "-t", topic, "-K", ":", "-z", "snappy", "-X", "enable.idempotence=true", "-X", "acks=all")

	// Every record once, offsets increasing per partition, each key's
	// values in the order they were produced.
	out := run("", "-C", "-t", topic, "-o", "beginning", "-e", "-q", "-f", "%p %o %k %s\n")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != n {
		t.Fatalf("kcat -C read %d records, want %d:\n%s", len(lines), n, out)
	}
	lastOffset := map[string]int64{}
	lastValue := map[string]int{}
	seen := map[int]bool{}
	for _, l := range lines {
		var p, k, s string
		var off int64
		if _, err := fmt.Sscanf(l, "%s %d %s %s", &p, &off, &k, &s); err != nil {
			t.Fatalf("kcat -C line %q: %v", l, err)
		}
		v, _ := strconv.Atoi(strings.TrimPrefix(s, "v"))
		if seen[v] || k != fmt.Sprintf("k%d", v%7) {
			t.Errorf("kcat -C: %q (seen before: %v)", l, seen[v])
		}
		seen[v] = true
		if last, ok := lastOffset[p]; ok && off <= last {
			t.Errorf("partition %s: offset %d after %d", p, off, last)
		}
		lastOffset[p] = off
		if last, ok := lastValue[k]; ok && v <= last {
			t.Errorf("key %s: v%d after v%d", k, v, last)
		}
		lastValue[k] = v
	}

	// A balanced consumer group (-G) reads to the end (-e) and commits on exit.
	out = run("", "-G", group, "-o", "beginning", "-e", "-q", "-f", "%s\n", topic)
	if got := len(strings.Fields(out)); got != n {
		t.Fatalf("kcat -G read %d records, want %d", got, n)
	}
	checkCommittedAtEnd(ctx, t, adm, group, topic)
}

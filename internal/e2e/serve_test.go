package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tiercel/tiercel/internal/brokertest"
)

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestServeHTTPAndDrain runs `tiercel serve` as a user would, checks the
// health, readiness and metrics endpoints, and that SIGTERM drains and
// exits 0 with acknowledged data on disk.
func TestServeHTTPAndDrain(t *testing.T) {
	bin := brokertest.Binary(t)
	dir := t.TempDir()
	kafkaAddr, httpAddr := freePort(t), freePort(t)
	cmd, done := startServe(t, bin, "--data-dir", dir, "--kafka-addr", kafkaAddr, "--http-addr", httpAddr,
		"--log-format", "json", "--set", "num.partitions=2")

	base := "http://" + httpAddr
	waitHTTP(t, base+"/readyz", 200)
	if body := get(t, base+"/healthz", 200); !strings.Contains(body, "ok") {
		t.Fatalf("/healthz body %q", body)
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(kafkaAddr), kgo.DefaultProduceTopic("served"), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := 0; i < 10; i++ {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(fmt.Sprint(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	cl.Close()
	adm, acl := newAdmin(t, kafkaAddr)
	offs := kadm.Offsets{}
	offs.Add(kadm.Offset{Topic: "served", Partition: 0, At: 3, LeaderEpoch: -1})
	if err := adm.CommitAllOffsets(ctx, "served-group", offs); err != nil {
		t.Fatal(err)
	}
	acl.Close()

	metrics := get(t, base+"/metrics", 200)
	for _, want := range []string{"tiercel_kafka_requests", `api="Produce"`, "tiercel_kafka_connections", "tiercel_log_end_offset", `topic="served"`,
		"tiercel_groups{", "tiercel_offset_commits_total"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// Each acks=all produce above waited for an fsync (log.flush.policy=fsync).
	if flushes := metricValue(t, base+"/metrics", "tiercel_log_flush_duration_seconds_count"); flushes < 10 {
		t.Errorf("/metrics counts %v log flushes after 10 acknowledged produces; want at least 10:\n%s", flushes, grepLines(metrics, "tiercel_log_flush"))
	}

	groupLine := false
	for _, line := range strings.Split(metrics, "\n") {
		if strings.HasPrefix(line, "tiercel_groups{") && strings.Contains(line, `state="Empty"`) && strings.Contains(line, `type="classic"`) && strings.HasSuffix(line, " 1") {
			groupLine = true
		}
	}
	if !groupLine {
		t.Errorf("/metrics does not count the empty classic group:\n%s", grepLines(metrics, "tiercel_groups"))
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve exited with %v after SIGTERM; want 0", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not exit within 30s of SIGTERM")
	}
	if _, err := os.Stat(filepath.Join(dir, "served-0")); err != nil {
		t.Errorf("partition directory missing after drain: %v", err)
	}
}

// startServe runs `tiercel serve args...`; done receives its exit. It is
// killed at the end of the test, and its stderr shown if the test failed.
func startServe(t *testing.T, bin string, args ...string) (*exec.Cmd, chan error) {
	t.Helper()
	var stderr bytes.Buffer
	cmd := exec.Command(bin, append([]string{"serve"}, args...)...)
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		if t.Failed() {
			t.Logf("broker stderr:\n%s", stderr.String())
		}
	})
	return cmd, done
}

// TestServeConfigErrors checks that bad configuration fails at start with
// one readable line naming the key, and a non-zero exit.
func TestServeConfigErrors(t *testing.T) {
	bin := brokertest.Binary(t)
	yaml := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(yaml, []byte("log.retention.ms: soon\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{"unknown set", []string{"--set", "no.such.config=1"}, nil, "no.such.config"},
		{"bad set value", []string{"--set", "num.partitions=many"}, nil, "num.partitions"},
		{"bad file value", []string{"--config", yaml}, nil, "log.retention.ms"},
		{"bad env value", nil, []string{"TIERCEL_NUM_PARTITIONS=-3"}, "num.partitions"},
		{"missing file", []string{"--config", "/nonexistent/tiercel.yaml"}, nil, "/nonexistent/tiercel.yaml"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"serve", "--data-dir", t.TempDir(), "--kafka-addr", freePort(t), "--http-addr", ""}, tc.args...)
			cmd := exec.Command(bin, args...)
			cmd.Env = append(os.Environ(), tc.env...)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			timer := time.AfterFunc(20*time.Second, func() { _ = cmd.Process.Kill() })
			err := cmd.Run()
			timer.Stop()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() == 0 {
				t.Fatalf("want a non-zero exit, got %v; output:\n%s", err, out.String())
			}
			text := strings.TrimSpace(out.String())
			if strings.Count(text, "\n") != 0 || !strings.Contains(text, tc.want) || !strings.HasPrefix(text, "tiercel:") {
				t.Fatalf("want one line starting with tiercel: and naming %q, got:\n%s", tc.want, text)
			}
		})
	}
}

func waitHTTP(t *testing.T, url string, code int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == code {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s did not answer %d within 30s", url, code)
}

func get(t *testing.T, url string, code int) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != code {
		t.Fatalf("%s: status %d, want %d: %s", url, resp.StatusCode, code, body)
	}
	return string(body)
}

func grepLines(s, substr string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if strings.Contains(line, substr) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

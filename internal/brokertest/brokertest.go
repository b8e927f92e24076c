// Package brokertest starts Tiercel brokers for tests: in-process, or as a
// subprocess of the built binary that a test can kill -9 and restart. Every
// broker listens on a free loopback port and is stopped by t.Cleanup.
package brokertest

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tiercel/tiercel/broker"
	"github.com/tiercel/tiercel/internal/config"
	"github.com/tiercel/tiercel/objstore"
)

// Broker is an in-process broker.
type Broker struct {
	t       testing.TB
	dir     string
	addr    string
	sets    []string
	bucket  objstore.Bucket
	knobs   *broker.Knobs
	b       *broker.Broker
	stopped bool
}

// Start runs an in-process broker on 127.0.0.1:0 with a fresh data
// directory; sets are broker configs such as "num.partitions=3".
func Start(t testing.TB, sets ...string) *Broker { return StartIn(t, t.TempDir(), sets...) }

// StartIn runs an in-process broker on an existing data directory.
func StartIn(t testing.TB, dataDir string, sets ...string) *Broker {
	t.Helper()
	return StartWithBucket(t, dataDir, nil, sets...)
}

// StartWithBucket runs an in-process broker on dataDir whose object store
// is bucket (nil: the configured or embedded one).
func StartWithBucket(t testing.TB, dataDir string, bucket objstore.Bucket, sets ...string) *Broker {
	t.Helper()
	return StartWithKnobs(t, dataDir, bucket, nil, sets...)
}

// StartWithKnobs is StartWithBucket with test hooks in the broker (kept
// across restarts).
func StartWithKnobs(t testing.TB, dataDir string, bucket objstore.Bucket, knobs *broker.Knobs, sets ...string) *Broker {
	t.Helper()
	h := &Broker{t: t, dir: dataDir, addr: "127.0.0.1:0", sets: sets, bucket: bucket, knobs: knobs}
	h.start()
	t.Cleanup(h.Close)
	return h
}

func (h *Broker) start() {
	h.t.Helper()
	cfg, err := config.Load(config.LoadOptions{Sets: h.sets, Flags: map[string]string{"log.dirs": h.dir, "listeners": h.addr}})
	if err != nil {
		h.t.Fatalf("brokertest: config: %v", err)
	}
	var logger *slog.Logger
	if os.Getenv("TIERCEL_TEST_LOG") != "" {
		// Debugging a test: the brokers' logs on stderr.
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	b, err := broker.New(broker.Options{Config: cfg, Bucket: h.bucket, Logger: logger, Knobs: h.knobs})
	if err != nil {
		h.t.Fatalf("brokertest: %v", err)
	}
	if err := b.Start(); err != nil {
		h.t.Fatalf("brokertest: %v", err)
	}
	h.b, h.addr, h.stopped = b, b.Addr(), false
}

// Addr is the Kafka address for clients (seed broker).
func (h *Broker) Addr() string { return h.addr }

// GossipAddr is the broker's gossip address, the seed for others.
func (h *Broker) GossipAddr() string { return h.b.GossipAddr() }

// TieringStatus is the broker's view of the partitions it tiers.
func (h *Broker) TieringStatus() []broker.TieringPartition { return h.b.TieringStatus() }

// DataDir is the broker's data directory.
func (h *Broker) DataDir() string { return h.dir }

// Restart shuts the broker down cleanly and starts it again on the same
// data directory and port.
func (h *Broker) Restart() {
	h.t.Helper()
	h.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		cfgAddr := h.addr
		ln, err := net.Listen("tcp", cfgAddr)
		if err == nil {
			ln.Close()
			break
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("brokertest: port %s still taken: %v", cfgAddr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	h.start()
}

// Close shuts the broker down (idempotent).
func (h *Broker) Close() {
	if h.stopped || h.b == nil {
		return
	}
	h.stopped = true
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.b.Shutdown(ctx); err != nil {
		h.t.Errorf("brokertest: shutdown: %v", err)
	}
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Main runs a package's tests and then removes the binary Binary built, so
// test runs do not leave an 80 MB file each in the temporary directory. A
// package that starts broker processes calls it from its TestMain.
func Main(m *testing.M) int {
	code := m.Run()
	if binPath != "" {
		_ = os.RemoveAll(filepath.Dir(binPath))
	}
	return code
}

// Binary builds ./cmd/tiercel once per test process and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		out, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil {
			buildErr = err
			return
		}
		root := filepath.Dir(strings.TrimSpace(string(out)))
		dir, err := os.MkdirTemp("", "tiercel-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "tiercel")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/tiercel")
		cmd.Dir = root
		if b, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, b)
		}
	})
	if buildErr != nil {
		t.Fatalf("brokertest: %v", buildErr)
	}
	return binPath
}

// Process is a broker running as a subprocess of the tiercel binary.
type Process struct {
	t      testing.TB
	bin    string
	wrap   []string // a command the binary runs under (ip netns exec NS), or nil
	dir    string
	addr   string
	sets   []string
	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan error
	output *bytes.Buffer
}

// StartProcess starts `tiercel serve` on a free port over dataDir and waits
// until it answers Kafka requests.
func StartProcess(t testing.TB, dataDir string, sets ...string) *Process {
	t.Helper()
	return StartProcessUnder(t, nil, freeAddr(t), dataDir, sets...)
}

// StartProcessUnder is StartProcess with the broker on Kafka address addr,
// run under the command wrap (such as ip netns exec NS), if not nil.
func StartProcessUnder(t testing.TB, wrap []string, addr, dataDir string, sets ...string) *Process {
	t.Helper()
	p := &Process{t: t, bin: Binary(t), wrap: wrap, dir: dataDir, addr: addr, sets: sets, output: &bytes.Buffer{}}
	p.start()
	t.Cleanup(func() {
		p.mu.Lock()
		cmd := p.cmd
		p.mu.Unlock()
		if cmd != nil && cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("broker output:\n%s", tail(p.output.String(), 8000))
		}
	})
	return p
}

func (p *Process) start() {
	p.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for attempt := 0; ; attempt++ {
		// No HTTP listener unless a setting asks for one (the flag would
		// otherwise override it).
		httpAddr := ""
		for _, s := range p.sets {
			if v, ok := strings.CutPrefix(s, "tiercel.http.addr="); ok {
				httpAddr = v
			}
		}
		level := "warn"
		if os.Getenv("TIERCEL_TEST_LOG") != "" {
			level = "info" // shown with the output of a failed test
		}
		args := []string{"serve", "--data-dir", p.dir, "--kafka-addr", p.addr, "--http-addr", httpAddr, "--log-level", level}
		for _, s := range p.sets {
			args = append(args, "--set", s)
		}
		cmd := exec.Command(p.bin, args...)
		if len(p.wrap) > 0 {
			cmd = exec.Command(p.wrap[0], append(append(p.wrap[1:len(p.wrap):len(p.wrap)], p.bin), args...)...)
		}
		cmd.Stdout, cmd.Stderr = p.output, p.output
		if err := cmd.Start(); err != nil {
			p.t.Fatalf("brokertest: start: %v", err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		p.mu.Lock()
		p.cmd, p.exited = cmd, exited
		p.mu.Unlock()
		if err := waitKafka(p.addr, exited, deadline); err == nil {
			return
		} else if time.Now().After(deadline) || !strings.Contains(err.Error(), "exited") {
			p.t.Fatalf("brokertest: broker did not come up: %v\n%s", err, tail(p.output.String(), 4000))
		}
		// Most likely the port was still held by the previous process; retry.
		time.Sleep(100 * time.Millisecond)
	}
}

// waitKafka polls until an ApiVersions round trip succeeds.
func waitKafka(addr string, exited chan error, deadline time.Time) error {
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			exited <- err
			return fmt.Errorf("broker exited: %v", err)
		default:
		}
		cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RequestRetries(0))
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_, err = kmsg.NewPtrApiVersionsRequest().RequestWith(ctx, cl)
			cancel()
			cl.Close()
			if err == nil {
				return nil
			}
		}
		time.Sleep(30 * time.Millisecond)
	}
	return fmt.Errorf("no answer on %s", addr)
}

// Addr is the subprocess's Kafka address.
func (p *Process) Addr() string { return p.addr }

// Kill sends SIGKILL and waits for exit.
func (p *Process) Kill() {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-exited
}

// Stop sends SIGTERM and waits for a clean exit (failing the test otherwise).
func (p *Process) Stop() {
	p.t.Helper()
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			p.t.Fatalf("brokertest: broker exited with %v after SIGTERM", err)
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		p.t.Fatal("brokertest: broker did not stop within 30s of SIGTERM")
	}
}

// Signal sends sig (SIGSTOP, SIGCONT, ...) to the process.
func (p *Process) Signal(sig syscall.Signal) {
	p.mu.Lock()
	cmd := p.cmd
	p.mu.Unlock()
	_ = cmd.Process.Signal(sig)
}

// WaitExit waits up to timeout for the process to exit on its own and
// returns its exit error; ok is false if it is still running.
func (p *Process) WaitExit(timeout time.Duration) (err error, ok bool) {
	p.mu.Lock()
	exited := p.exited
	p.mu.Unlock()
	select {
	case err := <-exited:
		exited <- err
		return err, true
	case <-time.After(timeout):
		return nil, false
	}
}

// Output is what the process wrote; read it only after it exited.
func (p *Process) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.output.String()
}

// Restart starts the process again on the same data directory and port.
func (p *Process) Restart() { p.t.Helper(); p.start() }

// DataDir is the data directory the process runs (or next runs) on.
func (p *Process) DataDir() string { return p.dir }

// MoveTo makes the next Restart use another data directory (a broker
// replaced by one with an empty disk, on the same address).
func (p *Process) MoveTo(dataDir string) { p.dir = dataDir }

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// WaitFor polls cond every 50 ms and fails the test if it is not true
// within 30 s; what names the condition in the failure.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 30s: %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

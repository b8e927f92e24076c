// Package testservers starts the real servers the object-store tests run
// against (versitygw and MinIO for S3, later fake-gcs-server and Azurite),
// from the binaries scripts/install-test-tools.sh installs, each on a free
// loopback port with a temporary data directory, stopped by t.Cleanup. A
// missing binary fails the test with what to run; skipping needs the
// explicit TIERCEL_SKIP_SERVERS=name,... (which CI does not set).
package testservers

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Tool returns the path of an installed test server binary.
func Tool(t testing.TB, name string) string {
	t.Helper()
	for _, s := range strings.Split(os.Getenv("TIERCEL_SKIP_SERVERS"), ",") {
		if strings.TrimSpace(s) == name {
			t.Skipf("%s skipped by TIERCEL_SKIP_SERVERS", name)
		}
	}
	dir := os.Getenv("TIERCEL_TOOLS")
	if dir == "" {
		home, _ := os.UserHomeDir()
		dir = filepath.Join(home, ".cache", "tiercel-tools")
	}
	p := filepath.Join(dir, "bin", name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s is not installed at %s: run scripts/install-test-tools.sh (make test does)", name, p)
	}
	return p
}

func freePort(t testing.TB) string { return freePortOn(t, "127.0.0.1") }

func freePortOn(t testing.TB, host string) string {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// start runs a server in its own process group and kills the group at cleanup.
func start(t testing.TB, name string, cmd *exec.Cmd) *bytes.Buffer {
	t.Helper()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, out.String())
		}
	})
	return &out
}

// waitHTTP polls url until it answers (with status 200 when want200).
func waitHTTP(t testing.TB, name, url string, out *bytes.Buffer, want200 bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if !want200 || resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s did not answer at %s within 60s:\n%s", name, url, out.String())
}

// S3 is a running S3-compatible server.
type S3 struct {
	Endpoint  string
	AccessKey string
	SecretKey string
	Root      string // versitygw: the directory holding buckets and objects as files
}

// StartVersityGW runs versitygw's posix backend; buckets are directories.
func StartVersityGW(t testing.TB) S3 { return StartVersityGWOn(t, "127.0.0.1") }

// StartVersityGWOn is StartVersityGW listening on host (an address other
// machines, or network namespaces, reach it at).
func StartVersityGWOn(t testing.TB, host string) S3 {
	bin := Tool(t, "versitygw")
	addr := freePortOn(t, host)
	root := t.TempDir()
	s := S3{Endpoint: "http://" + addr, AccessKey: "tiercel", SecretKey: "tiercel-secret", Root: root}
	cmd := exec.Command(bin, "--access", s.AccessKey, "--secret", s.SecretKey, "--port", addr, "posix", root)
	out := start(t, "versitygw", cmd)
	waitHTTP(t, "versitygw", s.Endpoint, out, false)
	return s
}

// StartMinIO runs a single-node MinIO server.
func StartMinIO(t testing.TB) S3 {
	bin := Tool(t, "minio")
	addr, console := freePort(t), freePort(t)
	s := S3{Endpoint: "http://" + addr, AccessKey: "tiercel", SecretKey: "tiercel-secret"}
	cmd := exec.Command(bin, "server", "--quiet", "--address", addr, "--console-address", console, t.TempDir())
	cmd.Env = append(os.Environ(), "MINIO_ROOT_USER="+s.AccessKey, "MINIO_ROOT_PASSWORD="+s.SecretKey, "MINIO_BROWSER=off")
	out := start(t, "minio", cmd)
	// Liveness answers before MinIO can serve; readiness does not, and
	// even after readiness the S3 API can answer 503 "server not
	// initialized" for a moment: wait until an (anonymous) S3 request gets
	// a real answer.
	waitHTTP(t, "minio", s.Endpoint+"/minio/health/ready", out, true)
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(s.Endpoint + "/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusServiceUnavailable {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("minio's S3 API did not come up within 60s:\n%s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// String names the server for logs.
func (s S3) String() string { return fmt.Sprintf("S3 at %s", s.Endpoint) }

// StartFakeGCS runs fake-gcs-server and returns the host:port to put in
// STORAGE_EMULATOR_HOST.
func StartFakeGCS(t testing.TB) string {
	bin := Tool(t, "fake-gcs-server")
	addr := freePort(t)
	host, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(bin, "-scheme", "http", "-host", host, "-port", port, "-backend", "filesystem",
		"-filesystem-root", t.TempDir(), "-public-host", addr, "-log-level", "error")
	out := start(t, "fake-gcs-server", cmd)
	waitHTTP(t, "fake-gcs-server", "http://"+addr+"/storage/v1/b", out, true)
	return addr
}

// AzuriteAccountKey is the well-known key of Azurite's development account
// (public in Azurite's documentation; it protects nothing).
const AzuriteAccountKey = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

// StartAzurite runs Azurite's blob service and returns a connection string.
func StartAzurite(t testing.TB) string {
	bin := Tool(t, "azurite-blob")
	addr := freePort(t)
	host, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(bin, "--blobHost", host, "--blobPort", port, "--location", t.TempDir(), "--skipApiVersionCheck", "--silent", "--loose")
	out := start(t, "azurite", cmd)
	endpoint := "http://" + addr + "/devstoreaccount1"
	waitHTTP(t, "azurite", endpoint+"?comp=list", out, false)
	return fmt.Sprintf("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=%s;BlobEndpoint=%s;", AzuriteAccountKey, endpoint)
}

// Package brokertest starts Tiercel brokers for tests: in-process, or as a
// subprocess of the built binary that a test can kill -9 and restart. Every
// broker listens on a free loopback port and is stopped by t.Cleanup.
package brokertest

import "testing"

// Broker is an in-process broker.
type Broker struct{}

// Start runs an in-process broker on 127.0.0.1:0 with a fresh data
// directory; sets are broker configs such as "num.partitions=3".
func Start(t testing.TB, sets ...string) *Broker { panic("brokertest.Start: not implemented") }

// StartIn runs an in-process broker on an existing data directory.
func StartIn(t testing.TB, dataDir string, sets ...string) *Broker { panic("not implemented") }

// Addr is the Kafka address for clients (seed broker).
func (b *Broker) Addr() string { panic("not implemented") }

// DataDir is the broker's data directory.
func (b *Broker) DataDir() string { panic("not implemented") }

// Restart shuts the broker down cleanly and starts it again on the same
// data directory and port.
func (b *Broker) Restart() { panic("not implemented") }

// Close shuts the broker down (idempotent).
func (b *Broker) Close() { panic("not implemented") }

// Binary builds ./cmd/tiercel once per test process and returns its path.
func Binary(t testing.TB) string { panic("not implemented") }

// Process is a broker running as a subprocess of the tiercel binary.
type Process struct{}

// StartProcess starts `tiercel serve` on a free port over dataDir and waits
// until it answers Kafka requests.
func StartProcess(t testing.TB, dataDir string, sets ...string) *Process {
	panic("not implemented")
}

// Addr is the subprocess's Kafka address.
func (p *Process) Addr() string { panic("not implemented") }

// Kill sends SIGKILL and waits for exit.
func (p *Process) Kill() { panic("not implemented") }

// Stop sends SIGTERM and waits for a clean exit (failing the test otherwise).
func (p *Process) Stop() { panic("not implemented") }

// Restart starts the process again on the same data directory and port.
func (p *Process) Restart() { panic("not implemented") }

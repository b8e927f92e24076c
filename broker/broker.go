// Package broker is the Kafka listener: connections, request framing and
// dispatch, one file per Kafka API, and the partitions with their logs.
package broker

import (
	"context"
	"log/slog"

	"github.com/tiercel/tiercel/internal/config"
	"github.com/tiercel/tiercel/internal/telemetry"
	"github.com/tiercel/tiercel/internal/vfs"
)

// Options wire a broker.
type Options struct {
	Config  *config.Broker // listeners, log.dirs, node.id, every broker config
	FS      vfs.FS         // nil = the OS filesystem
	Logger  *slog.Logger   // nil = discard
	Metrics *telemetry.BrokerMetrics
}

// Broker is one running Kafka-compatible broker.
type Broker struct{}

// New opens (and recovers) the data directory; it does not listen yet.
func New(opts Options) (*Broker, error) { panic("broker.New: not implemented") }

// Start begins listening and serving.
func (b *Broker) Start() error { panic("not implemented") }

// Addr is the bound Kafka listen address (host:port, port 0 resolved).
func (b *Broker) Addr() string { panic("not implemented") }

// Ready reports whether the broker has recovered its logs and is serving.
func (b *Broker) Ready() bool { panic("not implemented") }

// Shutdown drains: stop accepting, finish in-flight requests, flush, close logs.
func (b *Broker) Shutdown(ctx context.Context) error { panic("not implemented") }

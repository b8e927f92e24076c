// Package telemetry owns the process's OpenTelemetry meter provider and the
// Prometheus exposition of it. Packages record through the small Metrics
// type so that instrument names live in one place.
package telemetry

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/attribute"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// Provider wraps a meter provider whose readings are served at /metrics.
type Provider struct {
	registry *prometheus.Registry
	provider *sdkmetric.MeterProvider
}

// NewProvider builds a meter provider with its own Prometheus registry, so
// that several brokers in one test process do not collide.
func NewProvider() (*Provider, error) {
	reg := prometheus.NewRegistry()
	exp, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, err
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp))
	return &Provider{registry: reg, provider: mp}, nil
}

// Meter returns a named meter.
func (p *Provider) Meter(name string) metric.Meter { return p.provider.Meter(name) }

// Handler serves the Prometheus text exposition.
func (p *Provider) Handler() http.Handler {
	return promhttp.HandlerFor(p.registry, promhttp.HandlerOpts{})
}

// Shutdown flushes and stops the provider.
func (p *Provider) Shutdown(ctx context.Context) error { return p.provider.Shutdown(ctx) }

// BrokerMetrics are the instruments of the Kafka listener and the log.
// A nil *BrokerMetrics is valid and records nothing, so tests need no setup.
type BrokerMetrics struct {
	requests    metric.Int64Counter
	latency     metric.Float64Histogram
	flush       metric.Float64Histogram
	bytesIn     metric.Int64Counter
	bytesOut    metric.Int64Counter
	connections metric.Int64UpDownCounter

	mu           sync.Mutex
	partitions   func() []PartitionStat
	groups       func() GroupStats
	tieringStats func() TieringStats
	tiering      tieringInstruments
	replication  func() ReplicationStats
}

// ReplicationStats counts partitions by replication health: those led by
// the broker (under-replicated, under and at min.insync.replicas, as
// Kafka's ReplicaManager reports them), and offline ones, reported by the
// lowest-id live broker alone (as Kafka's active controller does).
type ReplicationStats struct {
	UnderReplicated, UnderMinISR, AtMinISR, Offline int
}

// GroupStats is the group coordinator's reading for the observable gauges.
type GroupStats struct {
	Groups     map[[2]string]int // (type, state) -> groups
	Rebalances int64             // classic rebalances completed since start
	Commits    int64             // offsets committed since start
}

// PartitionStat is one partition's log reading for the observable gauges.
type PartitionStat struct {
	Topic       string
	Partition   int32
	SizeBytes   int64
	EndOffset   int64
	StartOffset int64
}

// NewBrokerMetrics registers the broker instruments on m.
func NewBrokerMetrics(m metric.Meter) (*BrokerMetrics, error) {
	b := &BrokerMetrics{}
	var err error
	if b.requests, err = m.Int64Counter("tiercel.kafka.requests", metric.WithDescription("Kafka requests handled, by API and version")); err != nil {
		return nil, err
	}
	if b.latency, err = m.Float64Histogram("tiercel.kafka.request.duration", metric.WithUnit("s"),
		metric.WithDescription("Kafka request latency from decoded to response written"),
		metric.WithExplicitBucketBoundaries(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)); err != nil {
		return nil, err
	}
	if b.flush, err = m.Float64Histogram("tiercel.log.flush.duration", metric.WithUnit("s"),
		metric.WithDescription("time of one fsync of a partition's log (Kafka's LogFlushRateAndTimeMs)"),
		metric.WithExplicitBucketBoundaries(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1)); err != nil {
		return nil, err
	}
	if b.bytesIn, err = m.Int64Counter("tiercel.kafka.bytes.in", metric.WithUnit("By"), metric.WithDescription("request bytes read from clients")); err != nil {
		return nil, err
	}
	if b.bytesOut, err = m.Int64Counter("tiercel.kafka.bytes.out", metric.WithUnit("By"), metric.WithDescription("response bytes written to clients")); err != nil {
		return nil, err
	}
	if b.connections, err = m.Int64UpDownCounter("tiercel.kafka.connections", metric.WithDescription("open client connections")); err != nil {
		return nil, err
	}
	size, err := m.Int64ObservableGauge("tiercel.log.size", metric.WithUnit("By"), metric.WithDescription("bytes of a partition's local log"))
	if err != nil {
		return nil, err
	}
	end, err := m.Int64ObservableGauge("tiercel.log.end_offset", metric.WithDescription("a partition's log end offset"))
	if err != nil {
		return nil, err
	}
	start, err := m.Int64ObservableGauge("tiercel.log.start_offset", metric.WithDescription("a partition's log start offset"))
	if err != nil {
		return nil, err
	}
	_, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		b.mu.Lock()
		f := b.partitions
		b.mu.Unlock()
		if f == nil {
			return nil
		}
		for _, p := range f() {
			attrs := metric.WithAttributes(attribute.String("topic", p.Topic), attribute.Int("partition", int(p.Partition)))
			o.ObserveInt64(size, p.SizeBytes, attrs)
			o.ObserveInt64(end, p.EndOffset, attrs)
			o.ObserveInt64(start, p.StartOffset, attrs)
		}
		return nil
	}, size, end, start)
	if err != nil {
		return nil, err
	}
	if err := b.registerGroups(m); err != nil {
		return nil, err
	}
	if err := b.registerTiering(m); err != nil {
		return nil, err
	}
	if err := b.registerReplication(m); err != nil {
		return nil, err
	}
	return b, nil
}

func (b *BrokerMetrics) registerReplication(m metric.Meter) error {
	under, err := m.Int64ObservableGauge("tiercel.partitions.under_replicated", metric.WithDescription("partitions led here with fewer in-sync replicas than replicas"))
	if err != nil {
		return err
	}
	underMin, err := m.Int64ObservableGauge("tiercel.partitions.under_min_isr", metric.WithDescription("partitions led here with fewer in-sync replicas than min.insync.replicas (acks=all refused)"))
	if err != nil {
		return err
	}
	atMin, err := m.Int64ObservableGauge("tiercel.partitions.at_min_isr", metric.WithDescription("partitions led here with exactly min.insync.replicas in sync (one more loss refuses acks=all)"))
	if err != nil {
		return err
	}
	offline, err := m.Int64ObservableGauge("tiercel.partitions.offline", metric.WithDescription("partitions without a live leader (reported by the lowest-id live broker)"))
	if err != nil {
		return err
	}
	_, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		b.mu.Lock()
		f := b.replication
		b.mu.Unlock()
		if f == nil {
			return nil
		}
		st := f()
		o.ObserveInt64(under, int64(st.UnderReplicated))
		o.ObserveInt64(underMin, int64(st.UnderMinISR))
		o.ObserveInt64(atMin, int64(st.AtMinISR))
		o.ObserveInt64(offline, int64(st.Offline))
		return nil
	}, under, underMin, atMin, offline)
	return err
}

// ObserveReplication sets the function read at each scrape for the
// replication gauges.
func (b *BrokerMetrics) ObserveReplication(f func() ReplicationStats) {
	if b == nil {
		return
	}
	b.mu.Lock()
	b.replication = f
	b.mu.Unlock()
}

func (b *BrokerMetrics) registerGroups(m metric.Meter) error {
	groups, err := m.Int64ObservableGauge("tiercel.groups", metric.WithDescription("consumer groups by type (classic, consumer) and state"))
	if err != nil {
		return err
	}
	rebalances, err := m.Int64ObservableCounter("tiercel.group.rebalances", metric.WithDescription("classic group rebalances completed"))
	if err != nil {
		return err
	}
	commits, err := m.Int64ObservableCounter("tiercel.offset.commits", metric.WithDescription("offsets committed (durable)"))
	if err != nil {
		return err
	}
	_, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		b.mu.Lock()
		f := b.groups
		b.mu.Unlock()
		if f == nil {
			return nil
		}
		st := f()
		for k, n := range st.Groups {
			o.ObserveInt64(groups, int64(n), metric.WithAttributes(attribute.String("type", k[0]), attribute.String("state", k[1])))
		}
		o.ObserveInt64(rebalances, st.Rebalances)
		o.ObserveInt64(commits, st.Commits)
		return nil
	}, groups, rebalances, commits)
	return err
}

// ObserveGroups sets the function read at each scrape for the group gauges.
func (b *BrokerMetrics) ObserveGroups(f func() GroupStats) {
	if b == nil {
		return
	}
	b.mu.Lock()
	b.groups = f
	b.mu.Unlock()
}

// ObservePartitions sets the function read at each scrape for per-partition gauges.
func (b *BrokerMetrics) ObservePartitions(f func() []PartitionStat) {
	if b == nil {
		return
	}
	b.mu.Lock()
	b.partitions = f
	b.mu.Unlock()
}

// Request records one handled request.
func (b *BrokerMetrics) Request(apiName string, version int16, d time.Duration, errored bool) {
	if b == nil {
		return
	}
	attrs := metric.WithAttributes(attribute.String("api", apiName), attribute.Int("version", int(version)), attribute.Bool("error", errored))
	b.requests.Add(context.Background(), 1, attrs)
	b.latency.Record(context.Background(), d.Seconds(), attrs)
}

// LogFlush records one fsync of a partition's log.
func (b *BrokerMetrics) LogFlush(d time.Duration) {
	if b != nil {
		b.flush.Record(context.Background(), d.Seconds())
	}
}

// BytesIn counts request bytes read.
func (b *BrokerMetrics) BytesIn(n int) {
	if b != nil {
		b.bytesIn.Add(context.Background(), int64(n))
	}
}

// BytesOut counts response bytes written.
func (b *BrokerMetrics) BytesOut(n int) {
	if b != nil {
		b.bytesOut.Add(context.Background(), int64(n))
	}
}

// ConnOpened and ConnClosed track open connections.
func (b *BrokerMetrics) ConnOpened() {
	if b != nil {
		b.connections.Add(context.Background(), 1)
	}
}

func (b *BrokerMetrics) ConnClosed() {
	if b != nil {
		b.connections.Add(context.Background(), -1)
	}
}

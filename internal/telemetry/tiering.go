package telemetry

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// TieringStats is the tiering reading for the observable instruments.
type TieringStats struct {
	Partitions  []TieringLag
	ChunkHits   int64 // remote chunk reads served from the cache
	ChunkMisses int64 // remote chunk reads that went to the bucket
	FetchedFrom int64 // bytes read from the bucket by remote reads
}

// TieringLag is what one partition has not tiered yet.
type TieringLag struct {
	Topic     string
	Partition int32
	Bytes     int64
	Seconds   float64
}

type tieringInstruments struct {
	uploadedBytes    metric.Int64Counter
	uploadedSegments metric.Int64Counter
	deletedObjects   metric.Int64Counter
	remoteBytes      metric.Int64Counter
	remoteLatency    metric.Float64Histogram
}

func (b *BrokerMetrics) registerTiering(m metric.Meter) error {
	var err error
	t := &b.tiering
	if t.uploadedBytes, err = m.Int64Counter("tiercel.tiering.uploaded", metric.WithUnit("By"), metric.WithDescription("segment bytes added to the bucket")); err != nil {
		return err
	}
	if t.uploadedSegments, err = m.Int64Counter("tiercel.tiering.uploaded.segments", metric.WithDescription("segments added to the bucket")); err != nil {
		return err
	}
	if t.deletedObjects, err = m.Int64Counter("tiercel.tiering.deleted.objects", metric.WithDescription("objects deleted by retention, DeleteRecords and topic deletion")); err != nil {
		return err
	}
	if t.remoteBytes, err = m.Int64Counter("tiercel.tiering.remote.fetch", metric.WithUnit("By"), metric.WithDescription("record bytes served to fetches from the bucket")); err != nil {
		return err
	}
	if t.remoteLatency, err = m.Float64Histogram("tiercel.tiering.remote.read.duration", metric.WithUnit("s"),
		metric.WithDescription("latency of one partition's remote read within a fetch"),
		metric.WithExplicitBucketBoundaries(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)); err != nil {
		return err
	}
	lagBytes, err := m.Int64ObservableGauge("tiercel.tiering.lag", metric.WithUnit("By"), metric.WithDescription("bytes of closed segments not yet in the bucket"))
	if err != nil {
		return err
	}
	lagSeconds, err := m.Float64ObservableGauge("tiercel.tiering.lag.time", metric.WithUnit("s"), metric.WithDescription("age of the oldest closed segment not yet in the bucket"))
	if err != nil {
		return err
	}
	hits, err := m.Int64ObservableCounter("tiercel.tiering.cache.hits", metric.WithDescription("remote chunk reads served from the chunk cache"))
	if err != nil {
		return err
	}
	misses, err := m.Int64ObservableCounter("tiercel.tiering.cache.misses", metric.WithDescription("remote chunk reads that went to the bucket"))
	if err != nil {
		return err
	}
	fetched, err := m.Int64ObservableCounter("tiercel.tiering.remote.read", metric.WithUnit("By"), metric.WithDescription("bytes read from the bucket for fetches (chunks, read-ahead included)"))
	if err != nil {
		return err
	}
	_, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		b.mu.Lock()
		f := b.tieringStats
		b.mu.Unlock()
		if f == nil {
			return nil
		}
		st := f()
		for _, p := range st.Partitions {
			attrs := metric.WithAttributes(attribute.String("topic", p.Topic), attribute.Int("partition", int(p.Partition)))
			o.ObserveInt64(lagBytes, p.Bytes, attrs)
			o.ObserveFloat64(lagSeconds, p.Seconds, attrs)
		}
		o.ObserveInt64(hits, st.ChunkHits)
		o.ObserveInt64(misses, st.ChunkMisses)
		o.ObserveInt64(fetched, st.FetchedFrom)
		return nil
	}, lagBytes, lagSeconds, hits, misses, fetched)
	return err
}

// ObserveTiering sets the function read at each scrape for the tiering gauges.
func (b *BrokerMetrics) ObserveTiering(f func() TieringStats) {
	if b == nil {
		return
	}
	b.mu.Lock()
	b.tieringStats = f
	b.mu.Unlock()
}

// TieredSegment counts one segment added to the bucket.
func (b *BrokerMetrics) TieredSegment(bytes int64) {
	if b != nil {
		b.tiering.uploadedBytes.Add(context.Background(), bytes)
		b.tiering.uploadedSegments.Add(context.Background(), 1)
	}
}

// RemoteDeletes counts objects deleted from the bucket.
func (b *BrokerMetrics) RemoteDeletes(n int) {
	if b != nil {
		b.tiering.deletedObjects.Add(context.Background(), int64(n))
	}
}

// RemoteRead records one partition's remote read in a fetch.
func (b *BrokerMetrics) RemoteRead(bytes int, d time.Duration) {
	if b != nil {
		b.tiering.remoteBytes.Add(context.Background(), int64(bytes))
		b.tiering.remoteLatency.Record(context.Background(), d.Seconds())
	}
}

package broker

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/tiercel/tiercel/broker/storage"
	"github.com/tiercel/tiercel/internal/telemetry"
	"github.com/tiercel/tiercel/objstore"
	_ "github.com/tiercel/tiercel/objstore/all" // every URL scheme
	"github.com/tiercel/tiercel/objstore/fs"
	"github.com/tiercel/tiercel/tiering"
)

// Tiering wiring: the broker hands the Tierer every tiered partition's
// local log through localLog, serves fetches below the local log start
// through the remote Reader, and keeps the catalog in the bucket so a
// broker with an empty disk finds its topics again.

// Directories under log.dirs that are not partitions.
const (
	defaultObjstoreDir = "tiercel-objstore"     // the embedded filesystem store
	remoteCacheDir     = "tiercel-remote-cache" // cached chunks of tiered segments
)

// openBucket returns the bucket the options name, or the configured URL,
// or the embedded filesystem store under the data directory; wrapped with
// retries.
func openBucket(opts Options, dir string) (objstore.Bucket, error) {
	b := opts.Bucket
	if b == nil {
		var err error
		if url := opts.Config.Get("tiercel.objstore.url"); url != "" {
			b, err = objstore.Open(context.Background(), url)
		} else {
			b, err = fs.New(filepath.Join(dir, defaultObjstoreDir))
		}
		if err != nil {
			return nil, fmt.Errorf("object store: %w", err)
		}
	}
	if opts.ObjstoreMeter != nil {
		m, err := objstore.WithMetrics(b, opts.ObjstoreMeter, strings.SplitN(b.Name(), ":", 2)[0])
		if err != nil {
			return nil, err
		}
		b = m
	}
	return objstore.WithRetries(b, objstore.DefaultRetryPolicy), nil
}

// manifestViewAge is how long a follower trusts its copy of a manifest
// that reaches the offsets asked for; retention is what it misses
// meanwhile (a read of a deleted segment drops the copy at once).
const manifestViewAge = time.Minute

// startTiering creates the Tierer and the remote Reader.
func (b *Broker) startTiering() error {
	cache, err := tiering.NewChunkCache(filepath.Join(b.dir, remoteCacheDir), b.cfg.Int64("tiercel.remote.cache.bytes"))
	if err != nil {
		return err
	}
	b.remote = tiering.NewReader(tiering.ReaderOptions{
		Bucket: b.bucket, Cache: cache,
		ChunkBytes: b.cfg.Int64("tiercel.remote.chunk.bytes"), ReadAhead: int(b.cfg.Int64("tiercel.remote.read.ahead.chunks")),
		Fetchers: 4 * int(b.cfg.Int64("remote.log.reader.threads")),
	})
	b.remoteSlots = make(chan struct{}, b.cfg.Int64("remote.log.reader.threads"))
	b.views = tiering.NewManifestViews(tiering.ManifestStore{Bucket: b.bucket}, manifestViewAge)
	b.tierer = tiering.NewTierer(tiering.TiererOptions{
		Bucket: b.bucket, Logger: b.logger,
		Interval: time.Duration(b.cfg.Int64("remote.log.manager.task.interval.ms")) * time.Millisecond,
		Jobs:     int(b.cfg.Int64("remote.log.manager.copier.thread.pool.size")),
		OnUpload: b.metrics.TieredSegment,
		OnDelete: b.metrics.RemoteDeletes,
		MayWrite: b.leading,
	})
	return nil
}

// tiered reports whether a topic's partitions go to the bucket.
// __consumer_offsets is tiered too, so group state moves with its
// partitions (handoff, pause) and a broker with an empty disk replays it
// from the bucket; the coordinator's compaction keeps it small there.
func (b *Broker) tiered(m *topicMeta) bool {
	return b.tieredConfigs(m.Configs)
}

func (b *Broker) tieredConfigs(overrides map[string]string) bool {
	return b.cfg.Bool("remote.log.storage.system.enable") && b.cfg.TopicValue(overrides, "remote.storage.enable") == "true"
}

// retention resolves a topic's whole-log and local retention.
func (b *Broker) retention(overrides map[string]string) tiering.Retention {
	get := func(n string) int64 { return b.cfg.TopicInt64(overrides, n) }
	r := tiering.Retention{Ms: get("retention.ms"), Bytes: get("retention.bytes"), LocalMs: get("local.retention.ms"), LocalBytes: get("local.retention.bytes")}
	if b.keptWhole(overrides) {
		r.Ms, r.Bytes = -1, -1
	}
	if r.LocalMs == -2 {
		r.LocalMs = r.Ms
	}
	if r.LocalBytes == -2 {
		r.LocalBytes = r.Bytes
	}
	return r
}

// localLog shows a partition's storage.Log to the Tierer.
type localLog struct{ l *storage.Log }

func (a localLog) LocalSegments() []tiering.LocalSegment {
	segs := a.l.Segments()
	hw := a.l.HighWatermark()
	out := make([]tiering.LocalSegment, len(segs))
	for i, s := range segs {
		// Nothing above the high watermark is uploaded: with replication
		// it is not committed yet, and a new leader may not have it.
		out[i] = tiering.LocalSegment{BaseOffset: s.BaseOffset, NextOffset: s.NextOffset, Size: s.SizeBytes, MaxTimestamp: s.MaxTimestamp, Active: s.Active || s.NextOffset > hw}
	}
	return out
}

func (a localLog) OpenSegment(base int64) (tiering.Segment, func() error, error) {
	cs, err := a.l.OpenClosedSegment(base)
	if err != nil {
		return tiering.Segment{}, nil, err
	}
	seg := tiering.Segment{
		Info: tiering.LocalSegment{BaseOffset: cs.Info.BaseOffset, NextOffset: cs.Info.NextOffset, Size: cs.Info.SizeBytes, MaxTimestamp: cs.Info.MaxTimestamp},
		Log:  cs.Log,
		Parts: map[string][]byte{
			tiering.PartOffsetIndex: cs.Index,
			tiering.PartTimeIndex:   cs.TimeIndex,
			tiering.PartEpochs:      cs.Epochs,
			tiering.PartProducers:   cs.Producers,
		},
	}
	return seg, cs.Close, nil
}

func (a localLog) LocalStart() int64 { return a.l.StartOffset() }

func (a localLog) DropBefore(offset int64) error {
	_, err := a.l.DeleteRecordsBefore(offset)
	return err
}

// tierPartition hands a partition to the Tierer.
func (b *Broker) tierPartition(m *topicMeta, p int32, l *storage.Log, man tiering.Manifest) {
	b.tierer.Add(tiering.PartitionConfig{TopicID: m.ID, Partition: p, Epoch: m.Leaders[p].Epoch, Retention: b.retention(m.Configs)}, localLog{l}, man)
}

// logStart is a partition's log start offset: the remote one when the
// tiered offsets reach the local log, else the local one.
func (b *Broker) logStart(t *topic, p int32, l *storage.Log) int64 {
	local := l.StartOffset()
	if b.tierer == nil || !b.tiered(t.meta) {
		return local
	}
	if start, end, ok := b.tierer.Range(t.meta.ID, p); ok && end >= local {
		return min(start, local)
	}
	return local
}

// deleteTopicObjects removes a deleted topic's objects from the bucket in
// the background; what a crash leaves behind, garbage collection finds.
func (b *Broker) deleteTopicObjects(m *topicMeta) {
	b.bg.Add(1)
	go func() {
		defer b.bg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		for p := int32(0); p < m.Partitions; p++ {
			n, err := tiering.DeletePartition(ctx, b.bucket, m.ID, p)
			if err != nil {
				b.logger.Warn("deleting a deleted topic's objects; garbage collection will finish", "topic", m.Name, "partition", p, "err", err)
				continue
			}
			b.metrics.RemoteDeletes(n)
		}
	}()
}

// topicNamesByID maps topic ids (the Tierer's keys) to names.
func (b *Broker) topicNamesByID() map[string]string {
	b.mu.RLock()
	defer b.mu.RUnlock()
	names := make(map[string]string, len(b.topics))
	for _, t := range b.topics {
		names[t.meta.ID] = t.meta.Name
	}
	return names
}

// tieringStats is the metrics scrape of tiering.
func (b *Broker) tieringStats() telemetry.TieringStats {
	names := b.topicNamesByID()
	rs := b.remote.Stats()
	st := telemetry.TieringStats{ChunkHits: rs.ChunkHits, ChunkMisses: rs.ChunkMisses, FetchedFrom: rs.FetchedBytes}
	nowMs := time.Now().UnixMilli()
	for _, p := range b.tierer.Status() {
		lag := telemetry.TieringLag{Topic: names[p.TopicID], Partition: p.Partition, Bytes: p.PendingBytes}
		if p.PendingSince >= 0 {
			lag.Seconds = float64(max(nowMs-p.PendingSince, 0)) / 1000
		}
		st.Partitions = append(st.Partitions, lag)
	}
	return st
}

// TieringPartition is one partition's tiering state for `tiercel tiering status`.
type TieringPartition struct {
	Topic          string    `json:"topic"`
	Partition      int32     `json:"partition"`
	LocalStart     int64     `json:"localStart"`
	LocalEnd       int64     `json:"localEnd"`
	RemoteStart    int64     `json:"remoteStart"`
	RemoteEnd      int64     `json:"remoteEnd"`
	RemoteSegments int       `json:"remoteSegments"`
	RemoteBytes    int64     `json:"remoteBytes"`
	PendingBytes   int64     `json:"pendingBytes"`
	LastUpload     time.Time `json:"lastUpload,omitzero"`
	LastError      string    `json:"lastError,omitempty"`
}

// TieringStatus reports every tiered partition.
func (b *Broker) TieringStatus() []TieringPartition {
	names := b.topicNamesByID()
	var out []TieringPartition
	for _, p := range b.tierer.Status() {
		name, ok := names[p.TopicID]
		if !ok {
			continue
		}
		out = append(out, TieringPartition{
			Topic: name, Partition: p.Partition, LocalStart: p.LocalStart, LocalEnd: p.LocalEnd,
			RemoteStart: p.RemoteStart, RemoteEnd: p.RemoteEnd, RemoteSegments: p.RemoteSegments, RemoteBytes: p.RemoteBytes,
			PendingBytes: p.PendingBytes, LastUpload: p.LastUpload, LastError: p.LastError,
		})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Topic != out[j].Topic {
			return out[i].Topic < out[j].Topic
		}
		return out[i].Partition < out[j].Partition
	})
	return out
}

// restoreProducers loads the idempotent-producer state from the newest
// tiered segment into a log created empty at the manifest's end.
func (b *Broker) restoreProducers(l *storage.Log, man *tiering.Manifest) error {
	if len(man.Segments) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	snap, err := b.producerSnapshot(ctx, man.Segments[len(man.Segments)-1])
	if err != nil || snap == nil {
		return err
	}
	return l.RestoreProducers(snap)
}

// producerSnapshot is the idempotent-producer state stored with a tiered
// segment (as of its end), or nil if it has none.
func (b *Broker) producerSnapshot(ctx context.Context, seg tiering.RemoteSegment) ([]byte, error) {
	f, err := tiering.ReadFooter(ctx, b.bucket, seg.Key, seg.Size)
	if err != nil {
		return nil, err
	}
	if _, ok := f.Part(tiering.PartProducers); !ok {
		return nil, nil
	}
	return tiering.ReadPart(ctx, b.bucket, seg.Key, f, tiering.PartProducers)
}

// producersBefore is the producer state of a tiered partition as of
// offset off, from the tiered segment that ends there (nil if none does):
// what a follower's copy started at off needs, so that it recognises the
// retries of batches just below it if it comes to lead (Kafka's followers
// rebuild it from remote storage the same way). The segment is found in
// this broker's copy of the manifest, read again if it does not reach off.
func (b *Broker) producersBefore(ctx context.Context, topicID string, p int32, off int64) ([]byte, error) {
	seg, _, found, err := b.views.Find(ctx, topicID, p, off-1, off)
	if err != nil || !found || seg.NextOffset != off {
		return nil, err
	}
	return b.producerSnapshot(ctx, seg)
}

// tieredSegments lists a partition's segments in the bucket, in order.
func (b *Broker) tieredSegments(topicID string, p int32) []tiering.RemoteSegment {
	if b.tierer == nil {
		return nil
	}
	return b.tierer.Segments(topicID, p)
}

package broker

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tiercel/tiercel/broker/storage"
	"github.com/tiercel/tiercel/internal/metalog"
	"github.com/tiercel/tiercel/internal/vfs"
	"github.com/tiercel/tiercel/objstore"
)

// The cluster metadata (what Kafka keeps in its controller: the cluster id,
// topics, their ids, partition counts, leaders and config overrides, the
// dynamic broker configs, the producer-id blocks) lives in the metadata log
// in the bucket (internal/metalog, docs/design.md "Control plane"). Every
// change is appended there before it is acknowledged, then applied to the
// broker's topics and logs by reconcile, the same way whether this broker
// or another one appended it.

// clusterMeta is the broker's handle on the metadata log.
type clusterMeta struct {
	mu  sync.Mutex // serializes appends, catch-ups and reconciles; taken before Broker.mu
	log *metalog.Log
	// kick asks the poll loop to catch up now (a hint that a new entry exists).
	kick chan struct{}
	// dirty: the last reconcile did not finish (a manifest could not be
	// read); the next poll reconciles again even with no new entry.
	dirty bool
}

// snapshotEvery is how many entries apart the appending broker writes a
// snapshot of the state, so that a starting broker replays a bounded tail.
const snapshotEvery = 1000

// openMetadata opens the metadata log in the bucket and makes sure the
// cluster has an id: a new bucket gets one, or the topics of a catalog
// written by an earlier Tiercel version.
func (b *Broker) openMetadata() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, err := metalog.Open(ctx, b.bucket, b.nodeID)
	if err != nil {
		if why := objstore.Refusal(err); why != "" {
			return fmt.Errorf("the object store %s refused the broker: %s (check tiercel.objstore.url and the store's credentials): %w", b.bucket.Name(), why, err)
		}
		return fmt.Errorf("reading the metadata log from the object store %s: %w", b.bucket.Name(), err)
	}
	b.meta = &clusterMeta{log: l, kick: make(chan struct{}, 1)}
	if l.Peek().ClusterID == "" {
		ops, err := b.initialOps(ctx)
		if err != nil {
			return err
		}
		// Brokers starting together on an empty bucket race here; the
		// first InitCluster in the log names the cluster for all of them.
		if _, _, err := l.Append(ctx, ops); err != nil && !errors.Is(err, metalog.ErrExists) {
			return fmt.Errorf("initialising the cluster in the object store %s: %w", b.bucket.Name(), err)
		}
		if _, err := l.CatchUp(ctx); err != nil {
			return err
		}
	}
	clusterID := l.Peek().ClusterID
	props := readMetaProperties(b.fs, b.dir)
	if old := props.clusterID; old != "" && old != clusterID {
		return fmt.Errorf("data directory %s belongs to cluster %s but the object store %s holds cluster %s; use an empty data directory or the matching store", b.dir, old, b.bucket.Name(), clusterID)
	}
	b.clusterID = clusterID
	if b.nodeID < 0 {
		if err := b.allocateNodeID(ctx, props); err != nil {
			return err
		}
	}
	return writeMetaProperties(b.fs, b.dir, clusterID, b.nodeID)
}

// allocateNodeID gives a broker started with node.id=-1 an id: the one in
// its data directory's meta.properties (of the same cluster), or a new one
// allocated through the metadata log, as Kafka's broker.id generation does.
func (b *Broker) allocateNodeID(ctx context.Context, props metaProperties) error {
	l := b.meta.log
	if props.nodeID >= 0 && props.clusterID == b.clusterID {
		b.nodeID = props.nodeID
		l.SetWriter(props.nodeID)
		return nil
	}
	minID := int32(b.cfg.Int64("reserved.broker.max.id")) + 1
	if _, _, err := l.Append(ctx, []metalog.Op{{AllocateBrokerID: &metalog.AllocateBrokerID{Incarnation: b.incarnation, Min: minID}}}); err != nil {
		return fmt.Errorf("allocating a broker id in the object store %s: %w", b.bucket.Name(), err)
	}
	id := l.Peek().AllocatedBrokerID(b.incarnation)
	if id < 0 {
		return fmt.Errorf("allocating a broker id: the metadata log does not show the allocation")
	}
	b.nodeID = id
	l.SetWriter(id)
	b.logger.Info("allocated a broker id through the metadata log", "node_id", id)
	return nil
}

// initialOps names a new cluster. A catalog of an earlier Tiercel version
// (in the bucket, or else in the data directory) is carried over, so an
// upgrade keeps its cluster id, topics and topic ids.
func (b *Broker) initialOps(ctx context.Context) ([]metalog.Op, error) {
	cat, err := readBucketCatalog(ctx, b.bucket)
	if err != nil {
		return nil, err
	}
	if cat == nil {
		data, err := vfs.ReadFile(b.fs, filepath.Join(b.dir, legacyCatalogFile))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		if err == nil {
			if cat, err = parseCatalog(data); err != nil {
				return nil, fmt.Errorf("%s: %w", filepath.Join(b.dir, legacyCatalogFile), err)
			}
		}
	}
	if cat == nil {
		return []metalog.Op{{InitCluster: &metalog.InitCluster{ClusterID: newUUIDString()}}}, nil
	}
	b.logger.Warn("carrying the topic catalog of an earlier version over into the metadata log", "cluster_id", cat.ClusterID, "topics", len(cat.Topics))
	ops := []metalog.Op{{InitCluster: &metalog.InitCluster{ClusterID: cat.ClusterID}}}
	for _, t := range cat.Topics {
		ops = append(ops, metalog.Op{CreateTopic: &metalog.CreateTopic{Name: t.Name, ID: t.ID, Leaders: b.placeLeaders(t.Partitions), Configs: t.Configs}})
	}
	if len(cat.BrokerConfigs) > 0 {
		ops = append(ops, metalog.Op{SetBrokerConfigs: &metalog.SetBrokerConfigs{Configs: cat.BrokerConfigs}})
	}
	if cat.NextProducerID > 0 {
		ops = append(ops, metalog.Op{AllocateProducerIDs: &metalog.AllocateProducerIDs{Count: cat.NextProducerID}})
	}
	return ops, nil
}

// appendMeta appends ops to the metadata log and reconciles the broker with
// the result; the caller holds meta.mu. It reports which ops took effect
// (an op overtaken by another broker's entry did not).
func (b *Broker) appendMeta(ctx context.Context, ops ...metalog.Op) ([]bool, error) {
	before := b.meta.log.Peek().Seq
	seq, done, err := b.meta.log.Append(ctx, ops)
	b.logger.Debug("appended metadata entry", "node", b.nodeID, "seq", seq, "err", err)
	if err != nil {
		// Append may have caught up with other brokers' entries before
		// finding the change no longer applies (the topic exists now):
		// those are applied like any others.
		if b.meta.log.Peek().Seq > before {
			if rerr := b.reconcile(ctx, false); rerr != nil {
				b.logger.Warn("applying the metadata log", "err", rerr)
			}
		}
		return nil, err
	}
	b.announce(seq)
	if seq%snapshotEvery == 0 {
		if _, err := b.meta.log.Snapshot(ctx); err != nil {
			b.logger.Warn("writing a metadata snapshot; the next one will cover it", "seq", seq, "err", err)
		}
	}
	// Append caught up with other brokers' entries before its own; the
	// state reconciled holds all of them.
	return done, b.reconcile(ctx, false)
}

// appendOps appends ops under meta.mu (nothing when there are none) and
// returns how many took effect.
func (b *Broker) appendOps(ctx context.Context, ops []metalog.Op) (int, error) {
	if len(ops) == 0 {
		return 0, nil
	}
	b.meta.mu.Lock()
	defer b.meta.mu.Unlock()
	done, err := b.appendMeta(ctx, ops...)
	return applied(done), err
}

// applied counts the ops of an entry that took effect.
func applied(done []bool) int {
	n := 0
	for _, d := range done {
		if d {
			n++
		}
	}
	return n
}

// commitMeta appends ops under meta.mu with a minute's deadline and
// reconciles (appendMeta), for a change that needs no check of the state
// under the same lock.
func (b *Broker) commitMeta(ops ...metalog.Op) ([]bool, error) {
	b.meta.mu.Lock()
	defer b.meta.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return b.appendMeta(ctx, ops...)
}

// pollMetadata catches up with entries other brokers appended, every
// tiercel.metadata.poll.ms or when kicked.
func (b *Broker) pollMetadata(stop <-chan struct{}) {
	every := time.Duration(b.cfg.Int64("tiercel.metadata.poll.ms")) * time.Millisecond
	repeat(stop, b.meta.kick, every, func() (time.Duration, bool) {
		if err := b.catchUpMeta(); err != nil {
			b.logger.Warn("catching up with the metadata log", "err", err)
		}
		return every, true
	})
}

// catchUpMeta applies the entries appended since the last one applied.
func (b *Broker) catchUpMeta() error {
	b.meta.mu.Lock()
	defer b.meta.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	read, err := b.meta.log.CatchUp(ctx)
	if err != nil || (len(read) == 0 && !b.meta.dirty) {
		return err
	}
	b.logger.Debug("applying metadata entries", "node", b.nodeID, "entries", len(read), "seq", b.meta.log.Peek().Seq)
	return b.reconcile(ctx, false)
}

// errMetadata wraps a failure to write the metadata log: retriable for
// clients (the change was not made, or is recognised when retried).
var errMetadata = errors.New("metadata log")

func metaError(err error) error {
	switch {
	case errors.Is(err, metalog.ErrExists):
		return fmt.Errorf("%w: %v", errTopicExists, err)
	case errors.Is(err, metalog.ErrNotFound):
		return fmt.Errorf("%w: %v", errUnknownTopic, err)
	}
	return fmt.Errorf("%w: %w: %v", storage.ErrStorage, errMetadata, err)
}

// legacyCatalogFile and legacyCatalogKey are where Tiercel versions before
// the metadata log kept the catalog; read once, when the log is new.
const (
	legacyCatalogFile = "tiercel-catalog.json"
	legacyCatalogKey  = "cluster/catalog.json"
)

type legacyCatalog struct {
	ClusterID      string `json:"cluster_id"`
	NextProducerID int64  `json:"next_producer_id"`
	Topics         []struct {
		Name       string            `json:"name"`
		ID         string            `json:"id"`
		Partitions int32             `json:"partitions"`
		Configs    map[string]string `json:"configs,omitempty"`
	} `json:"topics"`
	BrokerConfigs map[string]string `json:"broker_configs,omitempty"`
}

func readBucketCatalog(ctx context.Context, bucket objstore.Bucket) (*legacyCatalog, error) {
	data, _, err := objstore.ReadAll(ctx, bucket, legacyCatalogKey)
	if errors.Is(err, objstore.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s from the object store %s: %w", legacyCatalogKey, bucket.Name(), err)
	}
	c, err := parseCatalog(data)
	if err != nil {
		return nil, fmt.Errorf("%s in %s: %w", legacyCatalogKey, bucket.Name(), err)
	}
	return c, nil
}

func parseCatalog(data []byte) (*legacyCatalog, error) {
	var c legacyCatalog
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, err
	}
	if c.ClusterID == "" {
		return nil, errors.New("no cluster id")
	}
	return &c, nil
}

// metaProperties is what a data directory's meta.properties says: its
// cluster.id ("" if none) and node.id (-1 if none).
type metaProperties struct {
	clusterID string
	nodeID    int32
}

func readMetaProperties(fsys vfs.FS, dir string) metaProperties {
	props := metaProperties{nodeID: -1}
	data, err := vfs.ReadFile(fsys, filepath.Join(dir, "meta.properties"))
	if err != nil {
		return props
	}
	for _, line := range strings.Split(string(data), "\n") {
		k, v, _ := strings.Cut(line, "=")
		switch v = strings.TrimSpace(v); k {
		case "cluster.id":
			props.clusterID = v
		case "node.id":
			if id, err := strconv.ParseInt(v, 10, 32); err == nil && id >= 0 {
				props.nodeID = int32(id)
			}
		}
	}
	return props
}

// writeMetaProperties writes Kafka's meta.properties so Kafka tooling that
// inspects a data directory recognises it; its cluster.id also keeps a data
// directory from being used with another cluster's bucket.
func writeMetaProperties(fsys vfs.FS, dir, clusterID string, nodeID int32) error {
	body := fmt.Sprintf("version=1\ncluster.id=%s\nnode.id=%d\n", clusterID, nodeID)
	if old, err := vfs.ReadFile(fsys, filepath.Join(dir, "meta.properties")); err == nil && string(old) == body {
		return nil
	}
	return vfs.WriteFileAtomic(fsys, filepath.Join(dir, "meta.properties"), []byte(body))
}

// LiveTopicIDs reads the metadata log in a bucket and returns the ids of
// its topics: what garbage collection keeps.
func LiveTopicIDs(ctx context.Context, b objstore.Bucket) (map[string]bool, error) {
	l, err := metalog.Open(ctx, b, -1)
	if err != nil {
		return nil, err
	}
	st := l.Peek()
	if st.ClusterID == "" {
		return nil, fmt.Errorf("%s holds no Tiercel metadata log (cluster/log/): not a Tiercel bucket, or the wrong prefix", b.Name())
	}
	ids := map[string]bool{}
	for _, t := range st.Topics {
		ids[t.ID] = true
	}
	return ids, nil
}

func newUUID() [16]byte {
	for {
		var id [16]byte
		_, _ = rand.Read(id[:])
		// Kafka reserves the zero id and ids whose text starts with '-'.
		if id != ([16]byte{}) && base64.RawURLEncoding.EncodeToString(id[:])[0] != '-' {
			return id
		}
	}
}

func newUUIDString() string { id := newUUID(); return uuidString(id) }

func uuidString(id [16]byte) string { return base64.RawURLEncoding.EncodeToString(id[:]) }

func parseUUID(s string) ([16]byte, error) {
	var id [16]byte
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != 16 {
		return id, fmt.Errorf("bad topic id %q", s)
	}
	copy(id[:], b)
	return id, nil
}

// cloneConfigs copies a config map so the broker never shares one with
// the metadata state.
func cloneConfigs(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	return maps.Clone(m)
}

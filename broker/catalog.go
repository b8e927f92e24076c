package broker

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/tiercel/tiercel/internal/vfs"
	"github.com/tiercel/tiercel/objstore"
)

// catalogFile holds what Kafka keeps in its controller: topics, their ids,
// partition counts and config overrides, dynamic broker configs, and the
// producer-id block. Written whole and atomically before any change is
// acknowledged, in the bucket (catalogKey) and then locally, so that a
// broker whose disk is lost finds its topics and topic ids again. The
// control-plane issue replaces this with the metadata log in the bucket.
const (
	catalogFile = "tiercel-catalog.json"
	catalogKey  = "cluster/catalog.json"
)

type topicMeta struct {
	Name       string            `json:"name"`
	ID         string            `json:"id"` // Kafka's Uuid text form
	Partitions int32             `json:"partitions"`
	Configs    map[string]string `json:"configs,omitempty"`
}

type catalogData struct {
	Version        int               `json:"version"`
	ClusterID      string            `json:"cluster_id"`
	NextProducerID int64             `json:"next_producer_id"`
	Topics         []*topicMeta      `json:"topics"`
	BrokerConfigs  map[string]string `json:"broker_configs,omitempty"`
}

// loadCatalog reads the local catalog, or the bucket's when the data
// directory has none (a new disk), or starts a new cluster. A data
// directory of another cluster than the bucket's is refused.
func (b *Broker) loadCatalog() (*catalogData, error) {
	local, err := readCatalog(vfs.ReadFile(b.fs, filepath.Join(b.dir, catalogFile)))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("catalog %s: %w", filepath.Join(b.dir, catalogFile), err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	remote, err := readBucketCatalog(ctx, b.bucket)
	if err != nil {
		return nil, err
	}
	switch {
	case local != nil && remote != nil && local.ClusterID != remote.ClusterID:
		return nil, fmt.Errorf("data directory %s belongs to cluster %s but the object store %s holds cluster %s; use an empty data directory or the matching store", b.dir, local.ClusterID, b.bucket.Name(), remote.ClusterID)
	case remote != nil:
		// The bucket is written first, so it is never behind the local copy.
		if local == nil {
			b.logger.Warn("no catalog in the data directory: resuming the cluster from the object store", "cluster_id", remote.ClusterID, "topics", len(remote.Topics), "objstore", b.bucket.Name())
		}
		if err := writeCatalogFile(b.fs, b.dir, remote); err != nil {
			return nil, err
		}
		return remote, nil
	case local != nil:
		// A store new to this data directory: give it the catalog.
		return local, b.writeCatalog(local)
	}
	c := &catalogData{Version: 1, ClusterID: newUUIDString()}
	return c, b.writeCatalog(c)
}

// readBucketCatalog reads the catalog in a bucket; nil if it has none.
func readBucketCatalog(ctx context.Context, bucket objstore.Bucket) (*catalogData, error) {
	data, _, err := objstore.ReadAll(ctx, bucket, catalogKey)
	if errors.Is(err, objstore.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the catalog from the object store %s: %w", bucket.Name(), err)
	}
	c, err := readCatalog(data, nil)
	if err != nil {
		return nil, fmt.Errorf("catalog %s in %s: %w", catalogKey, bucket.Name(), err)
	}
	return c, nil
}

func readCatalog(data []byte, err error) (*catalogData, error) {
	if err != nil {
		return nil, err
	}
	var c catalogData
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, err
	}
	return &c, nil
}

// saveCatalog writes the broker's catalog; see writeCatalog.
func (b *Broker) saveCatalog() error { return b.writeCatalog(b.cat) }

// writeCatalog writes c to the bucket, then locally; a change is
// acknowledged only when both hold it. The bucket first: a failure leaves
// the bucket ahead of the disk, never behind, and the bucket's copy wins.
func (b *Broker) writeCatalog(c *catalogData) error {
	data, err := json.Marshal(c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := b.bucket.Put(ctx, catalogKey, bytes.NewReader(data), objstore.PutOptions{Size: int64(len(data))}); err != nil {
		return fmt.Errorf("writing the catalog to the object store: %w", err)
	}
	return writeCatalogFile(b.fs, b.dir, c)
}

func writeCatalogFile(fsys vfs.FS, dir string, c *catalogData) error {
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return vfs.WriteFileAtomic(fsys, filepath.Join(dir, catalogFile), data)
}

// writeMetaProperties writes Kafka's meta.properties so Kafka tooling that
// inspects a data directory recognises it.
func writeMetaProperties(fsys vfs.FS, dir, clusterID string, nodeID int32) error {
	body := fmt.Sprintf("version=1\ncluster.id=%s\nnode.id=%d\n", clusterID, nodeID)
	if old, err := vfs.ReadFile(fsys, filepath.Join(dir, "meta.properties")); err == nil && string(old) == body {
		return nil
	}
	return vfs.WriteFileAtomic(fsys, filepath.Join(dir, "meta.properties"), []byte(body))
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

// LiveTopicIDs reads the catalog in a bucket and returns the ids of its
// topics: what garbage collection keeps.
func LiveTopicIDs(ctx context.Context, b objstore.Bucket) (map[string]bool, error) {
	c, err := readBucketCatalog(ctx, b)
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, fmt.Errorf("%s holds no Tiercel catalog (%s): not a Tiercel bucket, or the wrong prefix", b.Name(), catalogKey)
	}
	ids := map[string]bool{}
	for _, t := range c.Topics {
		ids[t.ID] = true
	}
	return ids, nil
}

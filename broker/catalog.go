package broker

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/tiercel/tiercel/internal/vfs"
)

// catalogFile holds what Kafka keeps in its controller: topics, their ids,
// partition counts and config overrides, dynamic broker configs, and the
// producer-id block. Written whole and atomically before any change is
// acknowledged. A later control-plane issue moves this into the bucket.
const catalogFile = "tiercel-catalog.json"

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

func loadCatalog(fsys vfs.FS, dir string) (*catalogData, error) {
	b, err := vfs.ReadFile(fsys, filepath.Join(dir, catalogFile))
	if errors.Is(err, os.ErrNotExist) {
		return &catalogData{Version: 1, ClusterID: newUUIDString()}, nil
	}
	if err != nil {
		return nil, err
	}
	var c catalogData
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("catalog %s: %w", filepath.Join(dir, catalogFile), err)
	}
	return &c, nil
}

func saveCatalog(fsys vfs.FS, dir string, c *catalogData) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return vfs.WriteFileAtomic(fsys, filepath.Join(dir, catalogFile), b)
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

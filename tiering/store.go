package tiering

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"strconv"
	"strings"

	"github.com/tiercel/tiercel/objstore"
)

// Key layout in the bucket (docs/design.md): a short hash first spreads
// partitions over key prefixes, which S3 throttles separately.
//
//	topics/<hash>/<topic-id>/<partition>/manifest
//	topics/<hash>/<topic-id>/<partition>/<base offset, 20 digits>-e<leader epoch>-t<upload ms>-<random>.seg

func partitionPrefix(topicID string, partition int32) string {
	id := fmt.Sprintf("%s/%d", topicID, partition)
	return fmt.Sprintf("topics/%04x/%s/", crc32.ChecksumIEEE([]byte(id))&0xffff, id)
}

// ManifestKey is where a partition's manifest lives.
func ManifestKey(topicID string, partition int32) string {
	return partitionPrefix(topicID, partition) + "manifest"
}

// PartitionPrefix is the key prefix of everything a partition has in the bucket.
func PartitionPrefix(topicID string, partition int32) string {
	return partitionPrefix(topicID, partition)
}

// SegmentKey names a new segment object. The random part makes every
// upload a new object, so a repeated or fenced upload never overwrites one
// a manifest already names; the upload time lets garbage collection age
// objects without a provider-specific timestamp.
func SegmentKey(topicID string, partition int32, base int64, epoch int32, nowMs int64) string {
	var r [8]byte
	_, _ = rand.Read(r[:])
	return fmt.Sprintf("%s%020d-e%d-t%d-%s.seg", partitionPrefix(topicID, partition), base, epoch, nowMs, hex.EncodeToString(r[:]))
}

// segmentKeyTime reads the upload time from a segment key.
func segmentKeyTime(key string) (int64, bool) {
	name := key[strings.LastIndexByte(key, '/')+1:]
	if !strings.HasSuffix(name, ".seg") {
		return 0, false
	}
	for _, field := range strings.Split(strings.TrimSuffix(name, ".seg"), "-") {
		if t, ok := strings.CutPrefix(field, "t"); ok {
			ms, err := strconv.ParseInt(t, 10, 64)
			return ms, err == nil
		}
	}
	return 0, false
}

// ManifestStore reads and conditionally writes manifests. The bucket should
// retry (objstore.WithRetries), which also settles a conditional write whose
// response was lost.
type ManifestStore struct {
	Bucket objstore.Bucket
	// Attempts bounds how often an update re-reads after losing a race.
	Attempts int
	// MayWrite, if set, is asked immediately before each write: false
	// (the writer's lease lapsed, say while it was paused mid-upload)
	// fails the update with ErrNotLeading.
	MayWrite func() bool
}

// Load returns a partition's manifest and its object version ("" if there
// is none yet: an empty manifest).
func (s ManifestStore) Load(ctx context.Context, topicID string, partition int32) (Manifest, string, error) {
	data, attrs, err := objstore.ReadAll(ctx, s.Bucket, ManifestKey(topicID, partition))
	if errors.Is(err, objstore.ErrNotFound) {
		return Manifest{Format: manifestFormat, TopicID: topicID, Partition: partition}, "", nil
	}
	if err != nil {
		return Manifest{}, "", err
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return Manifest{}, "", fmt.Errorf("%w: manifest of %s/%d: %v", ErrCorruptObject, topicID, partition, err)
	}
	if m.Format != manifestFormat || m.TopicID != topicID || m.Partition != partition {
		return Manifest{}, "", fmt.Errorf("%w: manifest of %s/%d names %s/%d (format %d)", ErrCorruptObject, topicID, partition, m.TopicID, m.Partition, m.Format)
	}
	if err := m.Check(); err != nil {
		return Manifest{}, "", fmt.Errorf("%w: manifest of %s/%d: %v", ErrCorruptObject, topicID, partition, err)
	}
	return m, attrs.Version, nil
}

// Update applies change to the partition's manifest as a writer of leader
// epoch epoch and writes it back conditionally on the version it read,
// re-reading and re-applying if another writer got there first. A newer
// epoch in the manifest fails with ErrFenced and writes nothing.
//
// change must recognise its own effect and then do nothing (Add does, by
// object key): if a write lands but its answer is lost and another writer
// updates the manifest before the retry layer can look, the outcome is
// unknowable from outside, the write is reported as a lost race, and change
// runs again on a manifest that may already hold it.
func (s ManifestStore) Update(ctx context.Context, topicID string, partition int32, epoch int32, change func(*Manifest) error) (Manifest, error) {
	attempts := max(s.Attempts, 10)
	for range attempts {
		m, version, err := s.Load(ctx, topicID, partition)
		if err != nil {
			return Manifest{}, err
		}
		if err := m.Fence(epoch); err != nil {
			return Manifest{}, err
		}
		if err := change(&m); err != nil {
			return Manifest{}, err
		}
		if err := m.Check(); err != nil {
			return Manifest{}, err
		}
		data, err := json.Marshal(m)
		if err != nil {
			return Manifest{}, err
		}
		opts := objstore.PutOptions{Size: int64(len(data)), IfVersion: version, IfNotExists: version == ""}
		if s.MayWrite != nil && !s.MayWrite() {
			return Manifest{}, ErrNotLeading
		}
		_, err = s.Bucket.Put(ctx, ManifestKey(topicID, partition), bytes.NewReader(data), opts)
		if errors.Is(err, objstore.ErrPrecondition) {
			continue // someone else wrote it: read again
		}
		if err != nil {
			return Manifest{}, err
		}
		return m, nil
	}
	return Manifest{}, fmt.Errorf("tiering: manifest of %s/%d: still contended after %d attempts", topicID, partition, attempts)
}

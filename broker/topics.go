package broker

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/tiercel/tiercel/broker/storage"
	"github.com/tiercel/tiercel/internal/config"
	"github.com/tiercel/tiercel/tiering"
)

var (
	errInvalidTopic       = errors.New("invalid topic")
	errTopicExists        = errors.New("topic already exists")
	errUnknownTopic       = errors.New("unknown topic")
	errInvalidPartitions  = errors.New("invalid partitions")
	errInvalidReplication = errors.New("invalid replication factor")
)

// maxPartitions bounds one CreateTopics/CreatePartitions so a request
// cannot make the broker create millions of directories.
const maxPartitions = 10000

// validTopicName applies Kafka's rules.
func validTopicName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: the topic name is empty", errInvalidTopic)
	case name == "." || name == "..":
		return fmt.Errorf("%w: topic name cannot be %q", errInvalidTopic, name)
	case len(name) > 249:
		return fmt.Errorf("%w: topic name is %d characters; the limit is 249", errInvalidTopic, len(name))
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%w: topic name %q contains %q; legal characters are ASCII letters, digits, '.', '_' and '-'", errInvalidTopic, name, c)
		}
	}
	return nil
}

// loadTopics matches the catalog with the logs found on disk, creating any
// partition log the catalog has and the disk lacks.
func (b *Broker) loadTopics() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	manifests, err := b.loadManifests(ctx)
	if err != nil {
		return err
	}
	for _, m := range b.cat.Topics {
		id, err := parseUUID(m.ID)
		if err != nil {
			return err
		}
		t := &topic{meta: m, id: id}
		for p := int32(0); p < m.Partitions; p++ {
			tp := storage.TopicPartition{Topic: m.Name, Partition: p}
			var man *tiering.Manifest
			if ms := manifests[m.Name]; ms != nil {
				man = &ms[p]
			}
			l, err := b.openPartition(tp, id, m, man)
			if err != nil {
				return err
			}
			t.logs = append(t.logs, l)
			if man != nil {
				b.tierPartition(m, p, l, *man)
			}
		}
		b.topics[m.Name] = t
		b.byID[id] = t
	}
	// Logs with no topic in the catalog belong to a topic whose deletion
	// was interrupted: finish it.
	for _, l := range b.mgr.Logs() {
		tp := l.TopicPartition()
		if t := b.topics[tp.Topic]; t == nil || tp.Partition >= t.meta.Partitions {
			b.logger.Warn("removing a partition the catalog does not know", "topic", tp.Topic, "partition", tp.Partition)
			if err := b.mgr.Delete(tp); err != nil {
				return err
			}
		}
	}
	b.pidNext, b.pidEnd = b.cat.NextProducerID, b.cat.NextProducerID
	return nil
}

// openPartition returns a partition's local log, creating it if the disk
// lacks it (or holds a stale copy): empty, or, when the bucket holds its
// earlier offsets (a new or wiped disk), starting where the tiered log ends.
func (b *Broker) openPartition(tp storage.TopicPartition, id [16]byte, m *topicMeta, man *tiering.Manifest) (*storage.Log, error) {
	l := b.mgr.Get(tp)
	if l != nil && man != nil && l.EndOffset() < man.End() {
		// The bucket holds offsets the local log has not reached: the disk
		// is an older copy (restored from a backup, or it lost writes).
		// Appending to it would give new records offsets the bucket already
		// has; everything it holds is in the bucket, so start again there.
		b.logger.Warn("the local log is behind the object store: discarding the stale local copy",
			"topic", tp.Topic, "partition", tp.Partition, "local_end", l.EndOffset(), "tiered_end", man.End())
		if err := b.mgr.Delete(tp); err != nil {
			return nil, err
		}
		l = nil
	}
	if l == nil {
		var start int64
		if man != nil {
			start = man.End()
		}
		var err error
		if l, err = b.mgr.CreateAt(tp, id, b.storageConfig(m.Configs), start); err != nil {
			return nil, err
		}
		if start > 0 {
			if err := b.restoreProducers(l, man); err != nil {
				return nil, fmt.Errorf("producer state of %s-%d from the object store: %w", tp.Topic, tp.Partition, err)
			}
			b.logger.Warn("partition has no local data: serving its tiered offsets from the object store; records after them that were not tiered are lost on a single node",
				"topic", tp.Topic, "partition", tp.Partition, "tiered_start", man.LogStart, "tiered_end", start)
		}
	}
	if man != nil && l.StartOffset() < man.LogStart {
		// The remote log start moved (retention, DeleteRecords) and a crash
		// came before the local log followed.
		if _, err := l.DeleteRecordsBefore(min(man.LogStart, l.HighWatermark())); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// getTopic returns a topic by name.
func (b *Broker) getTopic(name string) *topic {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.topics[name]
}

func (b *Broker) getTopicByID(id [16]byte) *topic {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.byID[id]
}

// topicLog returns a partition's topic and log, or nils.
func (b *Broker) topicLog(name string, partition int32) (*topic, *storage.Log) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	t := b.topics[name]
	if t == nil || partition < 0 || int(partition) >= len(t.logs) {
		return nil, nil
	}
	return t, t.logs[partition]
}

// partitionLog returns the log of a partition, or nil.
func (b *Broker) partitionLog(name string, partition int32) *storage.Log {
	_, l := b.topicLog(name, partition)
	return l
}

func (b *Broker) topicNames() []string {
	b.mu.RLock()
	defer b.mu.RUnlock()
	names := make([]string, 0, len(b.topics))
	for n := range b.topics {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// createTopic validates and, unless validateOnly, creates a topic: the
// catalog is persisted first, then the logs, so a crash in between is
// repaired by loadTopics on the next start.
func (b *Broker) createTopic(name string, partitions int32, replication int16, configs map[string]string, validateOnly bool) (*topic, error) {
	if err := validTopicName(name); err != nil {
		return nil, err
	}
	if partitions == -1 {
		partitions = int32(b.cfg.Int64("num.partitions"))
	}
	if partitions <= 0 || partitions > maxPartitions {
		return nil, fmt.Errorf("%w: number of partitions must be from 1 to %d, not %d", errInvalidPartitions, maxPartitions, partitions)
	}
	if replication != -1 && replication != 1 {
		return nil, fmt.Errorf("%w: replication factor %d is larger than the 1 available broker", errInvalidReplication, replication)
	}
	if err := config.ValidateTopic(configs); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.topics[name]; ok {
		return nil, fmt.Errorf("%w: topic %q already exists", errTopicExists, name)
	}
	if collides := b.collision(name); collides != "" {
		return nil, fmt.Errorf("%w: topic %q collides with existing topic %q ('.' and '_' are interchangeable in metric names)", errInvalidTopic, name, collides)
	}
	if validateOnly {
		return &topic{meta: &topicMeta{Name: name, Partitions: partitions, Configs: configs}}, nil
	}
	id := newUUID()
	meta := &topicMeta{Name: name, ID: uuidString(id), Partitions: partitions, Configs: configs}
	b.cat.Topics = append(b.cat.Topics, meta)
	if err := b.saveCatalog(); err != nil {
		b.cat.Topics = b.cat.Topics[:len(b.cat.Topics)-1]
		return nil, fmt.Errorf("%w: catalog: %v", storage.ErrStorage, err)
	}
	t := &topic{meta: meta, id: id}
	for p := int32(0); p < partitions; p++ {
		l, err := b.mgr.Create(storage.TopicPartition{Topic: name, Partition: p}, id, b.storageConfig(configs))
		if err != nil {
			return nil, err
		}
		t.logs = append(t.logs, l)
		if b.tiered(meta) {
			b.tierPartition(meta, p, l, tiering.EmptyManifest(meta.ID, p))
		}
	}
	b.topics[name] = t
	b.byID[id] = t
	return t, nil
}

func (b *Broker) collision(name string) string {
	norm := strings.ReplaceAll(name, ".", "_")
	for other := range b.topics {
		if strings.ReplaceAll(other, ".", "_") == norm {
			return other
		}
	}
	return ""
}

// deleteTopic removes a topic from the catalog, then its logs.
func (b *Broker) deleteTopic(t *topic) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.topics[t.meta.Name] != t {
		return fmt.Errorf("%w: %q", errUnknownTopic, t.meta.Name)
	}
	kept := b.cat.Topics[:0:0]
	for _, m := range b.cat.Topics {
		if m != t.meta {
			kept = append(kept, m)
		}
	}
	old := b.cat.Topics
	b.cat.Topics = kept
	if err := b.saveCatalog(); err != nil {
		b.cat.Topics = old
		return fmt.Errorf("%w: catalog: %v", storage.ErrStorage, err)
	}
	delete(b.topics, t.meta.Name)
	delete(b.byID, t.id)
	if b.tiered(t.meta) {
		b.deleteTieredTopic(t.meta)
	}
	for p := range t.logs {
		if err := b.mgr.Delete(storage.TopicPartition{Topic: t.meta.Name, Partition: int32(p)}); err != nil {
			b.logger.Warn("deleting a partition log", "topic", t.meta.Name, "partition", p, "err", err)
		}
	}
	return nil
}

// addPartitions grows a topic to count partitions.
func (b *Broker) addPartitions(name string, count int32, validateOnly bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	t := b.topics[name]
	if t == nil {
		return fmt.Errorf("%w: %q", errUnknownTopic, name)
	}
	if count <= t.meta.Partitions {
		return fmt.Errorf("%w: topic %q has %d partitions; the count can only grow", errInvalidPartitions, name, t.meta.Partitions)
	}
	if count > maxPartitions {
		return fmt.Errorf("%w: at most %d partitions", errInvalidPartitions, maxPartitions)
	}
	if validateOnly {
		return nil
	}
	old := t.meta.Partitions
	t.meta.Partitions = count
	if err := b.saveCatalog(); err != nil {
		t.meta.Partitions = old
		return fmt.Errorf("%w: catalog: %v", storage.ErrStorage, err)
	}
	for p := old; p < count; p++ {
		l, err := b.mgr.Create(storage.TopicPartition{Topic: name, Partition: p}, t.id, b.storageConfig(t.meta.Configs))
		if err != nil {
			return err
		}
		t.logs = append(t.logs, l)
		if b.tiered(t.meta) {
			b.tierPartition(t.meta, p, l, tiering.EmptyManifest(t.meta.ID, p))
		}
	}
	return nil
}

// setTopicConfigs replaces a topic's overrides and applies them to its logs.
func (b *Broker) setTopicConfigs(t *topic, configs map[string]string) error {
	if err := config.ValidateTopic(configs); err != nil {
		return err
	}
	wasTiered := b.tiered(t.meta)
	if wasTiered && !b.tieredConfigs(configs) {
		return fmt.Errorf("%w: remote.storage.enable cannot be turned off for topic %q once it is tiered (delete and recreate the topic)", config.ErrInvalid, t.meta.Name)
	}
	var manifests []tiering.Manifest
	if !wasTiered && b.tieredConfigs(configs) && t.meta.Name != offsetsTopic {
		// Turned on: the manifests are empty unless the topic was tiered by
		// an earlier broker; read them before the catalog changes.
		for p := range t.logs {
			m, err := b.tierer.LoadManifest(context.Background(), t.meta.ID, int32(p))
			if err != nil {
				return fmt.Errorf("%w: %v", storage.ErrStorage, err)
			}
			manifests = append(manifests, m)
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	old := t.meta.Configs
	t.meta.Configs = configs
	if err := b.saveCatalog(); err != nil {
		t.meta.Configs = old
		return fmt.Errorf("%w: catalog: %v", storage.ErrStorage, err)
	}
	for p, l := range t.logs {
		l.SetConfig(b.storageConfig(configs))
		if manifests != nil {
			b.tierPartition(t.meta, int32(p), l, manifests[p])
		} else if wasTiered {
			b.tierer.SetRetention(t.meta.ID, int32(p), b.retention(configs))
		}
	}
	return nil
}

// setBrokerConfigs replaces the dynamic broker configs, persisted.
func (b *Broker) setBrokerConfigs(values map[string]string) error {
	if err := b.cfg.SetDynamic(values); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.cat.BrokerConfigs = values
	if err := b.saveCatalog(); err != nil {
		return fmt.Errorf("%w: catalog: %v", storage.ErrStorage, err)
	}
	for _, t := range b.topics {
		for p, l := range t.logs {
			l.SetConfig(b.storageConfig(t.meta.Configs))
			if b.tiered(t.meta) {
				b.tierer.SetRetention(t.meta.ID, int32(p), b.retention(t.meta.Configs))
			}
		}
	}
	return nil
}

// producerIDBlock is how many producer ids one catalog write reserves, so
// ids are never reused after a crash without a write per InitProducerId.
const producerIDBlock = 1000

func (b *Broker) nextProducerID() (int64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pidNext >= b.pidEnd {
		b.cat.NextProducerID = b.pidEnd + producerIDBlock
		if err := b.saveCatalog(); err != nil {
			b.cat.NextProducerID = b.pidEnd
			return 0, err
		}
		b.pidEnd = b.cat.NextProducerID
	}
	id := b.pidNext
	b.pidNext++
	return id, nil
}

package broker

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/tiercel/tiercel/broker/storage"
	"github.com/tiercel/tiercel/internal/metalog"
	"github.com/tiercel/tiercel/tiering"
)

// topicMeta is the broker's copy of one topic's metadata. It is never
// changed in place: a change publishes a new *topic with a new topicMeta,
// so a request holding the old one reads a consistent (if older) view.
type topicMeta struct {
	Name       string
	ID         string // Kafka's Uuid text form
	Partitions int32
	Configs    map[string]string
	Leaders    []metalog.Leader // by partition
	Preferred  []int32          // preferred leader by partition
	Moves      map[int32]int32  // requested moves: partition -> target broker
	Replicas   [][]int32        // by partition, for a replicated topic (nil: one replica, the leader)
	ISR        [][]int32        // in-sync replicas by partition, for a replicated topic
	// Reassigning are the replica reassignments in progress, by partition
	// (replicated topics; Replicas holds target ∪ original meanwhile).
	Reassigning map[int32]metalog.Reassignment
	// PartitionEpochs are the replicated partitions' partition epochs
	// (metalog.Topic.PartitionEpochs).
	PartitionEpochs map[int32]int32
}

// replicated reports whether the topic has more than one replica per partition.
func (m *topicMeta) replicated() bool { return len(m.Replicas) > 0 }

// ReplicasOf is partition p's replicas: its leader alone for a topic that
// is not replicated.
func (m *topicMeta) ReplicasOf(p int32) []int32 {
	if m.replicated() {
		return m.Replicas[p]
	}
	if p < 0 || p >= m.Partitions {
		return nil
	}
	return []int32{m.Leaders[p].Broker}
}

// ISROf is partition p's in-sync replicas.
func (m *topicMeta) ISROf(p int32) []int32 {
	if m.replicated() {
		return m.ISR[p]
	}
	return m.ReplicasOf(p)
}

// followedHere reports whether this broker is a follower of partition p.
func (b *Broker) followedHere(m *topicMeta, p int32) bool {
	return m.replicated() && !b.ledHere(m, p) && slices.Contains(m.Replicas[p], b.nodeID)
}

func newTopicMeta(t *metalog.Topic) *topicMeta {
	m := &topicMeta{Name: t.Name, ID: t.ID, Partitions: t.Partitions(), Configs: cloneConfigs(t.Configs), Leaders: append([]metalog.Leader(nil), t.Leaders...)}
	for p := range t.Partitions() {
		m.Preferred = append(m.Preferred, t.PreferredLeader(p))
	}
	if len(t.Moves) > 0 {
		m.Moves = maps.Clone(t.Moves)
	}
	if len(t.Replicas) > 0 {
		for p := range t.Partitions() {
			m.Replicas = append(m.Replicas, slices.Clone(t.ReplicasOf(p)))
			m.ISR = append(m.ISR, slices.Clone(t.ISROf(p)))
		}
	}
	m.PartitionEpochs = maps.Clone(t.PartitionEpochs)
	m.Reassigning = metalog.CloneReassignments(t.Reassigning)
	return m
}

// ledHere reports whether this broker leads partition p.
func (b *Broker) ledHere(m *topicMeta, p int32) bool {
	return p >= 0 && p < m.Partitions && m.Leaders[p].Broker == b.nodeID
}

// partitionRef names one partition to open or start tiering.
type partitionRef struct {
	meta *topicMeta
	p    int32
	// manifest is needed: the partition is tiered and its manifest is not
	// known to be empty (the partition is not new).
	needManifest bool
	// fence: the partition has just become led here; its manifest is
	// stamped with the new epoch before the log opens (Tierer.Fence).
	fence bool
	man   *tiering.Manifest
	open  bool // open the local log (else only start tiering it)
}

// reconcile makes the broker's topics and partition logs match the applied
// metadata state. The caller holds meta.mu, so reconciles run one at a time
// and in log order. Partitions created by entries applied since the last
// reconcile are new: their manifests are empty without asking the bucket.
// At start-up (startup) nothing is known to be new, and every tiered
// partition's manifest is read.
func (b *Broker) reconcile(ctx context.Context, startup bool) error {
	st := b.meta.log.Peek()
	b.mu.RLock()
	var refs []*partitionRef
	for name, mt := range st.Topics {
		m := newTopicMeta(mt)
		old := b.topics[name]
		if old != nil && old.meta.ID != m.ID {
			old = nil // recreated under the same name
		}
		known := int32(-1)
		if !startup {
			known = b.known[m.ID]
		}
		for p := int32(0); p < m.Partitions; p++ {
			if !b.ledHere(m, p) {
				continue
			}
			hasLog := old != nil && p < int32(len(old.logs)) && old.logs[p] != nil
			tieringOn := b.tiered(m) && (old == nil || !b.tiered(old.meta) || !hasLog)
			if hasLog && !tieringOn {
				continue
			}
			isNew := known >= 0 && p >= known
			refs = append(refs, &partitionRef{meta: m, p: p, open: !hasLog, needManifest: b.tiered(m) && !isNew, fence: !startup && !isNew})
		}
	}
	b.mu.RUnlock()

	// A manifest that cannot be read leaves its partition closed (opening
	// it without would restart its offsets at 0); the rest goes ahead and
	// the next poll retries.
	firstErr := b.loadManifests(ctx, refs)

	if b.coord != nil {
		defer func() { go b.coord.refresh() }() // after b.mu is released
	}
	defer b.syncFetchers() // after b.mu is released
	b.mu.Lock()
	defer b.mu.Unlock()
	brokerConfigsChanged := !maps.Equal(st.BrokerConfigs, b.cfg.Dynamic())
	if brokerConfigsChanged {
		if err := b.cfg.SetDynamic(st.BrokerConfigs); err != nil {
			b.logger.Warn("ignoring dynamic broker configs this broker does not accept", "err", err)
		}
	}
	for name, t := range b.topics {
		if mt := st.Topics[name]; mt == nil || mt.ID != t.meta.ID {
			b.dropTopic(t)
		}
	}
	byTopic := map[string][]*partitionRef{}
	for _, r := range refs {
		byTopic[r.meta.Name] = append(byTopic[r.meta.Name], r)
	}
	known := make(map[string]int32, len(st.Topics))
	for name, mt := range st.Topics {
		known[mt.ID] = mt.Partitions()
		if err := b.reconcileTopic(name, mt, byTopic[name]); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	b.known = known
	if brokerConfigsChanged {
		b.applyBrokerConfigs()
	}
	if b.paused() {
		b.kickMover() // park what is led here, new partitions included
	}
	b.meta.dirty = firstErr != nil
	return firstErr
}

// reconcileTopic publishes topic name's new metadata and opens the
// partitions refs names; the caller holds b.mu.
func (b *Broker) reconcileTopic(name string, mt *metalog.Topic, refs []*partitionRef) error {
	old := b.topics[name]
	if old != nil && len(refs) == 0 && old.meta.Partitions == mt.Partitions() &&
		maps.Equal(old.meta.Configs, mt.Configs) && slices.Equal(old.meta.Leaders, mt.Leaders) && maps.Equal(old.meta.Moves, mt.Moves) &&
		equalLists(old.meta.Replicas, mt.Replicas) && equalLists(old.meta.ISR, mt.ISR) && sameReassignments(old.meta.Reassigning, mt.Reassigning) &&
		maps.Equal(old.meta.PartitionEpochs, mt.PartitionEpochs) {
		return nil
	}
	m := newTopicMeta(mt)
	id, err := parseUUID(m.ID)
	if err != nil {
		return err
	}
	t := &topic{meta: m, id: id, logs: make([]*storage.Log, m.Partitions)}
	if old != nil {
		copy(t.logs, old.logs)
	}
	for p, l := range t.logs {
		if l != nil && !b.ledHere(m, int32(p)) {
			// Led elsewhere now: the log stays on disk but is not served,
			// and the new leader alone writes its manifest.
			t.logs[p] = nil
			if b.tiered(m) {
				b.tierer.Remove(m.ID, int32(p))
			}
		}
	}
	configsChanged := old == nil || !maps.Equal(old.meta.Configs, m.Configs)
	firstErr := b.reconcileFollowers(t, old)
	for _, r := range refs {
		r.meta = m
		if b.tiered(m) && r.man == nil {
			continue // its manifest could not be read
		}
		if r.open {
			tp := storage.TopicPartition{Topic: name, Partition: r.p}
			l, err := b.openPartition(tp, id, m, r.man, r.fence)
			if err != nil {
				if firstErr == nil {
					firstErr = fmt.Errorf("opening %s-%d: %w", name, r.p, err)
				}
				continue
			}
			t.logs[r.p] = l
		}
		if b.tiered(m) && r.man != nil {
			b.tierPartition(m, r.p, t.logs[r.p], *r.man)
		}
	}
	for p, l := range t.logs {
		switch {
		case l != nil && m.replicated():
			b.leadReplicated(m, int32(p), l)
		case old != nil && old.meta.replicated():
			b.stopLeading(name, int32(p))
		}
	}
	if old != nil && configsChanged {
		for _, l := range t.followers {
			if l != nil {
				l.SetConfig(b.storageConfig(m.Configs))
			}
		}
		for p, l := range t.logs {
			if l == nil {
				continue
			}
			l.SetConfig(b.storageConfig(m.Configs))
			if b.tiered(m) {
				b.tierer.SetRetention(m.ID, int32(p), b.retention(m.Configs))
			}
		}
	}
	b.topics[name] = t
	b.byID[id] = t
	for p := range m.Moves {
		if b.ledHere(m, p) {
			b.kickMover()
			break
		}
	}
	return firstErr
}

// reconcileFollowers opens the logs of the partitions t's new metadata has
// this broker follow (they keep what is on disk: the fetcher truncates
// what diverges); the caller holds b.mu.
func (b *Broker) reconcileFollowers(t *topic, old *topic) error {
	m := t.meta
	if !m.replicated() {
		return nil
	}
	t.followers = make([]*storage.Log, m.Partitions)
	if old != nil && old.meta.ID == m.ID {
		copy(t.followers, old.followers)
	}
	var firstErr error
	for p := range m.Partitions {
		if !b.followedHere(m, p) {
			if !slices.Contains(m.Replicas[p], b.nodeID) {
				// Reassigned away, maybe while this broker was down: a copy
				// left on disk is garbage.
				if l := b.mgr.Get(storage.TopicPartition{Topic: m.Name, Partition: p}); l != nil {
					b.deleteCopy(m, p, l)
				}
			}
			t.followers[p] = nil // led here (the log moves to t.logs) or not a replica
			continue
		}
		if t.followers[p] != nil {
			continue
		}
		tp := storage.TopicPartition{Topic: m.Name, Partition: p}
		l := b.mgr.Get(tp)
		if l == nil {
			var err error
			if l, err = b.mgr.CreateAt(tp, t.id, b.storageConfig(m.Configs), 0); err != nil {
				if firstErr == nil {
					firstErr = fmt.Errorf("opening the follower copy of %s-%d: %w", m.Name, p, err)
				}
				continue
			}
		}
		if !l.Replicated() {
			// Reopened after a restart: nothing is known committed until the
			// leader says so.
			l.SetReplicaHighWatermark(l.StartOffset())
		}
		t.followers[p] = l
	}
	return firstErr
}

// deleteCopy deletes partition p's local log l once this broker is no
// longer one of its replicas (reassigned away, or a cancelled addition),
// as Kafka's StopReplica with delete does; the caller holds b.mu.
func (b *Broker) deleteCopy(m *topicMeta, p int32, l *storage.Log) {
	if err := b.mgr.Delete(l.TopicPartition()); err != nil {
		b.logger.Warn("deleting the copy of a partition no longer a replica here", "topic", m.Name, "partition", p, "err", err)
		return
	}
	b.logger.Info("deleted the copy of a partition this broker is no longer a replica of", "topic", m.Name, "partition", p)
}

func sameReassignments(a, b map[int32]metalog.Reassignment) bool {
	return maps.EqualFunc(a, b, func(x, y metalog.Reassignment) bool {
		return slices.Equal(x.Target, y.Target) && slices.Equal(x.Original, y.Original)
	})
}

func equalLists(a, b [][]int32) bool {
	return slices.EqualFunc(a, b, func(x, y []int32) bool { return slices.Equal(x, y) })
}

// applyBrokerConfigs re-resolves every log's settings after the dynamic
// broker configs changed; the caller holds b.mu.
func (b *Broker) applyBrokerConfigs() {
	for _, t := range b.topics {
		for p, l := range t.logs {
			if l == nil {
				continue
			}
			l.SetConfig(b.storageConfig(t.meta.Configs))
			if b.tiered(t.meta) {
				b.tierer.SetRetention(t.meta.ID, int32(p), b.retention(t.meta.Configs))
			}
		}
	}
}

// dropTopic removes a deleted topic's local logs and stops tiering it; the
// caller holds b.mu. Its objects in the bucket are deleted by the broker
// that deleted it (deleteTopicObjects), or by garbage collection.
func (b *Broker) dropTopic(t *topic) {
	delete(b.topics, t.meta.Name)
	delete(b.byID, t.id)
	for p, l := range t.logs {
		if l == nil {
			continue
		}
		if b.tiered(t.meta) {
			b.tierer.Remove(t.meta.ID, int32(p))
		}
		b.stopLeading(t.meta.Name, int32(p))
		if err := b.mgr.Delete(storage.TopicPartition{Topic: t.meta.Name, Partition: int32(p)}); err != nil {
			b.logger.Warn("deleting a partition log", "topic", t.meta.Name, "partition", p, "err", err)
		}
	}
	for p, l := range t.followers {
		if l == nil {
			continue
		}
		if err := b.mgr.Delete(storage.TopicPartition{Topic: t.meta.Name, Partition: int32(p)}); err != nil {
			b.logger.Warn("deleting a follower's partition log", "topic", t.meta.Name, "partition", p, "err", err)
		}
	}
}

// loadManifests reads the manifests refs need, a few at a time; a
// partition whose manifest is known to be empty gets an empty one.
func (b *Broker) loadManifests(ctx context.Context, refs []*partitionRef) error {
	var mu sync.Mutex
	var firstErr error
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	for _, r := range refs {
		if !b.tiered(r.meta) {
			continue
		}
		if !r.needManifest {
			man := tiering.EmptyManifest(r.meta.ID, r.p)
			r.man = &man
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			load := b.tierer.LoadManifest
			if r.fence {
				epoch := r.meta.Leaders[r.p].Epoch
				load = func(ctx context.Context, id string, p int32) (tiering.Manifest, error) {
					return b.tierer.Fence(ctx, id, p, epoch)
				}
			}
			man, err := load(ctx, r.meta.ID, r.p)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = fmt.Errorf("manifest of %s-%d: %w", r.meta.Name, r.p, err)
				}
				return
			}
			r.man = &man
		}()
	}
	wg.Wait()
	return firstErr
}

package broker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/tiercel/tiercel/broker/storage"
	"github.com/tiercel/tiercel/internal/config"
	"github.com/tiercel/tiercel/internal/metalog"
	"github.com/tiercel/tiercel/tiering"
)

var (
	errInvalidTopic       = errors.New("invalid topic")
	errTopicExists        = errors.New("topic already exists")
	errUnknownTopic       = errors.New("unknown topic")
	errInvalidPartitions  = errors.New("invalid partitions")
	errInvalidReplication = errors.New("invalid replication factor")
	errInvalidAssignment  = errors.New("invalid replica assignment")
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

// loadTopics opens the partitions the metadata gives this broker, then
// removes logs on disk of topics that no longer exist (a deletion a crash
// interrupted).
func (b *Broker) loadTopics() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	b.meta.mu.Lock()
	defer b.meta.mu.Unlock()
	// Registered before leading anything: a takeover of an earlier
	// incarnation (its lease revoked) whose entry lands after this one is
	// skipped (metalog.SetLeader.ExpectIncarnation). After a crash (or on
	// a new disk) the registration also takes this broker out of the ISRs
	// it shares, moving what it led to in-sync replicas: its copies may
	// lack records it had acknowledged holding.
	reg := metalog.Op{RegisterBroker: &metalog.RegisterBroker{ID: b.nodeID, Incarnation: b.incarnation,
		Rack: b.cfg.Get("broker.rack"), Region: b.cfg.Get("tiercel.region"), Unclean: !b.mgr.CleanStart()}}
	seq, _, err := b.meta.log.Append(ctx, []metalog.Op{reg})
	if err != nil {
		return fmt.Errorf("registering broker %d in the metadata log: %w", b.nodeID, err)
	}
	b.brokerEpoch.Store(seq) // what its follower fetches carry (KIP-903)
	if err := b.reconcile(ctx, true); err != nil {
		return err
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	for _, l := range b.mgr.Logs() {
		tp := l.TopicPartition()
		if t := b.topics[tp.Topic]; t == nil || tp.Partition >= t.meta.Partitions {
			b.logger.Warn("removing a partition the metadata does not know", "topic", tp.Topic, "partition", tp.Partition)
			if err := b.mgr.Delete(tp); err != nil {
				return err
			}
		}
	}
	return nil
}

// openPartition returns a partition's local log, creating it if the disk
// lacks it (or holds a stale copy): empty, or, when the bucket holds its
// earlier offsets (a new or wiped disk), starting where the tiered log ends.
func (b *Broker) openPartition(tp storage.TopicPartition, id [16]byte, m *topicMeta, man *tiering.Manifest, moved bool) (*storage.Log, error) {
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
			if moved {
				// Handed over or adopted: the bucket is all there is (an
				// unclean takeover logs its loss itself).
				b.logger.Debug("partition moved here: serving it from the object store's end", "topic", tp.Topic, "partition", tp.Partition, "offset", start)
			} else {
				b.logger.Warn("partition has no local data: serving its tiered offsets from the object store; records after them that were not tiered are lost on a single node",
					"topic", tp.Topic, "partition", tp.Partition, "tiered_start", man.LogStart, "tiered_end", start)
			}
		}
	}
	if man != nil && l.StartOffset() < man.LogStart {
		// The remote log start moved (retention, DeleteRecords) and a crash
		// came before the local log followed.
		if _, err := l.DeleteRecordsBefore(min(man.LogStart, l.HighWatermark())); err != nil {
			return nil, err
		}
	}
	l.Unseal() // sealed if an earlier handoff moved it away from here
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

// leaderLog returns a partition's topic and log if this broker leads it,
// else the Kafka error: UNKNOWN_TOPIC_OR_PARTITION, NOT_LEADER_OR_FOLLOWER,
// or an epoch error for a request that names another current epoch (-1:
// none named).
func (b *Broker) leaderLog(name string, partition, currentEpoch int32) (*topic, *storage.Log, int16) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	t := b.topics[name]
	if t == nil || partition < 0 || partition >= t.meta.Partitions {
		return nil, nil, kerr.UnknownTopicOrPartition.Code
	}
	if code := epochError(currentEpoch, t.meta.Leaders[partition].Epoch); code != 0 {
		return nil, nil, code
	}
	if t.logs[partition] == nil {
		return nil, nil, kerr.NotLeaderForPartition.Code
	}
	return t, t.logs[partition], 0
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
// metadata log first, then the logs (reconcile), so a crash in between is
// repaired on the next start. Replicas are placed (placeReplicas) unless
// assignment gives them, each list leader first.
func (b *Broker) createTopic(name string, partitions int32, replication int16, assignment [][]int32, configs map[string]string, validateOnly bool) (*topic, error) {
	if err := validTopicName(name); err != nil {
		return nil, err
	}
	if partitions == -1 {
		partitions = int32(b.cfg.Int64("num.partitions"))
	}
	if replication == -1 {
		replication = int16(min(b.cfg.Int64("default.replication.factor"), 1<<15-1))
	}
	if partitions <= 0 || partitions > maxPartitions {
		return nil, fmt.Errorf("%w: number of partitions must be from 1 to %d, not %d", errInvalidPartitions, maxPartitions, partitions)
	}
	if replication < 1 {
		return nil, fmt.Errorf("%w: replication factor must be at least 1, not %d", errInvalidReplication, replication)
	}
	if name == offsetsTopic && replication != 1 {
		return nil, fmt.Errorf("%w: %s has one replica in Tiercel (it moves through the bucket instead)", errInvalidReplication, offsetsTopic)
	}
	if err := config.ValidateTopic(configs); err != nil {
		return nil, err
	}
	if err := b.checkAssignment(assignment); err != nil {
		return nil, err
	}
	b.meta.mu.Lock()
	defer b.meta.mu.Unlock()
	if err := b.checkNewTopicName(name); err != nil {
		return nil, err
	}
	op := metalog.CreateTopic{Name: name, ID: newUUIDString(), Configs: configs}
	switch {
	case assignment != nil && len(assignment[0]) > 1:
		op.Replicas = assignment
	case assignment != nil:
		for _, rs := range assignment {
			op.Leaders = append(op.Leaders, rs[0])
		}
	case replication > 1:
		rs, err := b.placeReplicas(partitions, int(replication))
		if err != nil {
			return nil, err
		}
		op.Replicas = rs
	default:
		op.Leaders = b.placeLeaders(partitions)
	}
	for _, rs := range op.Replicas {
		op.Leaders = append(op.Leaders, rs[0])
	}
	if validateOnly {
		return &topic{meta: &topicMeta{Name: name, Partitions: int32(len(op.Leaders)), Configs: configs, Replicas: op.Replicas}}, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done, err := b.appendMeta(ctx, metalog.Op{CreateTopic: &op})
	if err != nil {
		return nil, metaError(err)
	}
	if !done[0] {
		return nil, fmt.Errorf("%w: topic %q already exists", errTopicExists, name)
	}
	t := b.getTopic(name)
	if t == nil {
		return nil, fmt.Errorf("%w: topic %q was created but its logs could not be opened", storage.ErrStorage, name)
	}
	return t, nil
}

// checkAssignment checks a CreateTopics replica assignment: lists of one
// length, of live brokers, none twice.
func (b *Broker) checkAssignment(assignment [][]int32) error {
	if assignment == nil {
		return nil
	}
	live := b.liveBrokerIDs()
	for p, rs := range assignment {
		if len(rs) == 0 || len(rs) != len(assignment[0]) {
			return fmt.Errorf("%w: partition %d has %d replicas; every partition needs %d", errInvalidAssignment, p, len(rs), len(assignment[0]))
		}
		if problem := replicaListProblem(rs, live); problem != "" {
			return fmt.Errorf("%w: partition %d: %s", errInvalidAssignment, p, problem)
		}
	}
	return nil
}

// replicaListProblem says what is wrong with a partition's replica list,
// or "": it names live brokers, each once (CreateTopics assignments,
// reassignments).
func replicaListProblem(rs []int32, live map[int32]bool) string {
	if len(rs) == 0 {
		return "no replicas"
	}
	for i, r := range rs {
		if !live[r] {
			return fmt.Sprintf("broker %d is not live", r)
		}
		if slices.Contains(rs[:i], r) {
			return fmt.Sprintf("broker %d appears twice", r)
		}
	}
	return ""
}

func (b *Broker) checkNewTopicName(name string) error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if _, ok := b.topics[name]; ok {
		return fmt.Errorf("%w: topic %q already exists", errTopicExists, name)
	}
	if collides := b.collision(name); collides != "" {
		return fmt.Errorf("%w: topic %q collides with existing topic %q ('.' and '_' are interchangeable in metric names)", errInvalidTopic, name, collides)
	}
	return nil
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

// deleteTopic removes a topic from the metadata, then its logs
// (reconcile) and its objects in the bucket.
func (b *Broker) deleteTopic(t *topic) error {
	done, err := b.commitMeta(metalog.Op{DeleteTopic: &metalog.DeleteTopic{Name: t.meta.Name, ID: t.meta.ID}})
	if err != nil {
		return metaError(err)
	}
	if !done[0] {
		return fmt.Errorf("%w: %q", errUnknownTopic, t.meta.Name)
	}
	if b.tiered(t.meta) {
		b.deleteTopicObjects(t.meta)
	}
	return nil
}

// addPartitions grows a topic to count partitions.
func (b *Broker) addPartitions(name string, count int32, validateOnly bool) error {
	b.meta.mu.Lock()
	defer b.meta.mu.Unlock()
	t := b.getTopic(name)
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
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	op := metalog.AddPartitions{Name: name, ID: t.meta.ID, From: t.meta.Partitions}
	if rf := len(t.meta.ReplicasOf(0)); t.meta.replicated() {
		rs, err := b.placeReplicas(count-t.meta.Partitions, rf)
		if err != nil {
			return err
		}
		op.Replicas = rs
		for _, r := range rs {
			op.Leaders = append(op.Leaders, r[0])
		}
	} else {
		op.Leaders = b.placeLeaders(count - t.meta.Partitions)
	}
	done, err := b.appendMeta(ctx, metalog.Op{AddPartitions: &op})
	if err != nil {
		if errors.Is(err, metalog.ErrStale) {
			return fmt.Errorf("%w: topic %q changed its partition count meanwhile; retry", errInvalidPartitions, name)
		}
		return metaError(err)
	}
	if !done[0] {
		return fmt.Errorf("%w: topic %q changed meanwhile; retry", errInvalidPartitions, name)
	}
	return nil
}

// setTopicConfigs replaces a topic's overrides; reconcile applies them.
func (b *Broker) setTopicConfigs(t *topic, configs map[string]string) error {
	if err := config.ValidateTopic(configs); err != nil {
		return err
	}
	if b.tiered(t.meta) && !b.tieredConfigs(configs) {
		return fmt.Errorf("%w: remote.storage.enable cannot be turned off for topic %q once it is tiered (delete and recreate the topic)", config.ErrInvalid, t.meta.Name)
	}
	done, err := b.commitMeta(metalog.Op{SetTopicConfigs: &metalog.SetTopicConfigs{Name: t.meta.Name, ID: t.meta.ID, Configs: configs}})
	if err != nil {
		return metaError(err)
	}
	if !done[0] {
		return fmt.Errorf("%w: %q", errUnknownTopic, t.meta.Name)
	}
	return nil
}

// setBrokerConfigs replaces the dynamic broker configs, cluster-wide.
func (b *Broker) setBrokerConfigs(values map[string]string) error {
	if err := config.ValidateDynamic(values); err != nil {
		return err
	}
	if _, err := b.commitMeta(metalog.Op{SetBrokerConfigs: &metalog.SetBrokerConfigs{Configs: values}}); err != nil {
		return metaError(err)
	}
	return nil
}

// producerIDBlock is how many producer ids one metadata entry reserves
// for this broker, so ids are never reused after a crash or by two brokers
// without an entry per InitProducerId.
const producerIDBlock = 1000

func (b *Broker) nextProducerID() (int64, error) {
	b.pidMu.Lock()
	defer b.pidMu.Unlock()
	if b.pidNext >= b.pidEnd {
		b.meta.mu.Lock()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		_, err := b.appendMeta(ctx, metalog.Op{AllocateProducerIDs: &metalog.AllocateProducerIDs{Count: producerIDBlock}})
		start := b.meta.log.Peek().ProducerBlocks[b.nodeID]
		cancel()
		b.meta.mu.Unlock()
		if err != nil {
			return 0, metaError(err)
		}
		b.pidNext, b.pidEnd = start, start+producerIDBlock
	}
	id := b.pidNext
	b.pidNext++
	return id, nil
}

// Package broker is the Kafka listener: connections, request framing and
// dispatch, one file per Kafka API, and the topics with their logs.
//
// Lock order: Broker.mu (topics and catalog) before storage's locks.
// Connections own their own state; the waiter registry and the fetch
// session cache each have one mutex taken alone.
package broker

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/metric"

	"github.com/tiercel/tiercel/broker/storage"
	"github.com/tiercel/tiercel/gossip"
	"github.com/tiercel/tiercel/internal/config"
	"github.com/tiercel/tiercel/internal/telemetry"
	"github.com/tiercel/tiercel/internal/vfs"
	"github.com/tiercel/tiercel/objstore"
	"github.com/tiercel/tiercel/tiering"
)

// Options wire a broker.
type Options struct {
	Config  *config.Broker // listeners, log.dirs, node.id, every broker config
	FS      vfs.FS         // nil = the OS filesystem
	Logger  *slog.Logger   // nil = discard
	Metrics *telemetry.BrokerMetrics
	// Bucket is the object store; nil opens tiercel.objstore.url, or the
	// embedded filesystem store under the data directory.
	Bucket objstore.Bucket
	// ObjstoreMeter, if set, records object-store requests by operation.
	ObjstoreMeter metric.Meter
	// Knobs hold requests and handoffs at chosen points in tests; nil in
	// production.
	Knobs *Knobs
}

// Broker is one running Kafka-compatible broker.
type Broker struct {
	cfg     *config.Broker
	knobs   *Knobs
	fs      vfs.FS
	logger  *slog.Logger
	metrics *telemetry.BrokerMetrics
	dir     string
	nodeID  int32

	mgr      *storage.Manager
	waiters  *waiters
	sessions *fetchSessions
	coord    *coordinator

	bucket      objstore.Bucket
	tierer      *tiering.Tierer
	remote      *tiering.Reader
	views       *tiering.ManifestViews // manifests of partitions followed here, for their tiered reads
	remoteSlots chan struct{}          // tokens of the remote read pool
	bg          sync.WaitGroup         // background deletions of tiered topics

	meta        *clusterMeta
	brokerEpoch atomic.Int64 // the entry that registered this process (metalog.State.BrokerEpochs)
	clusterID   string
	gossip      *gossip.Node // nil: a cluster of one
	lease       *leaseKeeper
	leaseWatch  leaseWatch
	unlockDir   func()
	incarnation string // this process's start, told to the other brokers
	// previousIncarnation is the last process's on this data directory
	// (tiercel-incarnation), "" on a new disk.
	previousIncarnation string

	mu     sync.RWMutex // guards topics, byID and known
	topics map[string]*topic
	byID   map[[16]byte]*topic
	known  map[string]int32 // topic id -> partition count as last reconciled

	pidMu   sync.Mutex // guards pidNext and pidEnd; taken before meta.mu
	pidNext int64      // next producer id to hand out
	pidEnd  int64      // end of the block reserved in the metadata log

	produceGate sync.RWMutex // read-held by every produce's appends; see handOff
	handoffMu   sync.Mutex   // one handOffPartitions at a time
	movingOut   atomic.Bool  // shutting down with a handoff: produces get NOT_LEADER_OR_FOLLOWER
	repl        replication  // replicated partitions: leader states and follower fetchers
	moving      sync.Map     // partitionKey -> true: being handed over, produces refused
	moverKick   chan struct{}
	joined      chan struct{} // gossip saw a membership change: balance leaders
	justJoined  atomic.Bool
	// parkedOrphansSince is when the lowest live broker first saw parked
	// partitions whose preferred leader is not live (adoptParked's
	// goroutine owns it).
	parkedOrphansSince time.Time

	ln       net.Listener
	addr     string
	ready    atomic.Bool
	draining atomic.Bool
	// drainUntil (unix nanoseconds, set before draining) ends the grace
	// in which open connections still read requests (drainGrace).
	drainUntil atomic.Int64
	connsWG    sync.WaitGroup
	connsMu    sync.Mutex
	conns      map[net.Conn]struct{}
	stop       chan struct{} // closed by Shutdown: background loops end
	shutOnce   sync.Once
	shutErr    error
}

// topic is one topic and the logs of its partitions.
type topic struct {
	meta *topicMeta
	id   [16]byte
	logs []*storage.Log // by partition: the logs led here
	// followers by partition: the logs this broker follows (a replicated
	// topic), copied from their leaders by the fetchers.
	followers []*storage.Log
}

// New opens (and recovers) the data directory; it does not listen yet.
func New(opts Options) (*Broker, error) {
	if opts.Config == nil {
		return nil, fmt.Errorf("broker: no configuration")
	}
	if opts.FS == nil {
		opts.FS = vfs.Default
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	cfg := opts.Config
	b := &Broker{
		cfg: cfg, knobs: opts.Knobs, fs: opts.FS, logger: opts.Logger, metrics: opts.Metrics,
		dir: cfg.Get("log.dirs"), nodeID: int32(cfg.Int64("node.id")),
		repl: replication{epoch: time.Now()}, topics: map[string]*topic{}, byID: map[[16]byte]*topic{}, conns: map[net.Conn]struct{}{},
		waiters: newWaiters(), stop: make(chan struct{}), incarnation: newUUIDString(), moverKick: make(chan struct{}, 1), joined: make(chan struct{}, 1),
	}
	b.sessions = newFetchSessions(int(cfg.Int64("max.incremental.fetch.session.cache.slots")), time.Duration(cfg.Int64("min.incremental.fetch.session.eviction.ms"))*time.Millisecond)
	if maxID := cfg.Int64("reserved.broker.max.id"); int64(b.nodeID) > maxID {
		return nil, fmt.Errorf("node.id %d is above reserved.broker.max.id %d, where allocated ids live: configure a smaller id, or node.id=-1 to have one allocated", b.nodeID, maxID)
	}
	if err := b.fs.MkdirAll(b.dir, 0o755); err != nil {
		return nil, fmt.Errorf("data directory %s: %w", b.dir, err)
	}
	unlock, err := vfs.LockDir(b.fs, b.dir)
	if err != nil {
		return nil, fmt.Errorf("data directory %s: %w (is another broker using it?)", b.dir, err)
	}
	b.unlockDir = unlock
	ok := false
	defer func() {
		if !ok {
			unlock()
		}
	}()
	bucket, err := openBucket(opts, b.dir)
	if err != nil {
		return nil, err
	}
	b.bucket = bucket
	if err := b.openMetadata(); err != nil {
		return nil, err
	}
	leaseCtx, cancelLease := context.WithTimeout(context.Background(), time.Minute+
		time.Duration(cfg.Int64("tiercel.lease.ttl.ms")+cfg.Int64("tiercel.lease.margin.ms"))*time.Millisecond)
	err = b.acquireLease(leaseCtx)
	cancelLease()
	if err != nil {
		return nil, err
	}
	st := b.meta.log.Peek()
	if err := b.cfg.SetDynamic(st.BrokerConfigs); err != nil {
		b.logger.Warn("ignoring stored dynamic broker configs", "err", err)
	}
	// The storage manager opens every log on disk at once, before
	// reconcile publishes topics: its config lookup reads the state as
	// opened (no other goroutine touches it yet).
	metas := map[string]map[string]string{}
	for name, t := range st.Topics {
		metas[name] = cloneConfigs(t.Configs)
	}
	mgr, err := storage.OpenManager(b.fs, b.dir, storage.ManagerOptions{
		Logger:                 b.logger,
		CheckpointInterval:     time.Duration(cfg.Int64("log.flush.offset.checkpoint.interval.ms")) * time.Millisecond,
		RetentionCheckInterval: time.Duration(cfg.Int64("log.retention.check.interval.ms")) * time.Millisecond,
		OnAdvance:              func(tp storage.TopicPartition, _ int64) { b.waiters.notify(tp) },
		TailCacheBytes:         cfg.Int64("tiercel.log.tail.cache.bytes"),
		DropBehindBytes:        cfg.Int64("tiercel.log.drop.behind.bytes"),
		OnFlush:                b.metrics.LogFlush,
		Configs: func(tp storage.TopicPartition) storage.Config {
			return b.storageConfig(metas[tp.Topic])
		},
	})
	if err != nil {
		return nil, err
	}
	b.mgr = mgr
	if err := b.startTiering(); err != nil {
		mgr.Close()
		return nil, err
	}
	if err := b.loadTopics(); err != nil {
		b.tierer.Close()
		mgr.Close()
		return nil, err
	}
	b.coord = newCoordinator(b)
	b.metrics.ObservePartitions(b.partitionStats)
	b.metrics.ObserveGroups(b.coord.stats)
	b.metrics.ObserveTiering(b.tieringStats)
	b.metrics.ObserveReplication(b.replicationStats)
	ok = true
	return b, nil
}

// Start begins listening and serving.
func (b *Broker) Start() error {
	addr, err := config.ParseListener(b.cfg.Get("listeners"))
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("kafka listener %s: %w", addr, err)
	}
	b.ln = ln
	b.addr = ln.Addr().String()
	if err := b.startGossip(); err != nil {
		ln.Close()
		return err
	}
	b.ready.Store(true)
	b.resumeAtStart()
	b.bg.Add(6)
	go func() { defer b.bg.Done(); b.watchISR(b.stop) }()
	go func() { defer b.bg.Done(); b.moveRequested(b.stop) }()
	go func() { defer b.bg.Done(); b.balanceLeaders(b.stop) }()
	go func() { defer b.bg.Done(); b.pollMetadata(b.stop) }()
	go func() { defer b.bg.Done(); b.renewLease(b.stop) }()
	go func() { defer b.bg.Done(); b.watchLeases(b.stop) }()
	go b.acceptLoop()
	return nil
}

func (b *Broker) acceptLoop() {
	for {
		nc, err := b.ln.Accept()
		if err != nil {
			if b.draining.Load() {
				return
			}
			b.logger.Warn("accept", "err", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if tc, ok := nc.(*net.TCPConn); ok {
			_ = tc.SetNoDelay(true)
		}
		b.connsMu.Lock()
		if b.draining.Load() {
			b.connsMu.Unlock()
			nc.Close()
			return
		}
		b.conns[nc] = struct{}{}
		b.connsWG.Add(1)
		b.connsMu.Unlock()
		go func() {
			defer b.connsWG.Done()
			b.serveConn(nc)
			b.connsMu.Lock()
			delete(b.conns, nc)
			b.connsMu.Unlock()
		}()
	}
}

// Addr is the bound Kafka listen address (host:port, port 0 resolved).
// NodeID is this broker's id (allocated at start when node.id is -1).
func (b *Broker) NodeID() int32 { return b.nodeID }

func (b *Broker) Addr() string { return b.addr }

// Ready reports whether the broker has recovered its logs and is serving.
func (b *Broker) Ready() bool { return b.ready.Load() && !b.draining.Load() }

// advertised returns the host and port clients are told to use.
func (b *Broker) advertised() (string, int32) {
	addr := b.addr
	if adv := b.cfg.Get("advertised.listeners"); adv != "" {
		if a, err := config.ParseListener(adv); err == nil {
			addr = a
		}
	}
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	return host, int32(p)
}

// drainGrace is how long a draining broker still reads requests on open
// connections. A client that connected just before the drain and is
// sending its first request (ApiVersions) gets an answer rather than an
// EOF, which kgo and others take for a TLS or SASL mismatch and do not
// retry; requests for partitions that moved are answered
// NOT_LEADER_OR_FOLLOWER and retried elsewhere.
const drainGrace = 250 * time.Millisecond

// Shutdown drains: stop accepting, read requests for drainGrace more,
// finish the ones in flight, then close the logs cleanly.
func (b *Broker) Shutdown(ctx context.Context) error {
	b.shutOnce.Do(func() {
		b.handOff(ctx)
		until := time.Now().Add(drainGrace)
		b.drainUntil.Store(until.UnixNano())
		b.draining.Store(true)
		// The listener closes first: leaving the gossip can take seconds,
		// and a connection accepted meanwhile would be closed unanswered
		// (acceptLoop), an EOF kgo does not retry. Refused, it is retried.
		if b.ln != nil {
			b.ln.Close()
		}
		b.connsMu.Lock()
		for nc := range b.conns {
			// Readers return once the grace ends; responses owed are written.
			_ = nc.SetReadDeadline(until)
		}
		b.connsMu.Unlock()
		if k := b.knob().GossipLeaving; k != nil {
			k()
		}
		b.leaveGossip()
		// Requests parked in the coordinator (a JoinGroup waiting for a
		// rebalance) are answered NOT_COORDINATOR so the drain is quick.
		b.coord.close()
		// Fetches parked until data arrives or their max wait answer now.
		b.waiters.closeAll()
		done := make(chan struct{})
		go func() { b.connsWG.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			b.connsMu.Lock()
			for nc := range b.conns {
				nc.Close()
			}
			b.connsMu.Unlock()
		}
		close(b.stop)
		b.stopFetchers()
		b.tierer.Close()
		b.bg.Wait()
		b.shutErr = b.mgr.Close()
		if b.shutErr == nil {
			b.releaseLease(ctx)
		}
		b.unlockDir()
	})
	return b.shutErr
}

func (b *Broker) partitionStats() []telemetry.PartitionStat {
	var out []telemetry.PartitionStat
	for _, l := range b.mgr.Logs() {
		tp := l.TopicPartition()
		out = append(out, telemetry.PartitionStat{Topic: tp.Topic, Partition: tp.Partition, SizeBytes: l.Size(), EndOffset: l.EndOffset(), StartOffset: l.StartOffset()})
	}
	return out
}

// storageConfig resolves a topic's storage settings from its overrides.
func (b *Broker) storageConfig(overrides map[string]string) storage.Config {
	get := func(n string) int64 { return b.cfg.TopicInt64(overrides, n) }
	c := storage.Config{
		SegmentBytes:       get("segment.bytes"),
		SegmentMs:          get("segment.ms"),
		SegmentIndexBytes:  int32(get("segment.index.bytes")),
		IndexIntervalBytes: int32(get("index.interval.bytes")),
		RetentionMs:        get("retention.ms"),
		RetentionBytes:     get("retention.bytes"),
		FlushMessages:      get("flush.messages"),
		FlushMs:            get("flush.ms"),
	}
	if b.cfg.TopicValue(overrides, "flush.policy") == "interval" {
		c.FlushPolicy = storage.FlushInterval
	}
	if b.tieredConfigs(overrides) {
		// The Tierer trims the local log once segments are in the bucket.
		c.RetentionMs, c.RetentionBytes = -1, -1
	}
	if b.keptWhole(overrides) {
		c.RetentionMs, c.RetentionBytes = -1, -1
	}
	return c
}

// keptWhole reports a topic that no retention may trim: log compaction is
// not implemented yet, so a compact-only topic is kept whole rather than
// losing keys to time or size retention (locally or in the bucket).
func (b *Broker) keptWhole(overrides map[string]string) bool {
	return !strings.Contains(b.cfg.TopicValue(overrides, "cleanup.policy"), "delete")
}

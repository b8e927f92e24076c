package config

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

const (
	day  = 24 * 3600 * 1000
	week = 7 * day
)

// topicDefs are Kafka's per-topic configs with their broker-level synonyms
// and defaults (Kafka 3.9/4.x). Tiercel's deliberate differences are marked.
var topicDefs = []Def{
	{Name: "cleanup.policy", BrokerName: "log.cleanup.policy", Type: TypeList, Default: "delete", Doc: "delete old segments, compact by key, or both", Validate: oneOfList("delete", "compact")},
	{Name: "compression.type", BrokerName: "compression.type", Type: TypeString, Default: "producer", Doc: "final compression of the topic's batches; producer keeps what the producer sent", Validate: oneOf("producer", "uncompressed", "gzip", "snappy", "lz4", "zstd")},
	{Name: "delete.retention.ms", BrokerName: "log.cleaner.delete.retention.ms", Type: TypeLong, Default: strconv.Itoa(day), Doc: "how long delete tombstones are kept in compacted topics", Validate: longAtLeast(0)},
	{Name: "file.delete.delay.ms", BrokerName: "log.segment.delete.delay.ms", Type: TypeLong, Default: "60000", Doc: "delay before a deleted segment's files are removed", Validate: longAtLeast(0)},
	{Name: "flush.messages", BrokerName: "log.flush.interval.messages", Type: TypeLong, Default: "9223372036854775807", Doc: "with flush.policy=interval, fsync after this many messages", Validate: longAtLeast(1)},
	{Name: "flush.ms", BrokerName: "log.flush.interval.ms", Type: TypeLong, Default: "9223372036854775807", Doc: "with flush.policy=interval, fsync after this long", Validate: longAtLeast(0)},
	{Name: "flush.policy", BrokerName: "log.flush.policy", Type: TypeString, Default: "fsync", Doc: "Tiercel: fsync = acks=all answered only after fsync and consumers see only fsynced records (group-committed); interval = Kafka's flush.messages/flush.ms", Validate: oneOf("fsync", "interval")},
	{Name: "index.interval.bytes", BrokerName: "log.index.interval.bytes", Type: TypeInt, Default: "4096", Doc: "bytes between offset index entries", Validate: longAtLeast(0)},
	{Name: "local.retention.bytes", BrokerName: "log.local.retention.bytes", Type: TypeLong, Default: "-2", Doc: "bytes kept on local disk when tiering; -2 = retention.bytes", Validate: longAtLeast(-2)},
	{Name: "local.retention.ms", BrokerName: "log.local.retention.ms", Type: TypeLong, Default: "-2", Doc: "time kept on local disk when tiering; -2 = retention.ms", Validate: longAtLeast(-2)},
	{Name: "max.compaction.lag.ms", BrokerName: "log.cleaner.max.compaction.lag.ms", Type: TypeLong, Default: "9223372036854775807", Doc: "longest a record stays uncompacted", Validate: longAtLeast(1)},
	{Name: "max.message.bytes", BrokerName: "message.max.bytes", Type: TypeInt, Default: "1048588", Doc: "largest record batch (after compression) the topic accepts", Validate: longAtLeast(0)},
	{Name: "message.timestamp.after.max.ms", BrokerName: "log.message.timestamp.after.max.ms", Type: TypeLong, Default: "3600000", Doc: "how far in the future a CreateTime timestamp may be", Validate: longAtLeast(0)},
	{Name: "message.timestamp.before.max.ms", BrokerName: "log.message.timestamp.before.max.ms", Type: TypeLong, Default: "9223372036854775807", Doc: "how far in the past a CreateTime timestamp may be", Validate: longAtLeast(0)},
	{Name: "message.timestamp.type", BrokerName: "log.message.timestamp.type", Type: TypeString, Default: "CreateTime", Doc: "CreateTime keeps the producer's timestamps; LogAppendTime stamps the broker's", Validate: oneOf("CreateTime", "LogAppendTime")},
	{Name: "min.cleanable.dirty.ratio", BrokerName: "log.cleaner.min.cleanable.ratio", Type: TypeDouble, Default: "0.5", Doc: "dirty ratio that makes a compacted log eligible for cleaning", Validate: doubleIn(0, 1)},
	{Name: "min.compaction.lag.ms", BrokerName: "log.cleaner.min.compaction.lag.ms", Type: TypeLong, Default: "0", Doc: "shortest a record stays uncompacted", Validate: longAtLeast(0)},
	{Name: "min.insync.replicas", BrokerName: "min.insync.replicas", Type: TypeInt, Default: "1", Doc: "replicas that must hold a batch before acks=all is answered", Validate: longAtLeast(1)},
	{Name: "preallocate", BrokerName: "log.preallocate", Type: TypeBoolean, Default: "false", Doc: "accepted for compatibility; Tiercel never preallocates", Validate: isBool},
	{Name: "remote.storage.enable", BrokerName: "", Type: TypeBoolean, Default: "true", Doc: "tier closed segments to the object store (Tiercel default: on; Kafka: off)", Validate: isBool},
	{Name: "retention.bytes", BrokerName: "log.retention.bytes", Type: TypeLong, Default: "-1", Doc: "largest size of the log before old segments are deleted; -1 = no limit", Validate: longAtLeast(-1)},
	{Name: "retention.ms", BrokerName: "log.retention.ms", Type: TypeLong, Default: strconv.Itoa(week), Doc: "longest a segment is kept; -1 = forever", Validate: longAtLeast(-1)},
	{Name: "segment.bytes", BrokerName: "log.segment.bytes", Type: TypeInt, Default: "1073741824", Doc: "segment file size at which the log rolls", Validate: longAtLeast(14)},
	{Name: "segment.index.bytes", BrokerName: "log.index.size.max.bytes", Type: TypeInt, Default: "10485760", Doc: "largest offset index of a segment; the log rolls when it is full", Validate: longAtLeast(8)},
	{Name: "segment.jitter.ms", BrokerName: "log.roll.jitter.ms", Type: TypeLong, Default: "0", Doc: "random jitter subtracted from segment.ms", Validate: longAtLeast(0)},
	{Name: "segment.ms", BrokerName: "log.roll.ms", Type: TypeLong, Default: strconv.Itoa(week), Doc: "age at which the active segment rolls even if not full", Validate: longAtLeast(1)},
	{Name: "unclean.leader.election.enable", BrokerName: "unclean.leader.election.enable", Type: TypeBoolean, Default: "false", Doc: "elect an out-of-sync replica when no in-sync one is left, losing data", Validate: isBool},
}

// brokerOnlyDefs are broker configs with no topic counterpart.
var brokerOnlyDefs = []Def{
	{Name: "node.id", Type: TypeInt, Default: "1", Doc: "this broker's id (broker.id is a synonym); Tiercel default 1 for a single node; -1: allocated through the metadata log above reserved.broker.max.id and kept in the data directory's meta.properties", Validate: longAtLeast(-1)},
	{Name: "reserved.broker.max.id", Type: TypeInt, Default: "1000", Doc: "configured broker ids are at most this; allocated ones (node.id=-1) are above it", Validate: longAtLeast(0)},
	{Name: "broker.id", Type: TypeInt, Default: "-1", Doc: "synonym of node.id, kept for old tools", Validate: longAtLeast(-1)},
	{Name: "listeners", Type: TypeString, Default: "PLAINTEXT://localhost:9092", Doc: "Kafka listen address; host:port or PLAINTEXT://host:port", Validate: validListener},
	{Name: "advertised.listeners", Type: TypeString, Default: "", Doc: "address given to clients in Metadata; empty = the listen address", Validate: validListenerOrEmpty},
	{Name: "log.dirs", Type: TypeString, Default: "./data", Doc: "the data directory (Tiercel uses one; default ./data, Kafka's /tmp/kafka-logs)"},
	{Name: "num.partitions", Type: TypeInt, Default: "1", Doc: "partitions of an auto-created topic or a CreateTopics with -1", Dynamic: true, Validate: longAtLeast(1)},
	{Name: "default.replication.factor", Type: TypeInt, Default: "1", Doc: "replication factor of auto-created topics", Validate: longAtLeast(1)},
	{Name: "auto.create.topics.enable", Type: TypeBoolean, Default: "true", Doc: "create a topic on Metadata for an unknown name when the client allows it", Validate: isBool},
	{Name: "delete.topic.enable", Type: TypeBoolean, Default: "true", Doc: "allow DeleteTopics", Validate: isBool},
	{Name: "log.retention.hours", Type: TypeInt, Default: "168", Doc: "retention in hours, used when log.retention.ms and log.retention.minutes are unset", Validate: longAtLeast(-1)},
	{Name: "log.retention.minutes", Type: TypeInt, Default: "", Doc: "retention in minutes, used when log.retention.ms is unset", Validate: longAtLeastOrEmpty(-1)},
	{Name: "log.roll.hours", Type: TypeInt, Default: "168", Doc: "segment.ms in hours, used when log.roll.ms is unset", Validate: longAtLeast(1)},
	{Name: "log.retention.check.interval.ms", Type: TypeLong, Default: "300000", Doc: "how often retention and age-based rolls are checked", Validate: longAtLeast(1)},
	{Name: "log.flush.offset.checkpoint.interval.ms", Type: TypeInt, Default: "10000", Doc: "how often recovery points are checkpointed (Tiercel default 10000, Kafka 60000: recovery after a crash scans only what came after the last checkpoint)", Validate: longAtLeast(1)},
	{Name: "log.flush.start.offset.checkpoint.interval.ms", Type: TypeInt, Default: "60000", Doc: "how often log start offsets are checkpointed", Validate: longAtLeast(0)},
	{Name: "socket.request.max.bytes", Type: TypeInt, Default: "104857600", Doc: "largest request frame accepted; larger frames close the connection", Validate: longAtLeast(1)},
	{Name: "connections.max.idle.ms", Type: TypeLong, Default: "600000", Doc: "idle connections are closed after this long", Validate: longAtLeast(0)},
	{Name: "fetch.max.bytes", Type: TypeInt, Default: "57671680", Doc: "largest fetch response, whatever the request asks", Validate: longAtLeast(1024)},
	{Name: "min.incremental.fetch.session.eviction.ms", Type: TypeInt, Default: "120000", Doc: "a fetch session idle this long may be evicted to make room for a new one", Validate: longAtLeast(0)},
	{Name: "max.incremental.fetch.session.cache.slots", Type: TypeInt, Default: "1000", Doc: "fetch sessions (KIP-227) kept per broker", Validate: longAtLeast(0)},
	{Name: "broker.rack", Type: TypeString, Default: "", Doc: "the rack (zone) of this broker"},
	{Name: "log.validate.records.deep", Type: TypeBoolean, Default: "false", Doc: "Tiercel: also decompress and walk every record of produced batches (Kafka always does; off by default here for speed, CRC and framing are always checked)", Dynamic: true, Validate: isBool},
	{Name: "offsets.topic.num.partitions", Type: TypeInt, Default: "16", Doc: "partitions of __consumer_offsets (Tiercel default 16, Kafka 50: each partition is a file fsynced on every commit, and fewer files batch more commits per fsync)", Validate: longAtLeast(1)},
	{Name: "offsets.retention.minutes", Type: TypeInt, Default: "10080", Doc: "committed offsets of empty groups are kept this long", Validate: longAtLeast(1)},
	{Name: "group.initial.rebalance.delay.ms", Type: TypeInt, Default: "3000", Doc: "delay of the first rebalance of a new group", Validate: longAtLeast(0)},
	{Name: "group.min.session.timeout.ms", Type: TypeInt, Default: "6000", Doc: "smallest session timeout a member may ask for", Validate: longAtLeast(0)},
	{Name: "group.max.session.timeout.ms", Type: TypeInt, Default: "1800000", Doc: "largest session timeout a member may ask for", Validate: longAtLeast(0)},
	{Name: "group.max.size", Type: TypeInt, Default: "2147483647", Doc: "most members in one group", Validate: longAtLeast(1)},
	{Name: "offsets.retention.check.interval.ms", Type: TypeLong, Default: "600000", Doc: "how often expired committed offsets are removed", Validate: longAtLeast(1)},
	{Name: "offsets.topic.segment.bytes", Type: TypeInt, Default: "104857600", Doc: "segment.bytes of __consumer_offsets", Validate: longAtLeast(14)},
	{Name: "offsets.topic.replication.factor", Type: TypeInt, Default: "1", Doc: "replication factor of __consumer_offsets (Tiercel default 1 for a single node; Kafka 3)", Validate: longAtLeast(1)},
	{Name: "tiercel.offsets.compact.bytes", Type: TypeLong, Default: "16777216", Doc: "Tiercel: once this many bytes (and twice the last rewrite) were appended to a __consumer_offsets partition, the coordinator rewrites its live state and drops what came before, bounding the topic and the load time", Validate: longAtLeast(1024)},
	{Name: "offset.metadata.max.bytes", Type: TypeInt, Default: "4096", Doc: "largest metadata string of a committed offset", Validate: longAtLeast(0)},
	{Name: "group.consumer.session.timeout.ms", Type: TypeInt, Default: "45000", Doc: "KIP-848 consumer groups: a member that does not heartbeat for this long is removed", Validate: longAtLeast(1)},
	{Name: "group.consumer.heartbeat.interval.ms", Type: TypeInt, Default: "5000", Doc: "KIP-848 consumer groups: how often members heartbeat", Validate: longAtLeast(1)},
	{Name: "group.consumer.max.size", Type: TypeInt, Default: "2147483647", Doc: "KIP-848 consumer groups: most members in one group", Validate: longAtLeast(1)},
	{Name: "group.consumer.assignors", Type: TypeList, Default: "uniform,range", Doc: "KIP-848 server-side assignors; the first is the default", Validate: oneOfList("uniform", "range")},
	{Name: "tiercel.http.addr", Type: TypeString, Default: "localhost:9644", Doc: "Tiercel: health, readiness, metrics and pprof HTTP address; empty disables"},
	{Name: "tiercel.objstore.url", Type: TypeString, Default: "", Doc: "Tiercel: object store URL (s3://, gs://, azblob://, file://); empty = a filesystem store under log.dirs"},
	{Name: "remote.log.storage.system.enable", Type: TypeBoolean, Default: "true", Doc: "tier topics whose remote.storage.enable is on (Tiercel default: on; Kafka: off)", Validate: isBool},
	{Name: "remote.log.manager.task.interval.ms", Type: TypeLong, Default: "30000", Doc: "how often every partition is checked for segments to upload and retention to apply (Kafka's name); rolls are noticed at the next check", Validate: longAtLeast(10)},
	{Name: "remote.log.manager.copier.thread.pool.size", Type: TypeInt, Default: "10", Doc: "concurrent segment uploads and remote retention jobs", Validate: longAtLeast(1)},
	{Name: "remote.log.reader.threads", Type: TypeInt, Default: "10", Doc: "concurrent remote reads serving fetches below the local log (a separate pool: never delays local reads)", Validate: longAtLeast(1)},
	{Name: "remote.fetch.max.wait.ms", Type: TypeInt, Default: "500", Doc: "longest a fetch waits for remote reads; partitions not read by then come back empty and the read goes on into the cache", Validate: longAtLeast(1)},
	{Name: "tiercel.log.tail.cache.bytes", Type: TypeLong, Default: "67108864", Doc: "Tiercel: memory for the latest appends of the partitions led here (at most 16 MiB each, 30 s), kept as the producers sent them so that followers and consumers at the end of the log are served without reading it back; 0 disables", Validate: longAtLeast(0)},
	{Name: "tiercel.log.drop.behind.bytes", Type: TypeLong, Default: "0", Doc: "Tiercel: when positive, once fsynced, the bytes of a partition's active segment more than this far behind its end are dropped from the operating system's page cache (posix_fadvise), so that a broker writing a stream reuses a few pages instead of filling memory; readers further behind then read the disk. 0 (default) leaves the page cache to the kernel, as Kafka does", Validate: longAtLeast(0)},
	{Name: "tiercel.remote.chunk.bytes", Type: TypeInt, Default: "4194304", Doc: "Tiercel: size of one ranged GET (and cache entry) when reading tiered segments", Validate: longAtLeast(4096)},
	{Name: "tiercel.remote.cache.bytes", Type: TypeLong, Default: "1073741824", Doc: "Tiercel: on-disk cache of tiered chunks under log.dirs/remote-cache (least recently used out first)", Validate: longAtLeast(0)},
	{Name: "tiercel.remote.read.ahead.chunks", Type: TypeInt, Default: "2", Doc: "Tiercel: chunks fetched ahead of a sequential consumer of tiered data", Validate: longAtLeast(0)},
	{Name: "tiercel.gossip.listener", Type: TypeString, Default: "", Doc: "Tiercel: host:port for gossip with the other brokers (TCP and UDP); empty = a cluster of one"},
	{Name: "tiercel.gossip.advertised.listener", Type: TypeString, Default: "", Doc: "Tiercel: host:port the other brokers reach this one's gossip at; default the listener"},
	{Name: "tiercel.gossip.seeds", Type: TypeList, Default: "", Doc: "Tiercel: gossip addresses of brokers to join (serve --seeds); tried until one answers"},
	{Name: "tiercel.gossip.local", Type: TypeBoolean, Default: "false", Doc: "Tiercel: gossip with single-machine timings (faster failure detection; for tests and development)", Validate: isBool},
	{Name: "tiercel.region", Type: TypeString, Default: "", Doc: "Tiercel: the region of this broker (placement and leader preference)"},
	{Name: "tiercel.lease.ttl.ms", Type: TypeInt, Default: "12000", Doc: "Tiercel: a broker's lease in the bucket lasts this long after its last renewal (renewed every third of it); a broker whose lease lapses stops acknowledging produces", Validate: longAtLeast(100)},
	{Name: "tiercel.lease.margin.ms", Type: TypeInt, Default: "2000", Doc: "Tiercel: clock-rate safety margin: a broker stops leading this long before its lease ends, and others wait this long past it", Validate: longAtLeast(0)},
	{Name: "unclean.leader.election.enable", Type: TypeBoolean, Default: "false", Doc: "with replication factor 1, move a crashed broker's partitions to live brokers once its lease expires, resuming from the bucket and losing what was not tiered", Dynamic: true, Validate: isBool},
	{Name: "replica.selector.class", Type: TypeString, Default: "org.apache.kafka.common.replica.RackAwareReplicaSelector", Doc: "how a leader points a consumer at a replica to read from (KIP-392): RackAwareReplicaSelector picks an in-sync replica in the consumer's client.rack; empty = always the leader (Tiercel default: rack-aware, Kafka: empty)", Validate: oneOf("", "org.apache.kafka.common.replica.RackAwareReplicaSelector")},
	{Name: "replica.lag.time.max.ms", Type: TypeLong, Default: "30000", Doc: "a follower that has not caught up with the leader's log end for this long leaves the ISR", Validate: longAtLeast(1)},
	{Name: "replica.fetch.wait.max.ms", Type: TypeInt, Default: "500", Doc: "how long a follower's fetch waits at the leader for new records", Validate: longAtLeast(0)},
	{Name: "replica.fetch.max.bytes", Type: TypeInt, Default: "1048576", Doc: "bytes a follower's fetch asks for per partition (a larger first batch still comes whole)", Validate: longAtLeast(1)},
	{Name: "replica.fetch.response.max.bytes", Type: TypeInt, Default: "10485760", Doc: "bytes a follower's fetch asks for in all", Validate: longAtLeast(1)},
	{Name: "replica.fetch.backoff.ms", Type: TypeInt, Default: "1000", Doc: "how long a follower waits after a failed fetch", Validate: longAtLeast(0)},
	{Name: "tiercel.replica.isr.check.ms", Type: TypeInt, Default: "1000", Doc: "Tiercel: how often a leader checks whether its followers joined or left the ISR (Kafka checks every replica.lag.time.max.ms / 2)", Validate: longAtLeast(10)},
	{Name: "tiercel.cluster.paused", Type: TypeBoolean, Default: "false", Doc: "Tiercel: set cluster-wide (tiercel cluster pause) to park every tiered partition in the bucket so that every broker can be stopped and its disk dropped; a broker that starts clears it (resume)", Dynamic: true, Validate: isBool},
	{Name: "auto.leader.rebalance.enable", Type: TypeBoolean, Default: "false", Doc: "move partitions back to their preferred leaders (where they were placed) when those are live: periodically and after a broker joins (Tiercel default off for now, Kafka on: every move is a roll and an upload per partition, and automatic moves have had little soak time)", Validate: isBool},
	{Name: "leader.imbalance.check.interval.seconds", Type: TypeLong, Default: "300", Doc: "how often partitions not on their preferred leader are moved back", Validate: longAtLeast(1)},
	{Name: "tiercel.leader.rebalance.join.delay.ms", Type: TypeInt, Default: "10000", Doc: "Tiercel: after a broker joins, wait this long, then move partitions back to their preferred leaders", Validate: longAtLeast(0)},
	{Name: "tiercel.metadata.poll.ms", Type: TypeInt, Default: "2000", Doc: "Tiercel: how often a broker looks for metadata-log entries other brokers appended (one GET when there is none)", Validate: longAtLeast(10)},
	{Name: "tiercel.log.format", Type: TypeString, Default: "text", Doc: "Tiercel: log format, text or json", Validate: oneOf("text", "json")},
	{Name: "tiercel.log.level", Type: TypeString, Default: "info", Doc: "Tiercel: log level", Validate: oneOf("debug", "info", "warn", "error")},
}

var (
	byName     = map[string]Def{}
	topicNames []string
	allBroker  []Def
)

func init() {
	for i := range topicDefs {
		topicDefs[i].Topic = true
		topicDefs[i].Dynamic = true
		d := topicDefs[i]
		byName[d.Name] = d
		topicNames = append(topicNames, d.Name)
		if d.BrokerName != "" && d.BrokerName != d.Name {
			bd := d
			bd.Name, bd.BrokerName, bd.Topic = d.BrokerName, "", false
			allBroker = append(allBroker, bd)
			byName[bd.Name] = bd
		} else if d.BrokerName == d.Name {
			allBroker = append(allBroker, Def{Name: d.Name, Type: d.Type, Default: d.Default, Doc: d.Doc, Dynamic: true, Validate: d.Validate})
		}
	}
	for _, d := range brokerOnlyDefs {
		byName[d.Name] = d
		allBroker = append(allBroker, d)
	}
	sort.Strings(topicNames)
	sort.Slice(allBroker, func(i, j int) bool { return allBroker[i].Name < allBroker[j].Name })
}

// Lookup finds a topic or broker config by name. A name that is both (as
// compression.type) returns the topic definition.
func Lookup(name string) (Def, bool) {
	d, ok := byName[name]
	return d, ok
}

// TopicDefs lists every topic config, sorted by name.
func TopicDefs() []Def {
	out := make([]Def, 0, len(topicNames))
	for _, n := range topicNames {
		out = append(out, byName[n])
	}
	return out
}

// BrokerDefs lists every broker config, sorted by name.
func BrokerDefs() []Def { return append([]Def(nil), allBroker...) }

func brokerDef(name string) (Def, bool) {
	for _, d := range allBroker {
		if d.Name == name {
			return d, true
		}
	}
	return Def{}, false
}

func oneOf(vals ...string) func(string) error {
	return func(v string) error {
		for _, ok := range vals {
			if v == ok {
				return nil
			}
		}
		return fmt.Errorf("must be one of %s", strings.Join(vals, ", "))
	}
}

func oneOfList(vals ...string) func(string) error {
	one := oneOf(vals...)
	return func(v string) error {
		for _, part := range strings.Split(v, ",") {
			if err := one(strings.TrimSpace(part)); err != nil {
				return err
			}
		}
		return nil
	}
}

func longAtLeast(lo int64) func(string) error {
	return func(v string) error {
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return fmt.Errorf("must be a whole number")
		}
		if n < lo {
			return fmt.Errorf("must be at least %d", lo)
		}
		return nil
	}
}

func longAtLeastOrEmpty(lo int64) func(string) error {
	f := longAtLeast(lo)
	return func(v string) error {
		if v == "" {
			return nil
		}
		return f(v)
	}
}

func doubleIn(lo, hi float64) func(string) error {
	return func(v string) error {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < lo || f > hi {
			return fmt.Errorf("must be a number from %g to %g", lo, hi)
		}
		return nil
	}
}

func isBool(v string) error {
	if v != "true" && v != "false" {
		return fmt.Errorf("must be true or false")
	}
	return nil
}

func validListener(v string) error {
	_, err := ParseListener(v)
	return err
}

func validListenerOrEmpty(v string) error {
	if v == "" {
		return nil
	}
	return validListener(v)
}

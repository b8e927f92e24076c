package storage

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Checkpoint files use Kafka's text format: a version line (0), a count
// line, then one entry per line.
const (
	recoveryCheckpointFile    = "recovery-point-offset-checkpoint"
	logStartCheckpointFile    = "log-start-offset-checkpoint"
	replicationCheckpointFile = "replication-offset-checkpoint" // high watermarks of replicated logs
	cleanShutdownFile         = ".kafka_cleanshutdown"
	partitionMetadataFile     = "partition.metadata"
	leaderEpochCheckpointFile = "leader-epoch-checkpoint"
)

func checkpointLines(data []byte) ([]string, error) {
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) < 2 || lines[0] != "0" {
		return nil, fmt.Errorf("checkpoint: bad header")
	}
	n, err := strconv.Atoi(lines[1])
	if err != nil || n != len(lines)-2 {
		return nil, fmt.Errorf("checkpoint: count %q does not match %d entries", lines[1], len(lines)-2)
	}
	return lines[2:], nil
}

// marshalOffsets writes "topic partition offset" lines in a stable order.
func marshalOffsets(m map[TopicPartition]int64) []byte {
	keys := make([]TopicPartition, 0, len(m))
	for tp := range m {
		keys = append(keys, tp)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].Topic != keys[j].Topic {
			return keys[i].Topic < keys[j].Topic
		}
		return keys[i].Partition < keys[j].Partition
	})
	var b strings.Builder
	fmt.Fprintf(&b, "0\n%d\n", len(keys))
	for _, tp := range keys {
		fmt.Fprintf(&b, "%s %d %d\n", tp.Topic, tp.Partition, m[tp])
	}
	return []byte(b.String())
}

func unmarshalOffsets(data []byte) (map[TopicPartition]int64, error) {
	lines, err := checkpointLines(data)
	if err != nil {
		return nil, err
	}
	out := make(map[TopicPartition]int64, len(lines))
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) != 3 {
			return nil, fmt.Errorf("checkpoint: bad line %q", l)
		}
		p, err1 := strconv.ParseInt(f[1], 10, 32)
		o, err2 := strconv.ParseInt(f[2], 10, 64)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("checkpoint: bad line %q", l)
		}
		out[TopicPartition{Topic: f[0], Partition: int32(p)}] = o
	}
	return out, nil
}

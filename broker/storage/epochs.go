package storage

import (
	"fmt"
	"strconv"
	"strings"
)

// epochEntry says that leader epoch epoch began at startOffset.
type epochEntry struct {
	epoch       int32
	startOffset int64
}

// epochCache is the leader-epoch history of a log (Kafka's
// LeaderEpochFileCache), kept in leader-epoch-checkpoint. Guarded by the
// Log's mutex.
type epochCache struct {
	entries []epochEntry
}

// assign notes that epoch begins at offset, if it is new.
func (c *epochCache) assign(epoch int32, offset int64) bool {
	if epoch < 0 {
		return false
	}
	if n := len(c.entries); n > 0 && c.entries[n-1].epoch >= epoch {
		return false
	}
	c.entries = append(c.entries, epochEntry{epoch: epoch, startOffset: offset})
	return true
}

// endOffsetFor answers OffsetForLeaderEpoch for epoch given the log end.
func (c *epochCache) endOffsetFor(epoch int32, logEnd int64) (int32, int64) {
	for i := len(c.entries) - 1; i >= 0; i-- {
		if c.entries[i].epoch <= epoch {
			if i == len(c.entries)-1 {
				return c.entries[i].epoch, logEnd
			}
			return c.entries[i].epoch, c.entries[i+1].startOffset
		}
	}
	return -1, -1
}

// truncateFrom drops epochs that start at or after offset.
func (c *epochCache) truncateFrom(offset int64) {
	for len(c.entries) > 0 && c.entries[len(c.entries)-1].startOffset >= offset {
		c.entries = c.entries[:len(c.entries)-1]
	}
}

// latest returns the newest epoch, or -1.
func (c *epochCache) latest() int32 {
	if len(c.entries) == 0 {
		return -1
	}
	return c.entries[len(c.entries)-1].epoch
}

// marshal writes Kafka's leader-epoch-checkpoint text format.
func (c *epochCache) marshal() []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "0\n%d\n", len(c.entries))
	for _, e := range c.entries {
		fmt.Fprintf(&b, "%d %d\n", e.epoch, e.startOffset)
	}
	return []byte(b.String())
}

func unmarshalEpochs(data []byte) (epochCache, error) {
	var c epochCache
	lines, err := checkpointLines(data)
	if err != nil {
		return c, err
	}
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) != 2 {
			return c, fmt.Errorf("leader-epoch-checkpoint: bad line %q", l)
		}
		e, err1 := strconv.ParseInt(f[0], 10, 32)
		o, err2 := strconv.ParseInt(f[1], 10, 64)
		if err1 != nil || err2 != nil {
			return c, fmt.Errorf("leader-epoch-checkpoint: bad line %q", l)
		}
		c.entries = append(c.entries, epochEntry{epoch: int32(e), startOffset: o})
	}
	return c, nil
}

package group

import (
	"sort"
	"time"
)

// Shard is the groups of one __consumer_offsets partition. Not safe for
// concurrent use: one goroutine owns it.
type Shard struct {
	cfg     Config
	groups  map[string]*Group
	loading bool

	replies []Reply
	writes  []Write
	nextID  uint64
	waiting map[uint64]func(error) // writes not yet durable, by id

	rebalances uint64 // classic joins completed with members, since start
	commits    uint64 // offsets committed (durable), since start
}

// Stats is a shard's reading for metrics.
type Stats struct {
	Groups     map[[2]string]int // (type, state) -> groups
	Rebalances uint64
	Commits    uint64
}

// Stats counts the shard's groups by type and state, and its totals.
func (s *Shard) Stats() Stats {
	st := Stats{Groups: map[[2]string]int{}, Rebalances: s.rebalances, Commits: s.commits}
	for _, g := range s.groups {
		st.Groups[[2]string{g.Type(), g.stateName()}]++
	}
	return st
}

// NewShard returns an empty shard that is still loading: until Loaded is
// called, requests get COORDINATOR_LOAD_IN_PROGRESS.
func NewShard(cfg Config) *Shard {
	return &Shard{cfg: cfg, groups: map[string]*Group{}, loading: true, waiting: map[uint64]func(error){}}
}

// Loading reports whether the shard is still replaying its partition.
func (s *Shard) Loading() bool { return s.loading }

// Take returns and clears the replies and writes produced so far.
func (s *Shard) Take() ([]Reply, []Write) {
	r, w := s.replies, s.writes
	s.replies, s.writes = nil, nil
	return r, w
}

// Group returns a group by id, or nil.
func (s *Shard) Group(id string) *Group { return s.groups[id] }

// Groups returns every live group, sorted by id.
func (s *Shard) Groups() []*Group {
	out := make([]*Group, 0, len(s.groups))
	for _, g := range s.groups {
		out = append(out, g)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

func (s *Shard) reply(to ReplyTo, resp any) {
	if to != 0 {
		s.replies = append(s.replies, Reply{To: to, Resp: resp})
	}
}

// write queues records and remembers what to do once they are durable (or
// failed). done runs inside a later Persisted call.
func (s *Shard) write(recs []Record, done func(error)) {
	s.nextID++
	s.writes = append(s.writes, Write{ID: s.nextID, Records: recs})
	s.waiting[s.nextID] = done
}

// Persisted reports that write id is durable (err nil) or failed.
func (s *Shard) Persisted(id uint64, err error) {
	done, ok := s.waiting[id]
	if !ok {
		return
	}
	delete(s.waiting, id)
	done(err)
}

// getOrCreate returns a group, creating an Empty one.
func (s *Shard) getOrCreate(id string, now time.Time) *Group {
	g := s.groups[id]
	if g == nil {
		g = newGroup(id, now)
		s.groups[id] = g
	}
	return g
}

// Tick advances timers: session expiry, rebalance and sync deadlines,
// pending member ids, KIP-848 sessions. It returns the earliest time at
// which another Tick has work to do (zero if none).
func (s *Shard) Tick(now time.Time) time.Time {
	var next time.Time
	note := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	for _, g := range s.Groups() {
		if g.consumer != nil {
			note(s.tickConsumer(g, now))
			continue
		}
		note(s.tickClassic(g, now))
	}
	return next
}

// ExpireOffsets drops offsets past offsets.retention.minutes (and groups
// left with nothing), as Kafka's offset cleanup does.
func (s *Shard) ExpireOffsets(now time.Time) {
	nowMs := now.UnixMilli()
	for _, g := range s.Groups() {
		if g.writing > 0 || len(g.pending) > 0 || (g.consumer == nil && g.state != Empty) || (g.consumer != nil && len(g.consumer.members) > 0) {
			continue
		}
		var expired []TopicPartition
		for tp, o := range g.offsets {
			base := o.CommitTime
			// KIP-211: a group's offsets age from when it became empty.
			if g.protocolType != "" || g.consumer != nil {
				base = max(base, g.stateTime.UnixMilli())
			}
			if (o.ExpireTime > 0 && nowMs >= o.ExpireTime) || (o.ExpireTime == 0 && nowMs >= base+s.cfg.OffsetsRetention.Milliseconds()) {
				expired = append(expired, tp)
			}
		}
		if len(expired) == 0 && len(g.offsets) > 0 {
			continue
		}
		sortTPs(expired)
		var recs []Record
		for _, tp := range expired {
			recs = append(recs, offsetTombstone(g.id, tp))
		}
		dropGroup := len(expired) == len(g.offsets)
		if dropGroup {
			recs = append(recs, groupTombstone(g.id))
			recs = append(recs, s.consumerTombstones(g)...)
		}
		g.writing++
		s.write(recs, func(err error) {
			g.writing--
			if err != nil {
				return // tried again at the next check
			}
			for _, tp := range expired {
				delete(g.offsets, tp)
			}
			if dropGroup && len(g.offsets) == 0 && g.Size() == 0 && g.writing == 0 {
				g.setState(Dead, now)
				delete(s.groups, g.id)
			}
		})
	}
}

func sortTPs(tps []TopicPartition) {
	sort.Slice(tps, func(i, j int) bool {
		if tps[i].Topic != tps[j].Topic {
			return tps[i].Topic < tps[j].Topic
		}
		return tps[i].Partition < tps[j].Partition
	})
}

// Pending is the number of writes not yet reported by Persisted.
func (s *Shard) Pending() int { return len(s.waiting) }

// Snapshot returns records that rebuild the shard's state when replayed on
// their own: the coordinator appends them and then drops everything before
// them (its own compaction of __consumer_offsets). Only meaningful when
// Pending() is 0: a write not yet applied would be missing.
func (s *Shard) Snapshot() []Record {
	var recs []Record
	for _, g := range s.Groups() {
		switch {
		case g.consumer != nil:
			recs = append(recs, s.consumerRecord(g))
		case g.generation > 0 || len(g.members) > 0:
			recs = append(recs, g.metadataRecord(g.stateTime))
		}
		tps := make([]TopicPartition, 0, len(g.offsets))
		for tp := range g.offsets {
			tps = append(tps, tp)
		}
		sortTPs(tps)
		for _, tp := range tps {
			recs = append(recs, offsetRecord(g.id, tp, g.offsets[tp]))
		}
	}
	return recs
}

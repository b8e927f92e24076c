package broker

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tiercel/tiercel/broker/storage"
	"github.com/tiercel/tiercel/internal/replica"
)

// fetchPart is one partition a fetch reads.
type fetchPart struct {
	sp       *sessionPartition // nil without a session
	topic    string
	topicID  [16]byte
	part     int32
	offset   int64
	maxBytes int32
	epoch    int32
	unknown  int16 // a lookup error code, or 0
}

// handleFetch resolves the fetch session in request order, then reads and
// long-polls off the reader goroutine.
func (b *Broker) handleFetch(ctx context.Context, req *kmsg.FetchRequest) reply {
	resp := kmsg.NewPtrFetchResponse()
	sess, incremental, code := b.sessions.resolve(req.SessionID, req.SessionEpoch)
	if code != 0 {
		resp.ErrorCode = code
		return now(resp)
	}
	if sess != nil {
		resp.SessionID = sess.id
	}
	byID := req.Version >= 13
	parts := b.fetchParts(req, sess, incremental, byID)
	return reply{later: func() kmsg.Response {
		if sess != nil {
			sess.mu.Lock()
			defer sess.mu.Unlock()
		}
		b.fetchInto(ctx, req, resp, parts, incremental, byID, fetcherOf(req))
		return resp
	}}
}

// fetchParts lists the partitions to read: the request's, or with an
// incremental session every partition of the session after applying the
// request's additions and forgotten topics.
func (b *Broker) fetchParts(req *kmsg.FetchRequest, sess *fetchSession, incremental, byID bool) []fetchPart {
	var parts []fetchPart
	if sess != nil {
		sess.mu.Lock()
		defer sess.mu.Unlock()
	}
	for _, rt := range req.Topics {
		name, unknown := rt.Topic, int16(0)
		if byID {
			if t := b.getTopicByID(rt.TopicID); t != nil {
				name = t.meta.Name
			} else {
				unknown = kerr.UnknownTopicID.Code
			}
		}
		for _, rp := range rt.Partitions {
			fp := fetchPart{topic: name, topicID: rt.TopicID, part: rp.Partition, offset: rp.FetchOffset, maxBytes: rp.PartitionMaxBytes, epoch: rp.CurrentLeaderEpoch, unknown: unknown}
			if sess != nil && unknown == 0 {
				fp.sp = sess.upsert(sessionPartition{topic: name, topicID: rt.TopicID, partition: rp.Partition, fetchOffset: rp.FetchOffset, maxBytes: rp.PartitionMaxBytes, epoch: rp.CurrentLeaderEpoch})
			}
			if !incremental || unknown != 0 {
				parts = append(parts, fp)
			}
		}
	}
	if sess == nil || !incremental {
		return parts
	}
	for _, ft := range req.ForgottenTopics {
		name := ft.Topic
		if byID {
			if t := b.getTopicByID(ft.TopicID); t != nil {
				name = t.meta.Name
			}
		}
		for _, p := range ft.Partitions {
			sess.forget(name, p)
		}
	}
	for _, k := range sess.order {
		sp := sess.parts[k]
		parts = append(parts, fetchPart{sp: sp, topic: sp.topic, topicID: sp.topicID, part: sp.partition, offset: sp.fetchOffset, maxBytes: sp.maxBytes, epoch: sp.epoch})
	}
	return parts
}

// fetcherOf is who sends a fetch: a follower (its broker id) or a consumer
// (-1, with its client.rack if it may read from a follower).
type fetchFrom struct {
	replicaID    int32
	replicaEpoch int64 // a follower's broker epoch (Fetch v15+), -1 unknown
	rack         string
	// again: a parked fetch read again after a wake-up. A follower's
	// position is recorded once per fetch, when it arrives: recorded on
	// every wake-up, a fetch parked before the follower left the ISR at
	// shutdown would show it caught up afterwards, and it would be taken
	// back in.
	again bool
}

func fetcherOf(req *kmsg.FetchRequest) fetchFrom {
	f := fetchFrom{replicaID: replicaIDOf(req), replicaEpoch: -1}
	if req.Version >= 15 {
		f.replicaEpoch = req.ReplicaState.Epoch
	}
	if req.Version >= 11 {
		f.rack = req.Rack
	}
	return f
}

func (b *Broker) fetchInto(ctx context.Context, req *kmsg.FetchRequest, resp *kmsg.FetchResponse, parts []fetchPart, incremental, byID bool, from fetchFrom) {
	deadline := time.Now().Add(time.Duration(max(req.MaxWaitMillis, 0)) * time.Millisecond)
	maxTotal := req.MaxBytes
	if req.Version < 3 || maxTotal <= 0 {
		maxTotal = 1<<31 - 1
	}
	maxTotal = min(maxTotal, int32(b.cfg.Int64("fetch.max.bytes")))
	tps := make([]storage.TopicPartition, 0, len(parts))
	for _, p := range parts {
		tps = append(tps, storage.TopicPartition{Topic: p.topic, Partition: p.part})
	}
	var results []partResult
	b.waiters.await(ctx, tps, deadline, func() bool {
		var total int
		var hasError bool
		results, total, hasError = b.readParts(ctx, parts, maxTotal, from, req.Version >= 11)
		from.again = true
		return total >= int(req.MinBytes) || hasError || !time.Now().Before(deadline) || ctx.Err() != nil || b.draining.Load()
	})
	b.buildFetchResponse(resp, parts, results, incremental, byID)
}

type partResult struct {
	code      int16
	hw        int64
	start     int64
	records   []byte
	preferred int32 // KIP-392's preferred read replica, or -1
}

// readParts reads every partition: local ones in order, within the
// response budget, and those below the local log start from the bucket,
// all at once through the remote read pool (remote.go).
func (b *Broker) readParts(ctx context.Context, parts []fetchPart, maxTotal int32, from fetchFrom, followerReads bool) ([]partResult, int, bool) {
	results := make([]partResult, len(parts))
	var remote []remoteJob
	total, hasError := 0, false
	for i, p := range parts {
		r := &results[i]
		r.hw, r.start, r.preferred = -1, -1, -1
		if p.unknown != 0 {
			r.code, hasError = p.unknown, true
			continue
		}
		t, l, code := b.leaderLog(p.topic, p.part, p.epoch)
		if code == kerr.NotLeaderForPartition.Code && from.replicaID < 0 && followerReads {
			// KIP-392: a consumer sent here as the preferred read replica.
			failed, job := b.readAsFollower(ctx, p, r, maxTotal-int32(total))
			if failed {
				hasError = true
			}
			if job != nil {
				job.result = i
				remote = append(remote, *job)
				total += job.maxBytes
				continue
			}
			total += len(r.records)
			continue
		}
		if code != 0 {
			r.code, hasError = code, true
			continue
		}
		if from.replicaID >= 0 {
			if b.readForFollower(ctx, t, l, p, r, from, maxTotal-int32(total)) {
				hasError = true
			}
			total += len(r.records)
			continue
		}
		if from.rack != "" && t.meta.replicated() {
			if r.preferred = b.preferredReadReplica(t, p.part, l, p.offset, from.rack); r.preferred >= 0 {
				// Kafka answers with no records: the consumer fetches
				// from the preferred replica next.
				r.hw, r.start = l.HighWatermark(), b.logStart(t, p.part, l)
				continue
			}
		}
		hw := l.HighWatermark()
		start := b.logStart(t, p.part, l)
		r.hw, r.start = hw, start
		remaining := maxTotal - int32(total)
		if remaining <= 0 && total > 0 {
			continue
		}
		limit := min(p.maxBytes, max(remaining, 1))
		if p.offset >= start && p.offset < l.StartOffset() {
			if seg, ok := b.tierer.Find(t.meta.ID, p.part, p.offset); ok {
				// Its size is known only once read: reserve its limit so the
				// reads in parallel stay within the response's budget.
				remote = append(remote, remoteJob{result: i, topicID: t.meta.ID, partition: p.part, seg: seg, offset: p.offset, maxBytes: int(limit)})
				total += int(limit)
				continue
			}
		}
		res, err := l.Read(p.offset, limit, hw)
		r.hw = res.HighWatermark
		if err != nil {
			r.code, hasError = errorCode(err), true
			if !errors.Is(err, storage.ErrOffsetOutOfRange) {
				b.logger.Error("fetch read", "topic", p.topic, "partition", p.part, "offset", p.offset, "err", err)
			}
			continue
		}
		r.records = res.Records
		total += len(res.Records)
	}
	if len(remote) > 0 {
		b.readRemote(ctx, remote, results)
		total, hasError = fitBudget(results, remote, maxTotal)
	}
	return results, total, hasError
}

// readForFollower reads partition p for a follower's fetch: it records the
// follower's position (its fetch offset is its log end), and reads up to
// the leader's log end, not the high watermark. An offset below the local
// log start is OFFSET_OUT_OF_RANGE with the local start, where the
// follower starts its copy (the older offsets are in the bucket). It
// reports an error.
func (b *Broker) readForFollower(ctx context.Context, t *topic, l *storage.Log, p fetchPart, r *partResult, from fetchFrom, remaining int32) bool {
	lr := b.leaderState(p.topic, p.part)
	if lr == nil || !t.meta.replicated() {
		r.code = kerr.NotLeaderForPartition.Code
		return true
	}
	r.start = l.StartOffset()
	if p.offset < r.start {
		r.code, r.hw = kerr.OffsetOutOfRange.Code, l.HighWatermark()
		return true
	}
	var hw int64
	var err error
	if from.again {
		hw = lr.highWatermark()
	} else {
		hw, err = lr.fetched(from.replicaID, from.replicaEpoch, p.offset, b.replNow())
	}
	r.hw = hw
	switch {
	case errors.Is(err, replica.ErrOffsetOutOfRange):
		r.code = kerr.OffsetOutOfRange.Code
		return true
	case err != nil:
		r.code = kerr.NotLeaderForPartition.Code // not a replica of it
		return true
	}
	if remaining <= 0 {
		return false
	}
	res, err := l.Read(p.offset, min(p.maxBytes, remaining), l.EndOffset())
	if err != nil {
		r.code = errorCode(err)
		return true
	}
	r.records = res.Records
	return false
}

func (b *Broker) buildFetchResponse(resp *kmsg.FetchResponse, parts []fetchPart, results []partResult, incremental, byID bool) {
	idx := map[string]int{}
	for i, p := range parts {
		r := results[i]
		if p.sp != nil {
			changed := len(r.records) > 0 || r.code != 0 || r.hw != p.sp.lastHW || r.start != p.sp.lastStart
			p.sp.lastHW, p.sp.lastStart = r.hw, r.start
			if incremental && !changed {
				continue
			}
		}
		key := p.topic
		if byID {
			key = string(p.topicID[:])
		}
		ti, ok := idx[key]
		if !ok {
			t := kmsg.NewFetchResponseTopic()
			t.Topic, t.TopicID = p.topic, p.topicID
			resp.Topics = append(resp.Topics, t)
			ti = len(resp.Topics) - 1
			idx[key] = ti
		}
		fp := kmsg.NewFetchResponseTopicPartition()
		fp.Partition = p.part
		fp.ErrorCode = r.code
		fp.HighWatermark = r.hw
		fp.LastStableOffset = r.hw
		fp.LogStartOffset = r.start
		fp.PreferredReadReplica = r.preferred
		fp.RecordBatches = r.records
		if fp.RecordBatches == nil {
			// Kafka sends an empty record set, never a null one; librdkafka
			// rejects null as a protocol error.
			fp.RecordBatches = []byte{}
		}
		resp.Topics[ti].Partitions = append(resp.Topics[ti].Partitions, fp)
	}
}

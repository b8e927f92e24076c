package group

import (
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// CommitResponse answers every partition of a commit with one code.
func CommitResponse(req *kmsg.OffsetCommitRequest, code int16) *kmsg.OffsetCommitResponse {
	resp := kmsg.NewPtrOffsetCommitResponse()
	for _, rt := range req.Topics {
		st := kmsg.NewOffsetCommitResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewOffsetCommitResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.ErrorCode = code
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

// commitCheck validates who commits, as Kafka's coordinator does: 0 or an
// error code for every partition.
func (s *Shard) commitCheck(now time.Time, req *kmsg.OffsetCommitRequest) (*Group, int16) {
	switch {
	case !validGroupID(req.Group):
		return nil, kerr.InvalidGroupID.Code
	case s.loading:
		return nil, kerr.CoordinatorLoadInProgress.Code
	}
	instance := ""
	if req.InstanceID != nil {
		instance = *req.InstanceID
	}
	g := s.groups[req.Group]
	if g == nil {
		if req.Generation >= 0 || req.MemberID != "" {
			if req.Version >= 9 {
				return nil, kerr.GroupIDNotFound.Code
			}
			return nil, kerr.IllegalGeneration.Code
		}
		// A commit from outside any group (an admin tool, a simple
		// consumer) creates an empty group that only holds offsets.
		return s.getOrCreate(req.Group, now), 0
	}
	if g.consumer != nil {
		return g, s.consumerCommitCheck(g, req.MemberID, req.Generation)
	}
	switch {
	case g.state == Dead:
		return nil, kerr.CoordinatorNotAvailable.Code
	case instance != "" && g.static[instance] != "" && g.static[instance] != req.MemberID:
		return nil, kerr.FencedInstanceID.Code
	case req.Generation < 0 && g.state == Empty:
		return g, 0
	case g.members[req.MemberID] == nil:
		return nil, kerr.UnknownMemberID.Code
	case req.Generation != g.generation:
		return nil, kerr.IllegalGeneration.Code
	case g.state == CompletingRebalance:
		return nil, kerr.RebalanceInProgress.Code
	}
	// A commit is also a sign of life.
	m := g.members[req.MemberID]
	m.heartbeatDeadline = now.Add(m.sessionTimeout)
	return g, 0
}

// Commit handles OffsetCommit. The reply waits for the records to be durable.
func (s *Shard) Commit(now time.Time, to ReplyTo, req *kmsg.OffsetCommitRequest) {
	g, code := s.commitCheck(now, req)
	if code != 0 {
		s.reply(to, CommitResponse(req, code))
		return
	}
	resp := CommitResponse(req, 0)
	type staged struct {
		tp  TopicPartition
		off Offset
	}
	var stage []staged
	var recs []Record
	nowMs := now.UnixMilli()
	for i, rt := range req.Topics {
		parts := s.cfg.Topics.Partitions(rt.Topic)
		for j, rp := range rt.Partitions {
			sp := &resp.Topics[i].Partitions[j]
			switch {
			case rp.Partition < 0 || rp.Partition >= parts:
				sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
				continue
			case rp.Metadata != nil && len(*rp.Metadata) > s.cfg.MaxMetadataBytes:
				sp.ErrorCode = kerr.OffsetMetadataTooLarge.Code
				continue
			}
			o := Offset{Offset: rp.Offset, LeaderEpoch: rp.LeaderEpoch, CommitTime: nowMs}
			if rp.Metadata != nil {
				o.Metadata = *rp.Metadata
			}
			if req.Version < 6 {
				o.LeaderEpoch = -1
			}
			if req.Version >= 2 && req.Version <= 4 && req.RetentionTimeMillis > 0 {
				o.ExpireTime = nowMs + req.RetentionTimeMillis
			}
			tp := TopicPartition{rt.Topic, rp.Partition}
			stage = append(stage, staged{tp, o})
			recs = append(recs, offsetRecord(g.id, tp, o))
		}
	}
	if len(recs) == 0 {
		s.reply(to, resp)
		return
	}
	g.writing++
	s.write(recs, func(err error) {
		g.writing--
		if err != nil {
			// Nothing is applied: the client retries (Kafka maps a failed
			// append to COORDINATOR_NOT_AVAILABLE).
			for i := range resp.Topics {
				for j := range resp.Topics[i].Partitions {
					if resp.Topics[i].Partitions[j].ErrorCode == 0 {
						resp.Topics[i].Partitions[j].ErrorCode = kerr.CoordinatorNotAvailable.Code
					}
				}
			}
			s.reply(to, resp)
			return
		}
		if s.groups[g.id] == g {
			for _, st := range stage {
				g.offsets[st.tp] = st.off
			}
		}
		s.commits += uint64(len(stage))
		s.reply(to, resp)
	})
}

// FetchGroup is one group of an OffsetFetch: the topics asked for (nil =
// all) and, for KIP-848 groups (v9+), the member asking.
type FetchGroup struct {
	Group       string
	Topics      []kmsg.OffsetFetchRequestGroupTopic // nil: every committed offset
	MemberID    *string
	MemberEpoch int32
}

// FetchOffsets answers one group of an OffsetFetch, in the v8+ shape.
func (s *Shard) FetchOffsets(req FetchGroup) kmsg.OffsetFetchResponseGroup {
	out := kmsg.NewOffsetFetchResponseGroup()
	out.Group = req.Group
	switch {
	case !validGroupID(req.Group):
		out.ErrorCode = kerr.InvalidGroupID.Code
		return out
	case s.loading:
		out.ErrorCode = kerr.CoordinatorLoadInProgress.Code
		return out
	}
	g := s.groups[req.Group]
	if g != nil && g.consumer != nil && req.MemberID != nil {
		if code := s.consumerCommitCheck(g, *req.MemberID, req.MemberEpoch); code != 0 {
			out.ErrorCode = code
			return out
		}
	}
	part := func(tp TopicPartition) kmsg.OffsetFetchResponseGroupTopicPartition {
		p := kmsg.NewOffsetFetchResponseGroupTopicPartition()
		p.Partition = tp.Partition
		p.Offset, p.LeaderEpoch = -1, -1
		if g != nil {
			if o, ok := g.offsets[tp]; ok {
				p.Offset, p.LeaderEpoch = o.Offset, o.LeaderEpoch
				md := o.Metadata
				p.Metadata = &md
			}
		}
		if p.Metadata == nil {
			empty := ""
			p.Metadata = &empty
		}
		return p
	}
	if req.Topics == nil {
		if g == nil {
			return out
		}
		byTopic := map[string][]TopicPartition{}
		var tps []TopicPartition
		for tp := range g.offsets {
			tps = append(tps, tp)
		}
		sortTPs(tps)
		var order []string
		for _, tp := range tps {
			if byTopic[tp.Topic] == nil {
				order = append(order, tp.Topic)
			}
			byTopic[tp.Topic] = append(byTopic[tp.Topic], tp)
		}
		for _, name := range order {
			t := kmsg.NewOffsetFetchResponseGroupTopic()
			t.Topic = name
			for _, tp := range byTopic[name] {
				t.Partitions = append(t.Partitions, part(tp))
			}
			out.Topics = append(out.Topics, t)
		}
		return out
	}
	for _, rt := range req.Topics {
		t := kmsg.NewOffsetFetchResponseGroupTopic()
		t.Topic = rt.Topic
		for _, p := range rt.Partitions {
			t.Partitions = append(t.Partitions, part(TopicPartition{rt.Topic, p}))
		}
		out.Topics = append(out.Topics, t)
	}
	return out
}

// subscribed reports whether a member of a non-empty consumer group
// subscribes to the topic (OffsetDelete refuses those offsets).
func (g *Group) subscribed(topic string) bool {
	if g.consumer != nil {
		for _, m := range g.consumer.members {
			if contains(m.topics, topic) {
				return true
			}
		}
		return false
	}
	for _, m := range g.members {
		var meta kmsg.ConsumerMemberMetadata
		if err := meta.ReadFrom(m.metadataFor(g.protocol)); err != nil {
			return true // unreadable: be safe
		}
		if contains(meta.Topics, topic) {
			return true
		}
	}
	return false
}

// DeleteOffsets handles OffsetDelete; the reply waits for the tombstones.
func (s *Shard) DeleteOffsets(now time.Time, to ReplyTo, req *kmsg.OffsetDeleteRequest) {
	resp := kmsg.NewPtrOffsetDeleteResponse()
	switch {
	case !validGroupID(req.Group):
		resp.ErrorCode = kerr.InvalidGroupID.Code
	case s.loading:
		resp.ErrorCode = kerr.CoordinatorLoadInProgress.Code
	case s.groups[req.Group] == nil:
		resp.ErrorCode = kerr.GroupIDNotFound.Code
	}
	if resp.ErrorCode != 0 {
		s.reply(to, resp)
		return
	}
	g := s.groups[req.Group]
	if g.Size() > 0 && g.ProtocolType() != "consumer" {
		resp.ErrorCode = kerr.NonEmptyGroup.Code
		s.reply(to, resp)
		return
	}
	var recs []Record
	var gone []TopicPartition
	for _, rt := range req.Topics {
		st := kmsg.NewOffsetDeleteResponseTopic()
		st.Topic = rt.Topic
		busy := g.Size() > 0 && g.subscribed(rt.Topic)
		for _, rp := range rt.Partitions {
			sp := kmsg.NewOffsetDeleteResponseTopicPartition()
			sp.Partition = rp.Partition
			tp := TopicPartition{rt.Topic, rp.Partition}
			switch {
			case busy:
				sp.ErrorCode = kerr.GroupSubscribedToTopic.Code
			default:
				if _, ok := g.offsets[tp]; ok {
					recs = append(recs, offsetTombstone(g.id, tp))
					gone = append(gone, tp)
				}
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	if len(recs) == 0 {
		s.reply(to, resp)
		return
	}
	g.writing++
	s.write(recs, func(err error) {
		g.writing--
		if err != nil {
			resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
			resp.Topics = nil
			s.reply(to, resp)
			return
		}
		for _, tp := range gone {
			delete(g.offsets, tp)
		}
		s.reply(to, resp)
	})
}

package broker

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tiercel/tiercel/broker/group"
)

func (b *Broker) handleOffsetCommit(ctx context.Context, req *kmsg.OffsetCommitRequest) reply {
	if req.Version >= 2 && req.Version <= 4 && req.RetentionTimeMillis < -1 {
		req.RetentionTimeMillis = -1
	}
	return b.groupReply(ctx, req.Group, func(s *group.Shard, now time.Time, to group.ReplyTo) {
		s.Commit(now, to, req)
	}, func(code int16) kmsg.Response { return group.CommitResponse(req, code) })
}

// handleOffsetFetch serves both shapes: one group (v0-7) and many (v8+).
func (b *Broker) handleOffsetFetch(ctx context.Context, req *kmsg.OffsetFetchRequest) reply {
	groups := make([]group.FetchGroup, 0, max(1, len(req.Groups)))
	if req.Version < 8 {
		fg := group.FetchGroup{Group: req.Group, MemberEpoch: -1}
		if req.Topics != nil || req.Version < 2 {
			fg.Topics = []kmsg.OffsetFetchRequestGroupTopic{}
			for _, t := range req.Topics {
				fg.Topics = append(fg.Topics, kmsg.OffsetFetchRequestGroupTopic{Topic: t.Topic, Partitions: t.Partitions})
			}
		}
		groups = append(groups, fg)
	} else {
		for _, g := range req.Groups {
			groups = append(groups, group.FetchGroup{Group: g.Group, Topics: g.Topics, MemberID: g.MemberID, MemberEpoch: g.MemberEpoch})
		}
	}
	names := make([]string, len(groups))
	for i, fg := range groups {
		names[i] = fg.Group
	}
	wait := fanOut(b, ctx, names, func(s *group.Shard, i int) kmsg.OffsetFetchResponseGroup {
		return s.FetchOffsets(groups[i])
	}, func(id string, code int16) kmsg.OffsetFetchResponseGroup {
		g := kmsg.NewOffsetFetchResponseGroup()
		g.Group, g.ErrorCode = id, code
		return g
	})
	return reply{later: func() kmsg.Response {
		resp := kmsg.NewPtrOffsetFetchResponse()
		resp.Groups = wait()
		if req.Version >= 8 {
			return resp
		}
		return oldOffsetFetch(req.Version, resp.Groups[0])
	}}
}

// oldOffsetFetch reshapes one group's answer as OffsetFetch v0-7 has it:
// before v2 a group error is reported on every partition.
func oldOffsetFetch(version int16, g kmsg.OffsetFetchResponseGroup) *kmsg.OffsetFetchResponse {
	resp := kmsg.NewPtrOffsetFetchResponse()
	resp.ErrorCode = g.ErrorCode
	for _, gt := range g.Topics {
		t := kmsg.NewOffsetFetchResponseTopic()
		t.Topic = gt.Topic
		for _, gp := range gt.Partitions {
			p := kmsg.NewOffsetFetchResponseTopicPartition()
			p.Partition, p.Offset, p.LeaderEpoch, p.Metadata, p.ErrorCode = gp.Partition, gp.Offset, gp.LeaderEpoch, gp.Metadata, gp.ErrorCode
			if version < 2 && g.ErrorCode != 0 {
				p.ErrorCode = g.ErrorCode
			}
			t.Partitions = append(t.Partitions, p)
		}
		resp.Topics = append(resp.Topics, t)
	}
	return resp
}

func (b *Broker) handleOffsetDelete(ctx context.Context, req *kmsg.OffsetDeleteRequest) reply {
	return b.groupReply(ctx, req.Group, func(s *group.Shard, now time.Time, to group.ReplyTo) {
		s.DeleteOffsets(now, to, req)
	}, func(code int16) kmsg.Response {
		resp := kmsg.NewPtrOffsetDeleteResponse()
		resp.ErrorCode = code
		return resp
	})
}

// internalTopicError refuses client writes and deletes on the offsets topic,
// as Kafka does for its internal topics.
func internalTopicError(name string) int16 {
	if name == offsetsTopic {
		return kerr.InvalidTopicException.Code
	}
	return 0
}

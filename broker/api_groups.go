package broker

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tiercel/tiercel/broker/group"
)

// groupWait is a request handed to a group's shard, or the error that kept
// it from getting there.
type groupWait struct {
	ch   chan any
	r    *shardRunner
	code int16
}

// runnerFor finds a group's shard, or the error code that answers for it.
func (b *Broker) runnerFor(groupID string) (*shardRunner, int16) {
	r, err := b.coord.shardFor(groupID)
	if err != nil {
		if errors.Is(err, errCoordinatorClosed) || errors.Is(err, errNotCoordinator) {
			return nil, kerr.NotCoordinator.Code
		}
		b.logger.Error("group coordinator unavailable", "err", err)
		return nil, kerr.CoordinatorNotAvailable.Code
	}
	if !r.loaded.Load() {
		return nil, kerr.CoordinatorLoadInProgress.Code
	}
	return r, 0
}

// submitGroup hands fn to the shard of groupID now, on the connection's
// reader goroutine, so one connection's group requests keep their order.
func (b *Broker) submitGroup(ctx context.Context, groupID string, fn func(s *group.Shard, now time.Time, to group.ReplyTo)) groupWait {
	r, code := b.runnerFor(groupID)
	if code != 0 {
		return groupWait{code: code}
	}
	ch, err := r.submit(ctx, fn)
	if err != nil {
		return groupWait{code: kerr.NotCoordinator.Code}
	}
	return groupWait{ch: ch, r: r}
}

// submitValue is submitGroup for an input that answers at once.
func (b *Broker) submitValue(ctx context.Context, groupID string, fn func(s *group.Shard, now time.Time) any) groupWait {
	r, code := b.runnerFor(groupID)
	if code != 0 {
		return groupWait{code: code}
	}
	ch, err := r.submitValue(ctx, fn)
	if err != nil {
		return groupWait{code: kerr.NotCoordinator.Code}
	}
	return groupWait{ch: ch, r: r}
}

// wait returns the shard's reply, or an error code.
func (w groupWait) wait(ctx context.Context) (any, int16) {
	if w.code != 0 {
		return nil, w.code
	}
	select {
	case v := <-w.ch:
		return v, 0
	case <-ctx.Done():
		return nil, kerr.RequestTimedOut.Code
	case <-w.r.quit:
		return nil, kerr.NotCoordinator.Code
	}
}

// groupReply answers later with the shard's response, or with fail(code).
func (b *Broker) groupReply(ctx context.Context, groupID string, fn func(s *group.Shard, now time.Time, to group.ReplyTo), fail func(code int16) kmsg.Response) reply {
	w := b.submitGroup(ctx, groupID, fn)
	return reply{later: func() kmsg.Response {
		v, code := w.wait(ctx)
		if code != 0 {
			return fail(code)
		}
		return v.(kmsg.Response)
	}}
}

func (b *Broker) handleFindCoordinator(req *kmsg.FindCoordinatorRequest) kmsg.Response {
	resp := kmsg.NewPtrFindCoordinatorResponse()
	keys := req.CoordinatorKeys
	if req.Version < 4 {
		keys = []string{req.CoordinatorKey}
	}
	for _, key := range keys {
		c := kmsg.NewFindCoordinatorResponseCoordinator()
		c.Key, c.NodeID, c.Host, c.Port = key, -1, "", -1
		// Transactions (type 1) are coordinated by whichever broker is asked.
		coordinator := b.nodeID
		switch {
		case key == "" || (req.CoordinatorType != 0 && req.CoordinatorType != 1):
			c.ErrorCode = kerr.InvalidRequest.Code
		case req.CoordinatorType == 0:
			id, err := b.coord.coordinatorOf(key)
			switch {
			case errors.Is(err, errCoordinatorClosed):
				c.ErrorCode = kerr.NotCoordinator.Code
			case err != nil:
				c.ErrorCode = kerr.CoordinatorNotAvailable.Code
			}
			coordinator = id
		}
		lb, live := b.liveBroker(coordinator)
		if c.ErrorCode == 0 && !live {
			c.ErrorCode = kerr.CoordinatorNotAvailable.Code
		}
		if c.ErrorCode == 0 {
			c.NodeID, c.Host, c.Port = lb.id, lb.host, lb.port
		} else {
			c.ErrorMessage = kmsg.StringPtr(kerr.ErrorForCode(c.ErrorCode).Error())
		}
		resp.Coordinators = append(resp.Coordinators, c)
	}
	if req.Version < 4 {
		c := resp.Coordinators[0]
		resp.ErrorCode, resp.ErrorMessage, resp.NodeID, resp.Host, resp.Port = c.ErrorCode, c.ErrorMessage, c.NodeID, c.Host, c.Port
		resp.Coordinators = nil
	}
	return resp
}

func (b *Broker) handleJoinGroup(ctx context.Context, h requestHeader, req *kmsg.JoinGroupRequest) reply {
	client := group.Client{ID: h.clientID, Host: h.host}
	return b.groupReply(ctx, req.Group, func(s *group.Shard, now time.Time, to group.ReplyTo) {
		s.Join(now, to, req, client)
	}, func(code int16) kmsg.Response { return group.JoinError(req.MemberID, code) })
}

func (b *Broker) handleSyncGroup(ctx context.Context, req *kmsg.SyncGroupRequest) reply {
	return b.groupReply(ctx, req.Group, func(s *group.Shard, now time.Time, to group.ReplyTo) {
		s.Sync(now, to, req)
	}, func(code int16) kmsg.Response { return group.SyncError(code) })
}

func (b *Broker) handleHeartbeat(ctx context.Context, req *kmsg.HeartbeatRequest) reply {
	return b.groupReply(ctx, req.Group, func(s *group.Shard, now time.Time, to group.ReplyTo) {
		s.Heartbeat(now, to, req)
	}, func(code int16) kmsg.Response {
		resp := kmsg.NewPtrHeartbeatResponse()
		resp.ErrorCode = code
		return resp
	})
}

func (b *Broker) handleLeaveGroup(ctx context.Context, req *kmsg.LeaveGroupRequest) reply {
	return b.groupReply(ctx, req.Group, func(s *group.Shard, now time.Time, to group.ReplyTo) {
		s.Leave(now, to, req)
	}, func(code int16) kmsg.Response {
		resp := kmsg.NewPtrLeaveGroupResponse()
		resp.ErrorCode = code
		return resp
	})
}

func (b *Broker) handleDescribeGroups(ctx context.Context, req *kmsg.DescribeGroupsRequest) reply {
	wait := fanOut(b, ctx, req.Groups, func(s *group.Shard, i int) kmsg.DescribeGroupsResponseGroup {
		return s.Describe(req.Groups[i])
	}, func(id string, code int16) kmsg.DescribeGroupsResponseGroup {
		g := kmsg.NewDescribeGroupsResponseGroup()
		g.Group, g.ErrorCode = id, code
		return g
	})
	return reply{later: func() kmsg.Response {
		resp := kmsg.NewPtrDescribeGroupsResponse()
		resp.Groups = wait()
		for i := range resp.Groups {
			if req.IncludeAuthorizedOperations && resp.Groups[i].ErrorCode == 0 {
				resp.Groups[i].AuthorizedOperations = allGroupOperations
			}
		}
		return resp
	}}
}

// fanOut hands one input per group to the group's shard now (in request
// order) and returns a function that waits for all the answers, in the
// order of ids; failed answers for a group whose shard could not take it.
func fanOut[T any](b *Broker, ctx context.Context, ids []string, fn func(s *group.Shard, i int) T, failed func(id string, code int16) T) func() []T {
	waits := make([]groupWait, len(ids))
	for i, id := range ids {
		waits[i] = b.submitValue(ctx, id, func(s *group.Shard, _ time.Time) any { return fn(s, i) })
	}
	return func() []T {
		out := make([]T, len(ids))
		for i, w := range waits {
			v, code := w.wait(ctx)
			if code != 0 {
				out[i] = failed(ids[i], code)
				continue
			}
			out[i] = v.(T)
		}
		return out
	}
}

// allGroupOperations is READ, DELETE and DESCRIBE: no ACLs yet, so a
// client may do everything to any group.
const allGroupOperations = 1<<3 | 1<<6 | 1<<8

func (b *Broker) handleListGroups(ctx context.Context, req *kmsg.ListGroupsRequest) reply {
	runners := b.coord.existing()
	waits := make([]chan any, 0, len(runners))
	resp := kmsg.NewPtrListGroupsResponse()
	for _, r := range runners {
		if !r.loaded.Load() {
			resp.ErrorCode = kerr.CoordinatorLoadInProgress.Code
			return now(resp)
		}
		ch, err := r.submitValue(ctx, func(s *group.Shard, _ time.Time) any {
			groups, code := s.List(req.StatesFilter, req.TypesFilter)
			return listed{groups, code}
		})
		if err != nil {
			resp.ErrorCode = kerr.NotCoordinator.Code
			return now(resp)
		}
		waits = append(waits, ch)
	}
	return reply{later: func() kmsg.Response {
		for _, ch := range waits {
			v, code := groupWait{ch: ch, r: runners[0]}.wait(ctx)
			if code == 0 {
				code = v.(listed).code
			}
			if code != 0 {
				resp.ErrorCode = code
				resp.Groups = nil
				return resp
			}
			resp.Groups = append(resp.Groups, v.(listed).groups...)
		}
		return resp
	}}
}

type listed struct {
	groups []kmsg.ListGroupsResponseGroup
	code   int16
}

func (b *Broker) handleDeleteGroups(ctx context.Context, req *kmsg.DeleteGroupsRequest) reply {
	waits := make([]groupWait, len(req.Groups))
	for i, id := range req.Groups {
		waits[i] = b.submitGroup(ctx, id, func(s *group.Shard, now time.Time, to group.ReplyTo) {
			s.DeleteGroup(now, to, id)
		})
	}
	return reply{later: func() kmsg.Response {
		resp := kmsg.NewPtrDeleteGroupsResponse()
		for i, w := range waits {
			v, code := w.wait(ctx)
			if code != 0 {
				g := kmsg.NewDeleteGroupsResponseGroup()
				g.Group, g.ErrorCode = req.Groups[i], code
				resp.Groups = append(resp.Groups, g)
				continue
			}
			resp.Groups = append(resp.Groups, *v.(*kmsg.DeleteGroupsResponseGroup))
		}
		return resp
	}}
}

func (b *Broker) handleConsumerGroupHeartbeat(ctx context.Context, h requestHeader, req *kmsg.ConsumerGroupHeartbeatRequest) reply {
	client := group.Client{ID: h.clientID, Host: h.host}
	return b.groupReply(ctx, req.Group, func(s *group.Shard, now time.Time, to group.ReplyTo) {
		s.ConsumerHeartbeat(now, to, req, client)
	}, func(code int16) kmsg.Response {
		resp := kmsg.NewPtrConsumerGroupHeartbeatResponse()
		resp.ErrorCode = code
		return resp
	})
}

func (b *Broker) handleConsumerGroupDescribe(ctx context.Context, req *kmsg.ConsumerGroupDescribeRequest) reply {
	wait := fanOut(b, ctx, req.Groups, func(s *group.Shard, i int) kmsg.ConsumerGroupDescribeResponseGroup {
		return s.DescribeConsumer(req.Groups[i])
	}, func(id string, code int16) kmsg.ConsumerGroupDescribeResponseGroup {
		g := kmsg.NewConsumerGroupDescribeResponseGroup()
		g.Group, g.ErrorCode = id, code
		return g
	})
	return reply{later: func() kmsg.Response {
		resp := kmsg.NewPtrConsumerGroupDescribeResponse()
		resp.Groups = wait()
		for i := range resp.Groups {
			if req.IncludeAuthorizedOperations && resp.Groups[i].ErrorCode == 0 {
				resp.Groups[i].AuthorizedOperations = allGroupOperations
			}
		}
		return resp
	}}
}

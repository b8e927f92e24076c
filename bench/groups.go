package bench

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// GroupReport holds the consumer-group figures of `make bench`.
type GroupReport struct {
	RebalanceMembers    int     `json:"rebalance_members"`
	RebalancePartitions int     `json:"rebalance_partitions"`
	RebalanceMs         float64 `json:"rebalance_ms"`        // all members: JoinGroup and SyncGroup round trips
	SingleRebalanceMs   float64 `json:"single_rebalance_ms"` // one member, same partitions: the client's own round trips
	ClientRebalanceMs   float64 `json:"kgo_rebalance_ms"`    // kgo members started at once, until stable
	ClientJoins         int     `json:"kgo_max_joins_per_member"`
	CommitsPerSec       float64 `json:"offset_commits_per_sec"`
	CommitConcurrency   int     `json:"offset_commit_concurrency"`
	LoadOffsets         int     `json:"load_offsets,omitempty"`
	LoadSeconds         float64 `json:"load_seconds_after_kill9,omitempty"`
}

// Rebalance times one eager rebalance of a group of n members over the
// topic's partitions, driven by hand with kmsg (so only the protocol's
// round trips count): every member has its id (the MEMBER_ID_REQUIRED step
// is done first); the clock runs from the members' JoinGroups to the last
// SyncGroup answer, the leader assigning partitions by ranges.
func Rebalance(ctx context.Context, brokers []string, groupID, topic string, partitions, n int) (time.Duration, error) {
	clients := make([]*kgo.Client, n) // one connection per member, as real consumers have
	for i := range clients {
		cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
		if err != nil {
			return 0, err
		}
		defer cl.Close()
		clients[i] = cl
	}
	meta := (&kmsg.ConsumerMemberMetadata{Version: 0, Topics: []string{topic}}).AppendTo(nil)
	join := func(cl *kgo.Client, memberID string) (*kmsg.JoinGroupResponse, error) {
		r := kmsg.NewPtrJoinGroupRequest()
		r.Group, r.MemberID, r.ProtocolType = groupID, memberID, "consumer"
		r.SessionTimeoutMillis, r.RebalanceTimeoutMillis = 30000, 60000
		r.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: meta}}
		return r.RequestWith(ctx, cl)
	}
	ids := make([]string, n)
	for i := range ids {
		resp, err := join(clients[i%len(clients)], "")
		if err != nil {
			return 0, err
		}
		if resp.ErrorCode != kerr.MemberIDRequired.Code {
			return 0, fmt.Errorf("first JoinGroup: %v", kerr.ErrorForCode(resp.ErrorCode))
		}
		ids[i] = resp.MemberID
	}
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range ids {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			cl := clients[i%len(clients)]
			jr, err := join(cl, ids[i])
			if err == nil && jr.ErrorCode != 0 {
				err = kerr.ErrorForCode(jr.ErrorCode)
			}
			if err != nil {
				errs <- fmt.Errorf("JoinGroup: %w", err)
				return
			}
			sr := kmsg.NewPtrSyncGroupRequest()
			sr.Group, sr.MemberID, sr.Generation = groupID, ids[i], jr.Generation
			if jr.LeaderID == ids[i] {
				sr.GroupAssignment = rangeAssignment(jr.Members, topic, partitions)
			}
			resp, err := sr.RequestWith(ctx, cl)
			if err == nil && resp.ErrorCode != 0 {
				err = kerr.ErrorForCode(resp.ErrorCode)
			}
			if err != nil {
				errs <- fmt.Errorf("SyncGroup: %w", err)
			}
		}(i)
	}
	wg.Wait()
	took := time.Since(start)
	close(errs)
	if err := <-errs; err != nil {
		return 0, err
	}
	return took, nil
}

// rangeAssignment is the leader's work: contiguous partition ranges.
func rangeAssignment(members []kmsg.JoinGroupResponseMember, topic string, partitions int) []kmsg.SyncGroupRequestGroupAssignment {
	ids := make([]string, len(members))
	for i, m := range members {
		ids[i] = m.MemberID
	}
	sort.Strings(ids)
	per, extra := partitions/len(ids), partitions%len(ids)
	out := make([]kmsg.SyncGroupRequestGroupAssignment, 0, len(ids))
	next := 0
	for i, id := range ids {
		take := per
		if i < extra {
			take++
		}
		a := kmsg.ConsumerMemberAssignment{Topics: []kmsg.ConsumerMemberAssignmentTopic{{Topic: topic}}}
		for p := next; p < next+take; p++ {
			a.Topics[0].Partitions = append(a.Topics[0].Partitions, int32(p))
		}
		next += take
		out = append(out, kmsg.SyncGroupRequestGroupAssignment{MemberID: id, MemberAssignment: a.AppendTo(nil)})
	}
	return out
}

// CommitThroughput runs `concurrency` committers, each in its own group,
// committing one partition's offset in a loop for d, and returns the
// acknowledged commits per second.
func CommitThroughput(ctx context.Context, brokers []string, topic string, concurrency int, d time.Duration) (float64, error) {
	clients := make([]*kgo.Client, 8)
	for i := range clients {
		cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.MaxConcurrentFetches(1))
		if err != nil {
			return 0, err
		}
		defer cl.Close()
		clients[i] = cl
	}
	var done atomic.Int64
	var firstErr atomic.Value
	deadline := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	for i := range concurrency {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			cl := clients[i%len(clients)]
			for off := int64(1); time.Now().Before(deadline); off++ {
				r := kmsg.NewPtrOffsetCommitRequest()
				r.Group, r.Generation = fmt.Sprintf("bench-commit-%d", i), -1
				r.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: topic, Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: off, LeaderEpoch: -1}}}}
				resp, err := r.RequestWith(ctx, cl)
				if err == nil && resp.Topics[0].Partitions[0].ErrorCode != 0 {
					err = kerr.ErrorForCode(resp.Topics[0].Partitions[0].ErrorCode)
				}
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				done.Add(1)
			}
		}(i)
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return 0, err
	}
	return float64(done.Load()) / time.Since(start).Seconds(), nil
}

// CommitMany commits one offset for every partition of the topic in each
// of `groups` groups (groups × partitions offsets in all).
func CommitMany(ctx context.Context, brokers []string, topic string, partitions, groups int) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	for g := range groups {
		offs := kadm.Offsets{}
		for p := range partitions {
			offs.Add(kadm.Offset{Topic: topic, Partition: int32(p), At: int64(g + p), LeaderEpoch: -1})
		}
		if err := adm.CommitAllOffsets(ctx, fmt.Sprintf("bench-load-%d", g), offs); err != nil {
			return err
		}
	}
	return nil
}

// OffsetsLoaded polls until every group's offsets can be fetched (the
// coordinator answers COORDINATOR_LOAD_IN_PROGRESS while replaying) and
// checks one of them.
func OffsetsLoaded(ctx context.Context, brokers []string, topic string, partitions, groups int) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RetryBackoffFn(func(int) time.Duration { return 5 * time.Millisecond }))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	names := make([]string, groups)
	for g := range names {
		names[g] = fmt.Sprintf("bench-load-%d", g)
	}
	for {
		res := adm.FetchManyOffsets(ctx, names...)
		ok := true
		for _, g := range names {
			r := res[g]
			if r.Err != nil {
				if errors.Is(r.Err, kerr.CoordinatorLoadInProgress) {
					ok = false
					break
				}
				return r.Err
			}
		}
		if ok {
			o, found := res[names[groups-1]].Fetched.Lookup(topic, int32(partitions-1))
			if !found || o.At != int64(groups-1+partitions-1) {
				return fmt.Errorf("offsets after the restart are wrong: %+v", o)
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// ClientRebalance starts n kgo group consumers (cooperative-sticky, as kgo
// defaults) at once on a fresh group and waits until the group is Stable
// with every partition assigned once. It returns the time that took and
// the most JoinGroup round trips any member made.
func ClientRebalance(ctx context.Context, brokers []string, groupID, topic string, partitions, n int, heartbeat time.Duration) (time.Duration, int, error) {
	var mu sync.Mutex
	joins := make([]int, n)
	owned := make([]int, n)
	clients := make([]*kgo.Client, n)
	start := time.Now()
	for i := range clients {
		i := i
		cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumerGroup(groupID), kgo.ConsumeTopics(topic),
			kgo.HeartbeatInterval(heartbeat), kgo.SessionTimeout(30*time.Second),
			kgo.WithHooks(joinCounter(func() { mu.Lock(); joins[i]++; mu.Unlock() })),
			kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
				mu.Lock()
				owned[i] += len(m[topic])
				mu.Unlock()
			}),
			kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
				mu.Lock()
				owned[i] -= len(m[topic])
				mu.Unlock()
			}),
		)
		if err != nil {
			return 0, 0, err
		}
		defer cl.Close()
		clients[i] = cl
		go func() {
			for {
				if fs := cl.PollFetches(ctx); fs.IsClientClosed() || ctx.Err() != nil {
					return
				}
			}
		}()
	}
	adm := kadm.NewClient(clients[0])
	for {
		mu.Lock()
		total, everyone := 0, true
		for i := range owned {
			total += owned[i]
			everyone = everyone && owned[i] > 0
		}
		mu.Unlock()
		if total == partitions && everyone {
			d, err := adm.DescribeGroups(ctx, groupID)
			if err == nil && d[groupID].State == "Stable" && len(d[groupID].Members) == n {
				took := time.Since(start)
				mu.Lock()
				most := 0
				for _, j := range joins {
					most = max(most, j)
				}
				mu.Unlock()
				return took, most, nil
			}
		}
		if ctx.Err() != nil {
			return 0, 0, ctx.Err()
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// joinCounter counts JoinGroup requests a client writes.
type joinCounter func()

func (f joinCounter) OnBrokerWrite(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if key == 11 && err == nil {
		f()
	}
}

package broker_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tiercel/tiercel/internal/brokertest"
)

// groupSets make rebalances quick enough for tests.
var groupSets = []string{"group.initial.rebalance.delay.ms=200", "group.min.session.timeout.ms=500"}

// produceN writes n keyed records spread over the topic's partitions.
func produceN(t *testing.T, addr, topic string, n int) {
	t.Helper()
	cl := client(t, addr, kgo.DefaultProduceTopic(topic))
	rs := make([]*kgo.Record, n)
	for i := range rs {
		rs[i] = &kgo.Record{Key: []byte(fmt.Sprint(i)), Value: []byte(fmt.Sprint(i))}
	}
	if err := cl.ProduceSync(ctx(t), rs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// member is one group consumer whose network can be cut, to look dead to
// the broker without leaving the group.
type member struct {
	cl      *kgo.Client
	assigns atomic.Int32 // partition assignments seen: each is a rebalance this member took part in
	mu      sync.Mutex
	conns   []net.Conn
	dead    atomic.Bool
}

func (m *member) dial(ctx context.Context, network, host string) (net.Conn, error) {
	if m.dead.Load() {
		return nil, fmt.Errorf("member is dead")
	}
	c, err := (&net.Dialer{}).DialContext(ctx, network, host)
	if err == nil {
		m.mu.Lock()
		m.conns = append(m.conns, c)
		m.mu.Unlock()
	}
	return c, err
}

// crash cuts every connection: no LeaveGroup, no more heartbeats.
func (m *member) crash() {
	m.dead.Store(true)
	m.mu.Lock()
	for _, c := range m.conns {
		c.Close()
	}
	m.mu.Unlock()
}

type consumed struct {
	mu   sync.Mutex
	seen map[string]int // "p/offset" -> times
}

func (c *consumed) add(r *kgo.Record) {
	c.mu.Lock()
	c.seen[fmt.Sprintf("%d/%d", r.Partition, r.Offset)]++
	c.mu.Unlock()
}

func (c *consumed) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}

// startMember runs a group consumer that records what it consumes and
// commits as it goes.
func startMember(t *testing.T, addr, groupID, topic string, seen *consumed, opts ...kgo.Opt) *member {
	m := &member{}
	base := []kgo.Opt{
		kgo.SeedBrokers(addr), kgo.ConsumerGroup(groupID), kgo.ConsumeTopics(topic),
		kgo.SessionTimeout(2 * time.Second), kgo.HeartbeatInterval(200 * time.Millisecond),
		kgo.RebalanceTimeout(5 * time.Second), kgo.Dialer(m.dial),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }),
		kgo.OnPartitionsAssigned(func(context.Context, *kgo.Client, map[string][]int32) { m.assigns.Add(1) }),
	}
	cl, err := kgo.NewClient(append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	m.cl = cl
	go func() {
		for {
			fs := cl.PollFetches(context.Background())
			if fs.IsClientClosed() {
				return
			}
			fs.EachRecord(seen.add)
		}
	}()
	t.Cleanup(func() {
		if !m.dead.Load() {
			cl.Close()
		}
	})
	return m
}

// stableAssignment waits for the group to be Stable with every partition
// owned by exactly one of want members.
func stableAssignment(t *testing.T, adm *kadm.Client, groupID, topic string, partitions, want int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		gs, err := adm.DescribeGroups(ctx(t), groupID)
		if err == nil {
			g := gs[groupID]
			owners := map[int32]int{}
			for _, m := range g.Members {
				ca, ok := m.Assigned.AsConsumer()
				if !ok {
					continue
				}
				for _, at := range ca.Topics {
					if at.Topic == topic {
						for _, p := range at.Partitions {
							owners[p]++
						}
					}
				}
			}
			ok := g.State == "Stable" && len(g.Members) == want && len(owners) == partitions
			for _, n := range owners {
				ok = ok && n == 1
			}
			if ok {
				return
			}
			last = fmt.Sprintf("state %s, %d members, owners %v", g.State, len(g.Members), owners)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("group %s never settled: %s", groupID, last)
}

func rebalances(ms ...*member) int32 {
	var n int32
	for _, m := range ms {
		n += m.assigns.Load()
	}
	return n
}

// TestGroupMembersComeAndGo: three members share a 12-partition topic; one
// crashes (no LeaveGroup) and one joins mid-way; every record is consumed
// and the assignment settles, for the eager and the cooperative protocol.
func TestGroupMembersComeAndGo(t *testing.T) {
	for _, tc := range []struct {
		name     string
		balancer kgo.GroupBalancer
	}{{"eager-range", kgo.RangeBalancer()}, {"cooperative-sticky", kgo.CooperativeStickyBalancer()}} {
		t.Run(tc.name, func(t *testing.T) {
			b := brokertest.Start(t, groupSets...)
			adm := admin(t, b.Addr())
			create(t, adm, "events", 12, nil)
			const n = 6000
			produceN(t, b.Addr(), "events", n/2)
			seen := &consumed{seen: map[string]int{}}
			var ms []*member
			for range 3 {
				ms = append(ms, startMember(t, b.Addr(), "g", "events", seen, kgo.Balancers(tc.balancer)))
			}
			stableAssignment(t, adm, "g", "events", 12, 3)
			ms[0].crash()
			ms = append(ms, startMember(t, b.Addr(), "g", "events", seen, kgo.Balancers(tc.balancer)))
			produceN(t, b.Addr(), "events", n/2)
			stableAssignment(t, adm, "g", "events", 12, 3)
			brokertest.WaitFor(t, "every record consumed", func() bool { return seen.count() == n })
			live := ms[1:]
			before := rebalances(live...)
			time.Sleep(1500 * time.Millisecond)
			if after := rebalances(live...); after != before {
				t.Fatalf("%d more assignments with no membership change", after-before)
			}
		})
	}
}

// TestStaticMemberRestartNoRebalance: a static member that comes back
// within its session timeout keeps the generation and its partitions.
func TestStaticMemberRestartNoRebalance(t *testing.T) {
	b := brokertest.Start(t, groupSets...)
	adm := admin(t, b.Addr())
	create(t, adm, "s", 4, nil)
	seen := &consumed{seen: map[string]int{}}
	static := func(id string) []kgo.Opt {
		return []kgo.Opt{kgo.InstanceID(id), kgo.SessionTimeout(10 * time.Second)}
	}
	a := startMember(t, b.Addr(), "sg", "s", seen, static("a")...)
	other := startMember(t, b.Addr(), "sg", "s", seen, static("b")...)
	stableAssignment(t, adm, "sg", "s", 4, 2)
	time.Sleep(500 * time.Millisecond)
	before := other.assigns.Load()
	a.cl.Close() // a static member's Close does not leave the group
	a.dead.Store(true)
	again := startMember(t, b.Addr(), "sg", "s", seen, static("a")...)
	brokertest.WaitFor(t, "the restarted member's assignment", func() bool { return again.assigns.Load() > 0 })
	time.Sleep(time.Second)
	stableAssignment(t, adm, "sg", "s", 4, 2)
	if after := other.assigns.Load(); after != before {
		t.Fatalf("a static member's restart rebalanced the other member (%d -> %d assignments)", before, after)
	}
}

// TestOffsetsSurviveRestart: committed offsets and their metadata come
// back after a clean restart.
func TestOffsetsSurviveRestart(t *testing.T) {
	b := brokertest.Start(t, groupSets...)
	adm := admin(t, b.Addr())
	create(t, adm, "o", 3, nil)
	offs := kadm.Offsets{}
	for p := int32(0); p < 3; p++ {
		offs.Add(kadm.Offset{Topic: "o", Partition: p, At: int64(10 * (p + 1)), LeaderEpoch: 0, Metadata: fmt.Sprint("m", p)})
	}
	if err := adm.CommitAllOffsets(ctx(t), "og", offs); err != nil {
		t.Fatal(err)
	}
	b.Restart()
	adm = admin(t, b.Addr())
	var got kadm.OffsetResponses
	brokertest.WaitFor(t, "offsets after restart", func() bool {
		var err error
		got, err = adm.FetchOffsets(ctx(t), "og")
		return err == nil
	})
	for p := int32(0); p < 3; p++ {
		o, ok := got.Lookup("o", p)
		if !ok || o.Err != nil || o.At != int64(10*(p+1)) || o.Metadata != fmt.Sprint("m", p) || o.LeaderEpoch != 0 {
			t.Fatalf("partition %d after restart: %+v", p, o)
		}
	}
}

// TestGroupBadInput: each mistake gets Kafka's error code.
func TestGroupBadInput(t *testing.T) {
	b := brokertest.Start(t, append(groupSets, "group.max.size=1")...)
	adm := admin(t, b.Addr())
	create(t, adm, "bad", 1, nil)
	cl := client(t, b.Addr())
	conn := dial(t, b.Addr())
	commit := func(groupID, memberID string, gen int32, meta string) int16 {
		r := kmsg.NewPtrOffsetCommitRequest()
		r.Group, r.MemberID, r.Generation = groupID, memberID, gen
		tp := kmsg.NewOffsetCommitRequestTopic()
		tp.Topic = "bad"
		p := kmsg.NewOffsetCommitRequestTopicPartition()
		p.Offset, p.Metadata = 5, &meta
		tp.Partitions = append(tp.Partitions, p)
		r.Topics = append(r.Topics, tp)
		// Straight to the broker: a client would refuse some of these itself.
		resp := conn.roundTrip(r, 9).(*kmsg.OffsetCommitResponse)
		return resp.Topics[0].Partitions[0].ErrorCode
	}
	expect := func(what string, got int16, want *kerr.Error) {
		t.Helper()
		if got != want.Code {
			t.Errorf("%s: got %v, want %v", what, kerr.ErrorForCode(got), want)
		}
	}
	expect("unknown group with a generation", commit("nobody", "m", 3, ""), kerr.GroupIDNotFound)
	expect("empty group id", commit("", "", -1, ""), kerr.InvalidGroupID)
	long := make([]byte, 2000)
	for i := range long {
		long[i] = 'g'
	}
	expect("group id too long", commit(string(long), "", -1, ""), kerr.InvalidGroupID)
	expect("oversized metadata", commit("adm", "", -1, string(make([]byte, 5000))), kerr.OffsetMetadataTooLarge)

	// A live group of one member (group.max.size=1), driven by hand.
	join := kmsg.NewPtrJoinGroupRequest()
	join.Group, join.SessionTimeoutMillis, join.RebalanceTimeoutMillis, join.ProtocolType = "live", 30000, 30000, "consumer"
	join.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: []byte{0, 0}}}
	jr, err := join.RequestWith(ctx(t), cl)
	if err != nil {
		t.Fatal(err)
	}
	expect("first join", jr.ErrorCode, kerr.MemberIDRequired)
	join.MemberID = jr.MemberID
	if jr, err = join.RequestWith(ctx(t), cl); err != nil || jr.ErrorCode != 0 {
		t.Fatalf("join: %v %v", err, kerr.ErrorForCode(jr.ErrorCode))
	}
	someone, gen := jr.MemberID, jr.Generation
	sync := kmsg.NewPtrSyncGroupRequest()
	sync.Group, sync.MemberID, sync.Generation = "live", someone, gen
	sync.GroupAssignment = []kmsg.SyncGroupRequestGroupAssignment{{MemberID: someone, MemberAssignment: []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0}}}
	if sr, err := sync.RequestWith(ctx(t), cl); err != nil || sr.ErrorCode != 0 {
		t.Fatalf("sync: %v %+v", err, sr)
	}
	expect("unknown member", commit("live", "ghost", gen, ""), kerr.UnknownMemberID)
	expect("stale generation", commit("live", someone, gen-1, ""), kerr.IllegalGeneration)
	expect("generation -1 in a live group", commit("live", "", -1, ""), kerr.UnknownMemberID)
	expect("a good commit", commit("live", someone, gen, "ok"), &kerr.Error{Message: "NONE", Code: 0})
	hb := kmsg.NewPtrHeartbeatRequest()
	hb.Group, hb.MemberID, hb.Generation = "live", someone, gen+5
	if hr, err := hb.RequestWith(ctx(t), cl); err != nil {
		t.Fatal(err)
	} else {
		expect("heartbeat with a wrong generation", hr.ErrorCode, kerr.IllegalGeneration)
	}

	other := kmsg.NewPtrJoinGroupRequest()
	*other = *join
	other.MemberID = ""
	if jr, err = other.RequestWith(ctx(t), cl); err != nil {
		t.Fatal(err)
	}
	expect("a second member of a group of at most one", jr.ErrorCode, kerr.GroupMaxSizeReached)
	other.SessionTimeoutMillis = 10
	if jr, err = other.RequestWith(ctx(t), cl); err != nil {
		t.Fatal(err)
	}
	expect("session timeout below the minimum", jr.ErrorCode, kerr.InvalidSessionTimeout)

	del, err := adm.DeleteGroups(ctx(t), "live", "missing")
	if err != nil {
		t.Fatal(err)
	}
	if !errorsIs(del["live"].Err, kerr.NonEmptyGroup) || !errorsIs(del["missing"].Err, kerr.GroupIDNotFound) {
		t.Errorf("DeleteGroups: %v / %v", del["live"].Err, del["missing"].Err)
	}
	// The good commit is intact after all of this.
	offs, err := adm.FetchOffsets(ctx(t), "live")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := offs.Lookup("bad", 0); o.At != 5 || o.Metadata != "ok" {
		t.Fatalf("committed offset: %+v", o)
	}
}

func errorsIs(err error, target error) bool { return errors.Is(err, target) }

// stableConsumerGroup waits for a KIP-848 group to be Stable with every
// partition owned by exactly one of want members.
func stableConsumerGroup(t *testing.T, adm *kadm.Client, groupID, topic string, partitions, want int) kadm.DescribedConsumerGroup {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		gs, err := adm.DescribeConsumerGroups(ctx(t), groupID)
		if err == nil && gs[groupID].Err == nil {
			g := gs[groupID]
			owners := map[int32]int{}
			for _, m := range g.Members {
				for p := range m.Assignment[topic] {
					owners[p]++
				}
			}
			ok := g.State == "Stable" && len(g.Members) == want && len(owners) == partitions
			for _, n := range owners {
				ok = ok && n == 1
			}
			if ok {
				return g
			}
			last = fmt.Sprintf("state %s epoch %d/%d, %d members, owners %v", g.State, g.Epoch, g.AssignmentEpoch, len(g.Members), owners)
		} else if err == nil {
			last = gs[groupID].Err.Error()
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("consumer group %s never settled: %s", groupID, last)
	return kadm.DescribedConsumerGroup{}
}

// consumerSets make KIP-848 sessions short enough for tests.
var consumerSets = []string{"group.consumer.heartbeat.interval.ms=200", "group.consumer.session.timeout.ms=2000"}

// TestKIP848GroupMembersComeAndGo is TestGroupMembersComeAndGo with the
// broker assigning (group.protocol=consumer), for both server assignors.
func TestKIP848GroupMembersComeAndGo(t *testing.T) {
	for _, tc := range []struct {
		assignor string
		balancer kgo.GroupBalancer
	}{{"uniform", kgo.CooperativeStickyBalancer()}, {"range", kgo.RangeBalancer()}} {
		t.Run(tc.assignor, func(t *testing.T) {
			b := brokertest.Start(t, consumerSets...)
			adm := admin(t, b.Addr())
			create(t, adm, "events", 12, nil)
			const n = 6000
			produceN(t, b.Addr(), "events", n/2)
			seen := &consumed{seen: map[string]int{}}
			opts := []kgo.Opt{kgo.Balancers(tc.balancer), kgo.ServerSideBalancer()}
			var ms []*member
			for range 3 {
				ms = append(ms, startMember(t, b.Addr(), "g848", "events", seen, opts...))
			}
			g := stableConsumerGroup(t, adm, "g848", "events", 12, 3)
			if g.AssignorName != tc.assignor {
				t.Fatalf("assignor %q, want %q", g.AssignorName, tc.assignor)
			}
			ms[0].crash()
			ms = append(ms, startMember(t, b.Addr(), "g848", "events", seen, opts...))
			produceN(t, b.Addr(), "events", n/2)
			g = stableConsumerGroup(t, adm, "g848", "events", 12, 3)
			deadline := time.Now().Add(30 * time.Second)
			for seen.count() != n {
				if time.Now().After(deadline) {
					missing := map[string]int{}
					seen.mu.Lock()
					for k := range seen.seen {
						missing[k[:strings.IndexByte(k, '/')]]++
					}
					seen.mu.Unlock()
					offs, _ := adm.FetchOffsets(ctx(t), "g848")
					t.Fatalf("consumed %d of %d; per partition %v; group %+v; committed %v", seen.count(), n, missing, g, offs)
				}
				time.Sleep(50 * time.Millisecond)
			}
			time.Sleep(time.Second)
			again := stableConsumerGroup(t, adm, "g848", "events", 12, 3)
			if again.Epoch != g.Epoch {
				t.Fatalf("group epoch moved from %d to %d with no membership change", g.Epoch, again.Epoch)
			}
			lags, err := adm.Lag(ctx(t), "g848")
			if err == nil && lags["g848"].State != "Dead" {
				t.Fatalf("a classic DescribeGroups of a consumer group: %+v", lags["g848"])
			}
		})
	}
}

// TestOffsetsTopicCompaction: the coordinator rewrites its live state and
// drops the rest, so __consumer_offsets stays small, and after a restart
// the latest offsets are there and deleted groups stay deleted.
func TestOffsetsTopicCompaction(t *testing.T) {
	b := brokertest.Start(t, "tiercel.offsets.compact.bytes=16384", "offsets.topic.num.partitions=1", "offsets.topic.segment.bytes=8192")
	adm := admin(t, b.Addr())
	create(t, adm, "c", 4, nil)
	commit := func(group string, at int64) {
		offs := kadm.Offsets{}
		for p := int32(0); p < 4; p++ {
			offs.Add(kadm.Offset{Topic: "c", Partition: p, At: at + int64(p), LeaderEpoch: -1})
		}
		if err := adm.CommitAllOffsets(ctx(t), group, offs); err != nil {
			t.Fatal(err)
		}
	}
	commit("doomed", 7)
	commit("early", 40) // never again: only the rewrites carry it forward
	for i := int64(0); i < 1500; i++ {
		commit(fmt.Sprint("g", i%5), i)
	}
	if r, err := adm.DeleteGroups(ctx(t), "doomed"); err != nil || r["doomed"].Err != nil {
		t.Fatalf("delete: %v %v", err, r)
	}
	for i := int64(1500); i < 2000; i++ {
		commit(fmt.Sprint("g", i%5), i)
	}
	starts, err := adm.ListStartOffsets(ctx(t), "__consumer_offsets")
	if err != nil {
		t.Fatal(err)
	}
	ends, err := adm.ListEndOffsets(ctx(t), "__consumer_offsets")
	if err != nil {
		t.Fatal(err)
	}
	s, _ := starts.Lookup("__consumer_offsets", 0)
	e, _ := ends.Lookup("__consumer_offsets", 0)
	if s.Offset == 0 || e.Offset-s.Offset > 2000 {
		t.Fatalf("__consumer_offsets holds offsets %d to %d after 8000 commits: not compacted", s.Offset, e.Offset)
	}
	b.Restart()
	adm = admin(t, b.Addr())
	for g := int64(0); g < 5; g++ {
		var offs kadm.OffsetResponses
		brokertest.WaitFor(t, "offsets after restart", func() bool {
			offs, err = adm.FetchOffsets(ctx(t), fmt.Sprint("g", g))
			return err == nil
		})
		last := 1995 + g
		for p := int32(0); p < 4; p++ {
			if o, _ := offs.Lookup("c", p); o.At != last+int64(p) {
				t.Fatalf("g%d partition %d: %d after compaction and restart, want %d", g, p, o.At, last+int64(p))
			}
		}
	}
	early, err := adm.FetchOffsets(ctx(t), "early")
	if err != nil {
		t.Fatal(err)
	}
	for p := int32(0); p < 4; p++ {
		if o, _ := early.Lookup("c", p); o.At != 40+int64(p) {
			t.Fatalf("early partition %d: %d after compaction and restart", p, o.At)
		}
	}
	listed, err := adm.ListGroups(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := listed["doomed"]; ok || len(listed) != 6 {
		t.Fatalf("groups after compaction and restart: %v", listed.Groups())
	}
}

// TestOffsetFetchManyGroups: one OffsetFetch (v8+) for several groups,
// with require_stable, answers each group (a missing one with -1s).
func TestOffsetFetchManyGroups(t *testing.T) {
	b := brokertest.Start(t)
	adm := admin(t, b.Addr())
	create(t, adm, "m", 2, nil)
	for i, g := range []string{"ga", "gb"} {
		offs := kadm.Offsets{}
		offs.Add(kadm.Offset{Topic: "m", Partition: 1, At: int64(10 + i), LeaderEpoch: -1, Metadata: g})
		if err := adm.CommitAllOffsets(ctx(t), g, offs); err != nil {
			t.Fatal(err)
		}
	}
	conn := dial(t, b.Addr())
	req := kmsg.NewPtrOffsetFetchRequest()
	req.RequireStable = true
	for _, g := range []string{"ga", "gb", "nobody"} {
		rg := kmsg.NewOffsetFetchRequestGroup()
		rg.Group = g
		if g != "gb" {
			rg.Topics = []kmsg.OffsetFetchRequestGroupTopic{{Topic: "m", Partitions: []int32{0, 1}}}
		}
		req.Groups = append(req.Groups, rg)
	}
	resp := conn.roundTrip(req, 9).(*kmsg.OffsetFetchResponse)
	got := map[string]string{}
	for _, g := range resp.Groups {
		var parts []string
		for _, tp := range g.Topics {
			for _, p := range tp.Partitions {
				parts = append(parts, fmt.Sprintf("%s/%d=%d:%s", tp.Topic, p.Partition, p.Offset, *p.Metadata))
			}
		}
		got[g.Group] = fmt.Sprintf("%d %v", g.ErrorCode, parts)
	}
	want := map[string]string{
		"ga":     "0 [m/0=-1: m/1=10:ga]",
		"gb":     "0 [m/1=11:gb]", // no topics asked: every committed offset
		"nobody": "0 [m/0=-1: m/1=-1:]",
	}
	for g, w := range want {
		if got[g] != w {
			t.Errorf("group %s: %q, want %q", g, got[g], w)
		}
	}
}

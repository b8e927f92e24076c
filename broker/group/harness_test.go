package group

import (
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// fakeTopics is a fixed set of topics.
type fakeTopics map[string]int32

func (f fakeTopics) Partitions(name string) int32 {
	if n, ok := f[name]; ok {
		return n
	}
	return -1
}

func (f fakeTopics) TopicID(name string) ([16]byte, bool) {
	if _, ok := f[name]; !ok {
		return [16]byte{}, false
	}
	var id [16]byte
	copy(id[:], name)
	return id, true
}

func (f fakeTopics) TopicName(id [16]byte) (string, bool) {
	for name := range f {
		if want, _ := f.TopicID(name); want == id {
			return name, true
		}
	}
	return "", false
}

// harness drives a shard like the broker does: it numbers requests,
// collects replies, and makes writes durable (or fails them) on demand.
type harness struct {
	t       testing.TB
	s       *Shard
	now     time.Time
	nextTo  ReplyTo
	replies map[ReplyTo]any
	log     []Record // everything persisted, in order
	failing bool     // fail writes instead of persisting them
	held    []Write  // writes not yet persisted (hold mode)
	hold    bool
}

func testConfig() Config {
	n := 0
	return Config{
		MinSessionTimeout: 100 * time.Millisecond, MaxSessionTimeout: time.Hour,
		InitialRebalanceDelay: 0, MaxSize: 100, MaxMetadataBytes: 4096,
		OffsetsRetention: 24 * time.Hour, MaxRecordBytes: 1 << 20,
		ConsumerSessionTimeout: 10 * time.Second, ConsumerHeartbeatInterval: time.Second,
		ConsumerMaxSize: 100, ConsumerAssignors: []string{"uniform", "range"},
		Topics: fakeTopics{"t": 12, "u": 3},
		NewMemberID: func(client string) string {
			n++
			return fmt.Sprintf("%s-%d", client, n)
		},
	}
}

func newHarness(t testing.TB, cfg Config) *harness {
	h := &harness{t: t, s: NewShard(cfg), now: time.Unix(1_700_000_000, 0), replies: map[ReplyTo]any{}}
	h.s.Loaded(h.now)
	return h
}

// to returns a fresh reply address.
func (h *harness) to() ReplyTo {
	h.nextTo++
	return h.nextTo
}

// settle moves replies into h.replies and persists writes until quiet.
func (h *harness) settle() {
	for {
		replies, writes := h.s.Take()
		for _, r := range replies {
			if _, dup := h.replies[r.To]; dup {
				h.t.Fatalf("request %d answered twice", r.To)
			}
			h.replies[r.To] = r.Resp
		}
		if h.hold {
			h.held = append(h.held, writes...)
			writes = nil
		}
		if len(replies) == 0 && len(writes) == 0 {
			return
		}
		for _, w := range writes {
			h.finish(w)
		}
	}
}

func (h *harness) finish(w Write) {
	if h.failing {
		h.s.Persisted(w.ID, fmt.Errorf("disk full"))
		return
	}
	h.log = append(h.log, w.Records...)
	h.s.Persisted(w.ID, nil)
}

// release persists the held writes.
func (h *harness) release() {
	held := h.held
	h.held = nil
	for _, w := range held {
		h.finish(w)
	}
	h.settle()
}

func (h *harness) advance(d time.Duration) {
	h.now = h.now.Add(d)
	h.s.Tick(h.now)
	h.settle()
}

// reply returns (and forgets) the answer to a request, or nil.
func (h *harness) reply(to ReplyTo) any {
	r, ok := h.replies[to]
	if ok {
		delete(h.replies, to)
	}
	return r
}

func joinReq(group, memberID, instance string, session time.Duration, protos ...string) *kmsg.JoinGroupRequest {
	r := kmsg.NewPtrJoinGroupRequest()
	r.Version = 9
	r.Group, r.MemberID = group, memberID
	if instance != "" {
		r.InstanceID = &instance
	}
	r.SessionTimeoutMillis = int32(session.Milliseconds())
	r.RebalanceTimeoutMillis = int32(session.Milliseconds())
	r.ProtocolType = "consumer"
	if len(protos) == 0 {
		protos = []string{"range"}
	}
	for _, p := range protos {
		r.Protocols = append(r.Protocols, kmsg.JoinGroupRequestProtocol{Name: p, Metadata: []byte(p)})
	}
	return r
}

// join sends a JoinGroup and returns its address.
func (h *harness) join(r *kmsg.JoinGroupRequest) ReplyTo {
	to := h.to()
	h.s.Join(h.now, to, r, Client{ID: "c", Host: "/127.0.0.1"})
	h.settle()
	return to
}

func (h *harness) joinResp(to ReplyTo) *kmsg.JoinGroupResponse {
	h.t.Helper()
	r := h.reply(to)
	if r == nil {
		h.t.Fatalf("JoinGroup %d not answered", to)
	}
	return r.(*kmsg.JoinGroupResponse)
}

func (h *harness) sync(group, memberID string, gen int32, assign map[string]string) ReplyTo {
	r := kmsg.NewPtrSyncGroupRequest()
	r.Version = 5
	r.Group, r.MemberID, r.Generation = group, memberID, gen
	for m, a := range assign {
		r.GroupAssignment = append(r.GroupAssignment, kmsg.SyncGroupRequestGroupAssignment{MemberID: m, MemberAssignment: []byte(a)})
	}
	to := h.to()
	h.s.Sync(h.now, to, r)
	h.settle()
	return to
}

func (h *harness) heartbeat(group, memberID, instance string, gen int32) int16 {
	r := kmsg.NewPtrHeartbeatRequest()
	r.Version = 4
	r.Group, r.MemberID, r.Generation = group, memberID, gen
	if instance != "" {
		r.InstanceID = &instance
	}
	to := h.to()
	h.s.Heartbeat(h.now, to, r)
	h.settle()
	return h.reply(to).(*kmsg.HeartbeatResponse).ErrorCode
}

func (h *harness) commit(group, memberID string, gen int32, topic string, part int32, offset int64) ReplyTo {
	r := kmsg.NewPtrOffsetCommitRequest()
	r.Version = 8
	r.Group, r.MemberID, r.Generation = group, memberID, gen
	p := kmsg.NewOffsetCommitRequestTopicPartition()
	p.Partition, p.Offset = part, offset
	r.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: topic, Partitions: []kmsg.OffsetCommitRequestTopicPartition{p}}}
	to := h.to()
	h.s.Commit(h.now, to, r)
	h.settle()
	return to
}

func commitCode(r any) int16 {
	return r.(*kmsg.OffsetCommitResponse).Topics[0].Partitions[0].ErrorCode
}

func (h *harness) committed(group, topic string, part int32) int64 {
	g := h.s.FetchOffsets(FetchGroup{Group: group, Topics: []kmsg.OffsetFetchRequestGroupTopic{{Topic: topic, Partitions: []int32{part}}}})
	return g.Topics[0].Partitions[0].Offset
}

func wantCode(t testing.TB, what string, got int16, want *kerr.Error) {
	t.Helper()
	wantCode := int16(0)
	if want != nil {
		wantCode = want.Code
	}
	if got != wantCode {
		t.Fatalf("%s: got %v, want %v", what, kerr.ErrorForCode(got), want)
	}
}

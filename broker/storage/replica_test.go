package storage

import (
	"context"
	"fmt"
	"math/rand"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/tiercel/tiercel/internal/recordbatch"
	"github.com/tiercel/tiercel/internal/replica"
	"github.com/tiercel/tiercel/internal/vfs"
)

// replicaNode is one broker's copy of a partition on its own disk.
type replicaNode struct {
	mem *vfs.Mem
	e   *env
	m   *Manager
	l   *Log
}

func (n *replicaNode) epochs() []replica.EpochStart {
	var out []replica.EpochStart
	for _, e := range n.l.Epochs() {
		out = append(out, replica.EpochStart{Epoch: e.Epoch, StartOffset: e.Start})
	}
	return out
}

// TestFollowerLogsAgainstModel runs two copies of a partition through
// appends, follower fetches, leader changes with divergent uncommitted
// tails, truncation by OffsetForLeaderEpoch rounds, and crashes, checking
// against the model: committed records never change, and a follower that
// caught up holds exactly the leader's log.
func TestFollowerLogsAgainstModel(t *testing.T) {
	seeds := 200
	if testing.Short() {
		seeds = 40
	}
	for s := range seeds {
		t.Run(fmt.Sprint(s), func(t *testing.T) {
			t.Parallel()
			followerModel(t, int64(s))
		})
	}
}

func followerModel(t *testing.T, seed int64) {
	rng := rand.New(rand.NewSource(seed))
	cfg := DefaultConfig()
	cfg.SegmentBytes = int64(300 + rng.Intn(2000))
	cfg.IndexIntervalBytes = int32(32 + rng.Intn(300))
	nodes := make([]*replicaNode, 2)
	for i := range nodes {
		mem := vfs.NewMem()
		n := &replicaNode{mem: mem, e: newEnv(mem, "/d", cfg)}
		n.m = n.e.open(t)
		l, err := n.m.Create(tp0, [16]byte{1}, cfg)
		if err != nil {
			t.Fatal(err)
		}
		n.l = l
		nodes[i] = n
	}
	leader, epoch := 0, int32(0)
	var committed []string // the records below the high watermark: on both copies
	for op := range 150 {
		ld, fl := nodes[leader], nodes[1-leader]
		switch r := rng.Intn(20); {
		case r < 9: // the leader appends
			vals := make([]string, 1+rng.Intn(3))
			for i := range vals {
				vals[i] = fmt.Sprintf("e%d-op%d-%d", epoch, op, i)
			}
			if _, err := ld.l.Append(batch(t, vals...), AppendOptions{LeaderEpoch: epoch}); err != nil {
				t.Fatalf("op %d: append: %v", op, err)
			}
		case r < 16: // the follower fetches from its log end
			res, err := ld.l.Read(fl.l.EndOffset(), int32(1+rng.Intn(600)), ld.l.EndOffset())
			if err != nil {
				t.Fatalf("op %d: leader read at %d: %v", op, fl.l.EndOffset(), err)
			}
			if len(res.Records) > 0 {
				if _, err := fl.l.AppendReplica(res.Records); err != nil {
					t.Fatalf("op %d: replica append: %v", op, err)
				}
				if err := fl.l.WaitDurable(t.Context(), fl.l.EndOffset()); err != nil {
					t.Fatal(err)
				}
			}
			// What the follower holds durably and the leader holds is committed.
			hw := min(fl.l.EndOffset(), ld.l.EndOffset())
			if err := ld.l.WaitDurable(t.Context(), hw); err != nil {
				t.Fatal(err)
			}
			if hw > int64(len(committed)) {
				committed = readRange(t, ld.l, 0, hw)
			}
			ld.l.SetReplicaHighWatermark(hw)
			fl.l.SetReplicaHighWatermark(hw)
		case r < 18: // a leader change: the follower leads at the next epoch
			epoch++
			leader = 1 - leader
			ld, fl = fl, ld
			truncateFollower(t, op, fl, ld, int64(len(committed)))
		default: // the follower crashes, keeping only what it synced
			crashed := fl.mem.Crash(rng)
			fl.m.closeLogs()
			fl.mem, fl.e.fs = crashed, crashed
			fl.m = fl.e.open(t)
			if fl.l = fl.m.Get(tp0); fl.l == nil {
				t.Fatalf("op %d: log vanished", op)
			}
			truncateFollower(t, op, fl, ld, int64(len(committed)))
		}
		for i, n := range nodes {
			if n.l.EndOffset() < int64(len(committed)) {
				t.Fatalf("op %d: copy %d ends at %d below the committed %d", op, i, n.l.EndOffset(), len(committed))
			}
			if got := readRange(t, n.l, 0, int64(len(committed))); !slices.Equal(got, committed) {
				t.Fatalf("op %d: copy %d changed committed records:\n got %q\nwant %q", op, i, got, committed)
			}
		}
	}
	// Caught up, the follower holds exactly the leader's log.
	ld, fl := nodes[leader], nodes[1-leader]
	for fl.l.EndOffset() < ld.l.EndOffset() {
		res, err := ld.l.Read(fl.l.EndOffset(), 1<<20, ld.l.EndOffset())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fl.l.AppendReplica(res.Records); err != nil {
			t.Fatal(err)
		}
	}
	if a, b := readRange(t, ld.l, 0, ld.l.EndOffset()), readRange(t, fl.l, 0, fl.l.EndOffset()); !slices.Equal(a, b) {
		t.Fatalf("caught-up follower differs:\nleader   %q\nfollower %q", a, b)
	}
	if !slices.Equal(ld.l.Epochs(), fl.l.Epochs()) {
		t.Fatalf("epoch histories differ: leader %v follower %v", ld.l.Epochs(), fl.l.Epochs())
	}
	for _, n := range nodes {
		n.m.Close()
	}
}

// truncateFollower runs KIP-279's rounds: ask the leader for the end of
// the follower's latest epoch, truncate, repeat until done.
func truncateFollower(t *testing.T, op int, fl, ld *replicaNode, hw int64) {
	t.Helper()
	for round := 0; ; round++ {
		if round > 100 {
			t.Fatalf("op %d: truncation does not end", op)
		}
		e, end := ld.l.EndOffsetForEpoch(fl.l.LatestEpoch())
		if fl.l.LatestEpoch() < 0 {
			e, end = -1, -1
		}
		off, done := replica.TruncationOffset(fl.epochs(), fl.l.EndOffset(), hw, e, end)
		if err := fl.l.TruncateTo(off); err != nil {
			t.Fatalf("op %d: truncate to %d: %v", op, off, err)
		}
		if done {
			return
		}
	}
}

// readRange reads the values of offsets [from, to) whatever the high watermark.
func readRange(t *testing.T, l *Log, from, to int64) []string {
	t.Helper()
	var out []string
	for off := from; off < to; {
		res, err := l.Read(off, 1<<20, to)
		if err != nil {
			t.Fatalf("read at %d: %v", off, err)
		}
		if len(res.Records) == 0 {
			t.Fatalf("empty read at %d below %d", off, to)
		}
		batches, err := recordbatch.Validate(res.Records, recordbatch.ValidateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range batches {
			recs, _ := recordbatch.Records(b)
			for _, r := range recs {
				if r.Offset >= off && r.Offset < to {
					out = append(out, string(r.Value))
				}
			}
			off = b.LastOffset() + 1
		}
	}
	return out
}

// TestWaitDurableWithConcurrentCheckpoints: a checkpoint that fsyncs
// everything between a waiter starting the sync loop and the loop's first
// look must not leave the waiter waiting for good (found by the
// replication benchmark: a follower's fetcher hung in WaitDurable).
func TestWaitDurableWithConcurrentCheckpoints(t *testing.T) {
	e := newEnv(vfs.NewMem(), "/d", DefaultConfig())
	m := e.open(t)
	defer m.Close()
	l, err := m.Create(tp0, [16]byte{2}, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2000 {
		if _, err := l.Append(batch(t, fmt.Sprint(i)), AppendOptions{}); err != nil {
			t.Fatal(err)
		}
		// The append started the sync loop; let it finish, so that the
		// waiter below starts a new one, racing the checkpoint.
		for l.syncingNow() {
			runtime.Gosched()
		}
		l.mu.Lock()
		l.synced-- // pretend the last offset is not synced yet
		l.mu.Unlock()
		done := make(chan error, 1)
		started := make(chan struct{})
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			close(started)
			done <- l.WaitDurable(ctx, l.EndOffset())
		}()
		<-started
		if _, err := l.checkpointAt(true); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
}

func (l *Log) syncingNow() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.syncing
}

// TestReplicatedHighWatermarkSurvivesRestart: a replicated log's high
// watermark is checkpointed (replication-offset-checkpoint, never above
// what is durable) and is where it starts again after a restart, so
// committed records stay readable before the replicas report.
func TestReplicatedHighWatermarkSurvivesRestart(t *testing.T) {
	e := newEnv(vfs.NewMem(), "/d", DefaultConfig())
	m := e.open(t)
	l, err := m.Create(tp0, [16]byte{3}, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		mustAppend(t, l, batch(t, fmt.Sprint(i)))
	}
	l.SetReplicaHighWatermark(6)
	if l.HighWatermark() != 6 {
		t.Fatalf("hw %d, want 6", l.HighWatermark())
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	m = e.open(t)
	defer m.Close()
	l = m.Get(tp0)
	if l.Replicated() {
		t.Fatal("reopened replicated before anyone said so")
	}
	l.SetReplicaHighWatermark(0)
	if l.HighWatermark() != 6 {
		t.Fatalf("after a restart: hw %d, want the checkpointed 6", l.HighWatermark())
	}
	if err := l.TruncateTo(4); err != nil {
		t.Fatal(err)
	}
	if l.HighWatermark() != 4 {
		t.Fatalf("after truncating to 4: hw %d", l.HighWatermark())
	}
}

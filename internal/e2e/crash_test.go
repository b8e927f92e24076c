package e2e

import (
	"bytes"
	"context"
	"fmt"
	"math/rand"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tiercel/tiercel/internal/brokertest"
)

// TestKill9UnderLoad kills a broker subprocess with SIGKILL again and again
// while idempotent acks=all producers keep writing through the restarts, and
// then checks the log: every acknowledged record is present exactly once, no
// record appears twice, and each producer's records keep their order within
// a partition. The producers live across the kills, so their retries of
// batches whose acknowledgement was lost are exactly what the broker's
// recovered producer state must deduplicate.
func TestKill9UnderLoad(t *testing.T) {
	const (
		cycles     = 20
		producers  = 3
		partitions = 4
		topic      = "crash"
	)
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewSource(seed))
	t.Logf("seed %d", seed)

	dir := t.TempDir()
	// With drop-behind on (the other crash tests run the default, off):
	// what the log dropped from the page cache is read back from disk by
	// recovery and by the final read.
	proc := brokertest.StartProcess(t, dir, "tiercel.log.drop.behind.bytes=65536")
	createTopic(t, proc.Addr(), topic, partitions)

	acked := produceThroughKills(t, proc, topic, killLoad{partitions: partitions, producers: producers, cycles: cycles, padding: 200, pause: func() time.Duration {
		return time.Duration(150+rng.Intn(450)) * time.Millisecond
	}})
	if len(acked) < 1000 {
		t.Fatalf("only %d records acknowledged over %d cycles: the load was too small to prove anything", len(acked), cycles)
	}
	proc.Kill()
	proc.Restart()
	log := readAll(t, proc.Addr(), topic, partitions)
	checkLog(t, log, acked)
	proc.Stop()
}

// killLoad describes produceThroughKills' load.
type killLoad struct {
	partitions, producers, cycles int
	pause                         func() time.Duration // before each kill
	padding                       int                  // bytes of key per record
	opts                          []kgo.Opt            // more producer options
	// disrupt, if set, replaces the SIGKILL and restart of proc in cycle c.
	disrupt func(c int)
	seeds   []string // the producers' seed brokers; default proc
	// interval, if set, spaces each producer's records (a bounded load).
	interval time.Duration
}

// produceThroughKills runs idempotent acks=all producers (one client
// each, living across the kills, so their retries of batches whose
// acknowledgement was lost are what the broker must deduplicate) while the
// broker process is killed with SIGKILL and restarted l.cycles times; it
// returns the values acknowledged. Values are "<producer>-<sequence>".
func produceThroughKills(t *testing.T, proc *brokertest.Process, topic string, l killLoad) map[string]bool {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		mu     sync.Mutex
		acked  = map[string]bool{}
		failed = map[string]int{}
		wg     sync.WaitGroup
	)
	pad := []byte(strings.Repeat("x", l.padding))
	seeds := l.seeds
	if len(seeds) == 0 {
		seeds = []string{proc.Addr()}
	}
	clients := make([]*kgo.Client, l.producers)
	// The clients' own log, shown if the load came to nothing: it says
	// what they were waiting for.
	clientLog := &syncBuffer{}
	for p := range l.producers {
		opts := append([]kgo.Opt{
			kgo.WithLogger(kgo.BasicLogger(clientLog, kgo.LogLevelInfo, func() string { return fmt.Sprintf("%s producer %d: ", time.Now().Format("15:04:05.000"), p) })),
			kgo.SeedBrokers(seeds...),
			kgo.DefaultProduceTopic(topic),
			kgo.RequiredAcks(kgo.AllISRAcks()),
			kgo.ProducerLinger(time.Millisecond),
			kgo.RecordPartitioner(kgo.ManualPartitioner()),
			kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }),
		}, l.opts...)
		cl, err := kgo.NewClient(opts...)
		if err != nil {
			t.Fatal(err)
		}
		clients[p] = cl
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := 0; ctx.Err() == nil; seq++ {
				r := &kgo.Record{Value: []byte(fmt.Sprintf("%d-%09d", p, seq)), Key: pad, Partition: int32(seq % l.partitions)}
				if l.interval > 0 {
					time.Sleep(l.interval)
				}
				cl.Produce(ctx, r, func(r *kgo.Record, err error) {
					mu.Lock()
					defer mu.Unlock()
					if err == nil {
						acked[string(r.Value)] = true
					} else if failed[err.Error()]++; failed[err.Error()] == 1 && ctx.Err() == nil {
						t.Logf("produce error: %v", err)
					}
				})
			}
		}()
	}
	for c := range l.cycles {
		time.Sleep(l.pause())
		if l.disrupt != nil {
			l.disrupt(c)
			continue
		}
		proc.Kill()
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		began := time.Now()
		proc.Restart()
		t.Logf("cycle %d: killed with %d records acknowledged so far; serving again after %v", c, n, time.Since(began).Round(time.Millisecond))
	}
	// Let the producers drain what they buffered, then stop them.
	time.Sleep(500 * time.Millisecond)
	cancel()
	for _, cl := range clients {
		flushCtx, stop := context.WithTimeout(context.Background(), 30*time.Second)
		_ = cl.Flush(flushCtx)
		stop()
		cl.Close()
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(acked) < 1000 {
		t.Logf("only %d records acknowledged; errors: %v; the producers' log:\n%s", len(acked), failed, clientLog.String())
	}
	return acked
}

// syncBuffer is a bytes.Buffer for several writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// readAll consumes every partition from the earliest to the latest offset.
func readAll(t *testing.T, addr, topic string, partitions int) map[int32][]string {
	t.Helper()
	adm, admCl := newAdmin(t, addr)
	defer admCl.Close()
	ends, err := adm.ListEndOffsets(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			t.Fatalf("end offset %d: %v", o.Partition, o.Err)
		}
		want[o.Partition] = o.Offset
	})
	if len(want) != partitions {
		t.Fatalf("%d partitions listed, want %d", len(want), partitions)
	}
	offsets := map[string]map[int32]kgo.Offset{topic: {}}
	for p := int32(0); p < int32(partitions); p++ {
		offsets[topic][p] = kgo.NewOffset().AtStart()
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumePartitions(offsets))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	got := map[int32][]string{}
	next := map[int32]int64{}
	// Where each value was first read, to say who wrote a duplicate: the
	// leader epochs tell which leaders appended the copies; a new producer
	// id or epoch means the client reset its idempotence (after an error
	// it could not retry), the same ones that a broker did not deduplicate.
	type copyAt struct {
		offset      int64
		leaderEpoch int32
		pid         int64
		epoch       int16
	}
	first := map[string]copyAt{}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for !caughtUp(next, want) {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("timed out reading the log: at %v, want %v", next, want)
		}
		fs.EachError(func(_ string, p int32, err error) { t.Fatalf("fetch partition %d: %v", p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset != next[r.Partition] {
				t.Fatalf("partition %d: offset %d follows %d: a gap or a repeat", r.Partition, r.Offset, next[r.Partition]-1)
			}
			next[r.Partition] = r.Offset + 1
			got[r.Partition] = append(got[r.Partition], string(r.Value))
			at := copyAt{r.Offset, r.LeaderEpoch, r.ProducerID, r.ProducerEpoch}
			if c, dup := first[string(r.Value)]; dup {
				t.Logf("partition %d: %s at offset %d (leader epoch %d, producer %d epoch %d) and at %d (leader epoch %d, producer %d epoch %d)",
					r.Partition, r.Value, c.offset, c.leaderEpoch, c.pid, c.epoch, at.offset, at.leaderEpoch, at.pid, at.epoch)
			} else {
				first[string(r.Value)] = at
			}
		})
	}
	return got
}

func caughtUp(next, want map[int32]int64) bool {
	for p, end := range want {
		if next[p] < end {
			return false
		}
	}
	return true
}

// checkLog asserts exactly-once presence of acknowledged records and
// per-producer order within each partition.
func checkLog(t *testing.T, log map[int32][]string, acked map[string]bool) {
	t.Helper()
	checkLogLosing(t, log, acked, nil)
}

// checkLogLosing is checkLog where acknowledged records may be missing
// if mayLose says so (an unclean election loses what was not tiered).
func checkLogLosing(t *testing.T, log map[int32][]string, acked map[string]bool, mayLose func(value string) bool) {
	t.Helper()
	seen := map[string]logPos{}
	for p, values := range log {
		last := map[string]int{}
		for i, v := range values {
			if prev, dup := seen[v]; dup {
				t.Errorf("record %s appears twice (partitions %d and %d, index %d)", v, prev.partition, p, i)
			}
			seen[v] = logPos{p, i}
			producer, seq := splitValue(t, v)
			if l, ok := last[producer]; ok && seq <= l {
				t.Errorf("partition %d: producer %s sequence %d after %d: out of order", p, producer, seq, l)
			}
			last[producer] = seq
		}
	}
	var missing []string
	lost := 0
	for v := range acked {
		if _, ok := seen[v]; !ok {
			if mayLose != nil && mayLose(v) {
				lost++
				continue
			}
			missing = append(missing, v)
		}
	}
	if lost > 0 {
		t.Logf("%d acknowledged records lost where allowed (unclean election)", lost)
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("%d acknowledged records lost, e.g. %v", len(missing), missing[:min(10, len(missing))])
		describeGaps(t, missing, seen, len(log))
	}
	t.Logf("%d records in the log, %d acknowledged, all present once and in order", len(seen), len(acked))
}

// logPos is where a record was read: its partition and its index there
// (its offset when the log starts at 0).
type logPos struct {
	partition int32
	index     int
}

// describeGaps says, for each run of a producer's lost records (sequence
// numbers a partition count apart: the tests send sequence s to partition
// s mod partitions), where its neighbours are in the log, so a loss can be
// matched with the brokers' logs and the segments in the bucket.
func describeGaps(t *testing.T, missing []string, seen map[string]logPos, partitions int) {
	t.Helper()
	if partitions == 0 {
		return
	}
	lost := map[string]bool{}
	for _, v := range missing {
		lost[v] = true
	}
	value := func(producer string, seq int) string { return fmt.Sprintf("%s-%09d", producer, seq) }
	runs := 0
	for _, v := range missing {
		producer, seq := splitValue(t, v)
		if seq >= partitions && lost[value(producer, seq-partitions)] {
			continue // not the first of its run
		}
		end := seq
		for lost[value(producer, end+partitions)] {
			end += partitions
		}
		before, after := "none", "none"
		if p, ok := seen[value(producer, seq-partitions)]; ok {
			before = fmt.Sprintf("partition %d index %d", p.partition, p.index)
		}
		if p, ok := seen[value(producer, end+partitions)]; ok {
			after = fmt.Sprintf("partition %d index %d", p.partition, p.index)
		}
		t.Logf("lost: producer %s sequences %d..%d (%d records); the one before at %s, the one after at %s",
			producer, seq, end, (end-seq)/partitions+1, before, after)
		if runs++; runs == 10 {
			return
		}
	}
}

func splitValue(t *testing.T, v string) (string, int) {
	producer, seqText, ok := strings.Cut(v, "-")
	seq, err := strconv.Atoi(seqText)
	if !ok || err != nil {
		t.Fatalf("unexpected record value %q", v)
	}
	return producer, seq
}

func newAdmin(t *testing.T, addr string) (*kadm.Client, *kgo.Client) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	return kadm.NewClient(cl), cl
}

func createTopic(t *testing.T, addr, topic string, partitions int) {
	t.Helper()
	adm, cl := newAdmin(t, addr)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := adm.CreateTopic(ctx, int32(partitions), 1, nil, topic)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Err != nil {
		t.Fatal(resp.Err)
	}
}

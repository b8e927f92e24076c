package e2e

import (
	"context"
	"fmt"
	"math/rand"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tiercel/tiercel/broker"
	"github.com/tiercel/tiercel/internal/brokertest"
	"github.com/tiercel/tiercel/internal/testservers"
	"github.com/tiercel/tiercel/objstore"
	"github.com/tiercel/tiercel/objstore/faulty"
	"github.com/tiercel/tiercel/objstore/fs"
	"github.com/tiercel/tiercel/tiering"
)

// collectAndCheck runs garbage collection with no grace (nothing is being
// uploaded) and then checks that every segment object in the bucket is
// named by its partition's manifest and every named object exists.
func collectAndCheck(t *testing.T, b objstore.Bucket) int {
	t.Helper()
	ctx := context.Background()
	res, err := tiering.CollectAll(ctx, b, func(ctx context.Context) (map[string]bool, error) { return broker.LiveTopicIDs(ctx, b) }, time.Now().UnixMilli()+1, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	segs, manifests := bucketKeys(t, b)
	named := map[string]bool{}
	store := tiering.ManifestStore{Bucket: b}
	for _, mk := range manifests {
		f := strings.Split(mk, "/")
		var p int32
		fmt.Sscan(f[3], &p)
		m, _, err := store.Load(ctx, f[2], p)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range m.Segments {
			named[s.Key] = true
		}
	}
	for _, k := range segs {
		if !named[k] {
			t.Errorf("orphan after garbage collection: %s", k)
		}
		delete(named, k)
	}
	for k := range named {
		t.Errorf("a manifest names %s, which is not in the bucket", k)
	}
	return len(res.Deleted)
}

// TestTieringUnderObjectStoreFaults: with the store failing a fifth of
// requests (retriable and permanent errors, writes whose answer is lost,
// reads cut short, added latency), tiering still gets everything into the
// bucket, consumers still read every record once and in order, and after
// garbage collection no object is left that no manifest names.
func TestTieringUnderObjectStoreFaults(t *testing.T) {
	const topic = "faults"
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewSource(seed))
	inner, err := fs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f := faulty.Wrap(inner, seed, faulty.Faults{})
	br := brokertest.StartWithBucket(t, t.TempDir(), f, fastTiering...)
	adm, cl := newAdmin(t, br.Addr())
	defer cl.Close()
	if _, err := adm.CreateTopic(context.Background(), 3, 1, tinySegments, topic); err != nil {
		t.Fatal(err)
	}
	model := sent{}
	produceInto(t, br.Addr(), topic, 30, rng, model) // reserves producer ids before the faults
	f.Set(faulty.Faults{Retriable: 0.1, Permanent: 0.05, LostResponse: 0.1, CutRead: 0.1, Latency: time.Millisecond})
	produceInto(t, br.Addr(), topic, 1500, rng, model)
	waitTiered(t, adm, topic, model)
	checkAll(t, br.Addr(), topic, model)
	for _, kind := range []string{"retriable", "permanent", "lost", "cut"} {
		if f.Count(kind) == 0 {
			t.Errorf("no %s fault was injected: the test proved less than it says", kind)
		}
	}
	f.Set(faulty.Faults{})
	t.Logf("faults injected: %v; orphans collected: %d", f.Injected, collectAndCheck(t, inner))
	checkAll(t, br.Addr(), topic, model)
}

// TestTieringKill9 kills a broker subprocess tiering to versitygw with
// SIGKILL again and again while idempotent producers write tiny segments
// that are uploaded and trimmed all the time; afterwards every acknowledged
// record is in the log exactly once and in order, read back from the
// bucket, and garbage collection leaves no orphan.
func TestTieringKill9(t *testing.T) {
	const (
		cycles     = 8
		producers  = 2
		partitions = 3
		topic      = "tiered-crash"
	)
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewSource(seed))
	t.Logf("seed %d", seed)
	srv := testservers.StartVersityGW(t)
	b, url := s3Bucket(t, srv, "crash")
	sets := append([]string{"tiercel.objstore.url=" + url}, fastTiering...)
	proc := brokertest.StartProcess(t, t.TempDir(), sets...)
	adm, admCl := newAdmin(t, proc.Addr())
	if _, err := adm.CreateTopic(context.Background(), partitions, 1, tinySegments, topic); err != nil {
		t.Fatal(err)
	}
	admCl.Close()

	acked := produceThroughKills(t, proc, topic, killLoad{partitions: partitions, producers: producers, cycles: cycles, padding: 200,
		pause: func() time.Duration { return time.Duration(400+rng.Intn(800)) * time.Millisecond },
		opts:  []kgo.Opt{kgo.ProducerBatchMaxBytes(2048)}})
	if len(acked) < 2000 {
		t.Fatalf("only %d records acknowledged: too little load to prove anything", len(acked))
	}

	// Everything rolls within segment.ms and is tiered; the local log
	// keeps only the last segments, so reading from 0 goes to the bucket.
	adm, admCl = newAdmin(t, proc.Addr())
	defer admCl.Close()
	ends := offsets(t, adm, topic, -1)
	deadline := time.Now().Add(60 * time.Second)
	for {
		tiered, local := offsets(t, adm, topic, -5), offsets(t, adm, topic, -4)
		done := true
		for p, end := range ends {
			done = done && tiered[p]+1 == end && local[p] > 0
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not tiered within 60s: tiered %v, local start %v, ends %v", tiered, local, ends)
		}
		time.Sleep(100 * time.Millisecond)
	}
	log := readAll(t, proc.Addr(), topic, partitions)
	checkLog(t, log, acked)
	proc.Stop()
	t.Logf("orphans collected: %d", collectAndCheck(t, b))

	// The whole log again from a new, empty data directory.
	fresh := brokertest.StartProcess(t, t.TempDir(), sets...)
	checkLog(t, readAll(t, fresh.Addr(), topic, partitions), acked)
	fresh.Stop()
}

// listSegs lists the segment objects of one topic.
func listSegs(t *testing.T, b objstore.Bucket, id string) []string {
	t.Helper()
	segs, _ := bucketKeys(t, b)
	var out []string
	for _, k := range segs {
		if strings.Contains(k, "/"+id+"/") {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// TestSlowBucketDoesNotDelayLocalReads: while every object-store request
// takes 2 s, a consumer of tiered data still gets it (fetches come back
// empty at remote.fetch.max.wait.ms while the chunks arrive into the
// cache), and records produced to another topic are consumed at once: the
// remote reads never hold up local produce and fetch.
func TestSlowBucketDoesNotDelayLocalReads(t *testing.T) {
	inner, err := fs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f := faulty.Wrap(inner, 1, faulty.Faults{})
	br := brokertest.StartWithBucket(t, t.TempDir(), f, fastTiering...)
	adm, cl := newAdmin(t, br.Addr())
	defer cl.Close()
	ctx := context.Background()
	if _, err := adm.CreateTopic(ctx, 1, 1, tinySegments, "cold"); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, "hot"); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(2))
	cold := sent{}
	produceInto(t, br.Addr(), "cold", 300, rng, cold)
	waitTiered(t, adm, "cold", cold)
	f.Set(faulty.Faults{Latency: 2 * time.Second})

	hot, err := kgo.NewClient(kgo.SeedBrokers(br.Addr()), kgo.DefaultProduceTopic("hot"),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"hot": {0: kgo.NewOffset().At(0)}}))
	if err != nil {
		t.Fatal(err)
	}
	defer hot.Close()
	hotErr := make(chan error, 1)
	go func() {
		time.Sleep(500 * time.Millisecond) // the cold consumer is waiting on the bucket by now
		for i := range 5 {
			began := time.Now()
			if err := hot.ProduceSync(ctx, &kgo.Record{Value: []byte(fmt.Sprint(i))}).FirstErr(); err != nil {
				hotErr <- err
				return
			}
			pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			fs := hot.PollRecords(pctx, 1)
			cancel()
			if len(fs.Records()) != 1 {
				hotErr <- fmt.Errorf("hot record %d not consumed: %v", i, fs.Errors())
				return
			}
			// Below the bucket's 2 s: local work never queued behind it.
			if took := time.Since(began); took > time.Second {
				hotErr <- fmt.Errorf("hot record %d took %v to produce and consume while the bucket was slow", i, took)
				return
			}
		}
		hotErr <- nil
	}()
	got := consumeFrom(t, br.Addr(), "cold", 0, 0, len(cold[0]))
	if err := <-hotErr; err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if err := sameRecord(got[i], cold[0][i]); err != nil {
			t.Fatal(err)
		}
	}
}

package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tiercel/tiercel/internal/brokertest"
	"github.com/tiercel/tiercel/internal/recordbatch"
	"github.com/tiercel/tiercel/internal/testservers"
	"github.com/tiercel/tiercel/objstore"
	"github.com/tiercel/tiercel/objstore/azure"
	"github.com/tiercel/tiercel/objstore/fs"
	"github.com/tiercel/tiercel/objstore/gcs"
	s3store "github.com/tiercel/tiercel/objstore/s3"
)

// Broker configs that make tiering visible within a test: plan every 50 ms,
// and roll and check retention every 100 ms.
var fastTiering = []string{
	"remote.log.manager.task.interval.ms=50",
	"log.retention.check.interval.ms=100",
	"remote.fetch.max.wait.ms=2000",
	"tiercel.remote.chunk.bytes=16384",
	"tiercel.remote.cache.bytes=262144",
}

// tinySegments are topic configs for many small segments, rolled within
// 300 ms even when idle, and a local log of at most two of them.
var tinySegments = map[string]*string{
	"segment.bytes":         kadm.StringPtr("8192"),
	"segment.ms":            kadm.StringPtr("300"),
	"local.retention.bytes": kadm.StringPtr("16384"),
}

var bucketSeq atomic.Int64

// backend makes fresh buckets on one object store.
type backend struct {
	name      string
	newBucket func(t *testing.T) objstore.Bucket
}

// backends starts every object store Tiercel supports: the filesystem
// store, versitygw and MinIO (S3), fake-gcs-server (GCS) and Azurite.
func backends(t *testing.T) []backend {
	s3b := func(srv testservers.S3) func(t *testing.T) objstore.Bucket {
		return func(t *testing.T) objstore.Bucket {
			b, err := s3store.New(context.Background(), s3store.Config{Bucket: fmt.Sprintf("tiering-%d", bucketSeq.Add(1)), Endpoint: srv.Endpoint, PathStyle: true, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey})
			if err != nil {
				t.Fatal(err)
			}
			if err := b.CreateBucket(context.Background()); err != nil {
				t.Fatal(err)
			}
			return b
		}
	}
	t.Setenv("STORAGE_EMULATOR_HOST", testservers.StartFakeGCS(t))
	azConn := testservers.StartAzurite(t)
	return []backend{
		{"fs", func(t *testing.T) objstore.Bucket {
			b, err := fs.New(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			return b
		}},
		{"versitygw", s3b(testservers.StartVersityGW(t))},
		{"minio", s3b(testservers.StartMinIO(t))},
		{"fake-gcs", func(t *testing.T) objstore.Bucket {
			b, err := gcs.New(context.Background(), fmt.Sprintf("tiering-%d", bucketSeq.Add(1)), "")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { b.Close() })
			if err := b.CreateBucket(context.Background(), "test"); err != nil {
				t.Fatal(err)
			}
			return b
		}},
		{"azurite", func(t *testing.T) objstore.Bucket {
			b, err := azure.NewFromConnectionString(azConn, fmt.Sprintf("tiering-%d", bucketSeq.Add(1)), "")
			if err != nil {
				t.Fatal(err)
			}
			if err := b.CreateContainer(context.Background()); err != nil {
				t.Fatal(err)
			}
			return b
		}},
	}
}

// sent is what the test produced, by partition and offset.
type sent map[int32][]*kgo.Record

// produceInto produces n records with keys, headers and distinct
// timestamps over the topic's partitions and appends them to model, checking
// that each partition's offsets continue it.
func produceInto(t *testing.T, addr, topic string, n int, rng *rand.Rand, model sent) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(time.Millisecond), kgo.ProducerBatchMaxBytes(4096))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	base := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	var recs []*kgo.Record
	for i := range n {
		value := make([]byte, 100+rng.Intn(300))
		rng.Read(value)
		recs = append(recs, &kgo.Record{
			Key:       []byte(fmt.Sprintf("key-%d", rng.Intn(50))),
			Value:     value,
			Headers:   []kgo.RecordHeader{{Key: "i", Value: []byte(fmt.Sprint(i))}},
			Timestamp: base.Add(time.Duration(i) * time.Millisecond),
		})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if want := int64(len(model[r.Partition])); r.Offset != want {
			t.Fatalf("partition %d: record acknowledged at offset %d, want %d", r.Partition, r.Offset, want)
		}
		model[r.Partition] = append(model[r.Partition], r)
	}
}

// consumeFrom reads a partition from offset until it has want records.
func consumeFrom(t *testing.T, addr, topic string, partition int32, offset int64, want int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {partition: kgo.NewOffset().At(offset)}}),
		kgo.FetchMaxBytes(256<<10))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var got []*kgo.Record
	for len(got) < want {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("partition %d from %d: %d of %d records before %v", partition, offset, len(got), want, err)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Logf("fetch error (retried): %v", err) })
		got = append(got, fs.Records()...)
	}
	return got[:want]
}

func sameRecord(a, b *kgo.Record) error {
	switch {
	case a.Offset != b.Offset:
		return fmt.Errorf("offset %d, want %d", a.Offset, b.Offset)
	case !bytes.Equal(a.Key, b.Key), !bytes.Equal(a.Value, b.Value):
		return fmt.Errorf("offset %d: key or value differs", a.Offset)
	case !a.Timestamp.Equal(b.Timestamp):
		return fmt.Errorf("offset %d: timestamp %v, want %v", a.Offset, a.Timestamp, b.Timestamp)
	case len(a.Headers) != len(b.Headers) || a.Headers[0].Key != b.Headers[0].Key || !bytes.Equal(a.Headers[0].Value, b.Headers[0].Value):
		return fmt.Errorf("offset %d: headers differ", a.Offset)
	}
	return nil
}

// checkAll consumes every partition from the start and compares with what
// was produced.
func checkAll(t *testing.T, addr, topic string, model sent) {
	t.Helper()
	for p, want := range model {
		got := consumeFrom(t, addr, topic, p, 0, len(want))
		for i := range want {
			if err := sameRecord(got[i], want[i]); err != nil {
				t.Fatalf("partition %d: %v", p, err)
			}
		}
	}
}

// offsets returns ListOffsets answers for every partition at a special
// timestamp (-2 earliest, -4 earliest-local, -5 latest-tiered, -1 latest).
func offsets(t *testing.T, adm *kadm.Client, topic string, ts int64) map[int32]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var res kadm.ListedOffsets
	var err error
	switch ts {
	case -2:
		res, err = adm.ListStartOffsets(ctx, topic)
	case -1:
		res, err = adm.ListEndOffsets(ctx, topic)
	default:
		res, err = adm.ListOffsetsAfterMilli(ctx, ts, topic)
	}
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]int64{}
	res.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			t.Fatalf("list offsets %d: %v", ts, o.Err)
		}
		out[o.Partition] = o.Offset
	})
	return out
}

// waitTiered waits until every partition's records are all in the bucket
// (latest-tiered + 1 = high watermark) and the local log has been trimmed.
func waitTiered(t *testing.T, adm *kadm.Client, topic string, model sent) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		tiered, local := offsets(t, adm, topic, -5), offsets(t, adm, topic, -4)
		done := true
		for p, rs := range model {
			if tiered[p]+1 < int64(len(rs)) || local[p] == 0 {
				done = false
			}
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not tiered within 60s: latest tiered %v, earliest local %v", tiered, local)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// bucketKeys lists the segment objects and manifests under topics/.
func bucketKeys(t *testing.T, b objstore.Bucket) (segs, manifests []string) {
	t.Helper()
	err := b.List(context.Background(), "topics/", objstore.ListOptions{}, func(o objstore.ObjectInfo) error {
		switch {
		case strings.HasSuffix(o.Key, ".seg"):
			segs = append(segs, o.Key)
		case strings.HasSuffix(o.Key, "/manifest"):
			manifests = append(manifests, o.Key)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return segs, manifests
}

// topicID looks a topic's id up.
func topicID(t *testing.T, adm *kadm.Client, topic string) string {
	t.Helper()
	md, err := adm.Metadata(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	id := md.Topics[topic].ID
	// Kafka's Uuid text form, which Tiercel's keys use (kadm prints standard base64).
	return base64.RawURLEncoding.EncodeToString(id[:])
}

// TestTieringRoundTrip, on every object store: records rolled into many
// tiny segments go to the bucket and leave the local disk; a consumer from
// offset 0 and consumers from random offsets get exactly what was produced
// (keys, values, headers, timestamps, offsets); then a broker with a new,
// empty data directory on the same bucket serves all of it again and
// carries on appending after it.
func TestTieringRoundTrip(t *testing.T) {
	const topic = "tiered"
	for _, be := range backends(t) {
		t.Run(be.name, func(t *testing.T) {
			seed := time.Now().UnixNano()
			t.Logf("seed %d", seed)
			rng := rand.New(rand.NewSource(seed))
			bucket := be.newBucket(t)
			br := brokertest.StartWithBucket(t, t.TempDir(), bucket, fastTiering...)
			adm, cl := newAdmin(t, br.Addr())
			defer cl.Close()
			if _, err := adm.CreateTopic(context.Background(), 3, 1, tinySegments, topic); err != nil {
				t.Fatal(err)
			}
			model := sent{}
			produceInto(t, br.Addr(), topic, 1500, rng, model)
			waitTiered(t, adm, topic, model)
			if start := offsets(t, adm, topic, -2); start[0] != 0 || start[1] != 0 || start[2] != 0 {
				t.Fatalf("earliest offsets %v, want 0 (tiered data counts)", start)
			}
			segs, manifests := bucketKeys(t, bucket)
			if len(manifests) != 3 || len(segs) < 3*10 {
				t.Fatalf("bucket holds %d segments and %d manifests", len(segs), len(manifests))
			}
			checkAll(t, br.Addr(), topic, model)
			for range 12 {
				p := int32(rng.Intn(3))
				off := rng.Int63n(int64(len(model[p])))
				got := consumeFrom(t, br.Addr(), topic, p, off, 1)
				if err := sameRecord(got[0], model[p][off]); err != nil {
					t.Fatalf("partition %d from %d: %v", p, off, err)
				}
			}

			// A new broker with an empty disk on the same bucket.
			br.Close()
			br2 := brokertest.StartWithBucket(t, t.TempDir(), bucket, fastTiering...)
			checkAll(t, br2.Addr(), topic, model)
			adm2, cl2 := newAdmin(t, br2.Addr())
			defer cl2.Close()
			end := offsets(t, adm2, topic, -1)
			for p, rs := range model {
				if end[p] != int64(len(rs)) {
					t.Fatalf("partition %d: end offset %d after the wipe, want %d", p, end[p], len(rs))
				}
			}
			produceInto(t, br2.Addr(), topic, 30, rng, model)
			checkAll(t, br2.Addr(), topic, model)
		})
	}
}

// TestTieringKeepsProducerState: an idempotent producer's state travels
// with the tiered segments, so after a broker restarts on an empty disk a
// retried batch is still recognised as a duplicate (same offsets, nothing
// appended), the next sequence is accepted, and a gap is refused.
func TestTieringKeepsProducerState(t *testing.T) {
	const topic = "idempotent"
	bucket, err := fs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	br := brokertest.StartWithBucket(t, t.TempDir(), bucket, fastTiering...)
	adm, cl := newAdmin(t, br.Addr())
	defer cl.Close()
	if _, err := adm.CreateTopic(context.Background(), 1, 1, tinySegments, topic); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	init := kmsg.NewPtrInitProducerIDRequest()
	init.ProducerID, init.ProducerEpoch = -1, -1
	ir, err := init.RequestWith(ctx, cl)
	if err != nil || ir.ErrorCode != 0 {
		t.Fatalf("InitProducerId: %v %v", err, ir)
	}
	produce := func(cl *kgo.Client, seq int32) (int64, error) {
		now := time.Now().UnixMilli()
		recs := []recordbatch.Record{{Timestamp: now, Value: bytes.Repeat([]byte{byte(seq)}, 1500)}, {Timestamp: now, Value: []byte("second")}}
		batch, err := recordbatch.Build(recs, recordbatch.BuildOptions{ProducerID: ir.ProducerID, ProducerEpoch: ir.ProducerEpoch, BaseSequence: seq})
		if err != nil {
			t.Fatal(err)
		}
		resp, err := brokertest.ProduceRequest(topic, -1, batch).RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		p := resp.Topics[0].Partitions[0]
		return p.BaseOffset, kerr.ErrorForCode(p.ErrorCode)
	}
	var last int32
	for seq := int32(0); seq < 60; seq += 2 {
		if off, err := produce(cl, seq); err != nil || off != int64(seq) {
			t.Fatalf("sequence %d: offset %d, %v", seq, off, err)
		}
		last = seq
	}
	model := sent{0: make([]*kgo.Record, 60)}
	waitTiered(t, adm, topic, model)
	br.Close()

	br2 := brokertest.StartWithBucket(t, t.TempDir(), bucket, fastTiering...)
	_, cl2 := newAdmin(t, br2.Addr())
	defer cl2.Close()
	if off, err := produce(cl2, last); err != nil || off != int64(last) {
		t.Fatalf("the last batch retried after the wipe: offset %d, %v; want the original offset %d (a duplicate)", off, err, last)
	}
	if off, err := produce(cl2, last+2); err != nil || off != 60 {
		t.Fatalf("the next sequence after the wipe: offset %d, %v; want 60", off, err)
	}
	if _, err := produce(cl2, last+10); !errors.Is(err, kerr.OutOfOrderSequenceNumber) {
		t.Fatalf("a sequence gap after the wipe: %v; want OUT_OF_ORDER_SEQUENCE_NUMBER", err)
	}
}

// TestTieringStaleLocalCopy: a broker restarted on an older copy of its
// data directory (restored from a backup) finds the bucket ahead of its
// local logs; it resumes from the bucket instead of handing out offsets
// the bucket already holds, and every record reads back once.
func TestTieringStaleLocalCopy(t *testing.T) {
	const topic = "restored"
	bucket, err := fs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	br := brokertest.StartWithBucket(t, dir, bucket, fastTiering...)
	adm, cl := newAdmin(t, br.Addr())
	if _, err := adm.CreateTopic(context.Background(), 1, 1, tinySegments, topic); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(3))
	model := sent{}
	produceInto(t, br.Addr(), topic, 200, rng, model)
	waitTiered(t, adm, topic, model)
	cl.Close()
	br.Close()
	backup := t.TempDir()
	if out, err := exec.Command("cp", "-a", dir+"/.", backup).CombinedOutput(); err != nil {
		t.Fatalf("copy: %v %s", err, out)
	}

	br = brokertest.StartWithBucket(t, dir, bucket, fastTiering...)
	adm, cl = newAdmin(t, br.Addr())
	produceInto(t, br.Addr(), topic, 300, rng, model)
	waitTiered(t, adm, topic, model)
	cl.Close()
	br.Close()

	// The old copy comes back; the bucket has moved on.
	stale := brokertest.StartWithBucket(t, backup, bucket, fastTiering...)
	checkAll(t, stale.Addr(), topic, model)
	produceInto(t, stale.Addr(), topic, 20, rng, model) // offsets continue after the bucket's
	checkAll(t, stale.Addr(), topic, model)
}

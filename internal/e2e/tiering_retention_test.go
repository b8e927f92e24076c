package e2e

import (
	"context"
	"errors"
	"io"
	"math/rand"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tiercel/tiercel/internal/brokertest"
	"github.com/tiercel/tiercel/objstore"
	"github.com/tiercel/tiercel/objstore/fs"
	"github.com/tiercel/tiercel/tiering"
)

// counting counts the requests that reach a bucket; cluster counts those
// on the broker-wide keys (the metadata log, the broker's lease), which do
// not grow with the number of partitions.
type counting struct {
	objstore.Bucket
	n, cluster atomic.Int64
}

func (c *counting) count(key string) {
	c.n.Add(1)
	if strings.HasPrefix(key, "cluster/") || strings.HasPrefix(key, "leases/") {
		c.cluster.Add(1)
	}
}

func (c *counting) Get(ctx context.Context, key string, off, n int64) (io.ReadCloser, objstore.Attrs, error) {
	c.count(key)
	return c.Bucket.Get(ctx, key, off, n)
}

func (c *counting) Head(ctx context.Context, key string) (objstore.Attrs, error) {
	c.count(key)
	return c.Bucket.Head(ctx, key)
}

func (c *counting) Put(ctx context.Context, key string, r io.Reader, o objstore.PutOptions) (objstore.Attrs, error) {
	c.count(key)
	return c.Bucket.Put(ctx, key, r, o)
}

func (c *counting) Delete(ctx context.Context, key string) error {
	c.n.Add(1)
	return c.Bucket.Delete(ctx, key)
}

func (c *counting) List(ctx context.Context, prefix string, o objstore.ListOptions, fn func(objstore.ObjectInfo) error) error {
	c.n.Add(1)
	return c.Bucket.List(ctx, prefix, o, fn)
}

// manifestOf loads partition 0's manifest of a topic.
func manifestOf(t *testing.T, b objstore.Bucket, id string) tiering.Manifest {
	t.Helper()
	m, _, err := tiering.ManifestStore{Bucket: b}.Load(context.Background(), id, 0)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// checkBucketMatchesManifest: the topic's objects in the bucket are
// exactly the segments its manifest names.
func checkBucketMatchesManifest(t *testing.T, b objstore.Bucket, id string) tiering.Manifest {
	t.Helper()
	m := manifestOf(t, b, id)
	listed := listSegs(t, b, id)
	if len(listed) != len(m.Segments) {
		t.Fatalf("bucket holds %d segment objects of topic %s, its manifest names %d", len(listed), id, len(m.Segments))
	}
	named := map[string]bool{}
	for _, s := range m.Segments {
		named[s.Key] = true
	}
	for _, k := range listed {
		if !named[k] {
			t.Fatalf("%s is in the bucket but not in the manifest", k)
		}
	}
	return m
}

// TestTieringRetentionAndDeletion: retention.bytes and retention.ms apply
// to the bucket (segments leave the manifest, then their objects go),
// DeleteRecords moves the log start in the bucket too, topic deletion
// empties the topic's prefix, and an idle broker makes no object-store
// request at all.
func TestTieringRetentionAndDeletion(t *testing.T) {
	inner, err := fs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	bucket := &counting{Bucket: inner}
	br := brokertest.StartWithBucket(t, t.TempDir(), bucket, fastTiering...)
	adm, cl := newAdmin(t, br.Addr())
	defer cl.Close()
	ctx := context.Background()
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	create := func(name string, extra map[string]*string) string {
		configs := map[string]*string{}
		for k, v := range tinySegments {
			configs[k] = v
		}
		for k, v := range extra {
			configs[k] = v
		}
		if _, err := adm.CreateTopic(ctx, 1, 1, configs, name); err != nil {
			t.Fatal(err)
		}
		return topicID(t, adm, name)
	}

	t.Run("retention.bytes", func(t *testing.T) {
		id := create("by-size", map[string]*string{"retention.bytes": kadm.StringPtr("40000")})
		model := sent{}
		produceInto(t, br.Addr(), "by-size", 1500, rng, model)
		var m tiering.Manifest
		brokertest.WaitFor(t, "the bucket trimmed to retention.bytes", func() bool {
			m = manifestOf(t, bucket, id)
			var total int64
			for _, s := range m.Segments {
				total += s.Size
			}
			// The manifest drops segments first, then their objects go.
			ok := m.LogStart > 0 && total <= 40000 && m.End() == int64(len(model[0])) && len(listSegs(t, bucket, id)) == len(m.Segments)
			if !ok {
				t.Logf("manifest: start %d end %d, %d segments, %d bytes", m.LogStart, m.End(), len(m.Segments), total)
			}
			return ok
		})
		m = checkBucketMatchesManifest(t, bucket, id)
		if start := offsets(t, adm, "by-size", -2)[0]; start != m.LogStart {
			t.Fatalf("earliest offset %d, the manifest starts at %d", start, m.LogStart)
		}
		got := consumeFrom(t, br.Addr(), "by-size", 0, m.LogStart, len(model[0])-int(m.LogStart))
		for i, r := range got {
			if err := sameRecord(r, model[0][m.LogStart+int64(i)]); err != nil {
				t.Fatal(err)
			}
		}
	})

	t.Run("retention.ms", func(t *testing.T) {
		id := create("by-time", map[string]*string{"retention.ms": kadm.StringPtr("60000")})
		pcl, err := kgo.NewClient(kgo.SeedBrokers(br.Addr()), kgo.DefaultProduceTopic("by-time"), kgo.ProducerBatchMaxBytes(4096))
		if err != nil {
			t.Fatal(err)
		}
		old := time.Now().Add(-10 * time.Minute)
		var recs []*kgo.Record
		for range 500 {
			recs = append(recs, &kgo.Record{Value: make([]byte, 200), Timestamp: old})
		}
		if err := pcl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		pcl.Close()
		brokertest.WaitFor(t, "every expired segment gone from the bucket and the disk", func() bool {
			// The manifest drops them first, then their objects go.
			m := manifestOf(t, bucket, id)
			return m.LogStart == 500 && len(m.Segments) == 0 && len(listSegs(t, bucket, id)) == 0 && offsets(t, adm, "by-time", -2)[0] == 500
		})
		checkBucketMatchesManifest(t, bucket, id)
		if segs := listSegs(t, bucket, id); len(segs) != 0 {
			t.Fatalf("expired objects left: %v", segs)
		}
	})

	t.Run("DeleteRecords and topic deletion", func(t *testing.T) {
		id := create("deleted", nil)
		model := sent{}
		produceInto(t, br.Addr(), "deleted", 1500, rng, model)
		waitTiered(t, adm, "deleted", model)
		cut := int64(700)
		res, err := adm.DeleteRecords(ctx, kadm.Offsets{"deleted": {0: kadm.Offset{At: cut}}})
		if err != nil {
			t.Fatal(err)
		}
		if r, _ := res.Lookup("deleted", 0); r.Err != nil || r.LowWatermark != cut {
			t.Fatalf("DeleteRecords: %+v", r)
		}
		m := checkBucketMatchesManifest(t, bucket, id)
		if m.LogStart != cut || m.Segments[0].BaseOffset > cut || m.Segments[0].NextOffset <= cut {
			t.Fatalf("manifest after DeleteRecords(%d): start %d, first segment [%d, %d)", cut, m.LogStart, m.Segments[0].BaseOffset, m.Segments[0].NextOffset)
		}
		if start := offsets(t, adm, "deleted", -2)[0]; start != cut {
			t.Fatalf("earliest offset %d after DeleteRecords(%d)", start, cut)
		}
		got := consumeFrom(t, br.Addr(), "deleted", 0, cut, 10)
		if err := sameRecord(got[0], model[0][cut]); err != nil {
			t.Fatal(err)
		}
		// A consumer asking below the new start is told where it is.
		cl2, err := kgo.NewClient(kgo.SeedBrokers(br.Addr()), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"deleted": {0: kgo.NewOffset().At(5)}}),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		if err != nil {
			t.Fatal(err)
		}
		pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		fs := cl2.PollFetches(pctx)
		cancel()
		cl2.Close()
		if recs := fs.Records(); len(recs) == 0 || recs[0].Offset != cut {
			t.Fatalf("a consumer at offset 5 was not reset to %d: %v", cut, fs.Errors())
		}

		if _, err := adm.DeleteTopic(ctx, "deleted"); err != nil {
			t.Fatal(err)
		}
		brokertest.WaitFor(t, "the deleted topic's objects gone", func() bool {
			segs, manifests := bucketKeys(t, bucket)
			for _, k := range append(segs, manifests...) {
				if strings.Contains(k, "/"+id+"/") {
					return false
				}
			}
			return true
		})
	})

	t.Run("new partitions tier", func(t *testing.T) {
		create("grown", nil)
		if _, err := adm.CreatePartitions(ctx, 2, "grown"); err != nil {
			t.Fatal(err)
		}
		model := sent{}
		produceInto(t, br.Addr(), "grown", 600, rng, model)
		if len(model) != 3 {
			t.Fatalf("records went to %d partitions, want 3", len(model))
		}
		waitTiered(t, adm, "grown", model)
		checkAll(t, br.Addr(), "grown", model)
	})

	t.Run("remote.storage.enable turned on, not off", func(t *testing.T) {
		id := create("later", map[string]*string{"remote.storage.enable": kadm.StringPtr("false")})
		model := sent{}
		produceInto(t, br.Addr(), "later", 300, rng, model)
		time.Sleep(500 * time.Millisecond) // ten planning passes and several rolls
		if segs := listSegs(t, bucket, id); len(segs) != 0 {
			t.Fatalf("a topic with remote.storage.enable=false has %d objects in the bucket", len(segs))
		}
		if local := offsets(t, adm, "later", -4)[0]; local != 0 {
			t.Fatalf("a local-only topic was trimmed to %d", local)
		}
		alter := func(v string) error {
			res, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "remote.storage.enable", Value: kadm.StringPtr(v)}}, "later")
			if err != nil {
				return err
			}
			return res[0].Err
		}
		if err := alter("true"); err != nil {
			t.Fatal(err)
		}
		waitTiered(t, adm, "later", model)
		checkAll(t, br.Addr(), "later", model)
		if err := alter("false"); !errors.Is(err, kerr.InvalidConfig) {
			t.Fatalf("turning remote.storage.enable off: %v, want INVALID_CONFIG", err)
		}
	})

	t.Run("idle", func(t *testing.T) {
		if _, err := adm.CreateTopic(ctx, 200, 1, tinySegments, "idle"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second) // everything rolled and tiered that will be
		before, beforeCluster := bucket.n.Load(), bucket.cluster.Load()
		time.Sleep(2 * time.Second) // 40 planning passes
		cluster := bucket.cluster.Load() - beforeCluster
		if n := bucket.n.Load() - before - cluster; n != 0 {
			t.Fatalf("an idle broker with over 200 tiered partitions made %d object-store requests for them in 2s", n)
		}
		// The metadata-log poll (a GET every tiercel.metadata.poll.ms, 2 s)
		// and the lease renewal (a PUT every 4 s): at most 3 in 2 s.
		if cluster > 3 {
			t.Fatalf("an idle broker made %d metadata-log and lease requests in 2s", cluster)
		}
	})
}

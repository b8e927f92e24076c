package tiering

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/tiercel/tiercel/objstore"
)

// Orphans returns the segment objects among keys (a partition's listing)
// that the manifest does not name and that were uploaded at least graceMs
// before nowMs. The grace covers an upload whose manifest update has not
// landed yet; objects whose age cannot be read are left alone.
func Orphans(keys []string, m Manifest, nowMs, graceMs int64) []string {
	named := make(map[string]bool, len(m.Segments))
	for _, s := range m.Segments {
		named[s.Key] = true
	}
	var out []string
	for _, k := range keys {
		if named[k] || !strings.HasSuffix(k, ".seg") {
			continue
		}
		if t, ok := segmentKeyTime(k); ok && nowMs-t >= graceMs {
			out = append(out, k)
		}
	}
	return out
}

// Collect deletes a partition's orphaned segment objects and returns their
// keys (with dryRun, only lists them). The manifest is read after the
// listing: an object uploaded and named in between is seen as named.
func Collect(ctx context.Context, b objstore.Bucket, store ManifestStore, topicID string, partition int32, nowMs, graceMs int64, dryRun bool) ([]string, error) {
	var keys []string
	err := b.List(ctx, PartitionPrefix(topicID, partition), objstore.ListOptions{}, func(o objstore.ObjectInfo) error {
		keys = append(keys, o.Key)
		return nil
	})
	if err != nil {
		return nil, err
	}
	m, _, err := store.Load(ctx, topicID, partition)
	if err != nil {
		return nil, err
	}
	orphans := Orphans(keys, m, nowMs, graceMs)
	if dryRun {
		return orphans, nil
	}
	for _, k := range orphans {
		if err := b.Delete(ctx, k); err != nil {
			return nil, fmt.Errorf("tiering: deleting orphan %s: %w", k, err)
		}
	}
	return orphans, nil
}

// CollectResult is what a bucket-wide collection found.
type CollectResult struct {
	Deleted    []string // orphaned objects (deleted unless a dry run)
	Partitions int      // partitions examined
}

// CollectAll collects orphans under every partition in the bucket. A
// partition of a topic live says is not in the catalog (a deleted topic)
// is orphaned whole; its manifest goes last. The listing comes first and
// the catalog (live) and manifests are read after it, so an object listed
// belongs to a topic and a manifest version that the later reads see.
func CollectAll(ctx context.Context, b objstore.Bucket, live func(ctx context.Context) (map[string]bool, error), nowMs, graceMs int64, dryRun bool) (CollectResult, error) {
	type part struct {
		topicID   string
		partition int32
	}
	keys := map[part][]string{}
	var order []part
	err := b.List(ctx, "topics/", objstore.ListOptions{}, func(o objstore.ObjectInfo) error {
		// topics/<hash>/<topic-id>/<partition>/<name>
		f := strings.Split(o.Key, "/")
		if len(f) != 5 {
			return nil
		}
		n, err := strconv.ParseInt(f[3], 10, 32)
		if err != nil {
			return nil
		}
		p := part{f[2], int32(n)}
		if _, ok := keys[p]; !ok {
			order = append(order, p)
		}
		keys[p] = append(keys[p], o.Key)
		return nil
	})
	if err != nil {
		return CollectResult{}, err
	}
	alive, err := live(ctx)
	if err != nil {
		return CollectResult{}, err
	}
	store := ManifestStore{Bucket: b}
	res := CollectResult{Partitions: len(order)}
	for _, p := range order {
		var orphans []string
		if alive[p.topicID] {
			m, _, err := store.Load(ctx, p.topicID, p.partition)
			if err != nil {
				return res, err
			}
			orphans = Orphans(keys[p], m, nowMs, graceMs)
		} else {
			// A deleted topic: every segment past the grace, then the manifest.
			orphans = Orphans(keys[p], EmptyManifest(p.topicID, p.partition), nowMs, graceMs)
			if len(orphans) == countSegments(keys[p]) {
				for _, k := range keys[p] {
					if k == ManifestKey(p.topicID, p.partition) {
						orphans = append(orphans, k)
					}
				}
			}
		}
		for _, k := range orphans {
			if !dryRun {
				if err := b.Delete(ctx, k); err != nil && !errors.Is(err, objstore.ErrNotFound) {
					return res, fmt.Errorf("tiering: deleting orphan %s: %w", k, err)
				}
			}
			res.Deleted = append(res.Deleted, k)
		}
	}
	return res, nil
}

func countSegments(keys []string) int {
	n := 0
	for _, k := range keys {
		if strings.HasSuffix(k, ".seg") {
			n++
		}
	}
	return n
}

package tiering

import (
	"context"
	"fmt"
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

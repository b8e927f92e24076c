package tiering

import (
	"context"
	"sync"
	"time"
)

// ManifestViews are read-only copies of the manifests of partitions a
// broker follows, so that it serves their tiered offsets from the bucket
// too (a consumer sent to it as the preferred read replica, KIP-392). The
// leader alone writes a manifest; a copy is read again when it is older
// than the maximum age, or when it does not reach an offset the caller
// knows is tiered (the leader uploaded since), or after Forget (a segment
// it names was deleted by retention).
type ManifestViews struct {
	store  ManifestStore
	maxAge time.Duration
	now    func() time.Time

	mu    sync.Mutex
	views map[partKey]*manifestView
}

type manifestView struct {
	load sync.Mutex // one read of the manifest at a time
	mu   sync.Mutex
	m    Manifest
	at   time.Time // zero: never read
}

// NewManifestViews keeps copies of manifests read through store for at
// most maxAge.
func NewManifestViews(store ManifestStore, maxAge time.Duration) *ManifestViews {
	return &ManifestViews{store: store, maxAge: maxAge, now: time.Now, views: map[partKey]*manifestView{}}
}

func (v *ManifestViews) view(topicID string, partition int32) *manifestView {
	v.mu.Lock()
	defer v.mu.Unlock()
	mv := v.views[partKey{topicID, partition}]
	if mv == nil {
		mv = &manifestView{}
		v.views[partKey{topicID, partition}] = mv
	}
	return mv
}

// fresh reports whether the copy is young enough and reaches below end.
func (mv *manifestView) fresh(now time.Time, maxAge time.Duration, end int64) (Manifest, bool) {
	mv.mu.Lock()
	defer mv.mu.Unlock()
	return mv.m, !mv.at.IsZero() && now.Sub(mv.at) < maxAge && mv.m.End() >= end
}

// Find returns the tiered segment holding offset and the remote log
// start, from a copy that reaches at least end (the first offset the
// caller holds locally), reading the manifest again if needed. found is
// false when no segment holds offset: below the log start, or not tiered.
func (v *ManifestViews) Find(ctx context.Context, topicID string, partition int32, offset, end int64) (seg RemoteSegment, logStart int64, found bool, err error) {
	mv := v.view(topicID, partition)
	m, ok := mv.fresh(v.now(), v.maxAge, end)
	if !ok {
		mv.load.Lock()
		if m, ok = mv.fresh(v.now(), v.maxAge, end); !ok {
			var loaded Manifest
			loaded, _, err = v.store.Load(ctx, topicID, partition)
			if err == nil {
				mv.mu.Lock()
				mv.m, mv.at, m = loaded, v.now(), loaded
				mv.mu.Unlock()
			}
		}
		mv.load.Unlock()
		if err != nil {
			return RemoteSegment{}, 0, false, err
		}
	}
	seg, found = m.Find(offset)
	return seg, m.LogStart, found, nil
}

// Cached returns the segment holding offset from the copy as it is,
// without reading the bucket (prefetching the segments ahead).
func (v *ManifestViews) Cached(topicID string, partition int32, offset int64) (RemoteSegment, bool) {
	v.mu.Lock()
	mv := v.views[partKey{topicID, partition}]
	v.mu.Unlock()
	if mv == nil {
		return RemoteSegment{}, false
	}
	mv.mu.Lock()
	defer mv.mu.Unlock()
	return mv.m.Find(offset)
}

// Forget drops a partition's copy: the next Find reads the manifest.
func (v *ManifestViews) Forget(topicID string, partition int32) {
	v.mu.Lock()
	delete(v.views, partKey{topicID, partition})
	v.mu.Unlock()
}

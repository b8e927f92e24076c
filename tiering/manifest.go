package tiering

import (
	"errors"
	"fmt"
	"sort"
)

// A partition's manifest is the list of its segments in the bucket. It is
// the only thing that makes an uploaded object part of the log: an object
// no manifest names is garbage. Every change is a conditional write of the
// whole manifest (see ManifestStore), stamped with the writer's leader
// epoch, so a fenced leader can never overwrite a newer manifest.

// ErrFenced means a newer leader epoch has written the manifest.
var ErrFenced = errors.New("tiering: fenced by a newer leader epoch")

// ErrNotContiguous means a segment does not continue the remote log.
var ErrNotContiguous = errors.New("tiering: segment does not continue the remote log")

// RemoteSegment is one tiered segment.
type RemoteSegment struct {
	Key          string `json:"key"`
	BaseOffset   int64  `json:"base"`
	NextOffset   int64  `json:"next"` // one past the last offset
	Size         int64  `json:"size"`
	MaxTimestamp int64  `json:"maxTs"`
	LeaderEpoch  int32  `json:"epoch"` // of the leader that uploaded it
	UploadedMs   int64  `json:"uploadedMs"`
}

// Manifest is the tiered state of one partition.
type Manifest struct {
	Format      int             `json:"format"`
	TopicID     string          `json:"topicId"`
	Partition   int32           `json:"partition"`
	LeaderEpoch int32           `json:"leaderEpoch"` // the newest writer's epoch
	LogStart    int64           `json:"logStart"`    // the remote log start offset
	Segments    []RemoteSegment `json:"segments"`    // by offset, contiguous
}

// manifestFormat is the current Format.
const manifestFormat = 1

// Fence admits a writer of leader epoch e: older epochs are refused; a
// newer one becomes the manifest's.
func (m *Manifest) Fence(e int32) error {
	if e < m.LeaderEpoch {
		return fmt.Errorf("%w: epoch %d, manifest written at %d", ErrFenced, e, m.LeaderEpoch)
	}
	m.LeaderEpoch = e
	return nil
}

// End is the offset after the last tiered one (the log start if none).
func (m *Manifest) End() int64 {
	if n := len(m.Segments); n > 0 {
		return m.Segments[n-1].NextOffset
	}
	return m.LogStart
}

// Add appends a segment. The same object added again (an update retried
// after its write landed but its answer was lost), or a segment covering
// exactly the offsets of one already listed (an upload repeated after a
// crash), changes nothing and reports false; a repeated upload's object is
// left for garbage collection.
func (m *Manifest) Add(s RemoteSegment) (bool, error) {
	if s.NextOffset <= s.BaseOffset || s.Key == "" {
		return false, fmt.Errorf("tiering: segment %q covers [%d, %d)", s.Key, s.BaseOffset, s.NextOffset)
	}
	for _, have := range m.Segments {
		if have.Key == s.Key || have.BaseOffset == s.BaseOffset && have.NextOffset == s.NextOffset {
			return false, nil
		}
	}
	if len(m.Segments) == 0 {
		if s.NextOffset <= m.LogStart {
			return false, nil // already below the remote log start: nothing to keep
		}
		m.Segments = append(m.Segments, s)
		return true, nil
	}
	if end := m.End(); s.BaseOffset != end {
		return false, fmt.Errorf("%w: [%d, %d) after a log ending at %d", ErrNotContiguous, s.BaseOffset, s.NextOffset, end)
	}
	m.Segments = append(m.Segments, s)
	return true, nil
}

// DropBefore moves the remote log start to offset (never back) and removes
// the segments wholly below it, returning them so their objects can be
// deleted after the manifest is written.
func (m *Manifest) DropBefore(offset int64) []RemoteSegment {
	if offset <= m.LogStart {
		return nil
	}
	m.LogStart = offset
	i := 0
	for i < len(m.Segments) && m.Segments[i].NextOffset <= offset {
		i++
	}
	dropped := append([]RemoteSegment(nil), m.Segments[:i]...)
	m.Segments = append(m.Segments[:0:0], m.Segments[i:]...)
	return dropped
}

// names reports whether a segment of the manifest is the object key.
func (m *Manifest) names(key string) bool {
	for _, s := range m.Segments {
		if s.Key == key {
			return true
		}
	}
	return false
}

// Find returns the segment holding offset.
func (m *Manifest) Find(offset int64) (RemoteSegment, bool) {
	if offset < m.LogStart {
		return RemoteSegment{}, false
	}
	i := sort.Search(len(m.Segments), func(i int) bool { return m.Segments[i].NextOffset > offset })
	if i == len(m.Segments) || m.Segments[i].BaseOffset > offset {
		return RemoteSegment{}, false
	}
	return m.Segments[i], true
}

// Check verifies the manifest's invariants: segments ordered, contiguous,
// non-empty, and not wholly below the log start.
func (m *Manifest) Check() error {
	for i, s := range m.Segments {
		if s.NextOffset <= s.BaseOffset {
			return fmt.Errorf("tiering: manifest segment %d is empty", i)
		}
		if i > 0 && s.BaseOffset != m.Segments[i-1].NextOffset {
			return fmt.Errorf("%w: manifest segment %d starts at %d, the previous ends at %d", ErrNotContiguous, i, s.BaseOffset, m.Segments[i-1].NextOffset)
		}
		if s.NextOffset <= m.LogStart {
			return fmt.Errorf("tiering: manifest segment %d is below the log start %d", i, m.LogStart)
		}
	}
	return nil
}

package tiering

// The planner decides, from a partition's local segments and its manifest,
// what to upload, what the local log may drop, and what the bucket must
// drop. It is pure: the uploader does what it says, and the plan is
// recomputed after every change.

// LocalSegment is what the planner needs of a local segment.
type LocalSegment struct {
	BaseOffset   int64
	NextOffset   int64 // one past its last offset
	Size         int64
	MaxTimestamp int64 // ms; -1 if none
	Active       bool  // still being appended to: never uploaded or dropped
}

// Retention is a partition's retention configuration (Kafka's names).
type Retention struct {
	LocalMs    int64 // local.retention.ms (-2 resolved to RetentionMs by the caller; -1 forever)
	LocalBytes int64 // local.retention.bytes (likewise; -1 unlimited)
	Ms         int64 // retention.ms (-1 forever)
	Bytes      int64 // retention.bytes (-1 unlimited)
}

// Plan is what to do next.
type Plan struct {
	// Upload lists closed segments not yet in the manifest, oldest first,
	// each continuing the remote log.
	Upload []LocalSegment
	// LocalStart is the offset the local log may start at: every segment
	// below it is in the manifest and past local retention. Equal to the
	// local log's start when nothing may go.
	LocalStart int64
	// RemoteStart is the offset the manifest's log start should move to
	// for retention.ms and retention.bytes (whole segments); equal to the
	// manifest's log start when nothing must go.
	RemoteStart int64
}

// MakePlan plans for local segments (oldest first) and manifest m at time nowMs.
func MakePlan(local []LocalSegment, m *Manifest, r Retention, nowMs int64) Plan {
	p := Plan{LocalStart: localStart(local), RemoteStart: m.LogStart}
	remoteEnd := m.End()

	// Uploads: closed segments from the remote end on, in order, while
	// they continue the remote log (an empty manifest starts anywhere).
	next := remoteEnd
	empty := len(m.Segments) == 0
	for _, s := range local {
		if s.Active || s.NextOffset <= next && !empty {
			continue
		}
		if empty {
			if s.NextOffset <= m.LogStart {
				continue
			}
			empty = false
		} else if s.BaseOffset > next {
			break // a gap: nothing after it can continue the remote log
		} else if s.BaseOffset < next {
			// It straddles the remote end: this log's segments end where
			// the uploaded ones did not (a follower that became the
			// leader rolled its copy elsewhere). Its part from the remote
			// end on continues the remote log.
			s.BaseOffset = next
		}
		p.Upload = append(p.Upload, s)
		next = s.NextOffset
	}

	// Local drops: a prefix of segments that are tiered and past local
	// retention by age or by the bytes kept locally.
	var localTotal int64
	for _, s := range local {
		localTotal += s.Size
	}
	for _, s := range local {
		if s.Active || s.NextOffset > remoteEnd {
			break
		}
		old := r.LocalMs >= 0 && s.MaxTimestamp >= 0 && nowMs-s.MaxTimestamp > r.LocalMs
		big := r.LocalBytes >= 0 && localTotal > r.LocalBytes
		if !old && !big {
			break
		}
		localTotal -= s.Size
		p.LocalStart = s.NextOffset
	}

	// Remote drops: whole tiered segments past retention.ms, or while the
	// whole log (the bucket plus what is only local) exceeds retention.bytes.
	total := localBytesAbove(local, remoteEnd)
	for _, s := range m.Segments {
		total += s.Size
	}
	for _, s := range m.Segments {
		old := r.Ms >= 0 && s.MaxTimestamp >= 0 && nowMs-s.MaxTimestamp > r.Ms
		big := r.Bytes >= 0 && total > r.Bytes
		if !old && !big {
			break
		}
		total -= s.Size
		p.RemoteStart = s.NextOffset
	}
	return p
}

func localStart(local []LocalSegment) int64 {
	if len(local) == 0 {
		return 0
	}
	return local[0].BaseOffset
}

// localBytesAbove sums what is only local (at or above the remote end).
func localBytesAbove(local []LocalSegment, remoteEnd int64) int64 {
	var n int64
	for _, s := range local {
		if s.NextOffset > remoteEnd {
			n += s.Size
		}
	}
	return n
}

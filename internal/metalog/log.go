package metalog

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/tiercel/tiercel/objstore"
)

// EntryKey is where entry seq lives in the bucket.
func EntryKey(seq int64) string { return fmt.Sprintf("cluster/log/%020d", seq) }

// snapshotPrefix holds snapshots of the applied state: SnapshotKey(seq) is
// the state after entry seq, so replay starts from the newest one.
const snapshotPrefix = "cluster/snapshot/"

// SnapshotKey is where the snapshot after entry seq lives.
func SnapshotKey(seq int64) string { return fmt.Sprintf("%s%020d", snapshotPrefix, seq) }

// Log is one broker's view of the metadata log: the state it has applied
// and the bucket it appends to. Not safe for concurrent use: one goroutine
// of the broker owns it.
type Log struct {
	bucket objstore.Bucket
	writer int32
	state  State
}

// Open loads the newest snapshot, then replays the entries after it.
func Open(ctx context.Context, b objstore.Bucket, writer int32) (*Log, error) {
	l := &Log{bucket: b, writer: writer, state: NewState()}
	var newest string
	err := b.List(ctx, snapshotPrefix, objstore.ListOptions{}, func(o objstore.ObjectInfo) error {
		newest = max(newest, o.Key) // zero-padded: the greatest key is the newest
		return nil
	})
	if err != nil {
		return nil, err
	}
	if newest != "" {
		data, _, err := objstore.ReadAll(ctx, b, newest)
		if err != nil {
			return nil, err
		}
		st := NewState()
		if err := json.Unmarshal(data, &st); err != nil {
			return nil, fmt.Errorf("metalog: snapshot %s is corrupt: %v", newest, err)
		}
		l.state = st
	}
	if _, err := l.CatchUp(ctx); err != nil {
		return nil, err
	}
	return l, nil
}

// Snapshot writes the applied state as the snapshot after its entry
// (create-only: every broker's snapshot of one entry is the same state, so
// the first one written is as good as any) and returns its sequence. It
// then deletes the snapshots older than the newest two: a broker opening
// the log lists them and reads the newest, so the one before stays for a
// start that listed before this write. Entries are never deleted: a
// broker that fell behind appends at the first number it finds missing,
// so a deleted entry's number could be written again.
func (l *Log) Snapshot(ctx context.Context) (int64, error) {
	data, err := json.Marshal(l.state)
	if err != nil {
		return 0, err
	}
	_, err = l.bucket.Put(ctx, SnapshotKey(l.state.Seq), bytes.NewReader(data), objstore.PutOptions{IfNotExists: true, Size: int64(len(data))})
	if err != nil && !errors.Is(err, objstore.ErrPrecondition) {
		return 0, err
	}
	var keys []string
	err = l.bucket.List(ctx, snapshotPrefix, objstore.ListOptions{}, func(o objstore.ObjectInfo) error {
		keys = append(keys, o.Key)
		return nil
	})
	if err != nil {
		return l.state.Seq, nil // the next snapshot tidies up
	}
	slices.Sort(keys) // zero-padded: oldest first
	for _, k := range keys[:max(0, len(keys)-2)] {
		if err := l.bucket.Delete(ctx, k); err != nil && !errors.Is(err, objstore.ErrNotFound) {
			break
		}
	}
	return l.state.Seq, nil
}

// SetWriter names the broker that appends from now on (after a broker id
// was allocated to it).
func (l *Log) SetWriter(id int32) { l.writer = id }

// State is a copy of the applied state.
func (l *Log) State() State { return l.state.Clone() }

// Peek is the applied state itself, for reading only, valid until the next
// CatchUp or Append (the owner of the Log decides when that is).
func (l *Log) Peek() *State { return &l.state }

// Applied is an entry as applied: which of its ops took effect.
type Applied struct {
	Entry
	Done []bool
}

// CatchUp reads and applies every entry after the applied one, returning
// them.
func (l *Log) CatchUp(ctx context.Context) ([]Applied, error) {
	var read []Applied
	for {
		data, _, err := objstore.ReadAll(ctx, l.bucket, EntryKey(l.state.Seq+1))
		if errors.Is(err, objstore.ErrNotFound) {
			return read, nil
		}
		if err != nil {
			return read, err
		}
		var e Entry
		if err := json.Unmarshal(data, &e); err != nil || e.Seq != l.state.Seq+1 {
			return read, fmt.Errorf("metalog: entry %d is corrupt: %v", l.state.Seq+1, err)
		}
		done, err := l.state.Apply(e)
		if err != nil {
			return read, err
		}
		read = append(read, Applied{Entry: e, Done: done})
	}
}

// Append adds ops as the next entry and returns its sequence number and
// which ops took effect. Ops are checked against the newest state first
// (ErrExists, ErrStale, ...: nothing is written). Losing the race for a
// number means catching up and trying the next; an append whose outcome
// is unknown (an error after the write may have landed) is recognised by
// its nonce when the log is read again, so it is never applied twice.
func (l *Log) Append(ctx context.Context, ops []Op) (int64, []bool, error) {
	var n [8]byte
	_, _ = rand.Read(n[:])
	nonce := hex.EncodeToString(n[:])
	for attempt := 0; ; attempt++ {
		read, err := l.CatchUp(ctx)
		if err != nil {
			return 0, nil, err
		}
		for _, a := range read {
			if a.Nonce == nonce {
				// An earlier attempt landed although its answer did not.
				return a.Seq, a.Done, nil
			}
		}
		for _, op := range ops {
			if err := l.state.Check(op); err != nil {
				return 0, nil, err
			}
		}
		e := Entry{Seq: l.state.Seq + 1, Writer: l.writer, Nonce: nonce, Ops: ops}
		data, err := json.Marshal(e)
		if err != nil {
			return 0, nil, err
		}
		_, err = l.bucket.Put(ctx, EntryKey(e.Seq), bytes.NewReader(data), objstore.PutOptions{IfNotExists: true, Size: int64(len(data))})
		switch {
		case err == nil:
			done, aerr := l.state.Apply(e)
			return e.Seq, done, aerr
		case errors.Is(err, objstore.ErrPrecondition):
			continue // someone else has this number
		case errors.Is(err, objstore.ErrRetriable) && attempt < 20:
			continue // unknown outcome: the next catch-up tells
		default:
			return 0, nil, err
		}
	}
}

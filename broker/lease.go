package broker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/tiercel/tiercel/internal/lease"
	"github.com/tiercel/tiercel/internal/vfs"
	"github.com/tiercel/tiercel/objstore"
)

// Every broker holds a lease in the bucket, leases/<node.id>, renewed by
// compare-and-swap every TTL/3 (docs/design.md, "Leases"). It acts as a
// leader (acknowledges produces, writes manifests) only while the lease is
// valid by its own monotonic clock, counted from when it sent its last
// renewal that succeeded; internal/lease holds those rules. A renewal that
// finds the lease written by someone else means another process took it:
// the broker stops leading for good.

// leaseRecord is the lease object.
type leaseRecord struct {
	Broker      int32  `json:"broker"`
	Incarnation string `json:"incarnation"`
	Counter     int64  `json:"counter"`
	Released    bool   `json:"released,omitempty"` // its broker leads nothing: shut down, or revoked
	RevokedBy   int32  `json:"revokedBy,omitempty"`
	// Fenced: revoked while its broker was still renewing it (cut off from
	// the other brokers): it may be valid by that broker's clock for up to
	// a TTL more, so watchers wait before moving its partitions.
	Fenced bool `json:"fenced,omitempty"`
}

func leaseKey(id int32) string { return fmt.Sprintf("leases/%d", id) }

// incarnationFile records the incarnation of the last process on a data
// directory: if the lease still names it, that process is gone (this one
// holds the directory's lock) and its lease can be taken at once.
const incarnationFile = "tiercel-incarnation"

var errLeaseLost = errors.New("the broker lease was taken by another process")

// leaseKeeper holds this broker's lease.
type leaseKeeper struct {
	b     *Broker
	cfg   lease.Config
	start time.Time // the monotonic clock's zero

	mu      sync.Mutex // guards holder, version, counter
	holder  *lease.Holder
	version string
	counter int64

	lost     chan struct{}
	lostOnce sync.Once
}

func (k *leaseKeeper) now() time.Duration { return time.Since(k.start) }

// valid reports whether this broker may act as a leader now.
func (k *leaseKeeper) valid() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.holder.Valid(k.now())
}

func (k *leaseKeeper) record(released bool) leaseRecord {
	return leaseRecord{Broker: k.b.nodeID, Incarnation: k.b.incarnation, Counter: k.counter, Released: released}
}

// acquireLease takes this broker's lease before it serves anything. A
// lease left by a process that ended cleanly, or by the last process on
// this data directory, is taken at once; one renewed by a live process is
// not: two brokers with one id refuse to run. Otherwise the broker waits
// until the lease has not changed for TTL plus margin.
func (b *Broker) acquireLease(ctx context.Context) error {
	k := &leaseKeeper{b: b, start: time.Now(), lost: make(chan struct{}), cfg: lease.Config{
		TTL:    time.Duration(b.cfg.Int64("tiercel.lease.ttl.ms")) * time.Millisecond,
		Margin: time.Duration(b.cfg.Int64("tiercel.lease.margin.ms")) * time.Millisecond,
	}}
	k.holder = lease.NewHolder(k.cfg)
	b.lease = k
	last, _ := vfs.ReadFile(b.fs, filepath.Join(b.dir, incarnationFile))
	b.previousIncarnation = strings.TrimSpace(string(last))
	key := leaseKey(b.nodeID)
	var w *lease.Watcher
	for {
		data, attrs, err := objstore.ReadAll(ctx, b.bucket, key)
		var opts objstore.PutOptions
		switch {
		case errors.Is(err, objstore.ErrNotFound):
			opts.IfNotExists = true
		case err != nil:
			return fmt.Errorf("reading the broker lease %s: %w", key, err)
		default:
			var rec leaseRecord
			if err := json.Unmarshal(data, &rec); err != nil {
				return fmt.Errorf("the broker lease %s is corrupt: %v", key, err)
			}
			free := rec.Released || (len(last) > 0 && rec.Incarnation == strings.TrimSpace(string(last)))
			if !free {
				if w == nil {
					w = lease.NewWatcher(k.cfg)
					b.logger.Warn("another process held this broker's lease; waiting for it to expire before serving",
						"lease", key, "incarnation", rec.Incarnation, "wait", k.cfg.TTL+k.cfg.Margin)
				} else if attrs.Version != w.Version() {
					return fmt.Errorf("another broker with node.id %d is running (its lease %s in %s was renewed while this one waited): two brokers must never share a node.id", b.nodeID, key, b.bucket.Name())
				}
				w.Observe(attrs.Version, false, k.now())
				if !w.Expired(k.now()) {
					select {
					case <-ctx.Done():
						return ctx.Err()
					case <-time.After(max(k.cfg.TTL/6, 10*time.Millisecond)):
					}
					continue
				}
			}
			k.counter = rec.Counter
			opts.IfVersion = attrs.Version
		}
		k.counter++
		id := k.holder.Sending(k.now())
		newAttrs, err := k.put(ctx, k.record(false), opts)
		if errors.Is(err, objstore.ErrPrecondition) {
			k.holder.Failed(id, false)
			w = nil // it changed under us: look again
			continue
		}
		if err != nil {
			return fmt.Errorf("writing the broker lease %s: %w", key, err)
		}
		k.holder.Succeeded(id)
		k.version = newAttrs.Version
		break
	}
	if err := vfs.WriteFileAtomic(b.fs, filepath.Join(b.dir, incarnationFile), []byte(b.incarnation+"\n")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("recording the incarnation in %s: %w", b.dir, err)
	}
	return nil
}

func (k *leaseKeeper) put(ctx context.Context, rec leaseRecord, opts objstore.PutOptions) (objstore.Attrs, error) {
	data, _ := json.Marshal(rec)
	opts.Size = int64(len(data))
	return k.b.bucket.Put(ctx, leaseKey(rec.Broker), bytes.NewReader(data), opts)
}

// renewLease renews the lease every TTL/3 until stop; losing it to
// another process ends the broker's leadership for good.
func (b *Broker) renewLease(stop <-chan struct{}) {
	k := b.lease
	every := k.cfg.TTL / 3
	repeat(stop, nil, every, func() (time.Duration, bool) {
		err := k.renew()
		switch {
		case errors.Is(err, errLeaseLost):
			b.logger.Error("this broker's lease was taken by another process: it no longer leads any partition; restart it", "lease", leaseKey(b.nodeID))
			k.lostOnce.Do(func() { close(k.lost) })
			return 0, false
		case err != nil:
			b.logger.Warn("renewing the broker lease; produces are refused once it lapses", "err", err, "valid", k.valid())
			return min(every, time.Second), true // try again soon
		}
		if b.gossip != nil {
			b.gossip.AnnounceLease(k.currentVersion())
		}
		return every, true
	})
}

// repeat calls step after wait, then after whatever wait step returns,
// and at once whenever kick (if not nil) fires, until step says stop or
// stop closes: the shape of the broker's background loops.
func repeat(stop <-chan struct{}, kick <-chan struct{}, wait time.Duration, step func() (next time.Duration, more bool)) {
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		case <-kick:
			t.Stop() // go1.23+ timers: no stale tick to drain before Reset
		}
		next, more := step()
		if !more {
			return
		}
		t.Reset(next)
	}
}

// renew writes the next counter over the version last written.
func (k *leaseKeeper) renew() error {
	k.mu.Lock()
	id := k.holder.Sending(k.now())
	k.counter++
	rec, version := k.record(false), k.version
	k.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), k.cfg.TTL/3)
	defer cancel()
	attrs, err := k.put(ctx, rec, objstore.PutOptions{IfVersion: version})
	k.mu.Lock()
	defer k.mu.Unlock()
	if err != nil {
		conflict := errors.Is(err, objstore.ErrPrecondition)
		k.holder.Failed(id, conflict)
		if conflict {
			return errLeaseLost
		}
		return err
	}
	k.holder.Succeeded(id)
	k.version = attrs.Version
	return nil
}

// version is the lease object's version last written.
func (k *leaseKeeper) currentVersion() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.version
}

// releaseLease marks the lease released on a clean shutdown, so a
// restarted broker (or, with unclean election, another one) need not wait
// for it to expire.
func (b *Broker) releaseLease(ctx context.Context) {
	k := b.lease
	if k == nil {
		return
	}
	select {
	case <-k.lost:
		return
	default:
	}
	k.mu.Lock()
	k.counter++
	rec, version := k.record(true), k.version
	k.mu.Unlock()
	if _, err := k.put(ctx, rec, objstore.PutOptions{IfVersion: version}); err != nil {
		b.logger.Warn("releasing the broker lease; the next start waits for it to expire", "err", err)
	}
}

// leading reports whether this broker may act as a leader now: its lease
// is valid and was not lost.
func (b *Broker) leading() bool {
	return b.lease == nil || b.lease.valid()
}

// Failed is closed when the broker can no longer serve: another process
// took its lease (it was paused or cut off past its lease and replaced).
// The process should exit; started again, it reads the metadata anew.
func (b *Broker) Failed() <-chan struct{} { return b.lease.lost }

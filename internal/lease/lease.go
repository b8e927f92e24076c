// Package lease holds the timing rules of the control plane's broker
// leases (docs/design.md, "Leases"), as pure logic over monotonic times
// the caller supplies: a Holder says whether its broker may still act as a
// leader, a Watcher says when another broker's lease may be taken as
// expired. No clock, no I/O: the object-store reads and writes happen at
// the edges, and the simulation test drives both with drifting clocks.
package lease

import "time"

// Config is the lease timing (tiercel.lease.ttl.ms, tiercel.lease.margin.ms).
type Config struct {
	TTL    time.Duration
	Margin time.Duration
}

// Holder tracks a broker's own lease.
type Holder struct {
	cfg     Config
	pending map[uint64]time.Duration // renewal attempts in flight: id -> when sent
	next    uint64
	validTo time.Duration // on the holder's monotonic clock; 0 = never valid
	lost    bool
}

// NewHolder returns a Holder that is not valid until a renewal succeeds.
func NewHolder(cfg Config) *Holder {
	return &Holder{cfg: cfg, pending: map[uint64]time.Duration{}}
}

// Sending records a renewal (or the first create) about to be sent at now
// and returns its id for Succeeded or Failed.
func (h *Holder) Sending(now time.Duration) uint64 {
	h.next++
	h.pending[h.next] = now
	return h.next
}

// Succeeded records that renewal id was written. Validity counts from when
// it was sent, not from when the answer came: the store applied it at some
// instant in between, and only the send time is known to be no later.
func (h *Holder) Succeeded(id uint64) {
	sent, ok := h.pending[id]
	if !ok {
		return
	}
	delete(h.pending, id)
	if h.lost {
		return
	}
	h.validTo = max(h.validTo, sent+h.cfg.TTL-h.cfg.Margin)
}

// Failed records that renewal id did not succeed. conflict means the lease
// was written by someone else (a precondition failure): the lease is lost
// for good. Other failures (timeouts, unknown outcome) only mean this
// attempt does not extend validity.
func (h *Holder) Failed(id uint64, conflict bool) {
	delete(h.pending, id)
	if conflict {
		h.lost = true
		h.validTo = 0
	}
}

// Valid reports whether the broker may act as a leader at now: checked
// immediately before every acknowledgement and every write to the bucket.
func (h *Holder) Valid(now time.Duration) bool { return !h.lost && now < h.validTo }

// Lost reports whether another process took the lease.
func (h *Holder) Lost() bool { return h.lost }

// Watcher tracks another broker's lease as read from the store.
type Watcher struct {
	cfg      Config
	version  string
	since    time.Duration // when the current version was first seen, watcher's clock
	seen     bool
	released bool
}

// NewWatcher returns a Watcher that has seen nothing.
func NewWatcher(cfg Config) *Watcher { return &Watcher{cfg: cfg} }

// Observe records a read of the lease: its version, whether it says
// released, and now, the time its answer arrived (not when it was sent:
// the version may have been written after the send, and the wait must
// start after that write).
func (w *Watcher) Observe(version string, released bool, now time.Duration) {
	if !w.seen || version != w.version {
		w.version, w.since, w.seen = version, now, true
	}
	w.released = released
}

// Version is the lease version last observed.
func (w *Watcher) Version() string { return w.version }

// Expired reports whether the watched broker may be treated as gone at
// now: its lease was released, or the same version has been seen for
// TTL + margin on this clock. The caller must have read the lease again
// at or after since + TTL + margin before relying on it (Observe then
// resets since if the version changed).
func (w *Watcher) Expired(now time.Duration) bool {
	if !w.seen {
		return false
	}
	return w.released || now >= w.since+w.cfg.TTL+w.cfg.Margin
}

package broker

import (
	"context"
	"sync"
	"time"

	"github.com/tiercel/tiercel/broker/storage"
)

// waiters wakes fetch long-polls when a partition's high watermark moves.
// A fetch registers one channel under every partition it reads; a notify
// is a non-blocking send, so the append path never waits on a consumer.
type waiters struct {
	mu     sync.Mutex
	byTP   map[storage.TopicPartition]map[chan struct{}]struct{}
	closed bool
}

func newWaiters() *waiters {
	return &waiters{byTP: map[storage.TopicPartition]map[chan struct{}]struct{}{}}
}

// register returns a channel signalled when any of tps advances, and a
// function to unregister it.
func (w *waiters) register(tps []storage.TopicPartition) (chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		close(ch)
		return ch, func() {}
	}
	for _, tp := range tps {
		set := w.byTP[tp]
		if set == nil {
			set = map[chan struct{}]struct{}{}
			w.byTP[tp] = set
		}
		set[ch] = struct{}{}
	}
	w.mu.Unlock()
	return ch, func() {
		w.mu.Lock()
		for _, tp := range tps {
			if set := w.byTP[tp]; set != nil {
				delete(set, ch)
				if len(set) == 0 {
					delete(w.byTP, tp)
				}
			}
		}
		w.mu.Unlock()
	}
}

func (w *waiters) notify(tp storage.TopicPartition) {
	w.mu.Lock()
	for ch := range w.byTP[tp] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	w.mu.Unlock()
}

// closeAll wakes every waiter for shutdown.
func (w *waiters) closeAll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	for _, set := range w.byTP {
		for ch := range set {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}
}

// await calls done until it reports true, sleeping in between until one of
// tps advances, deadline passes (zero: no deadline) or ctx ends. It
// registers after the first call and calls done again at once, so an
// advance between a call and the registration is not missed; done itself
// decides when a passed deadline or an ended ctx is enough.
func (w *waiters) await(ctx context.Context, tps []storage.TopicPartition, deadline time.Time, done func() bool) {
	var wake chan struct{}
	var unregister func()
	defer func() {
		if unregister != nil {
			unregister()
		}
	}()
	for !done() {
		if wake == nil {
			wake, unregister = w.register(tps)
			continue
		}
		var timer *time.Timer
		var timeout <-chan time.Time
		if !deadline.IsZero() {
			timer = time.NewTimer(time.Until(deadline))
			timeout = timer.C
		}
		select {
		case <-wake:
		case <-timeout:
		case <-ctx.Done():
		}
		if timer != nil {
			timer.Stop()
		}
	}
}

package broker

import (
	"sync"

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

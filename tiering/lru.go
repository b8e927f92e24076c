package tiering

import "container/list"

// lru is a size-bounded least-recently-used map. Not safe for concurrent
// use: its owner holds a lock.
type lru[K comparable, V any] struct {
	max     int64
	size    int64
	order   *list.List // front = most recent; elements hold *lruEntry
	entries map[K]*list.Element
	evicted func(K, V) // called for every entry pushed out
}

type lruEntry[K comparable, V any] struct {
	key  K
	val  V
	size int64
}

func newLRU[K comparable, V any](maxSize int64, evicted func(K, V)) *lru[K, V] {
	return &lru[K, V]{max: maxSize, order: list.New(), entries: map[K]*list.Element{}, evicted: evicted}
}

func (c *lru[K, V]) get(k K) (V, bool) {
	e, ok := c.entries[k]
	if !ok {
		var zero V
		return zero, false
	}
	c.order.MoveToFront(e)
	return e.Value.(*lruEntry[K, V]).val, true
}

// put adds or replaces k, then evicts the least recent entries while over
// the bound (never the one just added).
func (c *lru[K, V]) put(k K, v V, size int64) {
	if e, ok := c.entries[k]; ok {
		old := e.Value.(*lruEntry[K, V])
		c.size += size - old.size
		old.val, old.size = v, size
		c.order.MoveToFront(e)
	} else {
		c.entries[k] = c.order.PushFront(&lruEntry[K, V]{key: k, val: v, size: size})
		c.size += size
	}
	for c.size > c.max && c.order.Len() > 1 {
		last := c.order.Back()
		ent := last.Value.(*lruEntry[K, V])
		c.order.Remove(last)
		delete(c.entries, ent.key)
		c.size -= ent.size
		if c.evicted != nil {
			c.evicted(ent.key, ent.val)
		}
	}
}

func (c *lru[K, V]) len() int { return c.order.Len() }

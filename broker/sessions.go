package broker

import (
	"math/rand"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// sessionPartition is what a fetch session remembers of one partition
// (KIP-227): where to fetch, how much, and what the client was last told,
// so incremental responses carry only partitions that changed.
type sessionPartition struct {
	topic       string
	topicID     [16]byte
	partition   int32
	fetchOffset int64
	maxBytes    int32
	epoch       int32
	lastHW      int64
	lastStart   int64
}

type sessionKey struct {
	topic     string
	partition int32
}

type fetchSession struct {
	mu       sync.Mutex // held by the one fetch using the session
	id       int32
	epoch    int32 // the epoch the next request must carry
	parts    map[sessionKey]*sessionPartition
	order    []sessionKey // insertion order, so responses are stable
	lastUsed time.Time    // guarded by fetchSessions.mu
}

// fetchSessions is the broker's fetch-session cache, bounded by
// max.incremental.fetch.session.cache.slots; when full, the least recently
// used session idle for min.incremental.fetch.session.eviction.ms makes
// room, or else the new session is declined (id 0) and that client falls
// back to full fetches.
type fetchSessions struct {
	mu        sync.Mutex
	slots     int
	evictIdle time.Duration
	byID      map[int32]*fetchSession
	now       func() time.Time
}

func newFetchSessions(slots int, evictIdle time.Duration) *fetchSessions {
	return &fetchSessions{slots: slots, evictIdle: evictIdle, byID: map[int32]*fetchSession{}, now: time.Now}
}

// sessionFinalEpoch (-1) in a request closes the session; 0 starts one.
const sessionFinalEpoch = -1

// resolve applies the session id and epoch of a request. It returns the
// session to use (nil for a sessionless full fetch) and whether the fetch
// is incremental, or an error code.
//
// As Kafka's FetchManager: a full fetch (epoch 0 or -1) closes the session it
// names, whether or not that still exists, so a client whose last response
// was lost (its session already replaced) starts over instead of being told
// FETCH_SESSION_ID_NOT_FOUND forever; only incremental fetches (epoch > 0)
// need their session.
func (s *fetchSessions) resolve(id, epoch int32) (sess *fetchSession, incremental bool, code int16) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch epoch {
	case sessionFinalEpoch:
		delete(s.byID, id)
		return nil, false, 0
	case 0:
		delete(s.byID, id)
		return s.create(), false, 0
	}
	if epoch < 0 || id == 0 {
		return nil, false, kerr.InvalidFetchSessionEpoch.Code
	}
	existing := s.byID[id]
	if existing == nil {
		return nil, false, kerr.FetchSessionIDNotFound.Code
	}
	if epoch != existing.epoch {
		return nil, false, kerr.InvalidFetchSessionEpoch.Code
	}
	existing.epoch = nextEpoch(existing.epoch)
	existing.lastUsed = s.now()
	return existing, true, 0
}

func (s *fetchSessions) create() *fetchSession {
	now := s.now()
	if len(s.byID) >= s.slots {
		var lru *fetchSession
		for _, sess := range s.byID {
			if lru == nil || sess.lastUsed.Before(lru.lastUsed) {
				lru = sess
			}
		}
		if lru == nil || now.Sub(lru.lastUsed) < s.evictIdle {
			return nil
		}
		delete(s.byID, lru.id)
	}
	for {
		id := rand.Int31()
		if id != 0 && s.byID[id] == nil {
			sess := &fetchSession{id: id, epoch: 1, parts: map[sessionKey]*sessionPartition{}, lastUsed: now}
			s.byID[id] = sess
			return sess
		}
	}
}

func nextEpoch(e int32) int32 {
	if e == 1<<31-1 {
		return 1
	}
	return e + 1
}

func (fs *fetchSession) upsert(p sessionPartition) *sessionPartition {
	k := sessionKey{p.topic, p.partition}
	if old := fs.parts[k]; old != nil {
		old.fetchOffset, old.maxBytes, old.epoch, old.topicID = p.fetchOffset, p.maxBytes, p.epoch, p.topicID
		return old
	}
	p.lastHW, p.lastStart = -1, -1
	np := p
	fs.parts[k] = &np
	fs.order = append(fs.order, k)
	return &np
}

func (fs *fetchSession) forget(topic string, partition int32) {
	k := sessionKey{topic, partition}
	if fs.parts[k] == nil {
		return
	}
	delete(fs.parts, k)
	for i, o := range fs.order {
		if o == k {
			fs.order = append(fs.order[:i], fs.order[i+1:]...)
			break
		}
	}
}

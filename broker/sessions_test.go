package broker

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

func TestFetchSessionEviction(t *testing.T) {
	now := time.Unix(1000, 0)
	s := newFetchSessions(2, time.Minute)
	s.now = func() time.Time { return now }
	a, _, _ := s.resolve(0, 0)
	now = now.Add(10 * time.Second)
	b, _, _ := s.resolve(0, 0)
	if a == nil || b == nil {
		t.Fatal("sessions not created")
	}
	if c, _, _ := s.resolve(0, 0); c != nil {
		t.Fatal("a full cache evicted a session that was not idle long enough")
	}
	now = now.Add(55 * time.Second) // a idle 65 s, b 55 s
	c, _, _ := s.resolve(0, 0)
	if c == nil {
		t.Fatal("no room made for a new session")
	}
	if _, _, code := s.resolve(a.id, 1); code != kerr.FetchSessionIDNotFound.Code {
		t.Fatalf("the least recently used session survived: %d", code)
	}
	if sess, inc, code := s.resolve(b.id, 1); sess != b || !inc || code != 0 {
		t.Fatalf("the other session was lost: %v %v %d", sess, inc, code)
	}
}

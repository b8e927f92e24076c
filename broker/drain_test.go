package broker_test

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tiercel/tiercel/broker"
	"github.com/tiercel/tiercel/internal/brokertest"
)

// TestDrainAnswersRequestsSentDuringIt: a request that reaches an open
// connection just after a shutdown began draining is still answered. A
// connection closed before its first response makes kgo fail the request
// without retrying (it takes an early EOF for a TLS or SASL mismatch),
// which a rolling restart must not cause.
func TestDrainAnswersRequestsSentDuringIt(t *testing.T) {
	b := brokertest.Start(t)
	r := dial(t, b.Addr())
	// One round trip: the connection is registered before the drain.
	r.send(frame(kmsg.NewPtrApiVersionsRequest(), 3, 1))
	if corr, _ := r.read(false); corr != 1 {
		t.Fatalf("correlation id %d, want 1", corr)
	}

	closed := make(chan struct{})
	go func() {
		b.Close()
		close(closed)
	}()
	// Draining has begun once the listener refuses new connections.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		c, err := net.DialTimeout("tcp", b.Addr(), time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("the broker still accepts connections 10 s into its shutdown")
		}
	}
	time.Sleep(20 * time.Millisecond) // past the moment read deadlines are set

	r.send(frame(kmsg.NewPtrApiVersionsRequest(), 3, 2))
	corr, body := r.read(false)
	if corr != 2 {
		t.Fatalf("correlation id %d, want 2", corr)
	}
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.SetVersion(3)
	if err := resp.ReadFrom(body); err != nil || resp.ErrorCode != 0 || len(resp.ApiKeys) == 0 {
		t.Fatalf("ApiVersions during the drain: err %v, error code %d, %d keys", err, resp.ErrorCode, len(resp.ApiKeys))
	}
	// The grace ends: the broker closes the connection and finishes.
	r.closed()
	select {
	case <-closed:
	case <-time.After(30 * time.Second):
		t.Fatal("shutdown did not finish")
	}
}

// TestShutdownRefusesOrAnswers: while a broker shuts down (handoff, drain,
// gossip leave, held here for 300 ms), a new connection to it is refused
// or answered, never accepted and closed unanswered, the EOF kgo does not
// retry. The listener used to stay open until the gossip leave was done,
// closing every connection it accepted meanwhile (seen failing a produce
// in the cluster benchmark's SIGTERM handoff).
func TestShutdownRefusesOrAnswers(t *testing.T) {
	leaving := make(chan struct{})
	knobs := &broker.Knobs{GossipLeaving: func() {
		close(leaving)
		time.Sleep(300 * time.Millisecond)
	}}
	b := brokertest.StartWithKnobs(t, t.TempDir(), nil, knobs)
	addr := b.Addr()
	apiVersions := frame(kmsg.NewPtrApiVersionsRequest(), 3, 1)
	done := make(chan struct{})
	go func() {
		b.Close()
		close(done)
	}()
	<-leaving
	tries := 0
	for {
		select {
		case <-done:
			if tries == 0 {
				t.Fatal("the shutdown ended before a connection was tried")
			}
			return
		default:
		}
		tries++
		nc, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			time.Sleep(time.Millisecond) // refused: what a client retries
			continue
		}
		_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
		var size [4]byte
		if _, err = nc.Write(apiVersions); err == nil {
			_, err = io.ReadFull(nc, size[:])
		}
		nc.Close()
		if err != nil {
			t.Fatalf("a connection accepted while the broker left the gossip ended without an answer: %v", err)
		}
	}
}

package broker

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// fakeLeader accepts one connection, answers ApiVersions (Fetch up to
// v12), then hands every later request frame to answer.
func fakeLeader(t *testing.T, answer func(nc net.Conn, corr int32)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		for i := 0; ; i++ {
			var size [4]byte
			if _, err := io.ReadFull(nc, size[:]); err != nil {
				return
			}
			body := make([]byte, binary.BigEndian.Uint32(size[:]))
			if _, err := io.ReadFull(nc, body); err != nil {
				return
			}
			corr := int32(binary.BigEndian.Uint32(body[4:]))
			if i > 0 {
				answer(nc, corr)
				continue
			}
			resp := kmsg.NewPtrApiVersionsResponse()
			k := kmsg.NewApiVersionsResponseApiKey()
			k.ApiKey, k.MaxVersion = 1, 12
			resp.ApiKeys = append(resp.ApiKeys, k)
			frame := binary.BigEndian.AppendUint32(nil, uint32(corr))
			frame = resp.AppendTo(frame)
			_, _ = nc.Write(append(binary.BigEndian.AppendUint32(nil, uint32(len(frame))), frame...))
		}
	}()
	return ln.Addr().String()
}

// TestReplicaConnRefusesHugeFrame: a leader (or anything on its port)
// announcing a response larger than the bound gets an error, not an
// allocation of that size.
func TestReplicaConnRefusesHugeFrame(t *testing.T) {
	addr := fakeLeader(t, func(nc net.Conn, corr int32) {
		_, _ = nc.Write([]byte{0x7f, 0xff, 0xff, 0xff})
	})
	c := newReplicaConn(addr, "test", 1<<20)
	defer c.close()
	_, err := c.fetch(t.Context(), kmsg.NewPtrFetchRequest())
	if err == nil || !strings.Contains(err.Error(), "response frame of 2147483647 bytes") {
		t.Fatalf("fetch: %v", err)
	}
	if c.nc != nil || cap(c.in) > 1<<20 {
		t.Fatalf("after a bad frame the connection must be closed and nothing allocated (buffer %d)", cap(c.in))
	}
}

// TestReplicaConnChecksCorrelation: an answer to another request is an
// error (the stream is out of step), and the version spoken is the
// leader's highest Fetch version.
func TestReplicaConnChecksCorrelation(t *testing.T) {
	addr := fakeLeader(t, func(nc net.Conn, corr int32) {
		resp := kmsg.NewPtrFetchResponse()
		resp.Version = 12
		frame := binary.BigEndian.AppendUint32(nil, uint32(corr+1))
		frame = append(frame, 0) // no header tags
		frame = resp.AppendTo(frame)
		_, _ = nc.Write(append(binary.BigEndian.AppendUint32(nil, uint32(len(frame))), frame...))
	})
	c := newReplicaConn(addr, "test", 1<<20)
	defer c.close()
	req := kmsg.NewPtrFetchRequest()
	_, err := c.fetch(t.Context(), req)
	if err == nil || !strings.Contains(err.Error(), "want 2") {
		t.Fatalf("fetch: %v", err)
	}
	if req.Version != 12 {
		t.Fatalf("spoke Fetch v%d, want the leader's v12", req.Version)
	}
}

// TestReplicaConnCancel: stopping the fetcher (its context) ends a fetch
// the leader never answers.
func TestReplicaConnCancel(t *testing.T) {
	addr := fakeLeader(t, func(net.Conn, int32) {})
	c := newReplicaConn(addr, "test", 1<<20)
	defer c.close()
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, err := c.fetch(ctx, kmsg.NewPtrFetchRequest())
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("fetch: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("cancelled fetch returned after %v", d)
	}
}

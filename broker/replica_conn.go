package broker

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// replicaConn is a follower's Fetch connection to its leader. kmsg encodes
// the requests and decodes the responses, as everywhere; what differs from
// a kgo client is where a response lands: in one buffer kept from fetch to
// fetch (a fetcher has one request in flight, and its records are written
// to the log before the next), where kgo allocates and zeroes a fresh one
// per response, for every replicated byte.
type replicaConn struct {
	addr     string
	maxBytes int64 // a response frame larger than this is refused

	nc      net.Conn
	fmt     *kmsg.RequestFormatter
	version int16 // the Fetch version both sides speak
	corr    int32
	out     []byte
	in      []byte
}

// keptBufferMax: a response buffer that grew past this is not kept.
const keptBufferMax = 64 << 20

func newReplicaConn(addr, clientID string, maxBytes int64) *replicaConn {
	return &replicaConn{addr: addr, maxBytes: maxBytes, fmt: kmsg.NewRequestFormatter(kmsg.FormatterClientID(clientID))}
}

// fetch sends req and returns the leader's answer. The response's record
// sets alias the connection's buffer: they are valid until the next call.
// Any error closes the connection; the next call dials again.
func (c *replicaConn) fetch(ctx context.Context, req *kmsg.FetchRequest) (*kmsg.FetchResponse, error) {
	if c.nc == nil {
		if err := c.dial(ctx); err != nil {
			return nil, err
		}
	}
	req.Version = min(c.version, req.MaxVersion())
	resp := kmsg.NewPtrFetchResponse()
	if err := c.roundTrip(ctx, req, resp); err != nil {
		c.close()
		return nil, err
	}
	return resp, nil
}

func (c *replicaConn) dial(ctx context.Context) error {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", c.addr)
	if err != nil {
		return err
	}
	c.nc = nc
	// ApiVersions v0: every broker answers it, whatever it speaks.
	av := kmsg.NewPtrApiVersionsRequest()
	avResp := kmsg.NewPtrApiVersionsResponse()
	if err := c.roundTrip(ctx, av, avResp); err != nil {
		c.close()
		return fmt.Errorf("ApiVersions to %s: %w", c.addr, err)
	}
	c.version = -1
	for _, k := range avResp.ApiKeys {
		if k.ApiKey == 1 {
			c.version = k.MaxVersion
		}
	}
	if avResp.ErrorCode != 0 || c.version < 4 {
		c.close()
		return fmt.Errorf("leader %s: no usable Fetch version (error %d, max %d)", c.addr, avResp.ErrorCode, c.version)
	}
	return nil
}

func (c *replicaConn) roundTrip(ctx context.Context, req kmsg.Request, resp kmsg.Response) error {
	// Cancelling ctx (the fetcher stopping) unblocks a read by closing.
	nc := c.nc
	stop := context.AfterFunc(ctx, func() { _ = nc.Close() })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	} else {
		_ = nc.SetDeadline(time.Time{})
	}
	c.corr++
	c.out = c.fmt.AppendRequest(c.out[:0], req, c.corr)
	binary.BigEndian.PutUint32(c.out, uint32(len(c.out)-4))
	if _, err := nc.Write(c.out); err != nil {
		return ctxErr(ctx, err)
	}
	var size [4]byte
	if _, err := io.ReadFull(nc, size[:]); err != nil {
		return ctxErr(ctx, err)
	}
	n := int64(int32(binary.BigEndian.Uint32(size[:])))
	if n < 4 || n > c.maxBytes {
		return fmt.Errorf("leader %s: response frame of %d bytes (at most %d)", c.addr, n, c.maxBytes)
	}
	if int64(cap(c.in)) < n {
		c.in = make([]byte, n)
	}
	body := c.in[:n]
	if _, err := io.ReadFull(nc, body); err != nil {
		return ctxErr(ctx, err)
	}
	if got := int32(binary.BigEndian.Uint32(body)); got != c.corr {
		return fmt.Errorf("leader %s: response to request %d, want %d", c.addr, got, c.corr)
	}
	body = body[4:]
	resp.SetVersion(req.GetVersion())
	if resp.IsFlexible() && req.Key() != 18 { // ApiVersions answers with a v0 header
		var err error
		if body, err = skipHeaderTags(body); err != nil {
			return fmt.Errorf("leader %s: %w", c.addr, err)
		}
	}
	if err := resp.ReadFrom(body); err != nil {
		return fmt.Errorf("leader %s: decoding %s: %w", c.addr, kmsg.NameForKey(req.Key()), err)
	}
	if cap(c.in) > keptBufferMax {
		c.in = nil // the response still uses it; only the next one starts afresh
	}
	return nil
}

// ctxErr prefers the context's error: a read failing because ctx closed
// the connection is a cancellation, not a broken leader.
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return errors.Join(ctx.Err(), err)
	}
	return err
}

func (c *replicaConn) close() {
	if c.nc != nil {
		_ = c.nc.Close()
		c.nc = nil
	}
}

package broker

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// inflight bounds the requests of one connection read ahead of their
// responses; a client pipelining more waits, which is backpressure.
const inflight = 64

// pending is one request in a connection's response order.
type pending struct {
	correlation int32
	api         string
	version     int16
	start       time.Time
	done        chan struct{}
	resp        kmsg.Response
	none        bool
}

// conn serves one client connection: a reader goroutine decodes and
// handles requests in order (so appends from one connection keep their
// order), waits run concurrently, and a writer goroutine emits responses
// strictly in request order.
type conn struct {
	b     *Broker
	nc    net.Conn
	queue chan *pending
	ctx   context.Context
	stop  context.CancelFunc
	host  string // the client's address as Kafka reports it: "/ip"
}

func (b *Broker) serveConn(nc net.Conn) {
	ctx, stop := context.WithCancel(context.Background())
	c := &conn{b: b, nc: nc, queue: make(chan *pending, inflight), ctx: ctx, stop: stop, host: clientHost(nc)}
	b.metrics.ConnOpened()
	defer b.metrics.ConnClosed()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.writeLoop()
	}()
	c.readLoop()
	close(c.queue)
	wg.Wait()
	stop()
	nc.Close()
}

func (c *conn) readLoop() {
	r := bufio.NewReaderSize(c.nc, 64<<10)
	maxFrame := c.b.cfg.Int64("socket.request.max.bytes")
	idle := time.Duration(c.b.cfg.Int64("connections.max.idle.ms")) * time.Millisecond
	var sizeBuf [4]byte
	for {
		switch {
		case c.b.draining.Load():
			until := time.Unix(0, c.b.drainUntil.Load())
			if !time.Now().Before(until) {
				return
			}
			_ = c.nc.SetReadDeadline(until)
		case idle > 0:
			_ = c.nc.SetReadDeadline(time.Now().Add(idle))
		}
		if _, err := io.ReadFull(r, sizeBuf[:]); err != nil {
			return
		}
		size := int64(int32(binary.BigEndian.Uint32(sizeBuf[:])))
		// Checked before allocating: a client's length field never sizes
		// memory beyond socket.request.max.bytes.
		if size < 8 || size > maxFrame {
			c.b.logger.Warn("closing connection: bad frame size", "remote", c.nc.RemoteAddr().String(), "size", size, "max", maxFrame)
			return
		}
		body := make([]byte, size)
		if _, err := io.ReadFull(r, body); err != nil {
			return
		}
		c.b.metrics.BytesIn(int(size) + 4)
		h, req, err := decodeRequest(body)
		h.host = c.host
		if err != nil {
			if errors.Is(err, errUnsupportedVersion) && h.key == 18 {
				c.enqueue(h, &pending{resp: unsupportedApiVersions()}, "ApiVersions")
				continue
			}
			c.b.logger.Warn("closing connection: bad request", "remote", c.nc.RemoteAddr().String(), "client_id", h.clientID, "err", err)
			return
		}
		p := &pending{}
		name := kmsg.NameForKey(h.key)
		p.start = time.Now()
		rep := c.b.handle(c.ctx, h, req)
		switch {
		case rep.none:
			p.none = true
		case rep.later != nil:
			p.done = make(chan struct{})
			go func() {
				// p.resp is this goroutine's until done is closed.
				if p.resp = rep.later(); p.resp != nil {
					p.resp.SetVersion(h.version)
				}
				close(p.done)
			}()
		default:
			if p.resp = rep.resp; p.resp != nil {
				p.resp.SetVersion(h.version)
			}
		}
		c.enqueue(h, p, name)
	}
}

func (c *conn) enqueue(h requestHeader, p *pending, name string) {
	p.correlation, p.version, p.api = h.correlation, h.version, name
	if p.start.IsZero() {
		p.start = time.Now()
	}
	if p.done == nil {
		p.done = make(chan struct{})
		close(p.done)
	}
	// p.resp may still be being made (rep.later): its version is set by
	// its maker, and again by the writer once done is closed.
	c.queue <- p
}

func (c *conn) writeLoop() {
	rw := &responseWriter{w: bufio.NewWriterSize(c.nc, 64<<10), nc: c.nc}
	failed := false
	for p := range c.queue {
		<-p.done
		if failed {
			continue
		}
		if !p.none {
			// Flush when nothing else is ready, so pipelined responses share writes.
			n, err := rw.write(p, func() bool { return len(c.queue) == 0 })
			if err != nil {
				failed = true
				c.nc.Close()
				continue
			}
			c.b.metrics.BytesOut(n)
		}
		c.b.metrics.Request(p.api, p.version, time.Since(p.start), false)
	}
	if !failed {
		_ = rw.w.Flush()
	}
}

// responseWriter frames and writes one connection's responses.
type responseWriter struct {
	w       *bufio.Writer
	nc      net.Conn
	buf     []byte
	splicer *fetchSplicer
}

// write sends one response and returns its size: a Fetch response with
// large record sets as one writev after whatever is buffered, anything
// else through the buffer, flushed if idle says nothing else is ready.
func (rw *responseWriter) write(p *pending, idle func() bool) (int, error) {
	if p.resp.Key() != 18 {
		p.resp.SetVersion(p.version)
	}
	if fr, ok := p.resp.(*kmsg.FetchResponse); ok {
		if rw.splicer == nil {
			rw.splicer = newFetchSplicer()
		}
		bufs, buf, n, spliced := rw.splicer.frame(rw.buf, p.correlation, fr)
		rw.buf = buf
		if spliced {
			if err := rw.w.Flush(); err != nil {
				return 0, err
			}
			_, err := bufs.WriteTo(rw.nc)
			return n, err
		}
	}
	rw.buf = appendResponse(rw.buf[:0], p.correlation, p.resp)
	n := len(rw.buf)
	if _, err := rw.w.Write(rw.buf); err != nil {
		return 0, err
	}
	if cap(rw.buf) > 4<<20 {
		rw.buf = nil
	}
	if idle() {
		return n, rw.w.Flush()
	}
	return n, nil
}

// unsupportedApiVersions is the v0 reply Kafka sends to an ApiVersions
// request of a version it does not know: the error and the supported
// ranges, so the client can retry with a version both sides speak.
func unsupportedApiVersions() kmsg.Response {
	resp := apiVersionsResponse()
	resp.ErrorCode = kerr.UnsupportedVersion.Code
	resp.SetVersion(0)
	return resp
}

// clientHost formats a connection's peer as Kafka's DescribeGroups does.
func clientHost(nc net.Conn) string {
	host, _, err := net.SplitHostPort(nc.RemoteAddr().String())
	if err != nil {
		return "/" + nc.RemoteAddr().String()
	}
	return "/" + host
}

package broker_test

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tiercel/tiercel/internal/brokertest"
	"github.com/tiercel/tiercel/internal/recordbatch"
)

// raw is a hand-driven Kafka connection for the tests that must send what
// no well-behaved client sends.
type raw struct {
	t  *testing.T
	nc net.Conn
}

func dial(t *testing.T, addr string) *raw {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(20 * time.Second))
	return &raw{t: t, nc: nc}
}

// frame encodes a request with header v1 (or v2 when flexible).
func frame(req kmsg.Request, version int16, correlation int32) []byte {
	req.SetVersion(version)
	b := make([]byte, 4, 64)
	b = binary.BigEndian.AppendUint16(b, uint16(req.Key()))
	b = binary.BigEndian.AppendUint16(b, uint16(version))
	b = binary.BigEndian.AppendUint32(b, uint32(correlation))
	b = binary.BigEndian.AppendUint16(b, 4)
	b = append(b, "test"...)
	if req.IsFlexible() {
		b = append(b, 0)
	}
	b = req.AppendTo(b)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

func (r *raw) send(b []byte) {
	r.t.Helper()
	if _, err := r.nc.Write(b); err != nil {
		r.t.Fatal(err)
	}
}

// read returns the correlation id and the body after the response header.
func (r *raw) read(flexibleHeader bool) (int32, []byte) {
	r.t.Helper()
	var size [4]byte
	if _, err := io.ReadFull(r.nc, size[:]); err != nil {
		r.t.Fatalf("reading a response: %v", err)
	}
	body := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(r.nc, body); err != nil {
		r.t.Fatal(err)
	}
	corr := int32(binary.BigEndian.Uint32(body))
	body = body[4:]
	if flexibleHeader {
		body = body[1:]
	}
	return corr, body
}

// closed asserts the broker closed the connection.
func (r *raw) closed() {
	r.t.Helper()
	_ = r.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	var one [1]byte
	if _, err := r.nc.Read(one[:]); err == nil || errors.Is(err, errTimeout) || isTimeout(err) {
		r.t.Fatalf("connection still open: %v", err)
	}
}

var errTimeout = errors.New("timeout")

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// stillServes checks that a normal client works on another connection.
func stillServes(t *testing.T, addr string) {
	t.Helper()
	cl := client(t, addr)
	if _, err := kmsg.NewPtrApiVersionsRequest().RequestWith(ctx(t), cl); err != nil {
		t.Fatalf("broker stopped serving others: %v", err)
	}
}

func TestBadFrames(t *testing.T) {
	b := brokertest.Start(t)
	t.Run("2GiB length", func(t *testing.T) {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		r := dial(t, b.Addr())
		r.send([]byte{0x7f, 0xff, 0xff, 0xff, 0, 18, 0, 0})
		r.closed()
		runtime.ReadMemStats(&after)
		if grew := int64(after.TotalAlloc) - int64(before.TotalAlloc); grew > 64<<20 {
			t.Fatalf("a 2 GiB length field made the broker allocate %d bytes", grew)
		}
		stillServes(t, b.Addr())
	})
	t.Run("negative length", func(t *testing.T) {
		r := dial(t, b.Addr())
		r.send([]byte{0xff, 0xff, 0xff, 0xff})
		r.closed()
	})
	t.Run("garbage", func(t *testing.T) {
		r := dial(t, b.Addr())
		r.send([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
		r.closed()
		stillServes(t, b.Addr())
	})
	t.Run("cut short", func(t *testing.T) {
		r := dial(t, b.Addr())
		f := frame(kmsg.NewPtrMetadataRequest(), 9, 1)
		r.send(f[:len(f)-3])
		r.nc.(*net.TCPConn).CloseWrite()
		r.closed()
		stillServes(t, b.Addr())
	})
	t.Run("unknown api key", func(t *testing.T) {
		r := dial(t, b.Addr())
		f := frame(kmsg.NewPtrApiVersionsRequest(), 0, 1)
		binary.BigEndian.PutUint16(f[4:], 999)
		r.send(f)
		r.closed()
	})
	t.Run("body garbage", func(t *testing.T) {
		r := dial(t, b.Addr())
		f := frame(kmsg.NewPtrMetadataRequest(), 9, 1)
		f = append(f[:4+14], 0xff, 0xff, 0xff) // header (with its tag byte) then nonsense
		binary.BigEndian.PutUint32(f, uint32(len(f)-4))
		r.send(f)
		r.closed()
	})
	t.Run("unsupported ApiVersions version", func(t *testing.T) {
		r := dial(t, b.Addr())
		r.send(frame(kmsg.NewPtrApiVersionsRequest(), 99, 7))
		corr, body := r.read(false)
		resp := kmsg.NewPtrApiVersionsResponse()
		resp.SetVersion(0)
		if err := resp.ReadFrom(body); err != nil {
			t.Fatalf("the reply is not a v0 ApiVersions response: %v", err)
		}
		if corr != 7 || resp.ErrorCode != kerr.UnsupportedVersion.Code || len(resp.ApiKeys) < 10 {
			t.Fatalf("corr %d error %d with %d apis", corr, resp.ErrorCode, len(resp.ApiKeys))
		}
	})
	t.Run("unsupported Produce version", func(t *testing.T) {
		r := dial(t, b.Addr())
		r.send(frame(kmsg.NewPtrProduceRequest(), 2, 1))
		r.closed()
		stillServes(t, b.Addr())
	})
}

func TestPipeliningAndAcksZero(t *testing.T) {
	b := brokertest.Start(t)
	create(t, admin(t, b.Addr()), "pipe", 1, nil)
	r := dial(t, b.Addr())
	batch, _ := recordbatch.Build([]recordbatch.Record{{Value: []byte("x")}}, recordbatch.NoProducer())
	produce := func(acks int16) kmsg.Request {
		req := kmsg.NewPtrProduceRequest()
		req.Acks, req.TimeoutMillis = acks, 5000
		tp := kmsg.NewProduceRequestTopic()
		tp.Topic = "pipe"
		p := kmsg.NewProduceRequestTopicPartition()
		p.Records = append([]byte(nil), batch...)
		tp.Partitions = append(tp.Partitions, p)
		req.Topics = append(req.Topics, tp)
		return req
	}
	// A slow long-poll first, then quick requests: responses still come in request order.
	fetch := kmsg.NewPtrFetchRequest()
	fetch.MaxWaitMillis, fetch.MinBytes, fetch.MaxBytes, fetch.SessionEpoch = 300, 1<<20, 1<<20, -1
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = "pipe"
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.PartitionMaxBytes = 1 << 20
	ft.Partitions = append(ft.Partitions, fp)
	fetch.Topics = append(fetch.Topics, ft)
	var out []byte
	out = append(out, frame(fetch, 11, 1)...)
	out = append(out, frame(produce(0), 9, 2)...) // acks=0: no response
	out = append(out, frame(produce(-1), 9, 3)...)
	out = append(out, frame(kmsg.NewPtrApiVersionsRequest(), 3, 4)...)
	r.send(out)
	for _, want := range []struct {
		corr     int32
		flexible bool
	}{{1, true}, {3, true}, {4, false}} {
		corr, body := r.read(want.flexible)
		if corr != want.corr {
			t.Fatalf("response with correlation %d, want %d: responses out of order or acks=0 answered", corr, want.corr)
		}
		if corr == 3 {
			resp := kmsg.NewPtrProduceResponse()
			resp.SetVersion(9)
			if err := resp.ReadFrom(body); err != nil || resp.Topics[0].Partitions[0].ErrorCode != 0 || resp.Topics[0].Partitions[0].BaseOffset != 1 {
				t.Fatalf("produce response: %v %+v", err, resp)
			}
		}
	}
}

func TestProduceRejects(t *testing.T) {
	b := brokertest.Start(t, "auto.create.topics.enable=false")
	adm := admin(t, b.Addr())
	create(t, adm, "rej", 1, map[string]*string{"max.message.bytes": ptr("2000")})
	cl := client(t, b.Addr())
	send := func(topic string, partition int32, records []byte) int16 {
		req := kmsg.NewPtrProduceRequest()
		req.Acks, req.TimeoutMillis = -1, 5000
		tp := kmsg.NewProduceRequestTopic()
		tp.Topic = topic
		p := kmsg.NewProduceRequestTopicPartition()
		p.Partition, p.Records = partition, records
		tp.Partitions = append(tp.Partitions, p)
		req.Topics = append(req.Topics, tp)
		resp, err := req.RequestWith(ctx(t), cl)
		if err != nil {
			t.Fatal(err)
		}
		return resp.Topics[0].Partitions[0].ErrorCode
	}
	good, _ := recordbatch.Build([]recordbatch.Record{{Value: []byte("ok")}}, recordbatch.NoProducer())
	big, _ := recordbatch.Build([]recordbatch.Record{{Value: make([]byte, 3000)}}, recordbatch.NoProducer())
	badCRC := append([]byte(nil), good...)
	badCRC[len(badCRC)-1] ^= 1
	cases := []struct {
		name      string
		topic     string
		partition int32
		records   []byte
		want      int16
	}{
		{"over max.message.bytes", "rej", 0, big, kerr.MessageTooLarge.Code},
		{"bad crc", "rej", 0, badCRC, kerr.CorruptMessage.Code},
		{"truncated", "rej", 0, good[:30], kerr.CorruptMessage.Code},
		{"unknown topic", "nope", 0, good, kerr.UnknownTopicOrPartition.Code},
		{"unknown partition", "rej", 5, good, kerr.UnknownTopicOrPartition.Code},
		{"valid", "rej", 0, good, 0},
	}
	for _, c := range cases {
		if got := send(c.topic, c.partition, c.records); got != c.want {
			t.Errorf("%s: error %d, want %d", c.name, got, c.want)
		}
	}
	ends, _ := adm.ListEndOffsets(ctx(t), "rej")
	if o, _ := ends.Lookup("rej", 0); o.Offset != 1 {
		t.Fatalf("end offset %d: a rejected batch was appended", o.Offset)
	}
	// Fetch out of range and from an unknown partition.
	fcl := client(t, b.Addr(), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"rej": {0: kgo.NewOffset().At(50)}}), kgo.ConsumeResetOffset(kgo.NoResetOffset()))
	fs := fcl.PollFetches(ctx(t))
	var gotErr error
	fs.EachError(func(_ string, _ int32, err error) { gotErr = err })
	if !errors.Is(gotErr, kerr.OffsetOutOfRange) {
		t.Fatalf("fetch out of range: %v", gotErr)
	}
}

func ptr(s string) *string { return &s }

// roundTrip sends req at exactly this version (a kgo client would pick its
// own) and decodes the answer.
func (r *raw) roundTrip(req kmsg.Request, version int16) kmsg.Response {
	r.t.Helper()
	r.send(frame(req, version, 7))
	resp := req.ResponseKind()
	resp.SetVersion(version)
	_, body := r.read(resp.IsFlexible() && req.Key() != 18)
	if err := resp.ReadFrom(body); err != nil {
		r.t.Fatalf("%s v%d: decoding the response: %v", kmsg.NameForKey(req.Key()), version, err)
	}
	return resp
}

package broker

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func seedFrame(req kmsg.Request, version int16) []byte {
	req.SetVersion(version)
	b := binary.BigEndian.AppendUint16(nil, uint16(req.Key()))
	b = binary.BigEndian.AppendUint16(b, uint16(version))
	b = binary.BigEndian.AppendUint32(b, 1)
	b = binary.BigEndian.AppendUint16(b, 1)
	b = append(b, 'c')
	if req.IsFlexible() {
		b = append(b, 0)
	}
	return req.AppendTo(b)
}

// FuzzRequestFrame feeds arbitrary frame bodies to the request decoder:
// it must return an error or a request, never panic, and a request it
// returns must re-encode (so the handlers get a well-formed value).
func FuzzRequestFrame(f *testing.F) {
	f.Add(seedFrame(kmsg.NewPtrApiVersionsRequest(), 3))
	f.Add(seedFrame(kmsg.NewPtrMetadataRequest(), 12))
	f.Add(seedFrame(kmsg.NewPtrMetadataRequest(), 1))
	p := kmsg.NewPtrProduceRequest()
	p.Topics = []kmsg.ProduceRequestTopic{{Topic: "t", Partitions: []kmsg.ProduceRequestTopicPartition{{Records: []byte{1, 2, 3}}}}}
	f.Add(seedFrame(p, 9))
	f.Add(seedFrame(p, 3))
	fr := kmsg.NewPtrFetchRequest()
	fr.Topics = []kmsg.FetchRequestTopic{{Topic: "t", Partitions: []kmsg.FetchRequestTopicPartition{{}}}}
	f.Add(seedFrame(fr, 12))
	f.Add(seedFrame(fr, 16))
	f.Add(seedFrame(kmsg.NewPtrCreateTopicsRequest(), 7))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, body []byte) {
		h, req, err := decodeRequest(body)
		if err != nil {
			return
		}
		if req.Key() != h.key || req.GetVersion() != h.version {
			t.Fatalf("decoded %d v%d from a header saying %d v%d", req.Key(), req.GetVersion(), h.key, h.version)
		}
		_ = req.AppendTo(nil)
	})
}

// TestDecodeHugeTagCount: a 70-byte Fetch whose tagged-field count says
// two billion made kmsg v1.15.0 loop over the count (25 s of CPU, 900 MB)
// after the bytes ran out; found by FuzzRequestFrame, fixed in kmsg
// v1.15.1. Decoding must end as soon as the bytes do.
func TestDecodeHugeTagCount(t *testing.T) {
	body := []byte("\x00\x01\x00\x100000\x00\x010\x0000\x04\x00000\x1d0000000000000\x020000000\x130000000\x00\x01\x8b\x8b\x8b\x8b\b")
	done := make(chan struct{})
	go func() {
		_, _, _ = decodeRequest(body)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second): // a hang guard, not a speed test
		t.Fatal("decoding a 70-byte request with a huge tag count did not end")
	}
}

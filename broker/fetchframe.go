package broker

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"net"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// spliceMin is the size from which a Fetch response's record set is sent
// from its own buffer (one writev with the encoded rest) instead of being
// copied into the encoded response: that copy was a third of the broker's
// CPU when consumers read fast.
const spliceMin = 16 << 10

// fetchSplicer frames Fetch responses for one connection. The encoding is
// kmsg's: each large record set is swapped for a unique 16-byte marker,
// the response is encoded, and the marker (with its length prefix) is then
// replaced by the real length prefix and the record set as buffers of
// their own.
type fetchSplicer struct {
	nonce [8]byte
	seq   uint64
	lens  []byte
}

func newFetchSplicer() *fetchSplicer {
	s := &fetchSplicer{}
	_, _ = rand.Read(s.nonce[:])
	return s
}

// frame returns the framed response as buffers, or ok=false when no
// record set is large enough to bother (the caller encodes as usual). dst
// is scratch space for the encoding.
func (s *fetchSplicer) frame(dst []byte, correlation int32, resp *kmsg.FetchResponse) (bufs net.Buffers, encoded []byte, size int, ok bool) {
	type spliced struct {
		p       *kmsg.FetchResponseTopicPartition
		records []byte
		marker  []byte
	}
	var parts []spliced
	for ti := range resp.Topics {
		for pi := range resp.Topics[ti].Partitions {
			p := &resp.Topics[ti].Partitions[pi]
			if len(p.RecordBatches) >= spliceMin {
				s.seq++
				m := binary.BigEndian.AppendUint64(append([]byte(nil), s.nonce[:]...), s.seq)
				parts = append(parts, spliced{p: p, records: p.RecordBatches, marker: m})
			}
		}
	}
	if len(parts) == 0 {
		return nil, dst, 0, false
	}
	for _, sp := range parts {
		sp.p.RecordBatches = sp.marker
	}
	dst = appendResponse(dst[:0], correlation, resp)
	for _, sp := range parts {
		sp.p.RecordBatches = sp.records
	}
	// Length prefixes: compact (uvarint of length+1) in flexible versions,
	// int32 before them; the markers' are one byte (17) or four (16).
	prefix := 4
	if resp.IsFlexible() {
		prefix = 1
	}
	s.lens = s.lens[:0]
	if cap(s.lens) < len(parts)*binary.MaxVarintLen64 {
		s.lens = make([]byte, 0, len(parts)*binary.MaxVarintLen64)
	}
	pos, total := 0, 0
	for _, sp := range parts {
		i := bytes.Index(dst[pos:], sp.marker)
		if i < prefix {
			return nil, dst, 0, false // not where it must be: encode as usual
		}
		m := pos + i
		bufs = append(bufs, dst[pos:m-prefix])
		start := len(s.lens)
		if prefix == 1 {
			s.lens = binary.AppendUvarint(s.lens, uint64(len(sp.records))+1)
		} else {
			s.lens = binary.BigEndian.AppendUint32(s.lens, uint32(len(sp.records)))
		}
		bufs = append(bufs, s.lens[start:], sp.records)
		total += m - prefix - pos + len(s.lens) - start + len(sp.records)
		pos = m + len(sp.marker)
	}
	bufs = append(bufs, dst[pos:])
	total += len(dst) - pos
	binary.BigEndian.PutUint32(dst[0:4], uint32(total-4))
	return bufs, dst, total, true
}

package storage

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"

	"github.com/tiercel/tiercel/internal/recordbatch"
)

// producerBatches is how many recent batches per producer are remembered
// for duplicate detection: Kafka's limit of in-flight requests per producer.
const producerBatches = 5

type batchMeta struct {
	firstSeq, lastSeq       int32
	firstOffset, lastOffset int64
}

type producerEntry struct {
	epoch   int16
	batches []batchMeta // oldest first, at most producerBatches
}

// producerState is the idempotent-producer state of one log (Kafka's
// ProducerStateManager without transactions). Guarded by the Log's mutex.
type producerState struct {
	producers map[int64]*producerEntry
}

func newProducerState() *producerState { return &producerState{producers: map[int64]*producerEntry{}} }

// check decides what to do with an idempotent batch before it is written:
// a duplicate of a remembered batch returns it; otherwise the sequence and
// epoch rules of Kafka apply.
func (ps *producerState) check(h recordbatch.Header) (dup *batchMeta, err error) {
	e := ps.producers[h.ProducerID]
	if e == nil {
		// An unknown producer (new, or its state expired) may start anywhere.
		return nil, nil
	}
	if h.ProducerEpoch < e.epoch {
		return nil, fmt.Errorf("%w: producer %d epoch %d is older than %d", ErrInvalidProducerEpoch, h.ProducerID, h.ProducerEpoch, e.epoch)
	}
	if h.ProducerEpoch > e.epoch {
		if h.BaseSequence != 0 {
			return nil, fmt.Errorf("%w: producer %d new epoch %d must start at sequence 0, not %d", ErrOutOfOrderSequence, h.ProducerID, h.ProducerEpoch, h.BaseSequence)
		}
		return nil, nil
	}
	for i := range e.batches {
		b := &e.batches[i]
		if b.firstSeq == h.BaseSequence && b.lastSeq == h.LastSequence() {
			return b, nil
		}
	}
	if len(e.batches) > 0 {
		last := e.batches[len(e.batches)-1].lastSeq
		if h.BaseSequence != nextSeq(last) {
			return nil, fmt.Errorf("%w: producer %d epoch %d sent sequence %d, expected %d", ErrOutOfOrderSequence, h.ProducerID, h.ProducerEpoch, h.BaseSequence, nextSeq(last))
		}
	}
	return nil, nil
}

func nextSeq(s int32) int32 {
	if s == math.MaxInt32 {
		return 0
	}
	return s + 1
}

// update records a batch that was written (or replayed in recovery).
func (ps *producerState) update(h recordbatch.Header) {
	if !h.Idempotent() {
		return
	}
	e := ps.producers[h.ProducerID]
	if e == nil || h.ProducerEpoch > e.epoch {
		e = &producerEntry{epoch: h.ProducerEpoch}
		ps.producers[h.ProducerID] = e
	}
	if len(e.batches) == producerBatches {
		copy(e.batches, e.batches[1:])
		e.batches = e.batches[:producerBatches-1]
	}
	e.batches = append(e.batches, batchMeta{firstSeq: h.BaseSequence, lastSeq: h.LastSequence(), firstOffset: h.BaseOffset, lastOffset: h.LastOffset()})
}

// clone copies the state.
func (ps *producerState) clone() *producerState {
	c := newProducerState()
	for pid, e := range ps.producers {
		c.producers[pid] = &producerEntry{epoch: e.epoch, batches: append([]batchMeta(nil), e.batches...)}
	}
	return c
}

// truncate forgets batches at or above offset (a truncated log tail).
func (ps *producerState) truncate(offset int64) {
	for pid, e := range ps.producers {
		kept := e.batches[:0]
		for _, b := range e.batches {
			if b.lastOffset < offset {
				kept = append(kept, b)
			}
		}
		e.batches = kept
		if len(kept) == 0 {
			delete(ps.producers, pid)
		}
	}
}

// Snapshot format (a Tiercel format; Kafka's differs): magic "TPS1",
// count uint32, then per producer: id int64, epoch int16, n uint8, and n
// times firstSeq int32, lastSeq int32, firstOffset int64, lastOffset int64;
// finally a CRC-32C of everything before it. Big endian.
var snapshotMagic = []byte("TPS1")

func (ps *producerState) marshal() []byte {
	b := append([]byte(nil), snapshotMagic...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(ps.producers)))
	for pid, e := range ps.producers {
		b = binary.BigEndian.AppendUint64(b, uint64(pid))
		b = binary.BigEndian.AppendUint16(b, uint16(e.epoch))
		b = append(b, byte(len(e.batches)))
		for _, m := range e.batches {
			b = binary.BigEndian.AppendUint32(b, uint32(m.firstSeq))
			b = binary.BigEndian.AppendUint32(b, uint32(m.lastSeq))
			b = binary.BigEndian.AppendUint64(b, uint64(m.firstOffset))
			b = binary.BigEndian.AppendUint64(b, uint64(m.lastOffset))
		}
	}
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func unmarshalProducerState(b []byte) (*producerState, error) {
	bad := func(what string) error { return fmt.Errorf("%w: producer snapshot: %s", ErrCorruptLog, what) }
	if len(b) < 12 || string(b[:4]) != string(snapshotMagic) {
		return nil, bad("bad header")
	}
	body := b[:len(b)-4]
	if crc32.Checksum(body, castagnoli) != binary.BigEndian.Uint32(b[len(b)-4:]) {
		return nil, bad("checksum mismatch")
	}
	n := binary.BigEndian.Uint32(body[4:])
	r := body[8:]
	ps := newProducerState()
	for i := uint32(0); i < n; i++ {
		if len(r) < 11 {
			return nil, bad("cut short")
		}
		pid := int64(binary.BigEndian.Uint64(r))
		e := &producerEntry{epoch: int16(binary.BigEndian.Uint16(r[8:]))}
		cnt := int(r[10])
		r = r[11:]
		if cnt > producerBatches || len(r) < cnt*24 {
			return nil, bad("cut short")
		}
		for j := 0; j < cnt; j++ {
			e.batches = append(e.batches, batchMeta{
				firstSeq: int32(binary.BigEndian.Uint32(r)), lastSeq: int32(binary.BigEndian.Uint32(r[4:])),
				firstOffset: int64(binary.BigEndian.Uint64(r[8:])), lastOffset: int64(binary.BigEndian.Uint64(r[16:])),
			})
			r = r[24:]
		}
		ps.producers[pid] = e
	}
	return ps, nil
}

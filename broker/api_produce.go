package broker

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tiercel/tiercel/broker/storage"
	"github.com/tiercel/tiercel/internal/recordbatch"
)

// produceWait is a partition whose append must be durable before the response.
type produceWait struct {
	log  *storage.Log
	end  int64
	resp *kmsg.ProduceResponseTopicPartition
	repl *leaderRepl // a replicated partition: wait for the ISR
}

// handleProduce validates and appends every partition's batches in request
// order, then (acks=all) waits for durability off the reader goroutine.
func (b *Broker) handleProduce(ctx context.Context, req *kmsg.ProduceRequest) reply {
	resp := kmsg.NewPtrProduceResponse()
	if req.TransactionID != nil {
		for _, rt := range req.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return now(resp)
	}
	var waits []produceWait
	var woken []storage.TopicPartition // replicated partitions appended to
	deep := b.cfg.Bool("log.validate.records.deep")
	// A handoff waits for appends in flight (produceGate) before it rolls
	// and uploads; once it has begun (movingOut) nothing more is appended.
	b.produceGate.RLock()
	defer b.produceGate.RUnlock()
	var batches []recordbatch.Batch
	for _, rt := range req.Topics {
		st := kmsg.NewProduceResponseTopic()
		st.Topic = rt.Topic
		t := b.getTopic(rt.Topic)
		for _, rp := range rt.Partitions {
			sp := kmsg.NewProduceResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.BaseOffset = -1
			sp.LogAppendTime = -1
			sp.LogStartOffset = -1
			if t == nil || rp.Partition < 0 || rp.Partition >= t.meta.Partitions {
				sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			if k := b.knob().ProduceLookedUp; k != nil {
				k(rt.Topic, rp.Partition)
			}
			if t.logs[rp.Partition] == nil || b.movingOut.Load() || b.isMoving(rt.Topic, rp.Partition) || !b.leading() {
				sp.ErrorCode = kerr.NotLeaderForPartition.Code
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			if code := internalTopicError(rt.Topic); code != 0 {
				// Kafka lets only the coordinator write its internal topics.
				sp.ErrorCode = code
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			l := t.logs[rp.Partition]
			overrides := t.meta.Configs
			var err error
			batches, err = recordbatch.ValidateInto(batches[:0], rp.Records, recordbatch.ValidateOptions{
				MaxBatchBytes: int(b.cfg.TopicInt64(overrides, "max.message.bytes")), Deep: deep,
			})
			if err == nil {
				err = checkTransactional(batches)
			}
			if err != nil {
				sp.ErrorCode = errorCode(err)
				sp.ErrorMessage = errMessage(err)
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			var lr *leaderRepl
			if t.meta.replicated() {
				if lr = b.leaderState(rt.Topic, rp.Partition); lr == nil {
					sp.ErrorCode = kerr.NotLeaderForPartition.Code
					st.Partitions = append(st.Partitions, sp)
					continue
				}
				if req.Acks == -1 {
					if sp.ErrorCode = lr.checkProduce(); sp.ErrorCode != 0 {
						st.Partitions = append(st.Partitions, sp)
						continue
					}
				}
			}
			// The request's buffer is this partition's alone from here on.
			opts := storage.AppendOptions{LeaderEpoch: t.meta.Leaders[rp.Partition].Epoch, Retain: true}
			if b.cfg.TopicValue(overrides, "message.timestamp.type") == "LogAppendTime" {
				opts.LogAppendTime = nowMs()
				sp.LogAppendTime = opts.LogAppendTime
			}
			res, err := l.Append(rp.Records, opts)
			if err != nil {
				sp.ErrorCode = errorCode(err)
				sp.ErrorMessage = errMessage(err)
				if errors.Is(err, storage.ErrStorage) {
					b.logger.Error("append failed", "topic", rt.Topic, "partition", rp.Partition, "err", err)
				}
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			sp.BaseOffset = res.BaseOffset
			sp.LogStartOffset = min(res.LogStartOffset, b.logStart(t, rp.Partition, l)) // tiered offsets count
			st.Partitions = append(st.Partitions, sp)
			if lr != nil {
				lr.appended()
				woken = append(woken, storage.TopicPartition{Topic: rt.Topic, Partition: rp.Partition})
			}
			if req.Acks == -1 {
				waits = append(waits, produceWait{log: l, end: res.LastOffset + 1, resp: &st.Partitions[len(st.Partitions)-1], repl: lr})
			}
		}
		resp.Topics = append(resp.Topics, st)
	}
	// Followers long-polling are woken once every partition of the
	// request is appended: woken after the first, a follower would fetch
	// that one alone and the others a whole fetch-and-fsync round later.
	for _, tp := range woken {
		b.waiters.notify(tp)
	}
	if req.Acks == 0 {
		return reply{none: true}
	}
	if len(waits) == 0 {
		b.refuseIfNotLeading(resp)
		return now(resp)
	}
	// Pointers into resp.Topics[i].Partitions stay valid: nothing appends
	// to those slices after this point.
	return reply{later: func() kmsg.Response {
		wctx, cancel := context.WithTimeout(ctx, timeoutMs(req.TimeoutMillis))
		defer cancel()
		for _, w := range waits {
			var err error
			switch {
			case w.repl != nil:
				err = b.waitReplicated(wctx, w.log, w.end)
				if err == nil && w.repl.underMinISR() {
					// Kafka's answer when the ISR shrank below
					// min.insync.replicas while the batch waited.
					w.resp.ErrorCode = kerr.NotEnoughReplicasAfterAppend.Code
					continue
				}
				if errors.Is(err, storage.ErrClosed) || errors.Is(err, context.Canceled) && ctx.Err() == nil {
					w.resp.ErrorCode, w.resp.BaseOffset = kerr.NotLeaderForPartition.Code, -1
					continue
				}
			default:
				err = w.log.WaitDurable(wctx, w.end)
			}
			if err != nil {
				if errors.Is(err, context.DeadlineExceeded) {
					w.resp.ErrorCode = kerr.RequestTimedOut.Code
				} else {
					w.resp.ErrorCode = errorCode(err)
					w.resp.ErrorMessage = errMessage(err)
				}
			}
		}
		b.refuseIfNotLeading(resp)
		return resp
	}}
}

// checkTransactional rejects transactional batches: transactions are not
// implemented yet, and accepting them would break read_committed readers.
func checkTransactional(batches []recordbatch.Batch) error {
	for _, bt := range batches {
		if bt.Transactional() {
			return errTransactionsUnsupported
		}
	}
	return nil
}

// refuseIfNotLeading turns the acknowledgements of resp into
// NOT_LEADER_OR_FOLLOWER if the broker's lease lapsed while the records
// were appended: the lease is checked immediately before acknowledging, so
// a broker another one may have replaced never confirms a write. The
// client retries at the current leader (an idempotent producer without
// duplicates).
func (b *Broker) refuseIfNotLeading(resp *kmsg.ProduceResponse) {
	if b.leading() {
		return
	}
	for i := range resp.Topics {
		for j := range resp.Topics[i].Partitions {
			if sp := &resp.Topics[i].Partitions[j]; sp.ErrorCode == 0 {
				sp.ErrorCode, sp.BaseOffset = kerr.NotLeaderForPartition.Code, -1
			}
		}
	}
}

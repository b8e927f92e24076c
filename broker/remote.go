package broker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/tiercel/tiercel/internal/recordbatch"
	"github.com/tiercel/tiercel/objstore"
	"github.com/tiercel/tiercel/tiering"
)

// remoteJob is one partition of a fetch read from the bucket.
type remoteJob struct {
	result    int // index into the fetch's results
	topicID   string
	partition int32
	seg       tiering.RemoteSegment
	offset    int64
	maxBytes  int
	followed  bool // a partition followed here: its manifest is a copy (ManifestViews)
}

// readRemote reads every job in parallel through the remote read pool and
// waits at most remote.fetch.max.wait.ms: a partition not read by then
// comes back empty without an error (its chunks keep arriving into the
// cache for the client's next fetch); a failed read is a retriable
// KAFKA_STORAGE_ERROR.
func (b *Broker) readRemote(ctx context.Context, jobs []remoteJob, results []partResult) {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(b.cfg.Int64("remote.fetch.max.wait.ms"))*time.Millisecond)
	defer cancel()
	var wg sync.WaitGroup
	for _, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &results[j.result]
			select {
			case b.remoteSlots <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-b.remoteSlots }()
			start := time.Now()
			recs, err := b.remote.Read(ctx, j.seg, j.offset, j.maxBytes)
			switch {
			case err == nil:
				r.records = recs
				b.metrics.RemoteRead(len(recs), time.Since(start))
				if tiering.NextOffset(recs) == j.seg.NextOffset {
					// The consumer crosses into the next segments next: have
					// their footers, indexes and first chunks on the way.
					b.prefetchAfter(j, j.seg.NextOffset)
				}
			case ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded):
				// Slow store: answer without this partition's records.
			default:
				r.code = kerr.KafkaStorageError.Code
				b.logger.Warn("remote read", "segment", j.seg.Key, "offset", j.offset, "err", err)
				if j.followed && errors.Is(err, objstore.ErrNotFound) {
					// Deleted by retention since this copy of the manifest
					// was read: the next fetch reads it again.
					b.views.Forget(j.topicID, j.partition)
				}
			}
		}()
	}
	wg.Wait()
}

// segmentsAhead is how many segments past the one a consumer finished are
// prefetched.
const segmentsAhead = 2

func (b *Broker) prefetchAfter(j remoteJob, offset int64) {
	find := b.tierer.Find
	if j.followed {
		find = b.views.Cached
	}
	for range segmentsAhead {
		next, ok := find(j.topicID, j.partition, offset)
		if !ok {
			return
		}
		b.remote.Prefetch(next)
		offset = next.NextOffset
	}
}

// fitBudget drops remote records that would take the response past
// maxTotal (the first partition with records is always kept, as Kafka
// does), then returns the response's size and whether any partition failed.
func fitBudget(results []partResult, remote []remoteJob, maxTotal int32) (int, bool) {
	isRemote := make(map[int]bool, len(remote))
	for _, j := range remote {
		isRemote[j.result] = true
	}
	total, hasError := 0, false
	for i := range results {
		r := &results[i]
		if r.code != 0 {
			hasError = true
		}
		if isRemote[i] && total > 0 && total+len(r.records) > int(maxTotal) {
			r.records = nil
		}
		total += len(r.records)
	}
	return total, hasError
}

// remoteOffsetForTimestamp finds the first record at or after ts in the
// tiered segments below the local log (ListOffsets by timestamp), scanning
// batch headers and decoding only the batch that holds it.
func (b *Broker) remoteOffsetForTimestamp(ctx context.Context, t *topic, p int32, logStart, localStart, ts int64) (offset, timestamp int64, epoch int32, found bool, err error) {
	for _, seg := range b.tierer.Segments(t.meta.ID, p) {
		if seg.BaseOffset >= localStart {
			break
		}
		if seg.MaxTimestamp < ts {
			continue
		}
		for off := max(seg.BaseOffset, logStart); off < seg.NextOffset; {
			data, err := b.remote.Read(ctx, seg, off, 1<<20)
			if err != nil {
				return 0, 0, 0, false, err
			}
			batches, err := recordbatch.Validate(data, recordbatch.ValidateOptions{})
			if err != nil || len(batches) == 0 {
				return 0, 0, 0, false, fmt.Errorf("%s at %d: %w", seg.Key, off, tiering.ErrCorruptObject)
			}
			for _, bt := range batches {
				if bt.Header.MaxTimestamp < ts || bt.Header.LastOffset() < off {
					continue
				}
				recs, err := recordbatch.Records(bt)
				if err != nil {
					return 0, 0, 0, false, err
				}
				for _, r := range recs {
					if r.Timestamp >= ts && r.Offset >= logStart {
						return r.Offset, r.Timestamp, bt.Header.PartitionLeaderEpoch, true, nil
					}
				}
			}
			off = batches[len(batches)-1].Header.LastOffset() + 1
		}
	}
	return -1, -1, -1, false, nil
}

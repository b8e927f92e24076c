package storage

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"time"
)

// startSync runs the group-commit loop unless it is already running: every
// append written before an fsync begins is durable when it ends, so
// concurrent producers share fsyncs. An idle log has no goroutine. l.mu held.
func (l *Log) startSync() {
	if l.syncing || l.syncErr != nil {
		return
	}
	l.syncing = true
	go l.syncLoop()
}

func (l *Log) syncLoop() {
	for {
		l.mu.Lock()
		if l.synced >= l.end || l.closed {
			// A checkpoint may have synced everything since a waiter
			// started this loop: wake it, or it waits for good.
			l.syncing = false
			l.wakeSyncWaiters()
			l.mu.Unlock()
			return
		}
		seg := l.active()
		target, f, gen, size := l.end, seg.file, l.truncations, seg.size
		l.mu.Unlock()

		began := time.Now()
		err := f.Sync()
		if err == nil && l.m.opts.OnFlush != nil {
			l.m.opts.OnFlush(time.Since(began))
		}

		l.mu.Lock()
		done := l.syncDone
		l.syncDone = make(chan struct{})
		if err != nil && (l.closed || gen != l.truncations && errors.Is(err, fs.ErrClosed)) {
			// A truncation that removed the segment being synced closed
			// its file (it fsynced what remains itself), or the log was
			// closed: look again rather than fail the partition.
			l.mu.Unlock()
			close(done)
			continue
		}
		if err != nil {
			l.syncErr = err
			l.syncing = false
			l.mu.Unlock()
			close(done)
			l.m.logger.Error("fsync failed; the partition stops accepting writes until restart", "partition", l.tp, "err", err)
			return
		}
		if gen != l.truncations {
			// The log was truncated during the fsync: target may name
			// offsets that now hold other, unsynced bytes. Sync again.
			target = l.synced
		}
		advanced := target > l.synced
		l.synced = max(l.synced, target)
		l.unflushed = 0
		l.lastFlush = l.m.nowMs()
		hw := l.hw()
		policy := l.cfg.FlushPolicy
		dropFrom, dropTo := l.dropBehind(seg, size, gen)
		l.mu.Unlock()
		close(done)
		if dropTo > dropFrom {
			if err := f.DropCache(dropFrom, dropTo-dropFrom); err != nil {
				l.m.logger.Debug("drop behind", "partition", l.tp, "err", err)
			}
		}
		if advanced && policy == FlushOnAck {
			l.m.advance(l.tp, hw)
		}
	}
}

// dropBehind is the range of seg to drop from the page cache now that its
// first size bytes are synced, if any (l.m.opts.DropBehindBytes): pages
// before size-DropBehindBytes, rounded down to a page. gen is the
// truncation count when size was taken; a truncation since may have
// rewritten those bytes, so nothing is dropped then. l.mu held.
func (l *Log) dropBehind(seg *segment, size, gen int64) (from, to int64) {
	behind := l.m.opts.DropBehindBytes
	if behind <= 0 || gen != l.truncations {
		return 0, 0
	}
	to = (size - behind) &^ (pageBytes - 1)
	if to-seg.dropped < dropStepBytes {
		return 0, 0
	}
	// The kernel drops only whole folios inside the range, and a large
	// folio can straddle the previous call's end: go back over it.
	from, seg.dropped = max(0, seg.dropped-dropStepBytes), to
	return from, to
}

const (
	// pageBytes is the page size the drop-behind rounds to: a partial
	// page dropped would only be read back for the next append into it.
	pageBytes = 4096
	// dropStepBytes is the least the drop-behind drops at once: each
	// call can make the kernel drain every CPU's page lists (an IPI to
	// each), so it is made once per megabyte, not once per fsync.
	dropStepBytes = 1 << 20
)

// WaitDurable returns once every offset below endOffset is durable by the
// flush policy (FlushOnAck: fsynced; FlushInterval: written).
func (l *Log) WaitDurable(ctx context.Context, endOffset int64) error {
	for {
		l.mu.Lock()
		if l.syncErr != nil {
			err := l.syncErr
			l.mu.Unlock()
			return fmt.Errorf("%w: %s-%d: fsync: %v", ErrStorage, l.tp.Topic, l.tp.Partition, err)
		}
		durable := l.synced
		if l.cfg.FlushPolicy == FlushInterval {
			durable = l.end
		}
		if durable >= endOffset {
			l.mu.Unlock()
			return nil
		}
		if l.closed {
			l.mu.Unlock()
			return ErrClosed
		}
		ch := l.syncDone
		l.startSync()
		l.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Flush fsyncs everything written so far.
func (l *Log) Flush() error {
	l.mu.Lock()
	end := l.end
	l.mu.Unlock()
	return l.WaitDurableAll(end)
}

// WaitDurableAll is WaitDurable for FlushOnAck semantics whatever the
// policy: it returns once offsets below end are fsynced.
func (l *Log) WaitDurableAll(end int64) error {
	for {
		l.mu.Lock()
		if l.syncErr != nil {
			err := l.syncErr
			l.mu.Unlock()
			return fmt.Errorf("%w: fsync: %v", ErrStorage, err)
		}
		if l.synced >= end || l.closed {
			l.mu.Unlock()
			return nil
		}
		ch := l.syncDone
		l.startSync()
		l.mu.Unlock()
		<-ch
	}
}

// wakeSyncWaiters wakes everyone waiting for the next fsync to end, so they
// look at the log again; l.mu held.
func (l *Log) wakeSyncWaiters() {
	close(l.syncDone)
	l.syncDone = make(chan struct{})
}

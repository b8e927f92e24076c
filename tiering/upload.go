package tiering

import (
	"context"
	"fmt"
	"io"

	"github.com/tiercel/tiercel/objstore"
)

// Segment is a closed local segment ready to upload.
type Segment struct {
	Info  LocalSegment
	Log   io.ReaderAt // the .log bytes, Info.Size of them
	Parts map[string][]byte
}

// Upload writes one segment object under a fresh key, then adds it to the
// partition's manifest as a writer of leader epoch epoch. It returns the
// manifest written and whether it gained the segment (false: it was already
// there, and the new object, which nothing names, is deleted at once). A crash between the two
// steps leaves an object no manifest names, which GC removes; the next
// plan uploads the segment again.
func Upload(ctx context.Context, b objstore.Bucket, store ManifestStore, topicID string, partition, epoch int32, s Segment, nowMs int64) (Manifest, bool, error) {
	body, size, sum, err := SegmentObject(s.Log, s.Info.Size, s.Parts)
	if err != nil {
		return Manifest{}, false, err
	}
	key := SegmentKey(topicID, partition, s.Info.BaseOffset, epoch, nowMs)
	if _, err := b.Put(ctx, key, body, objstore.PutOptions{Size: size, CRC32C: &sum}); err != nil {
		return Manifest{}, false, fmt.Errorf("tiering: upload of %s/%d [%d, %d): %w", topicID, partition, s.Info.BaseOffset, s.Info.NextOffset, err)
	}
	var added bool
	m, err := store.Update(ctx, topicID, partition, epoch, func(m *Manifest) error {
		var err error
		added, err = m.Add(RemoteSegment{
			Key: key, BaseOffset: s.Info.BaseOffset, NextOffset: s.Info.NextOffset, Size: size,
			MaxTimestamp: s.Info.MaxTimestamp, LeaderEpoch: epoch, UploadedMs: nowMs,
		})
		return err
	})
	if err != nil {
		return m, false, err
	}
	if !m.names(key) {
		// The segment was already there under another key: nothing names
		// this object (garbage collection removes it if the delete fails).
		// When the manifest names it, our write landed on an attempt whose
		// answer was lost and Add saw its own effect: keep it.
		_ = b.Delete(ctx, key)
	}
	return m, added, nil
}

// ReadFooter fetches a segment object's footer with one ranged GET of its
// tail (two for an unusually large footer).
func ReadFooter(ctx context.Context, b objstore.Bucket, key string, size int64) (Footer, error) {
	f, _, _, err := readTail(ctx, b, key, size, FooterProbe)
	return f, err
}

// readTail GETs the last probe bytes of a segment object (more if the
// footer needs them) and decodes the footer; it returns the bytes read and
// where they start, so parts that lie in them need no request of their own.
func readTail(ctx context.Context, b objstore.Bucket, key string, size, probe int64) (Footer, []byte, int64, error) {
	probe = min(probe, size)
	tail, err := readRange(ctx, b, key, size-probe, probe)
	if err != nil {
		return Footer{}, nil, 0, err
	}
	n, err := FooterLength(tail)
	if err != nil {
		return Footer{}, nil, 0, fmt.Errorf("%s: %w", key, err)
	}
	if int64(n) > probe {
		if int64(n) > size {
			return Footer{}, nil, 0, fmt.Errorf("%s: %w: footer of %d bytes in an object of %d", key, ErrCorruptObject, n, size)
		}
		probe = int64(n)
		if tail, err = readRange(ctx, b, key, size-probe, probe); err != nil {
			return Footer{}, nil, 0, err
		}
	}
	f, err := DecodeFooter(tail, size)
	if err != nil {
		return Footer{}, nil, 0, fmt.Errorf("%s: %w", key, err)
	}
	return f, tail, size - probe, nil
}

// ReadPart fetches one whole part and checks its CRC.
func ReadPart(ctx context.Context, b objstore.Bucket, key string, f Footer, name string) ([]byte, error) {
	p, ok := f.Part(name)
	if !ok {
		return nil, fmt.Errorf("%s: %w: no part %q", key, ErrCorruptObject, name)
	}
	data, err := readRange(ctx, b, key, int64(p.Offset), int64(p.Length))
	if err != nil {
		return nil, err
	}
	if err := CheckPart(p, data); err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	return data, nil
}

func readRange(ctx context.Context, b objstore.Bucket, key string, off, n int64) ([]byte, error) {
	if n == 0 {
		return []byte{}, nil
	}
	rc, _, err := b.Get(ctx, key, off, n)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	buf := make([]byte, n)
	if _, err := io.ReadFull(rc, buf); err != nil {
		return nil, objstore.Errorf(objstore.ErrRetriable, "get", b.Name(), key, err)
	}
	return buf, nil
}

// Package objstoretest is the acceptance suite every objstore backend
// passes, run against mem, fs, and the real servers of the cloud backends.
package objstoretest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/tiercel/tiercel/objstore"
	"github.com/tiercel/tiercel/objstore/faulty"
)

// Capabilities name where a backend (or its emulator) deviates, so a check
// is relaxed for that backend by name rather than weakened for all.
type Capabilities struct {
	// LargeObjectBytes is the size of the large round trip (default 100 MiB).
	LargeObjectBytes int64
}

// Run runs every check against fresh buckets from newBucket.
func Run(t *testing.T, newBucket func(t *testing.T) objstore.Bucket, caps Capabilities) {
	if caps.LargeObjectBytes == 0 {
		caps.LargeObjectBytes = 100 << 20
	}
	t.Run("RoundTrip", func(t *testing.T) { roundTrip(t, newBucket(t), caps) })
	t.Run("Ranges", func(t *testing.T) { ranges(t, newBucket(t)) })
	t.Run("NotFound", func(t *testing.T) { notFound(t, newBucket(t)) })
	t.Run("List", func(t *testing.T) { list(t, newBucket(t)) })
	t.Run("CreateOnlyRace", func(t *testing.T) { createOnlyRace(t, newBucket(t)) })
	t.Run("CASRace", func(t *testing.T) { casRace(t, newBucket(t)) })
	t.Run("LostResponse", func(t *testing.T) { lostResponse(t, newBucket(t)) })
	t.Run("Cancel", func(t *testing.T) { cancel(t, newBucket(t)) })
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

func put(t *testing.T, b objstore.Bucket, key string, data []byte, opts objstore.PutOptions) objstore.Attrs {
	t.Helper()
	if opts.Size == 0 {
		opts.Size = int64(len(data))
	}
	a, err := b.Put(ctx(t), key, bytes.NewReader(data), opts)
	if err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
	return a
}

func get(t *testing.T, b objstore.Bucket, key string, off, n int64) []byte {
	t.Helper()
	rc, _, err := b.Get(ctx(t), key, off, n)
	if err != nil {
		t.Fatalf("get %s [%d,+%d): %v", key, off, n, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return data
}

// unsized hides a reader's length, as a streamed upload of unknown size.
type unsized struct{ io.Reader }

func roundTrip(t *testing.T, b objstore.Bucket, caps Capabilities) {
	for _, size := range []int64{0, 1, 1000, caps.LargeObjectBytes} {
		data := make([]byte, size)
		_, _ = rand.Read(data)
		key := fmt.Sprintf("rt/obj-%d", size)
		var attrs objstore.Attrs
		var err error
		if size > 1<<20 {
			// Unknown length: the backend must stream (multipart where it has it).
			attrs, err = b.Put(ctx(t), key, unsized{bytes.NewReader(data)}, objstore.PutOptions{Size: -1})
		} else {
			attrs, err = b.Put(ctx(t), key, bytes.NewReader(data), objstore.PutOptions{Size: size})
		}
		if err != nil {
			t.Fatalf("put %d bytes: %v", size, err)
		}
		if attrs.Size != size || attrs.Version == "" {
			t.Fatalf("put %d bytes returned %+v", size, attrs)
		}
		got, gattrs, err := objstore.ReadAll(ctx(t), b, key)
		if err != nil || !bytes.Equal(got, data) || gattrs.Version != attrs.Version || gattrs.Size != size {
			t.Fatalf("round trip of %d bytes: %d bytes back, attrs %+v vs %+v, %v", size, len(got), gattrs, attrs, err)
		}
		h, err := b.Head(ctx(t), key)
		if err != nil || h != attrs {
			t.Fatalf("head %+v vs put %+v: %v", h, attrs, err)
		}
	}
}

func ranges(t *testing.T, b objstore.Bucket) {
	data := []byte("0123456789abcdefghij")
	put(t, b, "r", data, objstore.PutOptions{})
	for _, c := range []struct {
		off, n int64
		want   string
	}{{0, -1, string(data)}, {0, 5, "01234"}, {5, 5, "56789"}, {15, -1, "fghij"}, {15, 100, "fghij"}, {19, 1, "j"}, {0, 20, string(data)}, {3, 0, ""}} {
		if got := string(get(t, b, "r", c.off, c.n)); got != c.want {
			t.Errorf("range [%d,+%d): %q, want %q", c.off, c.n, got, c.want)
		}
	}
}

func notFound(t *testing.T, b objstore.Bucket) {
	if _, _, err := b.Get(ctx(t), "missing", 0, -1); !errors.Is(err, objstore.ErrNotFound) {
		t.Errorf("get missing: %v", err)
	}
	if _, err := b.Head(ctx(t), "missing"); !errors.Is(err, objstore.ErrNotFound) {
		t.Errorf("head missing: %v", err)
	}
	if err := b.Delete(ctx(t), "missing"); err != nil {
		t.Errorf("deleting a missing key is not an error: %v", err)
	}
	a := put(t, b, "x", []byte("1"), objstore.PutOptions{})
	if _, err := b.Put(ctx(t), "x", bytes.NewReader([]byte("2")), objstore.PutOptions{IfNotExists: true, Size: 1}); !errors.Is(err, objstore.ErrPrecondition) {
		t.Errorf("create-only over an existing key: %v", err)
	}
	if _, err := b.Put(ctx(t), "x", bytes.NewReader([]byte("2")), objstore.PutOptions{IfVersion: a.Version + "stale", Size: 1}); !errors.Is(err, objstore.ErrPrecondition) {
		t.Errorf("CAS with a stale version: %v", err)
	}
	if _, err := b.Put(ctx(t), "nokey", bytes.NewReader([]byte("2")), objstore.PutOptions{IfVersion: a.Version, Size: 1}); !errors.Is(err, objstore.ErrPrecondition) {
		t.Errorf("CAS on a missing key: %v", err)
	}
	if err := b.Delete(ctx(t), "x"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Head(ctx(t), "x"); !errors.Is(err, objstore.ErrNotFound) {
		t.Errorf("head after delete: %v", err)
	}
}

func list(t *testing.T, b objstore.Bucket) {
	var want []string
	for i := 0; i < 25; i++ {
		k := fmt.Sprintf("l/a/%03d", i)
		put(t, b, k, []byte{byte(i)}, objstore.PutOptions{})
		want = append(want, k)
	}
	put(t, b, "l/b/0", []byte("x"), objstore.PutOptions{})
	put(t, b, "l/a-sibling", []byte("x"), objstore.PutOptions{})
	collect := func(prefix string, opts objstore.ListOptions) []string {
		var got []string
		if err := b.List(ctx(t), prefix, opts, func(o objstore.ObjectInfo) error { got = append(got, o.Key); return nil }); err != nil {
			t.Fatalf("list %q: %v", prefix, err)
		}
		return got
	}
	if got := collect("l/a/", objstore.ListOptions{PageSize: 7}); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("paged list: %v", got)
	}
	if got := collect("l/a/", objstore.ListOptions{StartAfter: "l/a/019"}); fmt.Sprint(got) != fmt.Sprint(want[20:]) {
		t.Errorf("start-after: %v", got)
	}
	if got := collect("l/", objstore.ListOptions{}); len(got) != 27 || got[0] != "l/a-sibling" || got[len(got)-1] != "l/b/0" {
		t.Errorf("lexical order across prefixes: %v", got)
	}
	if got := collect("nothing/", objstore.ListOptions{}); len(got) != 0 {
		t.Errorf("empty prefix: %v", got)
	}
	stop := errors.New("stop")
	n := 0
	if err := b.List(ctx(t), "l/", objstore.ListOptions{}, func(objstore.ObjectInfo) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
		t.Errorf("a callback error ends the listing: %v after %d", err, n)
	}
}

func createOnlyRace(t *testing.T, b objstore.Bucket) {
	const n = 8
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins, losses := 0, 0
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, err := b.Put(ctx(t), "race/create", bytes.NewReader([]byte(strconv.Itoa(i))), objstore.PutOptions{IfNotExists: true, Size: int64(len(strconv.Itoa(i)))})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case errors.Is(err, objstore.ErrPrecondition):
				losses++
			default:
				t.Errorf("writer %d: %v", i, err)
			}
		}(i)
	}
	wg.Wait()
	if wins != 1 || losses != n-1 {
		t.Fatalf("%d winners and %d losers of a create-only race of %d", wins, losses, n)
	}
}

func casRace(t *testing.T, b objstore.Bucket) {
	put(t, b, "race/counter", []byte("0"), objstore.PutOptions{})
	const writers, each = 4, 5
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for done := 0; done < each; {
				data, attrs, err := objstore.ReadAll(ctx(t), b, "race/counter")
				if err != nil {
					t.Error(err)
					return
				}
				v, _ := strconv.Atoi(string(data))
				next := []byte(strconv.Itoa(v + 1))
				_, err = b.Put(ctx(t), "race/counter", bytes.NewReader(next), objstore.PutOptions{IfVersion: attrs.Version, Size: int64(len(next))})
				switch {
				case err == nil:
					done++
				case errors.Is(err, objstore.ErrPrecondition):
				default:
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	data, _, _ := objstore.ReadAll(ctx(t), b, "race/counter")
	if string(data) != strconv.Itoa(writers*each) {
		t.Fatalf("counter %s after %d compare-and-swap increments: an update was lost", data, writers*each)
	}
}

// lostResponse makes every first conditional write succeed with its
// response lost; the retrying client must still apply it exactly once.
func lostResponse(t *testing.T, inner objstore.Bucket) {
	f := faulty.Wrap(inner, 1, faulty.Faults{LostResponse: 0.5})
	b := objstore.WithRetries(f, objstore.RetryPolicy{Attempts: 20, Base: time.Millisecond, Max: 5 * time.Millisecond})
	for i := 0; i < 10; i++ {
		key := fmt.Sprintf("lost/%d", i)
		if _, err := b.Put(ctx(t), key, bytes.NewReader([]byte("mine")), objstore.PutOptions{IfNotExists: true, Size: 4}); err != nil {
			t.Fatalf("create-only with lost responses: %v", err)
		}
		if _, err := b.Put(ctx(t), key, bytes.NewReader([]byte("theirs")), objstore.PutOptions{IfNotExists: true, Size: 6}); !errors.Is(err, objstore.ErrPrecondition) {
			t.Fatalf("a second create-only must lose: %v", err)
		}
	}
	put(t, inner, "lost/counter", []byte("0"), objstore.PutOptions{})
	for i := 1; i <= 10; i++ {
		_, attrs, err := objstore.ReadAll(ctx(t), b, "lost/counter")
		if err != nil {
			t.Fatal(err)
		}
		next := []byte(strconv.Itoa(i))
		if _, err := b.Put(ctx(t), "lost/counter", bytes.NewReader(next), objstore.PutOptions{IfVersion: attrs.Version, Size: int64(len(next))}); err != nil {
			t.Fatalf("CAS %d with lost responses: %v", i, err)
		}
	}
	if data, _, _ := objstore.ReadAll(ctx(t), inner, "lost/counter"); string(data) != "10" {
		t.Fatalf("counter %s after 10 CAS writes", data)
	}
	if f.Count("lost") == 0 {
		t.Fatal("no response was lost: the check proved nothing")
	}
}

func cancel(t *testing.T, b objstore.Bucket) {
	c, stop := context.WithCancel(context.Background())
	stop()
	if _, err := b.Put(c, "cancelled", bytes.NewReader(make([]byte, 1<<20)), objstore.PutOptions{Size: 1 << 20}); err == nil {
		t.Fatal("a Put with a cancelled context succeeded")
	}
	if _, err := b.Head(ctx(t), "cancelled"); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("a cancelled Put left an object: %v", err)
	}
}

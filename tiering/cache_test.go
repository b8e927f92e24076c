package tiering_test

import (
	"bytes"
	"sync"
	"testing"
	"time"

	"github.com/tiercel/tiercel/tiering"
)

// TestChunkCacheRefetchNeverServesAPartialChunk: a chunk stored again
// while readers read it (two remote reads of the same chunk racing) is
// seen whole, old or new, never empty or cut short. It once was: Put
// rewrote the file in place, truncating it first.
func TestChunkCacheRefetchNeverServesAPartialChunk(t *testing.T) {
	c, err := tiering.NewChunkCache(t.TempDir(), 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	const size = 1 << 20
	versions := [][]byte{bytes.Repeat([]byte{'a'}, size), bytes.Repeat([]byte{'b'}, size)}
	c.Put("seg", 0, versions[0])
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			c.Put("seg", 0, versions[i%2])
		}
	}()
	var reads, bad int
	deadline := time.Now().Add(500 * time.Millisecond)
	for time.Now().Before(deadline) {
		data, ok := c.Get("seg", 0)
		if !ok {
			continue
		}
		reads++
		if len(data) != size || !bytes.Equal(data, versions[0]) && !bytes.Equal(data, versions[1]) {
			bad++
		}
	}
	close(stop)
	wg.Wait()
	if bad > 0 || reads == 0 {
		t.Fatalf("%d of %d reads returned a chunk that is not one of the versions stored", bad, reads)
	}
}

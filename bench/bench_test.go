package bench

import (
	"context"
	"testing"
	"time"

	"github.com/tiercel/tiercel/internal/brokertest"
)

func TestParseProcStat(t *testing.T) {
	cpu, rss, err := parseProcStat("1234 (tier cel) S 1 2 3 4 5 6 7 8 9 10 250 150 0 0 20 0 9 0 100 200000 2048 18446744073709551615\n")
	if err != nil || cpu != 4.0 || rss != 2048*int64(4096) {
		t.Fatalf("cpu %v rss %d err %v", cpu, rss, err)
	}
	if _, _, err := parseProcStat("garbage"); err == nil {
		t.Fatal("garbage parsed")
	}
}

func TestLimiterPaces(t *testing.T) {
	l := &limiter{start: time.Now(), perEvent: 5 * time.Millisecond}
	start := time.Now()
	for i := 0; i < 21; i++ {
		l.wait()
	}
	if d := time.Since(start); d < 95*time.Millisecond {
		t.Fatalf("21 events at 5 ms each took %v; the limiter does not pace", d)
	}
	// Events far shorter than a tick go in bursts, still at the rate.
	l = &limiter{start: time.Now(), perEvent: 10 * time.Microsecond}
	start = time.Now()
	for i := 0; i < 3001; i++ {
		l.wait()
	}
	if d := time.Since(start); d < 30*time.Millisecond-limiterTick {
		t.Fatalf("3001 events at 10 µs each took %v; the limiter does not pace", d)
	}
}

func TestDiskAppendProbe(t *testing.T) {
	v, err := DiskAppend(t.TempDir(), 64<<10, 100*time.Millisecond)
	if err != nil || v <= 0 {
		t.Fatalf("%v %v", v, err)
	}
}

// TestWorkloadsSmoke runs each workload briefly against a real broker and
// checks the counts, not the speed: speed is measured by make bench.
func TestWorkloadsSmoke(t *testing.T) {
	b := brokertest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	w := Workload{Brokers: []string{b.Addr()}, Topic: "smoke", Partitions: 3, RecordSize: 100, Records: 5000, Acks: "all"}
	if err := EnsureTopic(ctx, w); err != nil {
		t.Fatal(err)
	}
	if err := EnsureTopic(ctx, w); err != nil {
		t.Fatalf("second EnsureTopic: %v", err)
	}
	p, err := Produce(ctx, w)
	if err != nil || p.Records != 5000 || p.Bytes != 500000 || p.P99Ms <= 0 {
		t.Fatalf("produce %+v %v", p, err)
	}
	c, err := Consume(ctx, w)
	if err != nil || c.Records != 5000 || c.Bytes != 500000 {
		t.Fatalf("consume %+v %v", c, err)
	}
	e := Workload{Brokers: w.Brokers, Topic: "smoke-e2e", Partitions: 1, RecordSize: 100, Duration: time.Second, RateBytes: 100 * 500, Acks: "all"}
	if err := EnsureTopic(ctx, e); err != nil {
		t.Fatal(err)
	}
	r, err := EndToEnd(ctx, e)
	if err != nil || r.Records != 500 || r.P50Ms <= 0 {
		t.Fatalf("e2e %+v %v", r, err)
	}
}

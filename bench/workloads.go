package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Workload configures a produce, consume or end-to-end run.
type Workload struct {
	Brokers     []string
	Topic       string
	Partitions  int32
	RecordSize  int
	Records     int64         // produce/consume this many (0: use Duration)
	Duration    time.Duration // produce for this long
	Acks        string        // all, 1, 0
	Compression string
	RateBytes   float64 // bytes per second for fixed-rate runs (0: as fast as possible)
	// InFlight is how many produce requests a client pipelines to each
	// broker. kgo allows one with idempotence (the default, 0 or 1); more
	// turns idempotence off, which is how a kgo client sends what the Java
	// producer does by default (max.in.flight.requests.per.connection=5).
	InFlight int
	Progress io.Writer
}

// Result is one workload's outcome.
type Result struct {
	Name       string  `json:"name"`
	Records    int64   `json:"records"`
	Bytes      int64   `json:"bytes"`
	Seconds    float64 `json:"seconds"`
	MiBPerSec  float64 `json:"mib_per_sec"`
	RecordsSec float64 `json:"records_per_sec"`
	P50Ms      float64 `json:"p50_ms,omitempty"`
	P99Ms      float64 `json:"p99_ms,omitempty"`
	P999Ms     float64 `json:"p999_ms,omitempty"`
	MaxMs      float64 `json:"max_ms,omitempty"`
}

func (r Result) String() string {
	s := fmt.Sprintf("%-8s %10d records %8.1f MiB/s %10.0f records/s", r.Name, r.Records, r.MiBPerSec, r.RecordsSec)
	if r.P50Ms > 0 {
		s += fmt.Sprintf("  latency p50 %.2f ms p99 %.2f ms p99.9 %.2f ms max %.2f ms", r.P50Ms, r.P99Ms, r.P999Ms, r.MaxMs)
	}
	return s
}

func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(1, 60_000_000, 3) } // microseconds

func fill(r *Result, h *hdrhistogram.Histogram) {
	if h.TotalCount() == 0 {
		return
	}
	ms := func(us int64) float64 { return float64(us) / 1000 }
	r.P50Ms, r.P99Ms, r.P999Ms, r.MaxMs = ms(h.ValueAtQuantile(50)), ms(h.ValueAtQuantile(99)), ms(h.ValueAtQuantile(99.9)), ms(h.Max())
}

// EnsureTopic creates the topic if it does not exist.
func EnsureTopic(ctx context.Context, w Workload) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(w.Brokers...))
	if err != nil {
		return err
	}
	defer cl.Close()
	r, err := kadm.NewClient(cl).CreateTopic(ctx, w.Partitions, 1, nil, w.Topic)
	if err != nil && !isExists(err) {
		return err
	}
	if r.Err != nil && !isExists(r.Err) {
		return r.Err
	}
	return nil
}

func isExists(err error) bool {
	return errors.Is(err, kerr.TopicAlreadyExists)
}

func producerOpts(w Workload) ([]kgo.Opt, error) {
	opts := []kgo.Opt{kgo.SeedBrokers(w.Brokers...), kgo.DefaultProduceTopic(w.Topic),
		kgo.ProducerLinger(time.Millisecond), kgo.ProducerBatchMaxBytes(1 << 20), kgo.MaxBufferedRecords(1 << 20),
		kgo.MaxBufferedBytes(256 << 20)}
	switch w.Acks {
	case "", "all", "-1":
		opts = append(opts, kgo.RequiredAcks(kgo.AllISRAcks()))
		if w.InFlight > 1 {
			opts = append(opts, kgo.DisableIdempotentWrite())
		}
	case "1":
		opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
	case "0":
		opts = append(opts, kgo.RequiredAcks(kgo.NoAck()), kgo.DisableIdempotentWrite())
	default:
		return nil, fmt.Errorf("acks %q: want all, 1 or 0", w.Acks)
	}
	if w.InFlight > 1 {
		opts = append(opts, kgo.MaxProduceRequestsInflightPerBroker(w.InFlight))
	}
	switch w.Compression {
	case "", "none":
	case "gzip":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.GzipCompression()))
	case "snappy":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.SnappyCompression()))
	case "lz4":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.Lz4Compression()))
	case "zstd":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.ZstdCompression()))
	default:
		return nil, fmt.Errorf("compression %q", w.Compression)
	}
	if w.Compression == "" || w.Compression == "none" {
		opts = append(opts, kgo.ProducerBatchCompression(kgo.NoCompression()))
	}
	return opts, nil
}

// limiter paces a fixed-rate producer with a token schedule, so bursts
// after a stall do not hide latency.
type limiter struct {
	start    time.Time
	perEvent time.Duration
	n        int64
}

// limiterTick is how far ahead of its schedule the limiter lets an event
// go: it sleeps once per tick, not once per record. At 20,000 records a
// second a sleep per record cost the client a quarter of a core on the
// machine the brokers share (latency counts from the actual send, so an
// early record hides nothing).
const limiterTick = time.Millisecond

func (l *limiter) wait() {
	if l.perEvent <= 0 {
		return
	}
	due := l.start.Add(time.Duration(l.n) * l.perEvent)
	l.n++
	if d := time.Until(due); d >= limiterTick || (d > 0 && l.perEvent >= limiterTick) {
		time.Sleep(d)
	}
}

// Produce writes records as fast as allowed and reports throughput and the
// produce latency from send to acknowledgement.
func Produce(ctx context.Context, w Workload) (Result, error) {
	opts, err := producerOpts(w)
	if err != nil {
		return Result{}, err
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return Result{}, err
	}
	defer cl.Close()
	value := make([]byte, w.RecordSize)
	var (
		mu      sync.Mutex
		hist    = newHist()
		acked   atomic.Int64
		failure atomic.Value
		wg      sync.WaitGroup
	)
	lim := &limiter{start: time.Now()}
	if w.RateBytes > 0 {
		lim.perEvent = time.Duration(float64(time.Second) * float64(w.RecordSize) / w.RateBytes)
	}
	stop := progress(w.Progress, "produce", &acked, w.RecordSize)
	defer stop()
	start := time.Now()
	var sent int64
	for ; (w.Records > 0 && sent < w.Records) || (w.Records == 0 && time.Since(start) < w.Duration); sent++ {
		if ctx.Err() != nil {
			break
		}
		lim.wait()
		sentAt := time.Now()
		wg.Add(1)
		cl.Produce(ctx, &kgo.Record{Value: value}, func(_ *kgo.Record, err error) {
			defer wg.Done()
			if err != nil {
				failure.Store(err)
				return
			}
			acked.Add(1)
			us := time.Since(sentAt).Microseconds()
			mu.Lock()
			_ = hist.RecordValue(max(us, 1))
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if e, ok := failure.Load().(error); ok {
		return Result{}, fmt.Errorf("produce: %w", e)
	}
	n := acked.Load()
	r := Result{Name: "produce", Records: n, Bytes: n * int64(w.RecordSize), Seconds: elapsed.Seconds()}
	r.MiBPerSec, r.RecordsSec = mibPerSec(r.Bytes, elapsed), float64(n)/elapsed.Seconds()
	fill(&r, hist)
	return r, nil
}

// Consume reads w.Records records from the start of the topic.
func Consume(ctx context.Context, w Workload) (Result, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(w.Brokers...), kgo.ConsumeTopics(w.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxBytes(64<<20), kgo.FetchMaxPartitionBytes(16<<20))
	if err != nil {
		return Result{}, err
	}
	defer cl.Close()
	var got atomic.Int64
	var bytes int64
	stop := progress(w.Progress, "consume", &got, w.RecordSize)
	defer stop()
	start := time.Now()
	for got.Load() < w.Records {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return Result{}, fmt.Errorf("consume: %d of %d records before the deadline", got.Load(), w.Records)
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) { ferr = err })
		if ferr != nil {
			return Result{}, fmt.Errorf("consume: %w", ferr)
		}
		fs.EachRecord(func(r *kgo.Record) { bytes += int64(len(r.Value)) })
		got.Add(int64(fs.NumRecords()))
	}
	elapsed := time.Since(start)
	n := got.Load()
	return Result{Name: "consume", Records: n, Bytes: bytes, Seconds: elapsed.Seconds(), MiBPerSec: mibPerSec(bytes, elapsed), RecordsSec: float64(n) / elapsed.Seconds()}, nil
}

// EndToEnd produces at a fixed rate with the send time in each record and
// measures the time until a consumer sees it.
func EndToEnd(ctx context.Context, w Workload) (Result, error) {
	opts, err := producerOpts(w)
	if err != nil {
		return Result{}, err
	}
	prod, err := kgo.NewClient(opts...)
	if err != nil {
		return Result{}, err
	}
	defer prod.Close()
	cons, err := kgo.NewClient(kgo.SeedBrokers(w.Brokers...), kgo.ConsumeTopics(w.Topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()),
		kgo.FetchMaxWait(500*time.Millisecond))
	if err != nil {
		return Result{}, err
	}
	defer cons.Close()
	// Make sure the consumer is positioned before the clock starts.
	warm, cancel := context.WithTimeout(ctx, 2*time.Second)
	cons.PollFetches(warm)
	cancel()

	hist := newHist()
	var seen atomic.Int64
	done := make(chan struct{})
	total := int64(w.Duration.Seconds() * w.RateBytes / float64(w.RecordSize))
	go func() {
		defer close(done)
		for seen.Load() < total && ctx.Err() == nil {
			fs := cons.PollFetches(ctx)
			now := time.Now().UnixMicro()
			fs.EachRecord(func(r *kgo.Record) {
				if len(r.Value) >= 8 {
					_ = hist.RecordValue(max(now-int64(binary.BigEndian.Uint64(r.Value)), 1))
				}
				seen.Add(1)
			})
		}
	}()
	lim := &limiter{start: time.Now(), perEvent: time.Duration(float64(time.Second) * float64(w.RecordSize) / w.RateBytes)}
	stop := progress(w.Progress, "e2e", &seen, w.RecordSize)
	defer stop()
	start := time.Now()
	for i := int64(0); i < total && ctx.Err() == nil; i++ {
		lim.wait()
		v := make([]byte, w.RecordSize)
		binary.BigEndian.PutUint64(v, uint64(time.Now().UnixMicro()))
		prod.Produce(ctx, &kgo.Record{Value: v}, nil)
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		return Result{}, fmt.Errorf("e2e: consumer saw %d of %d records", seen.Load(), total)
	}
	elapsed := time.Since(start)
	n := seen.Load()
	r := Result{Name: "e2e", Records: n, Bytes: n * int64(w.RecordSize), Seconds: elapsed.Seconds(), MiBPerSec: mibPerSec(n*int64(w.RecordSize), elapsed), RecordsSec: float64(n) / elapsed.Seconds()}
	fill(&r, hist)
	return r, nil
}

// progress prints a line a second on w until stopped.
func progress(w io.Writer, name string, n *atomic.Int64, size int) func() {
	if w == nil {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		start, last := time.Now(), int64(0)
		for {
			select {
			case <-done:
				return
			case <-t.C:
				cur := n.Load()
				fmt.Fprintf(w, "%s: %6.1fs %10d records %8.1f MiB/s\n", name, time.Since(start).Seconds(), cur, float64((cur-last)*int64(size))/(1<<20))
				last = cur
			}
		}
	}()
	return func() { close(done) }
}

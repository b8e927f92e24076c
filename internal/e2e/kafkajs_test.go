package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tiercel/tiercel/internal/brokertest"
	"github.com/tiercel/tiercel/internal/testservers"
)

// kafkajsResult is what testdata/kafkajs_interop.js prints.
type kafkajsResult struct {
	Created    bool `json:"created"`
	Partitions int  `json:"partitions"`
	Acks       []struct {
		Partition  int32 `json:"partition"`
		ErrorCode  int16 `json:"errorCode"`
		BaseOffset int64 `json:"baseOffset"`
	} `json:"acks"`
	Consumed []struct {
		Topic     string  `json:"topic"`
		Partition int32   `json:"partition"`
		Offset    int64   `json:"offset"`
		Key       *string `json:"key"`
		Value     string  `json:"value"`
		Seq       *string `json:"seq"`
	} `json:"consumed"`
}

// TestKafkaJSInterop drives the broker with KafkaJS (Node.js): admin topic
// creation and metadata, an idempotent acks=all producer (plain and gzip
// batches with keys and headers), and a consumer group reading both its own
// records and ones kgo produced, committing on leave. kgo then reads back
// what KafkaJS wrote and kadm checks the group's committed offsets.
func TestKafkaJSInterop(t *testing.T) {
	node := testservers.Tool(t, "kafkajs-node")
	b := brokertest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	const topic, fromGo, group = "kafkajs", "from-kgo", "kafkajs-group"
	const produced, fromGoRecords = 400, 50
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(ctx, 2, 1, nil, fromGo); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < fromGoRecords; i++ {
		r := &kgo.Record{Topic: fromGo, Key: []byte(fmt.Sprintf("g-%d", i%5)), Value: []byte(fmt.Sprintf("g-%d", i))}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	cmd := exec.CommandContext(ctx, node, "testdata/kafkajs_interop.js", b.Addr(), topic, fromGo, group)
	cmd.Env = append(os.Environ(), fmt.Sprintf("FROM_GO_RECORDS=%d", fromGoRecords))
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("kafkajs_interop.js: %v\n%s", err, ee.Stderr)
		}
		t.Fatal(err)
	}
	var res kafkajsResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("kafkajs_interop.js printed %q: %v", out, err)
	}

	if !res.Created || res.Partitions != 3 {
		t.Errorf("KafkaJS admin: created %v, metadata shows %d partitions; want true, 3", res.Created, res.Partitions)
	}
	for _, a := range res.Acks {
		if a.ErrorCode != 0 || a.BaseOffset < 0 {
			t.Errorf("KafkaJS produce ack %+v", a)
		}
	}

	// The group read every record once, each partition in offset order,
	// each key's records in the order they were sent.
	seen := map[string]bool{}
	lastOffset := map[string]int64{}
	lastSeq := map[string]int{}
	values := map[string]int{}
	for _, c := range res.Consumed {
		at := fmt.Sprintf("%s/%d", c.Topic, c.Partition)
		if rec := fmt.Sprintf("%s@%d", at, c.Offset); seen[rec] {
			t.Fatalf("KafkaJS consumed %s offset %d twice", at, c.Offset)
		} else {
			seen[rec] = true
		}
		if last, ok := lastOffset[at]; ok && c.Offset <= last {
			t.Errorf("KafkaJS consumed %s offset %d after %d", at, c.Offset, last)
		}
		lastOffset[at] = c.Offset
		values[c.Topic+":"+c.Value]++
		if c.Topic != topic {
			continue
		}
		if c.Seq == nil || c.Key == nil {
			t.Fatalf("record %s@%d lost its key or header: %+v", at, c.Offset, c)
		}
		seq, _ := strconv.Atoi(*c.Seq)
		if *c.Key != fmt.Sprintf("k-%d", seq%10) || c.Value != fmt.Sprintf("v-%d", seq) {
			t.Errorf("record %s@%d: key %q value %q header seq %d", at, c.Offset, *c.Key, c.Value, seq)
		}
		if last, ok := lastSeq[*c.Key]; ok && seq <= last {
			t.Errorf("key %s: seq %d read after %d", *c.Key, seq, last)
		}
		lastSeq[*c.Key] = seq
	}
	for i := 0; i < produced; i++ {
		if n := values[fmt.Sprintf("%s:v-%d", topic, i)]; n != 1 {
			t.Errorf("KafkaJS consumed v-%d %d times, want once", i, n)
		}
	}
	for i := 0; i < fromGoRecords; i++ {
		if n := values[fmt.Sprintf("%s:g-%d", fromGo, i)]; n != 1 {
			t.Errorf("KafkaJS consumed kgo's g-%d %d times, want once", i, n)
		}
	}

	// kgo reads back what KafkaJS produced, headers included.
	rd, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	got := 0
	for got < produced && ctx.Err() == nil {
		fs := rd.PollFetches(ctx)
		if err := fs.Err0(); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			got++
			if len(r.Headers) != 1 || r.Headers[0].Key != "seq" || "v-"+string(r.Headers[0].Value) != string(r.Value) {
				t.Errorf("kgo read %s@%d value %q headers %v", r.Topic, r.Offset, r.Value, r.Headers)
			}
		})
	}
	if got != produced {
		t.Fatalf("kgo read %d of KafkaJS's %d records", got, produced)
	}

	// Leaving the group committed every partition's end.
	checkCommittedAtEnd(ctx, t, adm, group, topic, fromGo)
}

package broker_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tiercel/tiercel/broker"
	"github.com/tiercel/tiercel/internal/config"
	"github.com/tiercel/tiercel/internal/vfs"
)

// TestFullDiskOverTCP fills the disk under a running broker: producers get
// KAFKA_STORAGE_ERROR, nothing is corrupted, consumers keep reading, and
// writes resume when space returns.
func TestFullDiskOverTCP(t *testing.T) {
	disk := vfs.NewFaulty(vfs.Default)
	cfg, err := config.Load(config.LoadOptions{Flags: map[string]string{"log.dirs": t.TempDir(), "listeners": "127.0.0.1:0"}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := broker.New(broker.Options{Config: cfg, FS: disk})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Shutdown(context.Background()) })
	create(t, admin(t, b.Addr()), "full", 1, nil)
	p := client(t, b.Addr(), kgo.DefaultProduceTopic("full"), kgo.RecordRetries(0), kgo.DisableIdempotentWrite())
	produce := func(v string) error { return p.ProduceSync(ctx(t), &kgo.Record{Value: []byte(v)}).FirstErr() }
	if err := produce("before"); err != nil {
		t.Fatal(err)
	}
	disk.SetFull(true)
	if err := produce("refused"); !errors.Is(err, kerr.KafkaStorageError) {
		t.Fatalf("produce on a full disk: %v", err)
	}
	// Readers are not affected.
	if got := consume(t, b.Addr(), "full", 1); string(got[0].Value) != "before" {
		t.Fatalf("read %q", got[0].Value)
	}
	disk.SetFull(false)
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := produce("after")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("writes did not resume after space returned: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	got := consume(t, b.Addr(), "full", 2)
	if string(got[0].Value) != "before" || string(got[1].Value) != "after" || got[1].Offset != 1 {
		t.Fatalf("log after the full disk: %q@%d %q@%d", got[0].Value, got[0].Offset, got[1].Value, got[1].Offset)
	}
}

package objstore_test

import (
	"bytes"
	"context"
	"io"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/tiercel/tiercel/objstore"
	"github.com/tiercel/tiercel/objstore/mem"
)

func TestMetricsCountOpsClassesAndBytes(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	b, err := objstore.WithMetrics(mem.New("m"), mp.Meter("test"), "mem")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	b.Put(ctx, "k", bytes.NewReader(make([]byte, 100)), objstore.PutOptions{})
	b.Put(ctx, "k", bytes.NewReader(nil), objstore.PutOptions{IfNotExists: true})
	rc, _, _ := b.Get(ctx, "k", 0, -1)
	io.ReadAll(rc)
	rc.Close()
	b.Head(ctx, "missing")

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	requests := map[string]int64{}
	bytesBy := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			sum, ok := m.Data.(metricdata.Sum[int64])
			if !ok {
				continue
			}
			for _, dp := range sum.DataPoints {
				op, _ := dp.Attributes.Value("op")
				class, _ := dp.Attributes.Value("class")
				switch m.Name {
				case "tiercel.objstore.requests":
					requests[op.AsString()+"/"+class.AsString()] += dp.Value
				case "tiercel.objstore.bytes":
					bytesBy[op.AsString()] += dp.Value
				}
			}
		}
	}
	want := map[string]int64{"put/ok": 1, "put/precondition": 1, "get/ok": 1, "head/not_found": 1}
	for k, v := range want {
		if requests[k] != v {
			t.Errorf("requests %s = %d, want %d (all: %v)", k, requests[k], v, requests)
		}
	}
	if bytesBy["put"] != 100 || bytesBy["get"] != 100 {
		t.Errorf("bytes %v", bytesBy)
	}
}

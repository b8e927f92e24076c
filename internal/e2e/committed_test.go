package e2e

import (
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
)

// checkCommittedAtEnd fails t unless group has committed every partition
// of topics at its log end offset (a client that read everything and
// committed when it left).
func checkCommittedAtEnd(ctx context.Context, t *testing.T, adm *kadm.Client, group string, topics ...string) {
	t.Helper()
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		t.Fatal(err)
	}
	committed, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	ends.Each(func(e kadm.ListedOffset) {
		if c, ok := committed.Lookup(e.Topic, e.Partition); !ok || c.At != e.Offset {
			t.Errorf("group %s committed %s/%d at %v (found %v), want the end %d", group, e.Topic, e.Partition, c.At, ok, e.Offset)
		}
	})
}

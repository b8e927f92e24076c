package broker_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tiercel/tiercel/internal/brokertest"
)

// coordinatorOf asks the broker at addr which broker coordinates groupID
// (-1 while none can).
func coordinatorOf(t *testing.T, addr, groupID string) int32 {
	t.Helper()
	cl := client(t, addr)
	defer cl.Close()
	req := kmsg.NewPtrFindCoordinatorRequest()
	req.CoordinatorKey, req.CoordinatorKeys = groupID, []string{groupID} // before and after v4
	resp, err := cl.SeedBrokers()[0].Request(ctx(t), req)
	if err != nil {
		return -1
	}
	fc := resp.(*kmsg.FindCoordinatorResponse)
	if len(fc.Coordinators) == 1 {
		fc.ErrorCode, fc.NodeID = fc.Coordinators[0].ErrorCode, fc.Coordinators[0].NodeID
	}
	if fc.ErrorCode != 0 {
		return -1
	}
	return fc.NodeID
}

// TestGroupMovesWithHandoff: a consumer group whose coordinator is the
// broker being shut down keeps going: the broker hands its
// __consumer_offsets partition over with its other partitions, the new
// leader replays the group from the bucket, and the member goes on
// without a rebalance, reading every record once, with its commits landing
// at the new coordinator on top of the ones made before.
func TestGroupMovesWithHandoff(t *testing.T) {
	brokers := startCluster(t, 3, groupSets...)
	create(t, admin(t, brokers[0].Addr()), "watched", 6, nil)
	groupID := ""
	for i := 0; groupID == ""; i++ {
		id := fmt.Sprintf("g%d", i)
		var c int32
		brokertest.WaitFor(t, "a coordinator for "+id, func() bool { c = coordinatorOf(t, brokers[0].Addr(), id); return c >= 0 })
		if c == 3 {
			groupID = id
		}
		if i == 200 {
			for _, tp := range metadataOf(t, brokers[0].Addr()).Topics {
				if *tp.Topic == "__consumer_offsets" {
					for _, p := range tp.Partitions {
						t.Logf("offsets partition %d led by %d", p.Partition, p.Leader)
					}
				}
			}
			t.Fatal("no group of the first 200 is coordinated by broker 3")
		}
	}
	seen := &consumed{seen: map[string]int{}}
	m := startMember(t, brokers[0].Addr(), groupID, "watched", seen, kgo.AutoCommitInterval(100*time.Millisecond))
	produceN(t, brokers[0].Addr(), "watched", 300)
	brokertest.WaitFor(t, "the first 300 records consumed", func() bool { return seen.count() == 300 })
	time.Sleep(300 * time.Millisecond) // a commit or two

	brokers[2].Close()
	// Broker 1 may hear that broker 3 left before it applies the handoff.
	brokertest.WaitFor(t, "another coordinator", func() bool {
		c := coordinatorOf(t, brokers[0].Addr(), groupID)
		return c >= 0 && c != 3
	})
	produceN(t, brokers[1].Addr(), "watched", 300)
	brokertest.WaitFor(t, "all 600 records consumed", func() bool { return seen.count() == 600 })

	// Commits reach the new coordinator, and nothing was read twice.
	adm := admin(t, brokers[1].Addr())
	ends, err := adm.ListEndOffsets(ctx(t), "watched")
	if err != nil {
		t.Fatal(err)
	}
	brokertest.WaitFor(t, "the group's commits to reach the log ends", func() bool {
		committed, err := adm.FetchOffsets(ctx(t), groupID)
		if err != nil || committed.Error() != nil {
			return false
		}
		done := true
		ends.Each(func(o kadm.ListedOffset) {
			if c, ok := committed.Lookup("watched", o.Partition); !ok || c.At != o.Offset {
				done = false
			}
		})
		return done
	})
	seen.mu.Lock()
	for k, n := range seen.seen {
		if n != 1 {
			t.Errorf("record %s consumed %d times", k, n)
		}
	}
	seen.mu.Unlock()
	if n := rebalances(m); n != 1 {
		t.Errorf("the member took part in %d rebalances, want 1: the coordinator's move should not rebalance the group", n)
	}
}

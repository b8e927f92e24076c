package broker_test

import (
	"testing"

	"github.com/tiercel/tiercel/internal/brokertest"
	"github.com/tiercel/tiercel/objstore/mem"
)

// TestRegionsPlaceAndKeepLeaders: four brokers in two regions. A new
// topic's partitions alternate regions (and every broker leads as many);
// a broker that shuts down hands its partitions to the other broker of
// its region, not across regions.
func TestRegionsPlaceAndKeepLeaders(t *testing.T) {
	region := map[int32]string{1: "east", 2: "east", 3: "west", 4: "west"}
	brokers := startClusterWith(t, mem.New("regions"), 4, func(id int) []string {
		return []string{"tiercel.region=" + region[int32(id)]}
	})
	create(t, admin(t, brokers[0].Addr()), "spread", 8, nil)
	leaders := func() []int32 {
		for _, tp := range metadataOf(t, brokers[3].Addr()).Topics {
			if *tp.Topic == "spread" {
				out := make([]int32, len(tp.Partitions))
				for _, p := range tp.Partitions {
					out[p.Partition] = p.Leader
				}
				return out
			}
		}
		return nil
	}
	brokertest.WaitFor(t, "the topic everywhere", func() bool { return len(leaders()) == 8 })
	placed := leaders()
	count := map[int32]int{}
	for p, l := range placed {
		count[l]++
		if next := placed[(p+1)%len(placed)]; region[l] == region[next] {
			t.Fatalf("partitions %d and %d both placed in %s: %v", p, (p+1)%len(placed), region[l], placed)
		}
	}
	for id := int32(1); id <= 4; id++ {
		if count[id] != 2 {
			t.Fatalf("broker %d leads %d partitions, want 2: %v", id, count[id], placed)
		}
	}

	brokers[0].Close()
	brokertest.WaitFor(t, "broker 1's partitions moved", func() bool {
		for _, l := range leaders() {
			if l == 1 {
				return false
			}
		}
		return true
	})
	for p, l := range leaders() {
		if placed[p] == 1 && l != 2 {
			t.Fatalf("partition %d of broker 1 (east) went to broker %d (%s), want broker 2 (east)", p, l, region[l])
		}
	}
}

package broker_test

import (
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"

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
	leaders := func() []int32 { return leadersOf(t, brokers[3].Addr(), "spread") }
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
			if l == 1 || l < 0 { // -1: broker 1 left gossip before this broker applied the move
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

// TestParkedPartitionsStayInRegion: after a pause, brokers 1, 3 and 4
// start on empty disks and broker 2 never returns: its parked partitions
// are adopted, after the join delay, by broker 1, the other broker of its
// region, which knows broker 2's region only from its registration in the
// metadata log (it never gossiped with it).
func TestParkedPartitionsStayInRegion(t *testing.T) {
	region := map[int32]string{1: "east", 2: "east", 3: "west", 4: "west"}
	bucket := mem.New("regions-paused")
	each := func(id int) []string { return []string{"tiercel.region=" + region[int32(id)]} }
	brokers := startClusterWith(t, bucket, 4, each, "tiercel.leader.rebalance.join.delay.ms=200")
	create(t, admin(t, brokers[0].Addr()), "spread", 8, nil)
	leaders := func(br *brokertest.Broker) []int32 { return leadersOf(t, br.Addr(), "spread") }
	brokertest.WaitFor(t, "the topic everywhere", func() bool { return len(leaders(brokers[3])) == 8 })
	placed := leaders(brokers[3])
	alter := []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "tiercel.cluster.paused", Value: kadmString("true")}}
	if _, err := admin(t, brokers[0].Addr()).AlterBrokerConfigs(ctx(t), alter); err != nil {
		t.Fatal(err)
	}
	for _, br := range brokers {
		brokertest.WaitFor(t, "every partition parked", func() bool { return parkedEverywhere(t, br.Addr(), "spread") })
	}
	for _, br := range brokers {
		br.Close()
	}

	// Brokers 1, 3, 4 on empty disks; 1 first, alone, seeding the others.
	var fresh []*brokertest.Broker
	for _, id := range []int{1, 3, 4} {
		s := append([]string{fmt.Sprintf("node.id=%d", id), "tiercel.gossip.listener=127.0.0.1:0", "tiercel.gossip.local=true",
			"tiercel.metadata.poll.ms=100", "tiercel.leader.rebalance.join.delay.ms=200"}, each(id)...)
		if len(fresh) > 0 {
			s = append(s, "tiercel.gossip.seeds="+fresh[0].GossipAddr())
		}
		fresh = append(fresh, brokertest.StartWithBucket(t, t.TempDir(), bucket, s...))
	}
	brokertest.WaitFor(t, "every partition adopted", func() bool {
		for _, l := range leaders(fresh[2]) {
			if l < 0 {
				return false
			}
		}
		return true
	})
	for p, l := range leaders(fresh[2]) {
		if placed[p] == 2 && l != 1 {
			t.Fatalf("partition %d of broker 2 (east) adopted by broker %d (%s), want broker 1 (east)", p, l, region[l])
		}
		if placed[p] != 2 && l != placed[p] {
			t.Fatalf("partition %d adopted by %d, not by its preferred leader %d", p, l, placed[p])
		}
	}
}

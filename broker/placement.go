package broker

import (
	"fmt"
	"math/rand/v2"
	"sort"
)

// Placement: new partitions go round robin over the live brokers in an
// order that alternates regions, and racks within a region, from a random
// start, as Kafka places replicas across racks. Leadership that moves
// without a choice made by an operator (a handoff at shutdown, an unclean
// takeover, adopting a parked partition whose preferred leader is gone)
// stays in the region it was in when a live broker there can take it, so
// clients that produce in-region keep doing so.

// placeLeaders chooses the leader of each of n new partitions.
func (b *Broker) placeLeaders(n int32) []int32 {
	order := spread(b.liveBrokers())
	start := rand.IntN(len(order))
	leaders := make([]int32, n)
	for i := range leaders {
		leaders[i] = order[(start+i)%len(order)]
	}
	return leaders
}

// placeReplicas chooses rf replicas of each of n new partitions, the
// leader first: the leaders go round robin as placeLeaders does, and each
// partition's followers are the brokers after its leader in the spread
// order, so replicas land in different regions, then racks, where there
// are enough (Kafka's rack-aware assignment). It fails when fewer than rf
// brokers are live.
func (b *Broker) placeReplicas(n int32, rf int) ([][]int32, error) {
	order := spread(b.liveBrokers())
	if rf > len(order) {
		return nil, fmt.Errorf("%w: replication factor %d is larger than the %d live brokers", errInvalidReplication, rf, len(order))
	}
	start := rand.IntN(len(order))
	out := make([][]int32, n)
	for i := range out {
		rs := make([]int32, rf)
		for j := range rs {
			rs[j] = order[(start+i+j)%len(order)]
		}
		out[i] = rs
	}
	return out, nil
}

// spread orders brokers so that consecutive ones are in different regions
// where possible, and within a region in different racks: the first of
// each region, then the second of each, and so on.
func spread(brokers []liveBroker) []int32 {
	byRegion := map[string][]liveBroker{}
	var regions []string
	for _, lb := range brokers {
		if _, ok := byRegion[lb.region]; !ok {
			regions = append(regions, lb.region)
		}
		byRegion[lb.region] = append(byRegion[lb.region], lb)
	}
	sort.Strings(regions)
	orders := make([][]int32, len(regions))
	for i, r := range regions {
		orders[i] = rackAlternating(byRegion[r])
	}
	return interleave(orders, len(brokers))
}

// rackAlternating orders brokers so that consecutive ones are in
// different racks where possible.
func rackAlternating(brokers []liveBroker) []int32 {
	byRack := map[string][]int32{}
	var racks []string
	for _, lb := range brokers {
		r := ""
		if lb.rack != nil {
			r = *lb.rack
		}
		if _, ok := byRack[r]; !ok {
			racks = append(racks, r)
		}
		byRack[r] = append(byRack[r], lb.id)
	}
	sort.Strings(racks)
	orders := make([][]int32, len(racks))
	for i, r := range racks {
		orders[i] = byRack[r]
	}
	return interleave(orders, len(brokers))
}

// interleave takes the first of each list, then the second of each, and
// so on, until n are taken.
func interleave(lists [][]int32, n int) []int32 {
	out := make([]int32, 0, n)
	for i := 0; len(out) < n; i++ {
		for _, l := range lists {
			if i < len(l) {
				out = append(out, l[i])
			}
		}
	}
	return out
}

// inRegion keeps the brokers of region, or all of them if none is there.
func inRegion(brokers []liveBroker, region string) []liveBroker {
	var out []liveBroker
	for _, lb := range brokers {
		if lb.region == region {
			out = append(out, lb)
		}
	}
	if len(out) == 0 {
		return brokers
	}
	return out
}

// regionOf is the region broker id registered in the metadata log when it
// last started, which is also the one it gossips ("" if it never
// registered: then no region is preferred).
func (b *Broker) regionOf(id int32) string {
	if id == b.nodeID {
		return b.cfg.Get("tiercel.region")
	}
	b.meta.mu.Lock() // the applied state is read under its lock
	defer b.meta.mu.Unlock()
	return b.meta.log.Peek().Places[id].Region
}

package group

import (
	"slices"
	"sort"
)

// subscribers returns, for every topic some member subscribes to and that
// exists, its partition count and its subscribers (sorted by member id).
func subscribers(members []*consumerMember, topics Topics) (names []string, counts map[string]int32, subs map[string][]*consumerMember) {
	counts, subs = map[string]int32{}, map[string][]*consumerMember{}
	for _, m := range members {
		for _, t := range m.topics {
			n, ok := counts[t]
			if !ok {
				n = topics.Partitions(t)
				counts[t] = n
				if n > 0 {
					names = append(names, t)
				}
			}
			if n > 0 {
				subs[t] = append(subs[t], m)
			}
		}
	}
	sort.Strings(names)
	return names, counts, subs
}

// rangeAssign gives each subscriber of a topic a contiguous range of its
// partitions, the first members one more when they do not divide evenly
// (Kafka's server-side "range").
func rangeAssign(members []*consumerMember, topics Topics) map[string]partitions {
	out := map[string]partitions{}
	for _, m := range members {
		out[m.id] = partitions{}
	}
	names, counts, subs := subscribers(members, topics)
	for _, t := range names {
		ms := subs[t]
		n := int(counts[t])
		per, extra := n/len(ms), n%len(ms)
		next := 0
		for i, m := range ms {
			take := per
			if i < extra {
				take++
			}
			for p := next; p < next+take; p++ {
				out[m.id][t] = append(out[m.id][t], int32(p))
			}
			next += take
		}
	}
	return out
}

// uniformAssign spreads partitions evenly by count while keeping each
// member's previous partitions where the balance allows (Kafka's
// server-side "uniform": sticky and balanced).
func uniformAssign(members []*consumerMember, prev map[string]partitions, topics Topics) map[string]partitions {
	out := map[string]partitions{}
	load := map[string]int{}
	for _, m := range members {
		out[m.id] = partitions{}
	}
	names, counts, subs := subscribers(members, topics)
	total := 0
	for _, t := range names {
		total += int(counts[t])
	}
	if len(members) == 0 || total == 0 {
		return out
	}
	floor, extra := total/len(members), total%len(members)
	subscribed := func(m *consumerMember, t string) bool {
		_, ok := slices.BinarySearch(m.topics, t)
		return ok
	}
	taken := map[string]map[int32]bool{}
	take := func(m *consumerMember, t string, p int32) {
		if taken[t] == nil {
			taken[t] = map[int32]bool{}
		}
		taken[t][p] = true
		out[m.id].add(t, p)
		load[m.id]++
	}
	// Keep previous partitions up to the floor, then one more for as
	// many members as there are extra partitions.
	for pass := 0; pass < 2; pass++ {
		for _, m := range members {
			for _, t := range sortedKeys(prev[m.id]) {
				if counts[t] <= 0 || !subscribed(m, t) {
					continue
				}
				for _, p := range prev[m.id][t] {
					if p >= counts[t] || taken[t][p] {
						continue
					}
					if pass == 0 && load[m.id] < floor || pass == 1 && extra > 0 && load[m.id] == floor {
						if pass == 1 {
							extra--
						}
						take(m, t, p)
					}
				}
			}
		}
	}
	// The rest go to the least-loaded subscriber, topics with the fewest
	// subscribers first (they have the fewest choices).
	sort.SliceStable(names, func(i, j int) bool { return len(subs[names[i]]) < len(subs[names[j]]) })
	for _, t := range names {
		for p := int32(0); p < counts[t]; p++ {
			if taken[t][p] {
				continue
			}
			var best *consumerMember
			for _, m := range subs[t] {
				if best == nil || load[m.id] < load[best.id] {
					best = m
				}
			}
			take(best, t, p)
		}
	}
	return out
}

func sortedKeys(p partitions) []string {
	out := make([]string, 0, len(p))
	for t := range p {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

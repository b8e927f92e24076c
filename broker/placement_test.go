package broker

import (
	"fmt"
	"testing"
)

func lb(id int32, region, rack string) liveBroker {
	return liveBroker{id: id, region: region, rack: &rack}
}

// TestSpread: regions alternate first, racks within a region next, and
// every broker appears once.
func TestSpread(t *testing.T) {
	for _, c := range []struct {
		in   []liveBroker
		want string
	}{
		{[]liveBroker{lb(1, "", "a"), lb(2, "", "a"), lb(3, "", "b")}, "[1 3 2]"},
		{[]liveBroker{lb(1, "east", "a"), lb(2, "east", "b"), lb(3, "west", "c"), lb(4, "west", "c"), lb(5, "west", "d")}, "[1 3 2 5 4]"},
		{[]liveBroker{lb(1, "west", "a"), lb(2, "east", "a")}, "[2 1]"},
		{nil, "[]"},
	} {
		if got := fmt.Sprint(spread(c.in)); got != c.want {
			t.Errorf("spread(%v) = %s, want %s", c.in, got, c.want)
		}
	}
}

// TestInRegion: only the region's brokers, or all when it has none.
func TestInRegion(t *testing.T) {
	all := []liveBroker{lb(1, "east", "a"), lb(2, "west", "b"), lb(3, "east", "c")}
	if got := fmt.Sprint(spread(inRegion(all, "east"))); got != "[1 3]" {
		t.Errorf("east: %s", got)
	}
	if got := fmt.Sprint(spread(inRegion(all, "south"))); got != "[1 2 3]" {
		t.Errorf("a region with no broker: %s, want all", got)
	}
}

package group

import (
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// consumerGroup is the KIP-848 state of a "consumer" group.
type consumerGroup struct {
	epoch   int32 // group epoch: bumped by every membership or subscription change
	members map[string]*consumerMember
}

// consumerMember is one KIP-848 member.
type consumerMember struct {
	id         string
	instanceID string
	topics     []string // subscribed topic names
}

func (s *Shard) tickConsumer(g *Group, now time.Time) time.Time { return time.Time{} }

// consumerCommitCheck validates a commit or fetch from a KIP-848 member.
func (s *Shard) consumerCommitCheck(g *Group, memberID string, epoch int32) int16 {
	if memberID == "" && epoch < 0 && len(g.consumer.members) == 0 {
		return 0
	}
	m := g.consumer.members[memberID]
	if m == nil {
		return kerr.UnknownMemberID.Code
	}
	return 0
}

func (s *Shard) loadConsumer(now time.Time, version int16, key, value []byte) error { return nil }

func (s *Shard) consumerTombstones(g *Group) []Record { return nil }

package broker

import (
	"errors"
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tiercel/tiercel/internal/metalog"
)

// Reassignments and elections move leadership with replication factor 1:
// the broker asked records the move in the metadata log (RequestMove), and
// the partition's leader carries it out the way a shutdown does (roll,
// upload, new leader at epoch + 1; see handoff.go). The requests return
// once the move is recorded, as Kafka's return once a reassignment has
// started; ListPartitionReassignments shows the moves not done yet.

// pendingMove is one requested move, answered per partition.
type pendingMove struct {
	code int16
	msg  string
	op   *metalog.Op
}

// recordMoves appends the ops of moves in one entry and fills in the
// codes of those that did not take effect.
func (b *Broker) recordMoves(moves []*pendingMove) {
	var ops []metalog.Op
	var idx []int
	for i, m := range moves {
		if m.code == 0 && m.op != nil {
			ops = append(ops, *m.op)
			idx = append(idx, i)
		}
	}
	if len(ops) == 0 {
		return
	}
	done, err := b.commitMeta(ops...)
	for j, i := range idx {
		switch {
		case errors.Is(err, metalog.ErrStale):
			moves[i].code, moves[i].msg = kerr.RequestTimedOut.Code, "the partition changed leader meanwhile; retry"
		case errors.Is(err, metalog.ErrNotFound):
			moves[i].code = kerr.UnknownTopicOrPartition.Code
		case err != nil:
			moves[i].code, moves[i].msg = kerr.RequestTimedOut.Code, err.Error()
		case !done[j]:
			moves[i].code, moves[i].msg = kerr.RequestTimedOut.Code, "the partition changed meanwhile; retry"
		}
	}
}

func (b *Broker) handleAlterPartitionAssignments(req *kmsg.AlterPartitionAssignmentsRequest) kmsg.Response {
	resp := kmsg.NewPtrAlterPartitionAssignmentsResponse()
	live := b.liveBrokerIDs()
	var all []*pendingMove
	type slot struct{ topic, part int }
	var slots []slot
	for ti, rt := range req.Topics {
		st := kmsg.NewAlterPartitionAssignmentsResponseTopic()
		st.Topic = rt.Topic
		t := b.getTopic(rt.Topic)
		for _, rp := range rt.Partitions {
			sp := kmsg.NewAlterPartitionAssignmentsResponseTopicPartition()
			sp.Partition = rp.Partition
			m := &pendingMove{}
			switch {
			case t == nil || rp.Partition < 0 || rp.Partition >= t.meta.Partitions:
				m.code = kerr.UnknownTopicOrPartition.Code
			case rp.Replicas == nil:
				if r, ok := t.meta.Reassigning[rp.Partition]; ok {
					m.op = reassignOp(t.meta, rp.Partition, r.Original)
				} else if _, ok := t.meta.Moves[rp.Partition]; !ok {
					m.code = kerr.NoReassignmentInProgress.Code
				} else {
					m.op = &metalog.Op{CancelMove: &metalog.CancelMove{Topic: t.meta.Name, ID: t.meta.ID, Partition: rp.Partition}}
				}
			case t.meta.replicated():
				m.code, m.msg, m.op = b.checkReplicaTarget(t.meta, rp.Partition, rp.Replicas, live)
			case len(rp.Replicas) != 1:
				m.code, m.msg = kerr.InvalidReplicaAssignment.Code, fmt.Sprintf("%d replicas for a partition of a topic with one replica per partition", len(rp.Replicas))
			case !live[rp.Replicas[0]]:
				m.code, m.msg = kerr.InvalidReplicaAssignment.Code, fmt.Sprintf("broker %d is not live", rp.Replicas[0])
			case rp.Replicas[0] == t.meta.Leaders[rp.Partition].Broker:
				// Already there: nothing to do (a pending move elsewhere is dropped).
				if _, ok := t.meta.Moves[rp.Partition]; ok {
					m.op = &metalog.Op{CancelMove: &metalog.CancelMove{Topic: t.meta.Name, ID: t.meta.ID, Partition: rp.Partition}}
				}
			case !b.tiered(t.meta):
				m.code, m.msg = kerr.InvalidReplicaAssignment.Code, "only partitions of tiered topics (remote.storage.enable) can move between brokers"
			default:
				m.op = &metalog.Op{RequestMove: &metalog.RequestMove{Topic: t.meta.Name, ID: t.meta.ID, Partition: rp.Partition, To: rp.Replicas[0], Expect: t.meta.Leaders[rp.Partition]}}
			}
			all = append(all, m)
			slots = append(slots, slot{ti, len(st.Partitions)})
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	b.recordMoves(all)
	for i, m := range all {
		sp := &resp.Topics[slots[i].topic].Partitions[slots[i].part]
		sp.ErrorCode = m.code
		if m.code != 0 {
			msg := m.msg
			if msg == "" {
				msg = kerr.ErrorForCode(m.code).Error()
			}
			sp.ErrorMessage = &msg
		}
	}
	return resp
}

// checkReplicaTarget checks a replicated partition's requested replicas
// and returns the op that starts (or, back to the original replicas,
// cancels) the reassignment: the replicas must be live brokers, each once.
func (b *Broker) checkReplicaTarget(m *topicMeta, p int32, target []int32, live map[int32]bool) (int16, string, *metalog.Op) {
	if problem := replicaListProblem(target, live); problem != "" {
		return kerr.InvalidReplicaAssignment.Code, problem, nil
	}
	r, inProgress := m.Reassigning[p]
	if !inProgress && slices.Equal(m.Replicas[p], target) {
		return 0, "", nil // already there
	}
	if leader := m.Leaders[p].Broker; leader >= 0 {
		if next, _, _ := metalog.NextReplicas(m.Replicas[p], r, inProgress, target); !slices.Contains(next, leader) {
			return kerr.InvalidReplicaAssignment.Code, fmt.Sprintf("the partition is led by broker %d, added by the reassignment in progress: include it, or wait for that reassignment to finish", leader), nil
		}
	}
	return 0, "", reassignOp(m, p, target)
}

func reassignOp(m *topicMeta, p int32, target []int32) *metalog.Op {
	return &metalog.Op{ReassignReplicas: &metalog.ReassignReplicas{Topic: m.Name, ID: m.ID, Partition: p, ExpectReplicas: slices.Clone(m.Replicas[p]), Target: slices.Clone(target)}}
}

func (b *Broker) handleListPartitionReassignments(req *kmsg.ListPartitionReassignmentsRequest) kmsg.Response {
	resp := kmsg.NewPtrListPartitionReassignmentsResponse()
	names := b.topicNames()
	want := map[string]map[int32]bool{}
	if req.Topics != nil {
		names = nil
		for _, rt := range req.Topics {
			names = append(names, rt.Topic)
			want[rt.Topic] = map[int32]bool{}
			for _, p := range rt.Partitions {
				want[rt.Topic][p] = true
			}
		}
	}
	for _, name := range names {
		t := b.getTopic(name)
		if t == nil {
			continue
		}
		st := kmsg.NewListPartitionReassignmentsResponseTopic()
		st.Topic = name
		parts := make([]int32, 0, len(t.meta.Moves))
		for p := range t.meta.Moves {
			if want[name] == nil || want[name][p] {
				parts = append(parts, p)
			}
		}
		for p := range t.meta.Reassigning {
			if want[name] == nil || want[name][p] {
				parts = append(parts, p)
			}
		}
		slices.Sort(parts)
		for _, p := range slices.Compact(parts) {
			sp := kmsg.NewListPartitionReassignmentsResponseTopicPartition()
			if r, ok := t.meta.Reassigning[p]; ok {
				sp.Partition, sp.Replicas = p, slices.Clone(t.meta.Replicas[p])
				sp.AddingReplicas, sp.RemovingReplicas = r.Adding(), r.Removing()
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			leader := t.meta.Leaders[p].Broker
			sp.Partition, sp.Replicas = p, []int32{leader, t.meta.Moves[p]}
			sp.AddingReplicas, sp.RemovingReplicas = []int32{t.meta.Moves[p]}, []int32{leader}
			st.Partitions = append(st.Partitions, sp)
		}
		if len(st.Partitions) > 0 {
			resp.Topics = append(resp.Topics, st)
		}
	}
	return resp
}

func (b *Broker) handleElectLeaders(req *kmsg.ElectLeadersRequest) kmsg.Response {
	resp := kmsg.NewPtrElectLeadersResponse()
	live := b.liveBrokerIDs()
	topics := req.Topics
	if topics == nil {
		for _, name := range b.topicNames() {
			t := b.getTopic(name)
			if t == nil {
				continue
			}
			rt := kmsg.NewElectLeadersRequestTopic()
			rt.Topic = name
			for p := range t.meta.Partitions {
				rt.Partitions = append(rt.Partitions, p)
			}
			topics = append(topics, rt)
		}
	}
	var all []*pendingMove
	for _, rt := range topics {
		st := kmsg.NewElectLeadersResponseTopic()
		st.Topic = rt.Topic
		t := b.getTopic(rt.Topic)
		for _, p := range rt.Partitions {
			m := &pendingMove{}
			switch {
			case t == nil || p < 0 || p >= t.meta.Partitions:
				m.code = kerr.UnknownTopicOrPartition.Code
			case req.ElectionType == 1: // unclean
				if live[t.meta.Leaders[p].Broker] {
					m.code = kerr.ElectionNotNeeded.Code
				} else {
					m.code, m.msg = kerr.EligibleLeadersNotAvailable.Code, "replication factor 1: no other replica; unclean.leader.election.enable moves it once its broker's lease expires"
				}
			case t.meta.Leaders[p].Broker == t.meta.Preferred[p]:
				m.code = kerr.ElectionNotNeeded.Code
			case !live[t.meta.Preferred[p]]:
				m.code = kerr.PreferredLeaderNotAvailable.Code
			case t.meta.replicated() && !slices.Contains(t.meta.ISROf(p), t.meta.Preferred[p]):
				m.code, m.msg = kerr.PreferredLeaderNotAvailable.Code, fmt.Sprintf("the preferred replica %d is not in sync", t.meta.Preferred[p])
			case !b.tiered(t.meta):
				m.code, m.msg = kerr.PreferredLeaderNotAvailable.Code, "only partitions of tiered topics (remote.storage.enable) can move between brokers"
			default:
				m.op = &metalog.Op{RequestMove: &metalog.RequestMove{Topic: t.meta.Name, ID: t.meta.ID, Partition: p, To: t.meta.Preferred[p], Expect: t.meta.Leaders[p]}}
			}
			all = append(all, m)
		}
		resp.Topics = append(resp.Topics, st)
	}
	b.recordMoves(all)
	i := 0
	for ti, rt := range topics {
		for _, p := range rt.Partitions {
			sp := kmsg.NewElectLeadersResponseTopicPartition()
			sp.Partition, sp.ErrorCode = p, all[i].code
			if all[i].msg != "" {
				sp.ErrorMessage = &all[i].msg
			}
			resp.Topics[ti].Partitions = append(resp.Topics[ti].Partitions, sp)
			i++
		}
	}
	return resp
}

package cli

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(newClusterCmd) }

// newClusterCmd is the cluster view and leadership moves
// (kafka-broker-api-versions/kafka-reassign-partitions/kafka-leader-election).
func newClusterCmd(g *Globals) *cobra.Command {
	cmd := &cobra.Command{Use: "cluster", Short: "Brokers, partition leadership, reassignments, drains, pause and resume"}
	cmd.AddCommand(clusterBrokersCmd(g), clusterStatusCmd(g), clusterReassignCmd(g), clusterDrainCmd(g), clusterElectCmd(g), clusterPauseCmd(g), clusterResumeCmd(g))
	return cmd
}

// withClient runs f with a client and a bounded context.
func (g *Globals) withClient(parent context.Context, timeout time.Duration, f func(ctx context.Context, cl *kgo.Client) error) error {
	cl, err := g.newClient()
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(parent, timeout)
	defer cancel()
	return f(ctx, cl)
}

func clusterMetadata(ctx context.Context, cl *kgo.Client) (*kmsg.MetadataResponse, error) {
	req := kmsg.NewPtrMetadataRequest()
	req.Topics = nil // all
	return req.RequestWith(ctx, cl)
}

type brokerView struct {
	ID   int32  `json:"id"`
	Addr string `json:"addr"`
	Rack string `json:"rack,omitempty"`
}

// brokerViews lists a metadata answer's brokers by id.
func brokerViews(md *kmsg.MetadataResponse) []brokerView {
	var out []brokerView
	for _, b := range md.Brokers {
		v := brokerView{ID: b.NodeID, Addr: fmt.Sprintf("%s:%d", b.Host, b.Port)}
		if b.Rack != nil {
			v.Rack = *b.Rack
		}
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func clusterBrokersCmd(g *Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "brokers",
		Short: "List the live brokers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withClient(cmd.Context(), requestTimeout, func(ctx context.Context, cl *kgo.Client) error {
				md, err := clusterMetadata(ctx, cl)
				if err != nil {
					return g.explain("cluster brokers", err)
				}
				out := brokerViews(md)
				if g.Output == "json" {
					return printJSON(cmd.OutOrStdout(), out)
				}
				w := cmd.OutOrStdout()
				fmt.Fprintf(w, "%-6s %-24s %s\n", "ID", "ADDRESS", "RACK")
				for _, b := range out {
					fmt.Fprintf(w, "%-6d %-24s %s\n", b.ID, b.Addr, b.Rack)
				}
				return nil
			})
		},
	}
}

type clusterStatus struct {
	ClusterID string        `json:"cluster_id"`
	Brokers   []brokerView  `json:"brokers"`
	Leading   map[int32]int `json:"partitions_led"`
	Offline   []string      `json:"offline"`
	// Replicated partitions with fewer in-sync replicas than replicas,
	// and those with min.insync.replicas in sync or fewer.
	UnderReplicated []string           `json:"under_replicated"`
	AtMinISR        []string           `json:"at_min_isr"`
	UnderMinISR     []string           `json:"under_min_isr"`
	Moving          []reassignmentView `json:"reassignments"`
	Paused          bool               `json:"paused"`
}

type reassignmentView struct {
	Partition string  `json:"partition"`
	Replicas  []int32 `json:"replicas"`
	Adding    []int32 `json:"adding"`
	Removing  []int32 `json:"removing"`
}

func clusterStatusCmd(g *Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Brokers, partitions led by each, offline partitions and reassignments in progress",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withClient(cmd.Context(), requestTimeout, func(ctx context.Context, cl *kgo.Client) error {
				md, err := clusterMetadata(ctx, cl)
				if err != nil {
					return g.explain("cluster status", err)
				}
				st := clusterStatus{Leading: map[int32]int{}}
				if md.ClusterID != nil {
					st.ClusterID = *md.ClusterID
				}
				st.Brokers = brokerViews(md)
				for _, b := range st.Brokers {
					st.Leading[b.ID] = 0
				}
				minISR, err := minInsyncReplicas(ctx, kadm.NewClient(cl), md)
				if err != nil {
					return g.explain("cluster status: min.insync.replicas", err)
				}
				for _, t := range md.Topics {
					for _, p := range t.Partitions {
						name := fmt.Sprintf("%s-%d", *t.Topic, p.Partition)
						if p.Leader < 0 {
							st.Offline = append(st.Offline, name)
							continue
						}
						st.Leading[p.Leader]++
						if len(p.Replicas) < 2 {
							continue
						}
						if len(p.ISR) < len(p.Replicas) {
							st.UnderReplicated = append(st.UnderReplicated, name)
						}
						switch m := minISR[*t.Topic]; {
						case len(p.ISR) < m:
							st.UnderMinISR = append(st.UnderMinISR, name)
						case len(p.ISR) == m:
							st.AtMinISR = append(st.AtMinISR, name)
						}
					}
				}
				for _, l := range [][]string{st.Offline, st.UnderReplicated, st.AtMinISR, st.UnderMinISR} {
					sort.Strings(l)
				}
				if st.Paused, err = isPaused(ctx, kadm.NewClient(cl)); err != nil {
					return g.explain("cluster status: paused", err)
				}
				lr, err := kmsg.NewPtrListPartitionReassignmentsRequest().RequestWith(ctx, cl)
				if err != nil {
					return g.explain("cluster status: reassignments", err)
				}
				for _, t := range lr.Topics {
					for _, p := range t.Partitions {
						st.Moving = append(st.Moving, reassignmentView{Partition: fmt.Sprintf("%s-%d", t.Topic, p.Partition),
							Replicas: p.Replicas, Adding: p.AddingReplicas, Removing: p.RemovingReplicas})
					}
				}
				if g.Output == "json" {
					return printJSON(cmd.OutOrStdout(), st)
				}
				w := cmd.OutOrStdout()
				paused := ""
				if st.Paused {
					paused = " (paused: partitions are parked in the object store; tiercel cluster resume, or start a broker)"
				}
				fmt.Fprintf(w, "Cluster %s%s: %d brokers, %d offline partitions, %d under-replicated, %d at min ISR, %d under min ISR, %d reassignments in progress\n",
					st.ClusterID, paused, len(st.Brokers), len(st.Offline), len(st.UnderReplicated), len(st.AtMinISR), len(st.UnderMinISR), len(st.Moving))
				fmt.Fprintf(w, "%-6s %-24s %-12s %s\n", "ID", "ADDRESS", "RACK", "LEADING")
				for _, b := range st.Brokers {
					fmt.Fprintf(w, "%-6d %-24s %-12s %d\n", b.ID, b.Addr, b.Rack, st.Leading[b.ID])
				}
				for _, o := range st.Offline {
					fmt.Fprintf(w, "offline: %s (its broker is down, or the cluster is paused)\n", o)
				}
				for _, p := range st.UnderReplicated {
					fmt.Fprintf(w, "under-replicated: %s\n", p)
				}
				for _, p := range st.UnderMinISR {
					fmt.Fprintf(w, "under min ISR: %s (acks=all produces are refused)\n", p)
				}
				for _, p := range st.AtMinISR {
					fmt.Fprintf(w, "at min ISR: %s (one more replica lost refuses acks=all)\n", p)
				}
				for _, m := range st.Moving {
					fmt.Fprintf(w, "moving: %s replicas %v (adding %v, removing %v)\n", m.Partition, m.Replicas, m.Adding, m.Removing)
				}
				return nil
			})
		},
	}
}

// minInsyncReplicas is min.insync.replicas of every replicated topic in md.
func minInsyncReplicas(ctx context.Context, adm *kadm.Client, md *kmsg.MetadataResponse) (map[string]int, error) {
	var names []string
	for _, t := range md.Topics {
		if len(t.Partitions) > 0 && len(t.Partitions[0].Replicas) > 1 {
			names = append(names, *t.Topic)
		}
	}
	out := map[string]int{}
	if len(names) == 0 {
		return out, nil
	}
	rcs, err := adm.DescribeTopicConfigs(ctx, names...)
	if err != nil {
		return nil, err
	}
	for _, rc := range rcs {
		if errors.Is(rc.Err, kerr.UnknownTopicOrPartition) {
			continue // created or deleted just now; the broker asked has not caught up
		}
		if rc.Err != nil {
			return nil, fmt.Errorf("%s: %w", rc.Name, rc.Err)
		}
		for _, c := range rc.Configs {
			if c.Key == "min.insync.replicas" && c.Value != nil {
				n, err := strconv.Atoi(*c.Value)
				if err != nil {
					return nil, fmt.Errorf("%s: min.insync.replicas %q", rc.Name, *c.Value)
				}
				out[rc.Name] = n
			}
		}
	}
	return out, nil
}

// move is one partition to reassign: to its new replicas (one broker, its
// new leader, for a topic with one replica).
type move struct {
	topic     string
	partition int32
	replicas  []int32
}

// moved reports whether md shows every move done: the partition's
// replicas are the ones asked for, in that order.
func moved(md *kmsg.MetadataResponse, moves []move) bool {
	for _, m := range moves {
		if p := partitionOf(md, m.topic, m.partition); p == nil || !slices.Equal(p.Replicas, m.replicas) {
			return false
		}
	}
	return true
}

// reassign sends the moves and reports the first refusal.
func reassign(ctx context.Context, cl *kgo.Client, moves []move) error {
	req := kmsg.NewPtrAlterPartitionAssignmentsRequest()
	byTopic := map[string]int{}
	for _, m := range moves {
		i, ok := byTopic[m.topic]
		if !ok {
			i = len(req.Topics)
			byTopic[m.topic] = i
			rt := kmsg.NewAlterPartitionAssignmentsRequestTopic()
			rt.Topic = m.topic
			req.Topics = append(req.Topics, rt)
		}
		rp := kmsg.NewAlterPartitionAssignmentsRequestTopicPartition()
		rp.Partition, rp.Replicas = m.partition, m.replicas
		req.Topics[i].Partitions = append(req.Topics[i].Partitions, rp)
	}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return err
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return err
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				// The broker's message says why (not live, not tiered, ...);
				// not wrapped, so it is printed whole.
				msg := err.Error()
				if p.ErrorMessage != nil && *p.ErrorMessage != "" {
					msg = kerr.ErrorForCode(p.ErrorCode).(*kerr.Error).Message + ": " + *p.ErrorMessage
				}
				return fmt.Errorf("%s-%d: %s", t.Topic, p.Partition, msg)
			}
		}
	}
	return nil
}

// waitLeaders polls metadata until done says the leaders are as wanted in
// the answer of every live broker (each applies the metadata log on its
// own, within a poll or a gossip hint of the others).
func waitLeaders(ctx context.Context, cl *kgo.Client, done func(md *kmsg.MetadataResponse) bool) error {
	everyBroker := func() bool {
		md, err := clusterMetadata(ctx, cl)
		if err != nil || !done(md) {
			return false
		}
		for _, b := range md.Brokers {
			req := kmsg.NewPtrMetadataRequest()
			resp, err := cl.Broker(int(b.NodeID)).Request(ctx, req)
			if err != nil || !done(resp.(*kmsg.MetadataResponse)) {
				return false
			}
		}
		return true
	}
	for {
		if everyBroker() {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not done within the wait: %w", ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// partitionOf finds a partition in a metadata answer (nil if absent).
func partitionOf(md *kmsg.MetadataResponse, topic string, partition int32) *kmsg.MetadataResponseTopicPartition {
	for _, t := range md.Topics {
		if t.Topic != nil && *t.Topic == topic {
			for i := range t.Partitions {
				if t.Partitions[i].Partition == partition {
					return &t.Partitions[i]
				}
			}
		}
	}
	return nil
}

// epochOf is a partition's leader epoch in a metadata answer, or -1.
func epochOf(md *kmsg.MetadataResponse, topic string, partition int32) int32 {
	if p := partitionOf(md, topic, partition); p != nil {
		return p.LeaderEpoch
	}
	return -1
}

func clusterReassignCmd(g *Globals) *cobra.Command {
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "reassign TOPIC PARTITION BROKER[,BROKER...]",
		Short: "Move a partition: to new replicas (replicated topics: copy, catch up, switch, drop), or its leadership to a broker (one replica: its leader uploads everything, then hands over)",
		Args:  cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := strconv.ParseInt(args[1], 10, 32)
			if err != nil {
				return errors.New("reassign: PARTITION and BROKER are numbers")
			}
			m := move{topic: args[0], partition: int32(p)}
			for _, f := range strings.Split(args[2], ",") {
				id, err := strconv.ParseInt(strings.TrimSpace(f), 10, 32)
				if err != nil {
					return errors.New("reassign: PARTITION and BROKER are numbers (BROKER: a comma-separated list of broker ids for the new replicas)")
				}
				m.replicas = append(m.replicas, int32(id))
			}
			return g.withClient(cmd.Context(), requestTimeout+wait, func(ctx context.Context, cl *kgo.Client) error {
				if err := reassign(ctx, cl, []move{m}); err != nil {
					return g.explain("reassign", err)
				}
				if wait > 0 {
					if err := waitLeaders(ctx, cl, func(md *kmsg.MetadataResponse) bool { return moved(md, []move{m}) }); err != nil {
						return fmt.Errorf("reassign %s-%d to brokers %v: %w", m.topic, m.partition, m.replicas, err)
					}
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s-%d: moving to %s%s\n", m.topic, m.partition, brokerList(m.replicas), doneSuffix(wait))
				return nil
			})
		},
	}
	cmd.Flags().DurationVar(&wait, "wait", 0, "wait up to this long for the move to finish")
	return cmd
}

func brokerList(ids []int32) string {
	if len(ids) == 1 {
		return fmt.Sprintf("broker %d", ids[0])
	}
	return fmt.Sprintf("brokers %v", ids)
}

func doneSuffix(wait time.Duration) string {
	if wait > 0 {
		return ": done"
	}
	return " (started)"
}

func clusterDrainCmd(g *Globals) *cobra.Command {
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "drain BROKER",
		Short: "Move every partition a broker leads to the other brokers (before stopping it)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseInt(args[0], 10, 32)
			if err != nil {
				return errors.New("drain: BROKER is a broker id")
			}
			broker := int32(id)
			return g.withClient(cmd.Context(), requestTimeout+wait, func(ctx context.Context, cl *kgo.Client) error {
				md, err := clusterMetadata(ctx, cl)
				if err != nil {
					return g.explain("drain", err)
				}
				var others []int32
				known := false
				for _, b := range md.Brokers {
					if b.NodeID == broker {
						known = true
					} else {
						others = append(others, b.NodeID)
					}
				}
				sort.Slice(others, func(i, j int) bool { return others[i] < others[j] })
				switch {
				case !known:
					return fmt.Errorf("drain: broker %d is not a live broker of this cluster (see tiercel cluster brokers)", broker)
				case len(others) == 0:
					return fmt.Errorf("drain: broker %d is the only live broker; there is nowhere to move its partitions", broker)
				}
				moves, err := drainMoves(md, broker, others)
				if err != nil {
					return fmt.Errorf("drain: %w", err)
				}
				if len(moves) > 0 {
					if err := reassign(ctx, cl, moves); err != nil {
						return g.explain("drain", err)
					}
				}
				if wait > 0 {
					err := waitLeaders(ctx, cl, func(md *kmsg.MetadataResponse) bool { return moved(md, moves) })
					if err != nil {
						return fmt.Errorf("drain broker %d: %w", broker, err)
					}
				}
				fmt.Fprintf(cmd.OutOrStdout(), "broker %d: %d partitions moving to brokers %v%s\n", broker, len(moves), others, doneSuffix(wait))
				return nil
			})
		},
	}
	cmd.Flags().DurationVar(&wait, "wait", 0, "wait up to this long for the moves to finish")
	return cmd
}

// drainMoves takes broker out of every partition: a partition with one
// replica led there moves its leadership to another broker; a replicated
// one that has a replica there gets a live broker it has no replica on
// instead (the brokers taking turns).
func drainMoves(md *kmsg.MetadataResponse, broker int32, others []int32) ([]move, error) {
	var moves []move
	for _, t := range md.Topics {
		for _, p := range t.Partitions {
			if len(p.Replicas) < 2 {
				if p.Leader == broker {
					moves = append(moves, move{topic: *t.Topic, partition: p.Partition, replicas: []int32{others[len(moves)%len(others)]}})
				}
				continue
			}
			at := slices.Index(p.Replicas, broker)
			if at < 0 {
				continue
			}
			var spare []int32
			for _, o := range others {
				if !slices.Contains(p.Replicas, o) {
					spare = append(spare, o)
				}
			}
			if len(spare) == 0 {
				return nil, fmt.Errorf("%s-%d has a replica on every other live broker, so broker %d cannot be drained of it; stopping broker %d hands its leadership to an in-sync replica",
					*t.Topic, p.Partition, broker, broker)
			}
			rs := slices.Clone(p.Replicas)
			rs[at] = spare[len(moves)%len(spare)]
			moves = append(moves, move{topic: *t.Topic, partition: p.Partition, replicas: rs})
		}
	}
	return moves, nil
}

func clusterElectCmd(g *Globals) *cobra.Command {
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "elect-leaders",
		Short: "Move partitions back to their preferred leaders (kafka-leader-election --election-type preferred)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withClient(cmd.Context(), requestTimeout+wait, func(ctx context.Context, cl *kgo.Client) error {
				before, err := clusterMetadata(ctx, cl)
				if err != nil {
					return g.explain("elect-leaders", err)
				}
				req := kmsg.NewPtrElectLeadersRequest()
				req.Topics = nil // every partition
				resp, err := req.RequestWith(ctx, cl)
				if err != nil {
					return g.explain("elect-leaders", err)
				}
				type started struct {
					topic string
					p     int32
				}
				var moving []started
				for _, t := range resp.Topics {
					for _, p := range t.Partitions {
						switch p.ErrorCode {
						case 0:
							moving = append(moving, started{t.Topic, p.Partition})
						case kerr.ElectionNotNeeded.Code:
						default:
							fmt.Fprintf(cmd.ErrOrStderr(), "%s-%d: %v\n", t.Topic, p.Partition, kerr.ErrorForCode(p.ErrorCode))
						}
					}
				}
				if wait > 0 && len(moving) > 0 {
					// A move is done when the partition's leader epoch grew.
					err := waitLeaders(ctx, cl, func(md *kmsg.MetadataResponse) bool {
						for _, m := range moving {
							if epochOf(md, m.topic, m.p) <= epochOf(before, m.topic, m.p) {
								return false
							}
						}
						return true
					})
					if err != nil {
						return fmt.Errorf("elect-leaders: %w", err)
					}
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%d partitions moving to their preferred leaders%s\n", len(moving), doneSuffix(wait))
				return nil
			})
		},
	}
	cmd.Flags().DurationVar(&wait, "wait", 0, "wait up to this long for the moves to finish")
	return cmd
}

package cli

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
)

func init() { register(newGroupCmd) }

// newGroupCmd is kafka-consumer-groups (the old Consumer Offset Checker).
func newGroupCmd(g *Globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "group",
		Short: "List, describe, delete consumer groups and reset their offsets (kafka-consumer-groups)",
	}
	cmd.AddCommand(newGroupListCmd(g), newGroupDescribeCmd(g), newGroupDeleteCmd(g), newGroupResetCmd(g))
	return cmd
}

func newGroupListCmd(g *Globals) *cobra.Command {
	var states, types []string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List groups, optionally by state (Stable, Empty, ...) or type (classic, consumer)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withAdmin(cmd.Context(), func(ctx context.Context, adm *kadm.Client) error {
				var listed kadm.ListedGroups
				var err error
				if len(types) > 0 {
					listed, err = adm.ListGroupsByType(ctx, types, states...)
				} else {
					listed, err = adm.ListGroups(ctx, states...)
				}
				if err != nil {
					return g.explain("list groups", err)
				}
				type row struct {
					Group        string `json:"group"`
					State        string `json:"state"`
					ProtocolType string `json:"protocolType"`
				}
				var rows []row
				for _, l := range listed.Sorted() {
					rows = append(rows, row{l.Group, l.State, l.ProtocolType})
				}
				if g.Output == "json" {
					return printJSON(cmd.OutOrStdout(), rows)
				}
				if len(states) == 0 && len(types) == 0 {
					for _, r := range rows {
						fmt.Fprintln(cmd.OutOrStdout(), r.Group)
					}
					return nil
				}
				var cells [][]string
				for _, r := range rows {
					cells = append(cells, []string{r.Group, r.State, r.ProtocolType})
				}
				return table(cmd.OutOrStdout(), []string{"GROUP", "STATE", "PROTOCOL-TYPE"}, cells)
			})
		},
	}
	cmd.Flags().StringSliceVar(&states, "state", nil, "only groups in these states (comma separated)")
	cmd.Flags().StringSliceVar(&types, "type", nil, "only groups of these types: classic, consumer")
	return cmd
}

// groupArgs merges positional group names with --group flags.
func groupArgs(args, flags []string) ([]string, error) {
	out := append(append([]string(nil), args...), flags...)
	if len(out) == 0 {
		return nil, errors.New("name at least one group (positionally or with --group)")
	}
	return out, nil
}

// lagRow is one partition of a described group.
type lagRow struct {
	Group      string `json:"group"`
	Topic      string `json:"topic"`
	Partition  int32  `json:"partition"`
	Current    *int64 `json:"currentOffset"`
	LogEnd     int64  `json:"logEndOffset"`
	Lag        *int64 `json:"lag"`
	ConsumerID string `json:"consumerId,omitempty"`
	Host       string `json:"host,omitempty"`
	ClientID   string `json:"clientId,omitempty"`
}

type memberRow struct {
	ConsumerID string           `json:"consumerId"`
	InstanceID string           `json:"instanceId,omitempty"`
	Host       string           `json:"host"`
	ClientID   string           `json:"clientId"`
	Assignment map[string][]int `json:"assignment"`
}

type groupView struct {
	Group    string      `json:"group"`
	State    string      `json:"state"`
	Protocol string      `json:"assignmentStrategy"`
	Members  []memberRow `json:"members"`
	Offsets  []lagRow    `json:"offsets"`
}

func newGroupDescribeCmd(g *Globals) *cobra.Command {
	var groups []string
	var members, state bool
	cmd := &cobra.Command{
		Use:   "describe GROUP...",
		Short: "Show a group's committed offsets, log end offsets and lag per partition, or its members (--members) or state (--state)",
		RunE: func(cmd *cobra.Command, args []string) error {
			names, err := groupArgs(args, groups)
			if err != nil {
				return err
			}
			return g.withAdmin(cmd.Context(), func(ctx context.Context, adm *kadm.Client) error {
				views, err := describeGroups(ctx, adm, names)
				if err != nil {
					return g.explain("describe groups", err)
				}
				out := cmd.OutOrStdout()
				if g.Output == "json" {
					return printJSON(out, views)
				}
				for i, v := range views {
					if i > 0 {
						fmt.Fprintln(out)
					}
					switch {
					case state:
						if err := table(out, []string{"GROUP", "ASSIGNMENT-STRATEGY", "STATE", "#MEMBERS"}, [][]string{{v.Group, dash(v.Protocol), v.State, strconv.Itoa(len(v.Members))}}); err != nil {
							return err
						}
					case members:
						var cells [][]string
						for _, m := range v.Members {
							n := 0
							for _, ps := range m.Assignment {
								n += len(ps)
							}
							cells = append(cells, []string{v.Group, m.ConsumerID, m.Host, m.ClientID, strconv.Itoa(n), assignmentString(m.Assignment)})
						}
						if err := table(out, []string{"GROUP", "CONSUMER-ID", "HOST", "CLIENT-ID", "#PARTITIONS", "ASSIGNMENT"}, cells); err != nil {
							return err
						}
					default:
						if v.State == "Dead" {
							fmt.Fprintf(out, "Consumer group '%s' does not exist.\n", v.Group)
							continue
						}
						if len(v.Members) == 0 {
							fmt.Fprintf(out, "Consumer group '%s' has no active members.\n", v.Group)
						}
						var cells [][]string
						for _, r := range v.Offsets {
							cells = append(cells, []string{r.Group, r.Topic, strconv.Itoa(int(r.Partition)), optInt(r.Current), strconv.FormatInt(r.LogEnd, 10), optInt(r.Lag), dash(r.ConsumerID), dash(r.Host), dash(r.ClientID)})
						}
						if err := table(out, []string{"GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "CONSUMER-ID", "HOST", "CLIENT-ID"}, cells); err != nil {
							return err
						}
					}
				}
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&groups, "group", nil, "group to describe (repeatable; positional names work too)")
	f.BoolVar(&members, "members", false, "list the members and their assignments")
	f.BoolVar(&state, "state", false, "show the group's state")
	return cmd
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func optInt(v *int64) string {
	if v == nil {
		return "-"
	}
	return strconv.FormatInt(*v, 10)
}

func assignmentString(a map[string][]int) string {
	topics := make([]string, 0, len(a))
	for t := range a {
		topics = append(topics, t)
	}
	sort.Strings(topics)
	var parts []string
	for _, t := range topics {
		ps := make([]string, len(a[t]))
		for i, p := range a[t] {
			ps[i] = strconv.Itoa(p)
		}
		parts = append(parts, t+":"+strings.Join(ps, ","))
	}
	return dash(strings.Join(parts, " "))
}

// describeGroups gathers state, members and per-partition lag.
func describeGroups(ctx context.Context, adm *kadm.Client, names []string) ([]groupView, error) {
	lags, err := adm.Lag(ctx, names...)
	if err != nil {
		return nil, err
	}
	var views []groupView
	for _, name := range names {
		l, ok := lags[name]
		if !ok {
			continue
		}
		if l.State == "Dead" {
			// Perhaps a KIP-848 consumer group, which DescribeGroups does not show.
			v, found, err := describeConsumerGroup(ctx, adm, name)
			if err != nil {
				return nil, err
			}
			if found {
				views = append(views, v)
				continue
			}
		}
		if err := l.Error(); err != nil {
			return nil, fmt.Errorf("group %q: %w", name, err)
		}
		v := groupView{Group: name, State: l.State, Protocol: l.Protocol, Members: []memberRow{}, Offsets: []lagRow{}}
		for _, m := range l.Members {
			mr := memberRow{ConsumerID: m.MemberID, Host: m.ClientHost, ClientID: m.ClientID, Assignment: map[string][]int{}}
			if m.InstanceID != nil {
				mr.InstanceID = *m.InstanceID
			}
			if ca, ok := m.Assigned.AsConsumer(); ok {
				for _, t := range ca.Topics {
					for _, p := range t.Partitions {
						mr.Assignment[t.Topic] = append(mr.Assignment[t.Topic], int(p))
					}
				}
			}
			v.Members = append(v.Members, mr)
		}
		for _, ml := range l.Lag.Sorted() {
			r := lagRow{Group: name, Topic: ml.Topic, Partition: ml.Partition, LogEnd: ml.End.Offset}
			if ml.Commit.At >= 0 {
				at := ml.Commit.At
				r.Current = &at
				lag := ml.Lag
				r.Lag = &lag
			}
			if ml.Member != nil {
				r.ConsumerID, r.Host, r.ClientID = ml.Member.MemberID, ml.Member.ClientHost, ml.Member.ClientID
			}
			v.Offsets = append(v.Offsets, r)
		}
		views = append(views, v)
	}
	return views, nil
}

func newGroupDeleteCmd(g *Globals) *cobra.Command {
	var groups []string
	cmd := &cobra.Command{
		Use:   "delete GROUP...",
		Short: "Delete groups that have no active members, with their committed offsets",
		RunE: func(cmd *cobra.Command, args []string) error {
			names, err := groupArgs(args, groups)
			if err != nil {
				return err
			}
			return g.withAdmin(cmd.Context(), func(ctx context.Context, adm *kadm.Client) error {
				resps, err := adm.DeleteGroups(ctx, names...)
				if err != nil {
					return g.explain("delete groups", err)
				}
				var errs []error
				for _, name := range names {
					if r := resps[name]; r.Err != nil {
						errs = append(errs, g.explain(fmt.Sprintf("group %q", name), r.Err))
						continue
					}
					fmt.Fprintf(cmd.OutOrStdout(), "Deleted group %s\n", name)
				}
				return errors.Join(errs...)
			})
		},
	}
	cmd.Flags().StringArrayVar(&groups, "group", nil, "group to delete (repeatable)")
	return cmd
}

// resetSpec is where reset-offsets moves each partition.
type resetSpec struct {
	earliest, latest, current bool
	toOffset                  *int64
	shiftBy                   *int64
	atMillis                  *int64
}

func newGroupResetCmd(g *Globals) *cobra.Command {
	var groupID, toDatetime, byDuration string
	var topics []string
	var allTopics, execute, dryRun bool
	var spec resetSpec
	var toOffset, shiftBy int64
	cmd := &cobra.Command{
		Use:   "reset-offsets --group G (--topic T[:P,P...] | --all-topics) (--to-earliest | --to-latest | --to-offset N | --shift-by N | --to-datetime T | --by-duration D | --to-current) [--execute]",
		Short: "Move a group's committed offsets; prints the plan unless --execute (the group must have no active members)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if groupID == "" {
				return errors.New("--group is required")
			}
			if (len(topics) == 0) == !allTopics {
				return errors.New("give --topic (repeatable) or --all-topics")
			}
			if execute && dryRun {
				return errors.New("--execute and --dry-run cannot be used together")
			}
			fl := cmd.Flags()
			chosen := 0
			for _, name := range []string{"to-earliest", "to-latest", "to-current", "to-offset", "shift-by", "to-datetime", "by-duration"} {
				if fl.Changed(name) {
					chosen++
				}
			}
			if chosen != 1 {
				return errors.New("choose exactly one of --to-earliest, --to-latest, --to-current, --to-offset, --shift-by, --to-datetime, --by-duration")
			}
			if fl.Changed("to-offset") {
				spec.toOffset = &toOffset
			}
			if fl.Changed("shift-by") {
				spec.shiftBy = &shiftBy
			}
			if toDatetime != "" {
				ms, err := parseDatetime(toDatetime)
				if err != nil {
					return err
				}
				spec.atMillis = &ms
			}
			if byDuration != "" {
				d, err := time.ParseDuration(byDuration)
				if err != nil || d < 0 {
					return fmt.Errorf("--by-duration %q: want a positive Go duration such as 90m or 24h", byDuration)
				}
				ms := time.Now().Add(-d).UnixMilli()
				spec.atMillis = &ms
			}
			return g.withAdmin(cmd.Context(), func(ctx context.Context, adm *kadm.Client) error {
				return resetOffsets(ctx, cmd, g, adm, groupID, topics, allTopics, spec, execute)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&groupID, "group", "", "the group")
	f.StringArrayVar(&topics, "topic", nil, "topic, or topic:partition,partition (repeatable)")
	f.BoolVar(&allTopics, "all-topics", false, "every topic the group has offsets for")
	f.BoolVar(&spec.earliest, "to-earliest", false, "to the log start offset")
	f.BoolVar(&spec.latest, "to-latest", false, "to the log end offset")
	f.BoolVar(&spec.current, "to-current", false, "to the committed offset (or the log end where none)")
	f.Int64Var(&toOffset, "to-offset", 0, "to this offset (clamped to the log)")
	f.Int64Var(&shiftBy, "shift-by", 0, "move the committed offset by N (may be negative; clamped to the log)")
	f.StringVar(&toDatetime, "to-datetime", "", "to the first offset at or after this time (YYYY-MM-DDTHH:mm:SS[.sss], RFC 3339, or ms since the epoch)")
	f.StringVar(&byDuration, "by-duration", "", "to the first offset at or after now minus this duration (Go syntax: 90m, 24h)")
	f.BoolVar(&execute, "execute", false, "apply the plan (default: only print it)")
	f.BoolVar(&dryRun, "dry-run", false, "only print the plan (the default)")
	return cmd
}

func parseDatetime(s string) (int64, error) {
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		return ms, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.000", "2006-01-02T15:04:05", "2006-01-02T15:04:05.000Z07:00"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t.UnixMilli(), nil
		}
	}
	return 0, fmt.Errorf("--to-datetime %q: want YYYY-MM-DDTHH:mm:SS[.sss], RFC 3339 or milliseconds since the epoch", s)
}

func resetOffsets(ctx context.Context, cmd *cobra.Command, g *Globals, adm *kadm.Client, groupID string, topicArgs []string, allTopics bool, spec resetSpec, execute bool) error {
	described, err := adm.DescribeGroups(ctx, groupID)
	if err != nil {
		return g.explain(fmt.Sprintf("group %q", groupID), err)
	}
	if d := described[groupID]; d.Err == nil && d.State != "Empty" && d.State != "Dead" {
		return fmt.Errorf("group %q: offsets can only be reset while the group is inactive, but it is %s with %d members", groupID, d.State, len(d.Members))
	}
	if cg, found, err := describeConsumerGroup(ctx, adm, groupID); err == nil && found && len(cg.Members) > 0 {
		return fmt.Errorf("group %q: offsets can only be reset while the group is inactive, but it is %s with %d members", groupID, cg.State, len(cg.Members))
	}
	committed, err := adm.FetchOffsets(ctx, groupID)
	if err != nil {
		return g.explain(fmt.Sprintf("group %q", groupID), err)
	}
	want := map[string][]int32{} // nil slice = every partition
	if allTopics {
		for t := range committed.KOffsets() {
			want[t] = nil
		}
	}
	for _, arg := range topicArgs {
		name, parts, found := strings.Cut(arg, ":")
		if !found {
			want[name] = nil
			continue
		}
		for _, p := range strings.Split(parts, ",") {
			n, err := strconv.ParseInt(strings.TrimSpace(p), 10, 32)
			if err != nil {
				return fmt.Errorf("--topic %q: want topic or topic:partition,partition", arg)
			}
			want[name] = append(want[name], int32(n))
		}
	}
	var topics []string
	for t := range want {
		topics = append(topics, t)
	}
	sort.Strings(topics)
	starts, err := adm.ListStartOffsets(ctx, topics...)
	if err != nil {
		return g.explain("list offsets", err)
	}
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		return g.explain("list offsets", err)
	}
	var at kadm.ListedOffsets
	if spec.atMillis != nil {
		if at, err = adm.ListOffsetsAfterMilli(ctx, *spec.atMillis, topics...); err != nil {
			return g.explain("list offsets", err)
		}
	}
	plan := kadm.Offsets{}
	type row struct {
		Group     string `json:"group"`
		Topic     string `json:"topic"`
		Partition int32  `json:"partition"`
		NewOffset int64  `json:"newOffset"`
	}
	var rows []row
	for _, t := range topics {
		if len(ends[t]) == 0 {
			return fmt.Errorf("topic %q: UNKNOWN_TOPIC_OR_PARTITION: This server does not host this topic-partition.", t)
		}
		parts := want[t]
		if parts == nil {
			for p := range ends[t] {
				parts = append(parts, p)
			}
			sort.Slice(parts, func(i, j int) bool { return parts[i] < parts[j] })
		}
		for _, p := range parts {
			end, ok := ends.Lookup(t, p)
			if !ok || end.Err != nil {
				return fmt.Errorf("topic %q has no partition %d", t, p)
			}
			start, _ := starts.Lookup(t, p)
			cur := int64(-1)
			if c, ok := committed.Lookup(t, p); ok && c.Err == nil {
				cur = c.At
			}
			var target int64
			switch {
			case spec.earliest:
				target = start.Offset
			case spec.latest:
				target = end.Offset
			case spec.current:
				target = cur
				if target < 0 {
					target = end.Offset
				}
			case spec.toOffset != nil:
				target = *spec.toOffset
			case spec.shiftBy != nil:
				base := cur
				if base < 0 {
					base = start.Offset
				}
				target = base + *spec.shiftBy
			case spec.atMillis != nil:
				target = end.Offset
				if o, ok := at.Lookup(t, p); ok && o.Err == nil && o.Offset >= 0 {
					target = o.Offset
				}
			}
			// Out-of-range targets are clamped to the log, as Kafka does.
			target = max(start.Offset, min(end.Offset, target))
			plan.Add(kadm.Offset{Topic: t, Partition: p, At: target, LeaderEpoch: -1})
			rows = append(rows, row{groupID, t, p, target})
		}
	}
	if execute {
		resps, err := adm.CommitOffsets(ctx, groupID, plan)
		if err != nil {
			return g.explain(fmt.Sprintf("group %q", groupID), err)
		}
		if err := resps.Error(); err != nil {
			return g.explain(fmt.Sprintf("group %q", groupID), err)
		}
	} else {
		fmt.Fprintln(cmd.ErrOrStderr(), "Dry run: nothing was changed; add --execute to apply.")
	}
	if g.Output == "json" {
		return printJSON(cmd.OutOrStdout(), rows)
	}
	var cells [][]string
	for _, r := range rows {
		cells = append(cells, []string{r.Group, r.Topic, strconv.Itoa(int(r.Partition)), strconv.FormatInt(r.NewOffset, 10)})
	}
	return table(cmd.OutOrStdout(), []string{"GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"}, cells)
}

// describeConsumerGroup describes a KIP-848 group and computes its lag.
func describeConsumerGroup(ctx context.Context, adm *kadm.Client, name string) (groupView, bool, error) {
	described, err := adm.DescribeConsumerGroups(ctx, name)
	if err != nil {
		return groupView{}, false, err
	}
	d, ok := described[name]
	if !ok || d.Err != nil {
		return groupView{}, false, nil
	}
	v := groupView{Group: name, State: d.State, Protocol: d.AssignorName, Members: []memberRow{}, Offsets: []lagRow{}}
	owner := map[string]map[int32]kadm.ConsumerGroupMember{}
	for _, m := range d.Members {
		mr := memberRow{ConsumerID: m.MemberID, Host: m.ClientHost, ClientID: m.ClientID, Assignment: map[string][]int{}}
		if m.InstanceID != nil {
			mr.InstanceID = *m.InstanceID
		}
		for t, ps := range m.Assignment {
			for p := range ps {
				mr.Assignment[t] = append(mr.Assignment[t], int(p))
				if owner[t] == nil {
					owner[t] = map[int32]kadm.ConsumerGroupMember{}
				}
				owner[t][p] = m
			}
			sort.Ints(mr.Assignment[t])
		}
		v.Members = append(v.Members, mr)
	}
	committed, err := adm.FetchOffsets(ctx, name)
	if err != nil {
		return groupView{}, false, err
	}
	type tp struct {
		t string
		p int32
	}
	set := map[tp]bool{}
	var topics []string
	add := func(t string, p int32) {
		if !set[tp{t, p}] {
			set[tp{t, p}] = true
			topics = append(topics, t)
		}
	}
	committed.Each(func(o kadm.OffsetResponse) { add(o.Topic, o.Partition) })
	for t, ps := range owner {
		for p := range ps {
			add(t, p)
		}
	}
	if len(topics) > 0 {
		ends, err := adm.ListEndOffsets(ctx, topics...)
		if err != nil {
			return groupView{}, false, err
		}
		for k := range set {
			r := lagRow{Group: name, Topic: k.t, Partition: k.p, LogEnd: -1}
			if e, ok := ends.Lookup(k.t, k.p); ok && e.Err == nil {
				r.LogEnd = e.Offset
			}
			if c, ok := committed.Lookup(k.t, k.p); ok && c.Err == nil && c.At >= 0 {
				at, lag := c.At, max(0, r.LogEnd-c.At)
				r.Current, r.Lag = &at, &lag
			}
			if m, ok := owner[k.t][k.p]; ok {
				r.ConsumerID, r.Host, r.ClientID = m.MemberID, m.ClientHost, m.ClientID
			}
			v.Offsets = append(v.Offsets, r)
		}
	}
	sort.Slice(v.Offsets, func(i, j int) bool {
		if v.Offsets[i].Topic != v.Offsets[j].Topic {
			return v.Offsets[i].Topic < v.Offsets[j].Topic
		}
		return v.Offsets[i].Partition < v.Offsets[j].Partition
	})
	return v, true, nil
}

package cli

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

func init() { register(newTopicCmd) }

// newTopicCmd is kafka-topics: create, list, describe, alter, delete.
func newTopicCmd(g *Globals) *cobra.Command {
	cmd := &cobra.Command{Use: "topic", Short: "Create, list, describe, alter and delete topics (kafka-topics)"}
	cmd.AddCommand(topicCreateCmd(g), topicListCmd(g), topicDescribeCmd(g), topicAlterCmd(g), topicDeleteCmd(g))
	return cmd
}

// topicArgs accepts the topic positionally or as --topic, as kafka-topics does.
func topicArgs(args []string, flag string) []string {
	if flag != "" {
		return append([]string{flag}, args...)
	}
	return args
}

func parseConfigs(kvs []string) (map[string]*string, error) {
	out := map[string]*string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--config %q: want key=value", kv)
		}
		out[k] = kadm.StringPtr(v)
	}
	return out, nil
}

func topicCreateCmd(g *Globals) *cobra.Command {
	var partitions int32
	var replication int16
	var configs []string
	var ifNotExists bool
	var topicFlag string
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a topic",
		RunE: func(cmd *cobra.Command, args []string) error {
			names := topicArgs(args, topicFlag)
			if len(names) != 1 {
				return errors.New("give one topic name")
			}
			cfgs, err := parseConfigs(configs)
			if err != nil {
				return err
			}
			return g.withAdmin(cmd.Context(), func(ctx context.Context, adm *kadm.Client) error {
				r, err := adm.CreateTopic(ctx, partitions, replication, cfgs, names[0])
				if r.Err != nil {
					err = r.Err
				}
				if ifNotExists && errors.Is(err, kerr.TopicAlreadyExists) {
					err = nil
				}
				if err != nil {
					return g.explain(fmt.Sprintf("topic %q", names[0]), err)
				}
				if g.Output == "json" {
					return printJSON(cmd.OutOrStdout(), map[string]any{"topic": names[0], "id": r.ID.String(), "partitions": r.NumPartitions})
				}
				fmt.Fprintf(cmd.OutOrStdout(), "Created topic %s.\n", names[0])
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&topicFlag, "topic", "", "topic name (instead of the argument)")
	f.Int32Var(&partitions, "partitions", -1, "number of partitions (-1: the broker's num.partitions)")
	f.Int16Var(&replication, "replication-factor", -1, "replication factor (-1: the broker's default)")
	f.StringArrayVar(&configs, "config", nil, "topic config key=value (repeatable)")
	f.BoolVar(&ifNotExists, "if-not-exists", false, "succeed if the topic already exists")
	return cmd
}

func topicListCmd(g *Globals) *cobra.Command {
	var excludeInternal bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List topics",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withAdmin(cmd.Context(), func(ctx context.Context, adm *kadm.Client) error {
				var topics kadm.TopicDetails
				var err error
				if excludeInternal {
					topics, err = adm.ListTopics(ctx)
				} else {
					topics, err = adm.ListTopicsWithInternal(ctx)
				}
				if err != nil {
					return g.explain("list topics", err)
				}
				names := topics.Names()
				sort.Strings(names)
				if g.Output == "json" {
					return printJSON(cmd.OutOrStdout(), names)
				}
				for _, n := range names {
					fmt.Fprintln(cmd.OutOrStdout(), n)
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&excludeInternal, "exclude-internal", false, "leave out internal topics")
	return cmd
}

type partitionView struct {
	Partition int32   `json:"partition"`
	Leader    int32   `json:"leader"`
	Replicas  []int32 `json:"replicas"`
	ISR       []int32 `json:"isr"`
}

type topicView struct {
	Topic      string            `json:"topic"`
	ID         string            `json:"id"`
	Partitions []partitionView   `json:"partitions"`
	Configs    map[string]string `json:"configs"`
}

func topicDescribeCmd(g *Globals) *cobra.Command {
	var topicFlag string
	cmd := &cobra.Command{
		Use:   "describe [NAME...]",
		Short: "Describe topics: partitions, leaders, replicas and non-default configs",
		RunE: func(cmd *cobra.Command, args []string) error {
			names := topicArgs(args, topicFlag)
			return g.withAdmin(cmd.Context(), func(ctx context.Context, adm *kadm.Client) error {
				details, err := adm.ListTopics(ctx, names...)
				if err != nil {
					return g.explain("describe topics", err)
				}
				var views []topicView
				for _, n := range details.Names() {
					d := details[n]
					if d.Err != nil {
						return g.explain(fmt.Sprintf("topic %q", n), d.Err)
					}
					v := topicView{Topic: n, ID: d.ID.String(), Configs: map[string]string{}}
					for _, p := range d.Partitions.Sorted() {
						v.Partitions = append(v.Partitions, partitionView{Partition: p.Partition, Leader: p.Leader, Replicas: p.Replicas, ISR: p.ISR})
					}
					rc, err := adm.DescribeTopicConfigs(ctx, n)
					if err == nil && len(rc) == 1 {
						for _, c := range rc[0].Configs {
							if c.Source == 1 { // DYNAMIC_TOPIC_CONFIG: set on this topic
								v.Configs[c.Key] = c.MaybeValue()
							}
						}
					}
					views = append(views, v)
				}
				sort.Slice(views, func(i, j int) bool { return views[i].Topic < views[j].Topic })
				if g.Output == "json" {
					return printJSON(cmd.OutOrStdout(), views)
				}
				w := cmd.OutOrStdout()
				for _, v := range views {
					var cfg []string
					for k, val := range v.Configs {
						cfg = append(cfg, k+"="+val)
					}
					sort.Strings(cfg)
					fmt.Fprintf(w, "Topic: %s\tTopicId: %s\tPartitionCount: %d\tConfigs: %s\n", v.Topic, v.ID, len(v.Partitions), strings.Join(cfg, ","))
					for _, p := range v.Partitions {
						fmt.Fprintf(w, "\tTopic: %s\tPartition: %d\tLeader: %d\tReplicas: %s\tIsr: %s\n", v.Topic, p.Partition, p.Leader, ints(p.Replicas), ints(p.ISR))
					}
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&topicFlag, "topic", "", "topic name (instead of the argument)")
	return cmd
}

func ints(v []int32) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.Itoa(int(x))
	}
	return strings.Join(s, ",")
}

func topicAlterCmd(g *Globals) *cobra.Command {
	var partitions int
	var configs, deletes []string
	var topicFlag string
	cmd := &cobra.Command{
		Use:   "alter NAME",
		Short: "Add partitions or change topic configs",
		RunE: func(cmd *cobra.Command, args []string) error {
			names := topicArgs(args, topicFlag)
			if len(names) != 1 {
				return errors.New("give one topic name")
			}
			if partitions == 0 && len(configs) == 0 && len(deletes) == 0 {
				return errors.New("nothing to change: give --partitions, --config or --delete-config")
			}
			return g.withAdmin(cmd.Context(), func(ctx context.Context, adm *kadm.Client) error {
				what := fmt.Sprintf("topic %q", names[0])
				if partitions > 0 {
					r, err := adm.UpdatePartitions(ctx, partitions, names[0])
					if err == nil {
						err = r[names[0]].Err
					}
					if err != nil {
						return g.explain(what, err)
					}
				}
				var alters []kadm.AlterConfig
				cfgs, err := parseConfigs(configs)
				if err != nil {
					return err
				}
				for k, v := range cfgs {
					alters = append(alters, kadm.AlterConfig{Op: kadm.SetConfig, Name: k, Value: v})
				}
				for _, k := range deletes {
					alters = append(alters, kadm.AlterConfig{Op: kadm.DeleteConfig, Name: k})
				}
				if len(alters) > 0 {
					r, err := adm.AlterTopicConfigs(ctx, alters, names[0])
					if err == nil && len(r) == 1 {
						err = r[0].Err
					}
					if err != nil {
						return g.explain(what, err)
					}
				}
				fmt.Fprintf(cmd.OutOrStdout(), "Altered topic %s.\n", names[0])
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&topicFlag, "topic", "", "topic name (instead of the argument)")
	f.IntVar(&partitions, "partitions", 0, "new total number of partitions (can only grow)")
	f.StringArrayVar(&configs, "config", nil, "set a topic config key=value (repeatable)")
	f.StringArrayVar(&deletes, "delete-config", nil, "remove a topic config override (repeatable)")
	return cmd
}

func topicDeleteCmd(g *Globals) *cobra.Command {
	var ifExists bool
	var topicFlag string
	cmd := &cobra.Command{
		Use:   "delete NAME...",
		Short: "Delete topics",
		RunE: func(cmd *cobra.Command, args []string) error {
			names := topicArgs(args, topicFlag)
			if len(names) == 0 {
				return errors.New("give at least one topic name")
			}
			return g.withAdmin(cmd.Context(), func(ctx context.Context, adm *kadm.Client) error {
				r, err := adm.DeleteTopics(ctx, names...)
				if err != nil {
					return g.explain("delete topics", err)
				}
				for _, n := range names {
					e := r[n].Err
					if ifExists && errors.Is(e, kerr.UnknownTopicOrPartition) {
						continue
					}
					if e != nil {
						return g.explain(fmt.Sprintf("topic %q", n), e)
					}
					fmt.Fprintf(cmd.OutOrStdout(), "Deleted topic %s.\n", n)
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&ifExists, "if-exists", false, "succeed if a topic does not exist")
	cmd.Flags().StringVar(&topicFlag, "topic", "", "topic name (instead of the argument)")
	return cmd
}

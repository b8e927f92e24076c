package cli

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// pausedConfig is the cluster-wide dynamic config the brokers act on
// (docs/design.md, "Pause").
const pausedConfig = "tiercel.cluster.paused"

func clusterPauseCmd(g *Globals) *cobra.Command {
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "pause",
		Short: "Park every partition in the object store so that every broker can be stopped (scale to zero)",
		Long: "Sets " + pausedConfig + "=true cluster-wide: each leader rolls and uploads its partitions and lets go of them.\n" +
			"When this returns, every broker may be stopped and its disk dropped; brokers started later on the\n" +
			"same bucket (even with empty disks) resume the cluster with all its data and group offsets.\n" +
			"Topics with remote.storage.enable=false cannot be parked: they stay on their brokers.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withClient(cmd.Context(), requestTimeout+wait, func(ctx context.Context, cl *kgo.Client) error {
				adm := kadm.NewClient(cl)
				already, err := isPaused(ctx, adm)
				if err != nil {
					return g.explain("pause", err)
				}
				// Parking raises a partition's leader epoch; an offline
				// partition (its broker down) has no leader either, but
				// keeps its epoch. Epochs before, to tell them apart.
				before, err := everyBrokersView(ctx, cl)
				if err != nil {
					return g.explain("pause", err)
				}
				if !already {
					if offline := offlineIn(before); len(offline) > 0 {
						return fmt.Errorf("pause: %d partitions are offline (their broker is down: start it first, so that it can upload them): %v", len(offline), offline)
					}
				}
				if err := setPaused(ctx, adm, true); err != nil {
					return g.explain("pause", err)
				}
				local, err := untieredTopics(ctx, adm)
				if err != nil {
					return g.explain("pause", err)
				}
				var parked, stay int
				var waiting []string
				err = waitLeaders(ctx, cl, func(md *kmsg.MetadataResponse) bool {
					parked, stay, waiting = 0, 0, nil
					for _, t := range md.Topics {
						for _, p := range t.Partitions {
							name := fmt.Sprintf("%s-%d", *t.Topic, p.Partition)
							old, known := before[name]
							switch {
							case p.Leader >= 0 && local[*t.Topic]:
								stay++
							case p.Leader < 0 && (!known || p.LeaderEpoch > old.LeaderEpoch || already && old.Leader < 0):
								parked++
							default:
								waiting = append(waiting, name)
							}
						}
					}
					return len(waiting) == 0
				})
				if err != nil {
					sort.Strings(waiting)
					return fmt.Errorf("pause: %d partitions not parked yet (%w), e.g. %v: their leader is still uploading them, or is down; see tiercel cluster status and run pause again", len(waiting), err, waiting[:min(10, len(waiting))])
				}
				w := cmd.OutOrStdout()
				fmt.Fprintf(w, "cluster paused: %d partitions parked in the object store; every broker may be stopped\n", parked)
				if stay > 0 {
					names := make([]string, 0, len(local))
					for n := range local {
						names = append(names, n)
					}
					sort.Strings(names)
					fmt.Fprintf(w, "%d partitions of topics with remote.storage.enable=false stay on their brokers: %v\n", stay, names)
				}
				return nil
			})
		},
	}
	cmd.Flags().DurationVar(&wait, "wait", 5*time.Minute, "wait up to this long for every partition to be parked")
	return cmd
}

func clusterResumeCmd(g *Globals) *cobra.Command {
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "resume",
		Short: "Let the live brokers adopt the parked partitions again (starting a broker does this too)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withClient(cmd.Context(), requestTimeout+wait, func(ctx context.Context, cl *kgo.Client) error {
				if err := setPaused(ctx, kadm.NewClient(cl), false); err != nil {
					return g.explain("resume", err)
				}
				if wait > 0 {
					err := waitLeaders(ctx, cl, func(md *kmsg.MetadataResponse) bool {
						for _, t := range md.Topics {
							for _, p := range t.Partitions {
								if p.Leader < 0 {
									return false
								}
							}
						}
						return true
					})
					if err != nil {
						return fmt.Errorf("resume: partitions still without a leader (%w); see tiercel cluster status", err)
					}
				}
				fmt.Fprintf(cmd.OutOrStdout(), "cluster resumed%s\n", doneSuffix(wait))
				return nil
			})
		},
	}
	cmd.Flags().DurationVar(&wait, "wait", time.Minute, "wait up to this long for every partition to have a leader")
	return cmd
}

// everyBrokersView is each partition as the live brokers see it, asked one
// by one (each applies the metadata and hears of failures on its own): a
// partition any of them reports without a leader is taken as such.
func everyBrokersView(ctx context.Context, cl *kgo.Client) (map[string]kmsg.MetadataResponseTopicPartition, error) {
	md, err := clusterMetadata(ctx, cl)
	if err != nil {
		return nil, err
	}
	out := map[string]kmsg.MetadataResponseTopicPartition{}
	add := func(md *kmsg.MetadataResponse) {
		for _, t := range md.Topics {
			for _, p := range t.Partitions {
				name := fmt.Sprintf("%s-%d", *t.Topic, p.Partition)
				if old, ok := out[name]; !ok || p.Leader < 0 && old.Leader >= 0 {
					out[name] = p
				}
			}
		}
	}
	add(md)
	for _, b := range md.Brokers {
		resp, err := cl.Broker(int(b.NodeID)).Request(ctx, kmsg.NewPtrMetadataRequest())
		if err != nil {
			// A broker just stopped may still be listed: its partitions
			// show as offline in the others' views, which is the answer.
			continue
		}
		add(resp.(*kmsg.MetadataResponse))
	}
	return out, nil
}

// offlineIn names the partitions without a leader.
func offlineIn(view map[string]kmsg.MetadataResponseTopicPartition) []string {
	var offline []string
	for name, p := range view {
		if p.Leader < 0 {
			offline = append(offline, name)
		}
	}
	sort.Strings(offline)
	return offline
}

// isPaused reads the cluster-wide paused config.
func isPaused(ctx context.Context, adm *kadm.Client) (bool, error) {
	rcs, err := adm.DescribeBrokerConfigs(ctx)
	if err != nil {
		return false, err
	}
	for _, rc := range rcs {
		for _, c := range rc.Configs {
			if c.Key == pausedConfig && c.MaybeValue() == "true" {
				return true, nil
			}
		}
	}
	return false, nil
}

// setPaused sets or deletes the cluster-wide paused config.
func setPaused(ctx context.Context, adm *kadm.Client, on bool) error {
	op := kadm.AlterConfig{Op: kadm.DeleteConfig, Name: pausedConfig}
	if on {
		v := "true"
		op = kadm.AlterConfig{Op: kadm.SetConfig, Name: pausedConfig, Value: &v}
	}
	rs, err := adm.AlterBrokerConfigs(ctx, []kadm.AlterConfig{op})
	if err != nil {
		return err
	}
	for _, r := range rs {
		if r.Err != nil {
			return r.Err
		}
	}
	return nil
}

// untieredTopics names the topics whose partitions cannot be parked.
func untieredTopics(ctx context.Context, adm *kadm.Client) (map[string]bool, error) {
	topics, err := adm.ListTopics(ctx)
	if err != nil {
		return nil, err
	}
	if len(topics) == 0 {
		return map[string]bool{}, nil
	}
	rcs, err := adm.DescribeTopicConfigs(ctx, topics.Names()...)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, rc := range rcs {
		for _, c := range rc.Configs {
			if c.Key == "remote.storage.enable" && c.MaybeValue() == "false" {
				out[rc.Name] = true
			}
		}
	}
	return out, nil
}

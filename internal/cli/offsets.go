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
)

func init() { register(newOffsetsCmd) }

// newOffsetsCmd is GetOffsetShell: the offset of each partition at a time.
func newOffsetsCmd(g *Globals) *cobra.Command {
	var topic, at, parts string
	cmd := &cobra.Command{
		Use:   "offsets --topic T",
		Short: "Print partition offsets: earliest, latest, max-timestamp or at a time (GetOffsetShell)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if topic == "" {
				return errors.New("--topic is required")
			}
			want := map[int32]bool{}
			for _, p := range strings.Split(parts, ",") {
				if p = strings.TrimSpace(p); p == "" {
					continue
				}
				n, err := strconv.ParseInt(p, 10, 32)
				if err != nil {
					return fmt.Errorf("--partitions %q: want numbers separated by commas", parts)
				}
				want[int32(n)] = true
			}
			return g.withAdmin(cmd.Context(), func(ctx context.Context, adm *kadm.Client) error {
				var listed kadm.ListedOffsets
				var err error
				switch at {
				case "latest", "-1":
					listed, err = adm.ListEndOffsets(ctx, topic)
				case "earliest", "-2":
					listed, err = adm.ListStartOffsets(ctx, topic)
				case "max-timestamp", "-3":
					listed, err = adm.ListMaxTimestampOffsets(ctx, topic)
				default:
					ms, perr := strconv.ParseInt(at, 10, 64)
					if perr != nil || ms < 0 {
						return fmt.Errorf("--time %q: want earliest, latest, max-timestamp or milliseconds since the epoch", at)
					}
					listed, err = adm.ListOffsetsAfterMilli(ctx, ms, topic)
				}
				if err != nil {
					return g.explain(fmt.Sprintf("topic %q", topic), err)
				}
				if len(listed[topic]) == 0 {
					return fmt.Errorf("topic %q: UNKNOWN_TOPIC_OR_PARTITION: This server does not host this topic-partition.", topic)
				}
				type row struct {
					Topic     string `json:"topic"`
					Partition int32  `json:"partition"`
					Offset    int64  `json:"offset"`
				}
				var rows []row
				for p, o := range listed[topic] {
					if len(want) > 0 && !want[p] {
						continue
					}
					if o.Err != nil {
						return g.explain(fmt.Sprintf("topic %q partition %d", topic, p), o.Err)
					}
					rows = append(rows, row{topic, p, o.Offset})
				}
				sort.Slice(rows, func(i, j int) bool { return rows[i].Partition < rows[j].Partition })
				if g.Output == "json" {
					return printJSON(cmd.OutOrStdout(), rows)
				}
				for _, r := range rows {
					fmt.Fprintf(cmd.OutOrStdout(), "%s:%d:%d\n", r.Topic, r.Partition, r.Offset)
				}
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&topic, "topic", "", "topic")
	f.StringVar(&at, "time", "latest", "earliest (-2), latest (-1), max-timestamp (-3), or milliseconds since the epoch")
	f.StringVar(&parts, "partitions", "", "only these partitions, comma separated")
	return cmd
}

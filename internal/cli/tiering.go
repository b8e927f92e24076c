package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/tiercel/tiercel/broker"
	"github.com/tiercel/tiercel/objstore"
	"github.com/tiercel/tiercel/tiering"
)

func init() { register(newTieringCmd) }

func newTieringCmd(g *Globals) *cobra.Command {
	cmd := &cobra.Command{Use: "tiering", Short: "Inspect tiering to the object store and collect its garbage"}
	cmd.AddCommand(tieringStatusCmd(g), tieringGCCmd(g))
	return cmd
}

// tieringStatusCmd asks a broker's admin HTTP address (serve --http-addr)
// for every tiered partition's state.
func tieringStatusCmd(g *Globals) *cobra.Command {
	var httpAddr string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Per partition: local and remote offset ranges, bytes waiting for upload, last upload",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := g.validateOutput(); err != nil {
				return err
			}
			hc := &http.Client{Timeout: 10 * time.Second}
			resp, err := hc.Get("http://" + httpAddr + "/v1/tiering")
			if err != nil {
				return fmt.Errorf("broker admin address %s: %v (is the broker running with --http-addr %s?)", httpAddr, err, httpAddr)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("broker admin address %s answered %s", httpAddr, resp.Status)
			}
			var parts []broker.TieringPartition
			if err := json.NewDecoder(resp.Body).Decode(&parts); err != nil {
				return fmt.Errorf("broker admin address %s: %v", httpAddr, err)
			}
			if g.Output == "json" {
				return printJSON(c.OutOrStdout(), parts)
			}
			rows := make([][]string, 0, len(parts))
			for _, p := range parts {
				last := "-"
				if !p.LastUpload.IsZero() {
					last = p.LastUpload.UTC().Format(time.RFC3339)
				}
				rows = append(rows, []string{p.Topic, strconv.Itoa(int(p.Partition)),
					fmt.Sprintf("[%d, %d)", p.LocalStart, p.LocalEnd), fmt.Sprintf("[%d, %d)", p.RemoteStart, p.RemoteEnd),
					strconv.Itoa(p.RemoteSegments), strconv.FormatInt(p.RemoteBytes, 10), strconv.FormatInt(p.PendingBytes, 10), last, p.LastError})
			}
			return table(c.OutOrStdout(), []string{"TOPIC", "PARTITION", "LOCAL", "REMOTE", "SEGMENTS", "REMOTE-BYTES", "PENDING-BYTES", "LAST-UPLOAD", "ERROR"}, rows)
		},
	}
	cmd.Flags().StringVar(&httpAddr, "http-addr", envOr("TIERCEL_HTTP_ADDR", "localhost:9644"), "the broker's admin HTTP address (serve --http-addr)")
	return cmd
}

// tieringGCCmd deletes objects no manifest names: uploads whose manifest
// update never landed, deleted topics, fenced leaders' uploads.
func tieringGCCmd(g *Globals) *cobra.Command {
	var grace time.Duration
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "gc OBJSTORE-URL",
		Short: "Delete segment objects that no partition manifest names (older than --grace)",
		Long: `Delete segment objects that no partition manifest names and that were
uploaded more than --grace ago, and everything of topics the catalog no
longer has. --dry-run lists them without deleting. The grace protects an
upload whose manifest update is still on its way; keep it well above the
longest upload.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := g.validateOutput(); err != nil {
				return err
			}
			b, err := objstore.Open(c.Context(), args[0])
			if err != nil {
				return err
			}
			defer b.Close()
			b = objstore.WithRetries(b, objstore.DefaultRetryPolicy)
			res, err := tiering.CollectAll(c.Context(), b, func(ctx context.Context) (map[string]bool, error) { return broker.LiveTopicIDs(ctx, b) },
				time.Now().UnixMilli(), grace.Milliseconds(), dryRun)
			if err != nil {
				return fmt.Errorf("%s: %v", args[0], err)
			}
			if g.Output == "json" {
				return printJSON(c.OutOrStdout(), map[string]any{"dryRun": dryRun, "partitions": res.Partitions, "orphans": res.Deleted})
			}
			verb := "deleted"
			if dryRun {
				verb = "would delete"
			}
			for _, k := range res.Deleted {
				fmt.Fprintf(c.OutOrStdout(), "%s %s\n", verb, k)
			}
			fmt.Fprintf(c.OutOrStdout(), "%d partitions examined, %d orphaned objects %s\n", res.Partitions, len(res.Deleted), verb)
			return nil
		},
	}
	cmd.Flags().DurationVar(&grace, "grace", time.Hour, "leave objects younger than this")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "list what would be deleted, delete nothing")
	return cmd
}

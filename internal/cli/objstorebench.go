package cli

import (
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tiercel/tiercel/bench"
	"github.com/tiercel/tiercel/objstore"
	s3store "github.com/tiercel/tiercel/objstore/s3"
)

// objstoreBenchCmd measures a store against the machine's ceiling (plain
// files on local disk) and, for S3 URLs, against the bare AWS SDK on the
// same endpoint, so the overhead of the backend is a ratio in one run.
func objstoreBenchCmd(g *Globals) *cobra.Command {
	var sizes, conc, rawDir string
	var perWorker, ranges int
	cmd := &cobra.Command{
		Use:   "bench URL",
		Short: "PUT/GET throughput and ranged-GET latency of a store, with a local-disk ceiling and (S3) a plain-SDK baseline",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			o := bench.ObjOptions{PerWorker: perWorker, Ranges: ranges}
			for _, s := range strings.Split(sizes, ",") {
				n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
				if err != nil || n <= 0 {
					return fmt.Errorf("--sizes-mib %q: want MiB counts separated by commas", sizes)
				}
				o.Sizes = append(o.Sizes, n<<20)
			}
			for _, s := range strings.Split(conc, ",") {
				n, err := strconv.Atoi(strings.TrimSpace(s))
				if err != nil || n <= 0 {
					return fmt.Errorf("--concurrency %q: want counts separated by commas", conc)
				}
				o.Concurrency = append(o.Concurrency, n)
			}
			b, err := objstore.Open(c.Context(), args[0])
			if err != nil {
				return err
			}
			defer b.Close()
			stores := []bench.Store{{Name: "tiercel", Bucket: b}}
			if u, _ := url.Parse(args[0]); u != nil && u.Scheme == "s3" {
				cfg := s3store.FromURL(u)
				if cfg.Prefix != "" {
					fmt.Fprintln(os.Stderr, "note: the plain-SDK baseline writes at the bucket root")
				}
				plain, err := bench.NewPlainS3(c.Context(), cfg.Endpoint, cfg.Region, cfg.Bucket)
				if err != nil {
					return err
				}
				withCRC, err := bench.NewPlainS3(c.Context(), cfg.Endpoint, cfg.Region, cfg.Bucket)
				if err != nil {
					return err
				}
				withCRC.Checksums = true
				stores = append(stores, bench.Store{Name: "plain-sdk", Bucket: plain}, bench.Store{Name: "plain-sdk-crc", Bucket: withCRC})
			}
			if rawDir == "" {
				if rawDir, err = os.MkdirTemp(".", "tiercel-objbench-"); err != nil {
					return err
				}
				defer os.RemoveAll(rawDir)
			}
			stores = append(stores, bench.Store{Name: "raw-disk", Bucket: bench.RawDisk{Dir: rawDir}})
			results, err := bench.Objstore(c.Context(), stores, o)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			if g.Output == "json" {
				return printJSON(c.OutOrStdout(), results)
			}
			for _, r := range results {
				fmt.Fprintln(c.OutOrStdout(), r.String())
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&sizes, "sizes-mib", "8,64", "object sizes in MiB")
	f.StringVar(&conc, "concurrency", "1,4,16", "concurrent requests")
	f.IntVar(&perWorker, "per-worker", 2, "objects each concurrent worker writes and reads per cell")
	f.IntVar(&ranges, "ranges", 200, "ranged GETs of 1 MiB for the latency figure")
	f.StringVar(&rawDir, "raw-dir", "", "directory for the local-disk ceiling (default: a temporary one here)")
	return cmd
}

// objstoreMbCmd creates an S3 bucket (for first-time setup and benchmarks).
func objstoreMbCmd(g *Globals) *cobra.Command {
	return &cobra.Command{Use: "mb s3://BUCKET?endpoint=...", Short: "Create an S3 bucket", Args: cobra.ExactArgs(1), RunE: func(c *cobra.Command, args []string) error {
		u, err := url.Parse(args[0])
		if err != nil || u.Scheme != "s3" || u.Host == "" {
			return fmt.Errorf("%q: want s3://BUCKET[?endpoint=...]", args[0])
		}
		b, err := s3store.New(c.Context(), s3store.FromURL(u))
		if err != nil {
			return err
		}
		if err := b.CreateBucket(c.Context()); err != nil {
			return fmt.Errorf("%s: %w", args[0], err)
		}
		fmt.Fprintf(c.OutOrStdout(), "created bucket %s\n", u.Host)
		return nil
	}}
}

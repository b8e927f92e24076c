package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/tiercel/tiercel/bench"
)

func init() { register(newBenchCmd) }

// newBenchCmd is kafka-producer-perf-test and kafka-consumer-perf-test,
// plus the machine-limit probes and the whole `make bench` suite.
func newBenchCmd(g *Globals) *cobra.Command {
	cmd := &cobra.Command{Use: "bench", Short: "Measure the broker and this machine's limits (perf-test tools)"}
	w := &bench.Workload{}
	var rateMB float64
	// The suite's rate has its own variable: sharing the workloads' made
	// its default (20) theirs too, pacing `bench produce` at 20 MB/s.
	var suiteRateMB float64
	workload := func(c *cobra.Command) {
		f := c.Flags()
		f.StringVar(&w.Topic, "topic", "tiercel-bench", "topic (created if missing)")
		f.Int32Var(&w.Partitions, "partitions", 6, "partitions of a created topic")
		f.IntVar(&w.RecordSize, "record-size", 1024, "record value size in bytes")
		f.Int64Var(&w.Records, "num-records", 0, "records to produce or consume (produce: 0 = use --duration)")
		f.DurationVar(&w.Duration, "duration", 10*time.Second, "how long to produce")
		f.StringVar(&w.Acks, "acks", "all", "all, 1 or 0")
		f.StringVar(&w.Compression, "compression", "none", "none, gzip, snappy, lz4, zstd")
		f.Float64Var(&rateMB, "rate-mb", 0, "fixed rate in MB/s (0: as fast as possible; e2e requires it)")
		f.IntVar(&w.InFlight, "max-in-flight", 1, "produce requests pipelined per broker; above 1 turns idempotence off (kgo allows one with it)")
	}
	print := func(c *cobra.Command, r bench.Result) error {
		if g.Output == "json" {
			return printJSON(c.OutOrStdout(), r)
		}
		fmt.Fprintln(c.OutOrStdout(), r.String())
		return nil
	}
	run := func(name string, f func(*cobra.Command) (bench.Result, error)) *cobra.Command {
		c := &cobra.Command{Use: name, Args: cobra.NoArgs, RunE: func(c *cobra.Command, _ []string) error {
			w.Brokers, w.Progress, w.RateBytes = g.brokers(), os.Stderr, rateMB*1e6
			if err := bench.EnsureTopic(c.Context(), *w); err != nil {
				return g.explain("topic "+w.Topic, err)
			}
			r, err := f(c)
			if err != nil {
				return g.explain(name, err)
			}
			return print(c, r)
		}}
		workload(c)
		return c
	}
	produce := run("produce", func(c *cobra.Command) (bench.Result, error) { return bench.Produce(c.Context(), *w) })
	produce.Short = "Produce as fast as allowed; throughput and acknowledgement latency"
	consume := run("consume", func(c *cobra.Command) (bench.Result, error) {
		if w.Records <= 0 {
			return bench.Result{}, fmt.Errorf("--num-records is required")
		}
		return bench.Consume(c.Context(), *w)
	})
	consume.Short = "Consume --num-records from the start of the topic"
	e2e := run("e2e", func(c *cobra.Command) (bench.Result, error) {
		if w.RateBytes <= 0 {
			return bench.Result{}, fmt.Errorf("--rate-mb is required")
		}
		return bench.EndToEnd(c.Context(), *w)
	})
	e2e.Short = "End-to-end latency from produce to consume at a fixed rate"

	var dir string
	disk := &cobra.Command{Use: "disk", Short: "Raw fdatasync'd sequential-append bandwidth of a directory's disk", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			big, err := bench.DiskAppend(dir, 1<<20, 3*time.Second)
			if err != nil {
				return err
			}
			small, err := bench.DiskAppend(dir, 64<<10, 2*time.Second)
			if err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "fdatasync'd appends in %s: 1 MiB %.1f MiB/s, 64 KiB %.1f MiB/s\n", dir, big, small)
			return nil
		}}
	disk.Flags().StringVar(&dir, "dir", ".", "directory whose disk to measure")
	loop := &cobra.Command{Use: "loopback", Short: "Loopback TCP throughput", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			v, err := bench.Loopback(2 * time.Second)
			if err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "loopback TCP: %.1f MiB/s\n", v)
			return nil
		}}
	so := bench.SuiteOptions{}
	suite := &cobra.Command{Use: "suite", Short: "Everything `make bench` reports: limits, then a broker it starts, as ratios", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if so.Binary == "" {
				exe, err := os.Executable()
				if err != nil {
					return err
				}
				so.Binary = exe
			}
			so.E2ERate = suiteRateMB * 1e6
			so.Progress = os.Stderr
			rep, err := bench.RunSuite(c.Context(), so)
			if err != nil {
				return err
			}
			if g.Output == "json" {
				fmt.Fprintln(c.OutOrStdout(), rep.JSON())
				return nil
			}
			fmt.Fprint(c.OutOrStdout(), rep.Summary())
			return nil
		}}
	sf := suite.Flags()
	sf.StringVar(&so.Binary, "binary", "", "tiercel binary to run as the broker (default: this one)")
	sf.StringVar(&so.Dir, "dir", ".", "directory for the broker's data (the disk measured)")
	sf.DurationVar(&so.ProduceDuration, "duration", 20*time.Second, "length of the produce run")
	sf.DurationVar(&so.E2EDuration, "e2e-duration", 15*time.Second, "length of the end-to-end run")
	sf.Float64Var(&suiteRateMB, "rate-mb", 20, "end-to-end rate in MB/s")
	sf.StringVar(&so.ProfileDir, "profile-dir", "", "save a CPU profile of the broker during produce here")
	sf.Float64Var(&so.RecoveryGiB, "recovery-gib", 10, "fill the log to this many GiB, kill -9 the broker and time its restart (0 skips)")
	sf.IntVar(&so.IdlePartitions, "idle-partitions", 10000, "create this many idle partitions and report RSS per partition (0 skips)")
	sf.BoolVar(&so.Groups, "groups", true, "also run the consumer-group benchmarks (rebalance, commits/s, offsets load time)")
	sf.StringVar(&so.VersityGW, "versitygw", defaultVersityGW(), "versitygw binary for the tiering benchmarks (empty skips them)")
	var groupsDir string
	groups := &cobra.Command{Use: "groups", Short: "The consumer-group benchmarks alone, on a broker it starts", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return withBenchDir(groupsDir, "tiercel-bench-groups-", func(exe, dir string, logf func(string, ...any)) error {
				gr, err := bench.RunGroups(c.Context(), exe, dir, logf)
				if err != nil {
					return err
				}
				rep := bench.Report{Groups: &gr}
				if g.Output == "json" {
					fmt.Fprintln(c.OutOrStdout(), rep.JSON())
					return nil
				}
				fmt.Fprint(c.OutOrStdout(), rep.GroupSummary())
				return nil
			})
		}}
	groups.Flags().StringVar(&groupsDir, "dir", ".", "directory for the broker's data")
	var tierDir, versity string
	tier := &cobra.Command{Use: "tiering", Short: "The tiering benchmarks alone, against versitygw, on brokers it starts", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return withBenchDir(tierDir, "tiercel-bench-tiering-", func(exe, dir string, logf func(string, ...any)) error {
				tr, err := bench.RunTiering(c.Context(), exe, versity, dir, logf)
				if err != nil {
					return err
				}
				if g.Output == "json" {
					return printJSON(c.OutOrStdout(), tr)
				}
				fmt.Fprint(c.OutOrStdout(), tr.Summary())
				return nil
			})
		}}
	tier.Flags().StringVar(&tierDir, "dir", ".", "directory for the brokers' data and versitygw's files")
	tier.Flags().StringVar(&versity, "versitygw", defaultVersityGW(), "versitygw binary (scripts/install-test-tools.sh installs it)")
	var clusterDir, clusterVersity string
	var clusterIdle int
	clusterCmd := &cobra.Command{Use: "cluster", Short: "The control-plane benchmarks alone: three brokers on versitygw", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return withBenchDir(clusterDir, "tiercel-bench-cluster-", func(exe, dir string, logf func(string, ...any)) error {
				cr, err := bench.RunCluster(c.Context(), exe, clusterVersity, dir, clusterIdle, logf)
				if err != nil {
					return err
				}
				if g.Output == "json" {
					return printJSON(c.OutOrStdout(), cr)
				}
				fmt.Fprint(c.OutOrStdout(), cr.Summary())
				return nil
			})
		}}
	clusterCmd.Flags().StringVar(&clusterDir, "dir", ".", "directory for the brokers' data and versitygw's files")
	clusterCmd.Flags().StringVar(&clusterVersity, "versitygw", defaultVersityGW(), "versitygw binary (scripts/install-test-tools.sh installs it)")
	clusterCmd.Flags().IntVar(&clusterIdle, "idle-partitions", 10000, "partitions for the idle-request measurement")
	var replDir, replVersity string
	var replFor time.Duration
	var replSets []string
	replication := &cobra.Command{Use: "replication", Short: "The replication benchmarks alone: three brokers, RF 3 against RF 1, failover and catch-up", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return withBenchDir(replDir, "tiercel-bench-replication-", func(exe, dir string, logf func(string, ...any)) error {
				rr, err := bench.RunReplication(c.Context(), exe, replVersity, dir, replFor, replSets, logf)
				if err != nil {
					return err
				}
				if g.Output == "json" {
					return printJSON(c.OutOrStdout(), rr)
				}
				fmt.Fprint(c.OutOrStdout(), rr.Summary())
				return nil
			})
		}}
	replication.Flags().StringVar(&replDir, "dir", ".", "directory for the brokers' data and versitygw's files")
	replication.Flags().StringVar(&replVersity, "versitygw", defaultVersityGW(), "versitygw binary (scripts/install-test-tools.sh installs it)")
	replication.Flags().DurationVar(&replFor, "duration", 10*time.Second, "how long each produce measurement runs")
	replication.Flags().StringArrayVar(&replSets, "broker-set", nil, "a broker setting for every broker, key=value (repeatable), e.g. log.flush.policy=interval")
	cmd.AddCommand(produce, consume, e2e, disk, loop, suite, groups, tier, clusterCmd, replication)
	return cmd
}

// withBenchDir runs a benchmark that starts its own brokers from this
// binary, in a temporary directory under parent removed afterwards, with
// progress on stderr.
func withBenchDir(parent, prefix string, run func(exe, dir string, logf func(string, ...any)) error) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp(parent, prefix)
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	return run(exe, dir, func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) })
}

// defaultVersityGW is where scripts/install-test-tools.sh puts versitygw.
func defaultVersityGW() string {
	tools := os.Getenv("TIERCEL_TOOLS")
	if tools == "" {
		home, _ := os.UserHomeDir()
		tools = filepath.Join(home, ".cache", "tiercel-tools")
	}
	return filepath.Join(tools, "bin", "versitygw")
}

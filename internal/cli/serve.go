package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/tiercel/tiercel/broker"
	"github.com/tiercel/tiercel/internal/config"
	"github.com/tiercel/tiercel/internal/telemetry"
)

func init() { register(newServeCmd) }

// serveFlags are the shortcuts for the most used broker configs; every
// other config is reachable through --set, TIERCEL_* or --config.
type serveFlags struct {
	configFile     string
	sets           []string
	dataDir        string
	kafkaAddr      string
	advertisedAddr string
	nodeID         string
	httpAddr       string
	objstore       string
	logFormat      string
	logLevel       string
	gossipAddr     string
	seeds          string
	rack           string
	region         string
	shutdownAfter  time.Duration
}

// flagConfigNames maps each shortcut flag to the config it sets.
var flagConfigNames = map[string]string{
	"data-dir":        "log.dirs",
	"kafka-addr":      "listeners",
	"advertised-addr": "advertised.listeners",
	"node-id":         "node.id",
	"http-addr":       "tiercel.http.addr",
	"objstore":        "tiercel.objstore.url",
	"log-format":      "tiercel.log.format",
	"log-level":       "tiercel.log.level",
	"gossip-addr":     "tiercel.gossip.listener",
	"seeds":           "tiercel.gossip.seeds",
	"rack":            "broker.rack",
	"region":          "tiercel.region",
}

func newServeCmd(_ *Globals) *cobra.Command {
	f := &serveFlags{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run a broker",
		Long: `Run a Tiercel broker.

Configuration uses Kafka's names (log.retention.ms, num.partitions, ...) and is
read, in order of precedence, from the flags below, --set key=value,
TIERCEL_* environment variables (TIERCEL_LOG_RETENTION_MS=... sets
log.retention.ms), a YAML file given with --config, and the defaults.
See docs/configuration.md for every config.

The HTTP address serves /healthz, /readyz, /metrics (Prometheus) and
/debug/pprof/. SIGTERM or SIGINT drains: stop accepting connections, finish
in-flight requests, flush the logs, exit 0.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runServe(cmd, f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.configFile, "config", "", "YAML file of broker configs (a map of config name to value)")
	fl.StringArrayVar(&f.sets, "set", nil, "set any broker config, key=value (repeatable)")
	fl.StringVar(&f.dataDir, "data-dir", "./data", "data directory (log.dirs)")
	fl.StringVar(&f.kafkaAddr, "kafka-addr", "localhost:9092", "Kafka listen address, host:port (listeners)")
	fl.StringVar(&f.advertisedAddr, "advertised-addr", "", "address clients are told to connect to (advertised.listeners); default: the listen address")
	fl.StringVar(&f.nodeID, "node-id", "1", "broker id (node.id)")
	fl.StringVar(&f.httpAddr, "http-addr", "localhost:9644", "health, metrics and pprof HTTP address (tiercel.http.addr); empty disables")
	fl.StringVar(&f.objstore, "objstore", "", "object store URL (tiercel.objstore.url): s3://, gs://, azblob://, file://; default a filesystem store under the data directory")
	fl.StringVar(&f.logFormat, "log-format", "text", "log format: text or json (tiercel.log.format)")
	fl.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn, error (tiercel.log.level)")
	fl.StringVar(&f.gossipAddr, "gossip-addr", "", "host:port for gossip with the other brokers (tiercel.gossip.listener); empty = a cluster of one")
	fl.StringVar(&f.seeds, "seeds", "", "gossip addresses of brokers to join, host:port,... (tiercel.gossip.seeds)")
	fl.StringVar(&f.rack, "rack", "", "rack or zone of this broker (broker.rack)")
	fl.StringVar(&f.region, "region", "", "region of this broker (tiercel.region)")
	fl.DurationVar(&f.shutdownAfter, "shutdown-timeout", 30*time.Second, "how long a drain may take before the broker exits anyway")
	return cmd
}

func runServe(cmd *cobra.Command, f *serveFlags) error {
	flags := map[string]string{}
	cmd.Flags().Visit(func(fl *pflag.Flag) {
		if name, ok := flagConfigNames[fl.Name]; ok {
			flags[name] = fl.Value.String()
		}
	})
	cfg, err := config.Load(config.LoadOptions{File: f.configFile, Env: os.Environ(), Sets: f.sets, Flags: flags})
	if err != nil {
		return err
	}
	logger, err := newLogger(cmd.ErrOrStderr(), cfg.Get("tiercel.log.format"), cfg.Get("tiercel.log.level"))
	if err != nil {
		return err
	}
	prov, err := telemetry.NewProvider()
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	metrics, err := telemetry.NewBrokerMetrics(prov.Meter("tiercel/broker"))
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	b, err := broker.New(broker.Options{Config: cfg, Logger: logger, Metrics: metrics, ObjstoreMeter: prov.Meter("tiercel/objstore")})
	if err != nil {
		return err
	}

	var httpSrv *http.Server
	if addr := cfg.Get("tiercel.http.addr"); addr != "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			_ = b.Shutdown(context.Background())
			return fmt.Errorf("http listener %s: %w", addr, err)
		}
		httpSrv = &http.Server{Handler: adminMux(b, prov), ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = httpSrv.Serve(ln) }()
		logger.Info("http listening", "addr", ln.Addr().String())
	}
	if err := b.Start(); err != nil {
		_ = b.Shutdown(context.Background())
		return err
	}
	logger.Info("kafka listening", "addr", b.Addr(), "data_dir", cfg.Get("log.dirs"), "node_id", b.NodeID())

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	var failed bool
	select {
	case <-ctx.Done():
	case <-b.Failed():
		failed = true
		logger.Error("stopping: another process took this broker's lease (it was paused or cut off for longer than tiercel.lease.ttl.ms); start it again")
	}
	logger.Info("draining")
	drainCtx, cancel := context.WithTimeout(context.Background(), f.shutdownAfter)
	defer cancel()
	if httpSrv != nil {
		_ = httpSrv.Shutdown(drainCtx)
	}
	err = b.Shutdown(drainCtx)
	_ = prov.Shutdown(drainCtx)
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if failed {
		return errors.New("the broker lost its lease to another process")
	}
	logger.Info("stopped")
	return nil
}

func adminMux(b *broker.Broker, prov *telemetry.Provider) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !b.Ready() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ready\n")
	})
	mux.Handle("/metrics", prov.Handler())
	mux.HandleFunc("/v1/tiering", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(b.TieringStatus())
	})
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(strings.ToUpper(level))); err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch format {
	case "", "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, errors.New("log format " + format + ": want text or json")
}

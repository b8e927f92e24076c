// Package cli builds the tiercel command tree. Each subcommand lives in its
// own file and registers itself, so cmd/tiercel stays wiring only.
package cli

import (
	"fmt"
	"os"
	"sort"

	"github.com/spf13/cobra"
)

// Globals are the flags every client subcommand shares.
type Globals struct {
	BootstrapServer string // --bootstrap-server, as Kafka's tools name it
	Output          string // --output table|json
}

var constructors []func(g *Globals) *cobra.Command

// register adds a subcommand constructor; called from init in each file.
func register(f func(g *Globals) *cobra.Command) { constructors = append(constructors, f) }

// NewRoot returns the tiercel command with every registered subcommand.
func NewRoot() *cobra.Command {
	g := &Globals{}
	root := &cobra.Command{
		Use:           "tiercel",
		Short:         "Tiercel: a Kafka-compatible event-streaming broker with tiered object storage",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	pf := root.PersistentFlags()
	pf.StringVar(&g.BootstrapServer, "bootstrap-server", envOr("TIERCEL_BOOTSTRAP_SERVER", "localhost:9092"), "Kafka address(es) of the cluster, comma separated")
	pf.StringVarP(&g.Output, "output", "o", "table", "output format: table or json")
	var cmds []*cobra.Command
	for _, f := range constructors {
		cmds = append(cmds, f(g))
	}
	sort.Slice(cmds, func(i, j int) bool { return cmds[i].Name() < cmds[j].Name() })
	root.AddCommand(cmds...)
	return root
}

// Execute runs the command line and returns the process exit code. Errors
// are printed as one line on stderr.
func Execute() int {
	if err := NewRoot().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "tiercel:", err)
		return 1
	}
	return 0
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

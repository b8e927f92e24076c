package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// requestTimeout bounds how long a tool waits on an unreachable or slow
// broker before saying so, rather than retrying for minutes as kgo would.
const requestTimeout = 10 * time.Second

func (g *Globals) brokers() []string {
	var out []string
	for _, s := range strings.Split(g.BootstrapServer, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// newClient builds a kgo client for the tools.
func (g *Globals) newClient(opts ...kgo.Opt) (*kgo.Client, error) {
	base := []kgo.Opt{
		kgo.SeedBrokers(g.brokers()...),
		kgo.ClientID("tiercel-cli"),
		kgo.DialTimeout(5 * time.Second),
		kgo.RequestRetries(2),
		kgo.RetryTimeout(requestTimeout),
	}
	cl, err := kgo.NewClient(append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("bootstrap server %q: %w", g.BootstrapServer, err)
	}
	return cl, nil
}

func (g *Globals) newAdmin() (*kadm.Client, func(), error) {
	cl, err := g.newClient()
	if err != nil {
		return nil, nil, err
	}
	return kadm.NewClient(cl), cl.Close, nil
}

func timeoutCtx(parent context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(parent, requestTimeout)
}

// explain turns an error into one line a person can act on: the Kafka
// error name and description, or the connection failure plainly.
func (g *Globals) explain(what string, err error) error {
	if err == nil {
		return nil
	}
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return fmt.Errorf("%s: %s: %s", what, ke.Message, ke.Description)
	}
	var ne net.Error
	var oe *net.OpError
	if errors.As(err, &oe) || errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) || strings.Contains(err.Error(), "connection refused") {
		return fmt.Errorf("%s: cannot reach a broker at %s: %v", what, g.BootstrapServer, rootCause(err))
	}
	return fmt.Errorf("%s: %v", what, err)
}

func rootCause(err error) error {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err
		}
		err = next
	}
}

// withAdmin runs f with an admin client and a bounded context, closing both.
func (g *Globals) withAdmin(parent context.Context, f func(ctx context.Context, adm *kadm.Client) error) error {
	adm, done, err := g.newAdmin()
	if err != nil {
		return err
	}
	defer done()
	ctx, cancel := timeoutCtx(parent)
	defer cancel()
	return f(ctx, adm)
}

package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(newConsumeCmd) }

// formatter is kafka-console-consumer's DefaultMessageFormatter settings.
type formatter struct {
	key, timestamp, partition, offset, headers bool
	keySep                                     string
}

func parseFormatter(props []string) (formatter, error) {
	f := formatter{keySep: "\t"}
	for _, kv := range props {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return f, fmt.Errorf("--property %q: want key=value", kv)
		}
		on := v == "true"
		switch k {
		case "print.key":
			f.key = on
		case "print.timestamp":
			f.timestamp = on
		case "print.partition":
			f.partition = on
		case "print.offset":
			f.offset = on
		case "print.headers":
			f.headers = on
		case "key.separator":
			f.keySep = v
		default:
			return f, fmt.Errorf("--property %q: unknown property", k)
		}
	}
	return f, nil
}

func (f formatter) line(r *kgo.Record) string {
	var parts []string
	if f.timestamp {
		parts = append(parts, "CreateTime:"+strconv.FormatInt(r.Timestamp.UnixMilli(), 10))
	}
	if f.partition {
		parts = append(parts, "Partition:"+strconv.Itoa(int(r.Partition)))
	}
	if f.offset {
		parts = append(parts, "Offset:"+strconv.FormatInt(r.Offset, 10))
	}
	if f.headers {
		hs := make([]string, len(r.Headers))
		for i, h := range r.Headers {
			hs[i] = h.Key + ":" + string(h.Value)
		}
		if len(hs) == 0 {
			parts = append(parts, "NO_HEADERS")
		} else {
			parts = append(parts, strings.Join(hs, ","))
		}
	}
	if f.key {
		if r.Key == nil {
			parts = append(parts, "null")
		} else {
			parts = append(parts, string(r.Key))
		}
	}
	parts = append(parts, string(r.Value))
	return strings.Join(parts, f.keySep)
}

func newConsumeCmd(g *Globals) *cobra.Command {
	var topic, group, offset, timestamp, isolation string
	var fromBeginning bool
	var partition int32
	var maxMessages int
	var timeoutMs int64
	var props []string
	cmd := &cobra.Command{
		Use:   "consume --topic T",
		Short: "Print records of a topic (kafka-console-consumer)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if topic == "" {
				return errors.New("--topic is required")
			}
			f, err := parseFormatter(props)
			if err != nil {
				return err
			}
			start, err := startOffset(offset, timestamp, fromBeginning)
			if err != nil {
				return err
			}
			opts := []kgo.Opt{kgo.ConsumeResetOffset(start)}
			switch isolation {
			case "read_uncommitted":
			case "read_committed":
				opts = append(opts, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
			default:
				return fmt.Errorf("--isolation-level %q: want read_committed or read_uncommitted", isolation)
			}
			switch {
			case partition >= 0 && group != "":
				return errors.New("--partition and --group cannot be used together")
			case partition >= 0:
				opts = append(opts, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {partition: start}}))
			default:
				opts = append(opts, kgo.ConsumeTopics(topic))
				if group != "" {
					opts = append(opts, kgo.ConsumerGroup(group))
				}
			}
			cl, err := g.newClient(opts...)
			if err != nil {
				return err
			}
			defer cl.Close()
			if err := requireTopic(cmd.Context(), g, cl, topic); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			err = consumeLoop(ctx, cmd.OutOrStdout(), g, cl, f, maxMessages, time.Duration(timeoutMs)*time.Millisecond)
			if group != "" {
				// As kafka-console-consumer on close: commit what was printed
				// (records are polled only up to --max-messages).
				cctx, cancel := timeoutCtx(cmd.Context())
				defer cancel()
				if cerr := cl.CommitUncommittedOffsets(cctx); cerr != nil && err == nil {
					err = g.explain(fmt.Sprintf("group %q: commit", group), cerr)
				}
			}
			return err
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&topic, "topic", "", "topic to read")
	fl.BoolVar(&fromBeginning, "from-beginning", false, "start at the earliest offset (default: the latest)")
	fl.StringVar(&offset, "offset", "", "start offset: a number, earliest or latest")
	fl.StringVar(&timestamp, "timestamp", "", "start at the first record at or after this time (ms since the epoch or RFC 3339)")
	fl.Int32Var(&partition, "partition", -1, "read only this partition")
	fl.StringVar(&group, "group", "", "consumer group to join (commits offsets)")
	fl.IntVar(&maxMessages, "max-messages", 0, "exit after this many records (0: no limit)")
	fl.Int64Var(&timeoutMs, "timeout-ms", 0, "exit when no record arrives for this long (0: wait forever)")
	fl.StringVar(&isolation, "isolation-level", "read_uncommitted", "read_committed or read_uncommitted")
	fl.StringArrayVar(&props, "property", nil, "print.key, print.timestamp, print.partition, print.offset, print.headers, key.separator (as kafka-console-consumer)")
	return cmd
}

// requireTopic fails fast on a topic that does not exist, instead of
// waiting for it forever.
func requireTopic(ctx context.Context, g *Globals, cl *kgo.Client, topic string) error {
	c, cancel := timeoutCtx(ctx)
	defer cancel()
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(c, cl)
	if err != nil {
		return g.explain("metadata", err)
	}
	if len(resp.Topics) == 1 && resp.Topics[0].ErrorCode != 0 {
		return g.explain(fmt.Sprintf("topic %q", topic), kerr.ErrorForCode(resp.Topics[0].ErrorCode))
	}
	return nil
}

func startOffset(offset, timestamp string, fromBeginning bool) (kgo.Offset, error) {
	switch {
	case timestamp != "":
		if ms, err := strconv.ParseInt(timestamp, 10, 64); err == nil {
			return kgo.NewOffset().AfterMilli(ms), nil
		}
		t, err := time.Parse(time.RFC3339, timestamp)
		if err != nil {
			return kgo.Offset{}, fmt.Errorf("--timestamp %q: want milliseconds since the epoch or RFC 3339", timestamp)
		}
		return kgo.NewOffset().AfterMilli(t.UnixMilli()), nil
	case offset == "earliest" || (offset == "" && fromBeginning):
		return kgo.NewOffset().AtStart(), nil
	case offset == "latest" || offset == "":
		return kgo.NewOffset().AtEnd(), nil
	}
	n, err := strconv.ParseInt(offset, 10, 64)
	if err != nil || n < 0 {
		return kgo.Offset{}, fmt.Errorf("--offset %q: want a non-negative number, earliest or latest", offset)
	}
	return kgo.NewOffset().At(n), nil
}

type jsonRecord struct {
	Topic     string         `json:"topic"`
	Partition int32          `json:"partition"`
	Offset    int64          `json:"offset"`
	Timestamp int64          `json:"timestamp"`
	Key       any            `json:"key"`
	Value     any            `json:"value"`
	Headers   map[string]any `json:"headers,omitempty"`
}

func consumeLoop(ctx context.Context, w io.Writer, g *Globals, cl *kgo.Client, f formatter, maxMessages int, idle time.Duration) error {
	seen := 0
	for maxMessages == 0 || seen < maxMessages {
		pollCtx, cancel := ctx, context.CancelFunc(func() {})
		if idle > 0 {
			pollCtx, cancel = context.WithTimeout(ctx, idle)
		}
		fs := cl.PollRecords(pollCtx, maxMessages-seen)
		idleExpired := pollCtx.Err() != nil && fs.NumRecords() == 0
		cancel()
		if ctx.Err() != nil {
			return nil // Ctrl-C: a clean exit
		}
		if idleExpired {
			fmt.Fprintf(os.Stderr, "no record for %v; processed %d messages\n", idle, seen)
			return nil
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) {
			if ferr == nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				ferr = g.explain(fmt.Sprintf("topic %q partition %d", t, p), err)
			}
		})
		if ferr != nil {
			return ferr
		}
		for _, r := range fs.Records() {
			if g.Output == "json" {
				jr := jsonRecord{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp.UnixMilli(), Key: jsonBytes(r.Key), Value: jsonBytes(r.Value)}
				if len(r.Headers) > 0 {
					jr.Headers = map[string]any{}
					for _, h := range r.Headers {
						jr.Headers[h.Key] = jsonBytes(h.Value)
					}
				}
				if err := jsonLine(w, jr); err != nil {
					return err
				}
			} else {
				fmt.Fprintln(w, f.line(r))
			}
			seen++
		}
	}
	return nil
}

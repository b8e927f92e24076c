package cli

import (
	"bufio"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"
)

func init() { register(newProduceCmd) }

// consoleProps are kafka-console-producer's --property settings.
type consoleProps struct {
	parseKey, parseHeaders                   bool
	keySep, headersDelim, headersSep, hdrKey string
}

func parseProducerProps(props []string) (consoleProps, error) {
	p := consoleProps{keySep: "\t", headersDelim: "\t", headersSep: ",", hdrKey: ":"}
	for _, kv := range props {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return p, fmt.Errorf("--property %q: want key=value", kv)
		}
		switch k {
		case "parse.key":
			p.parseKey = v == "true"
		case "key.separator":
			p.keySep = v
		case "parse.headers":
			p.parseHeaders = v == "true"
		case "headers.delimiter":
			p.headersDelim = v
		case "headers.separator":
			p.headersSep = v
		case "headers.key.separator":
			p.hdrKey = v
		default:
			return p, fmt.Errorf("--property %q: unknown property", k)
		}
	}
	return p, nil
}

// parseLine splits one input line as the console producer does:
// [headers<delim>][key<sep>]value.
func (p consoleProps) parseLine(line string) (*kgo.Record, error) {
	r := &kgo.Record{}
	if p.parseHeaders {
		hs, rest, ok := strings.Cut(line, p.headersDelim)
		if !ok {
			return nil, fmt.Errorf("no headers delimiter %q in %q", p.headersDelim, line)
		}
		line = rest
		for _, h := range strings.Split(hs, p.headersSep) {
			if h == "" {
				continue
			}
			k, v, _ := strings.Cut(h, p.hdrKey)
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: k, Value: []byte(v)})
		}
	}
	if p.parseKey {
		k, v, ok := strings.Cut(line, p.keySep)
		if !ok {
			return nil, fmt.Errorf("no key separator %q in %q", p.keySep, line)
		}
		r.Key, line = []byte(k), v
	}
	r.Value = []byte(line)
	return r, nil
}

func compressionCodec(name string) (kgo.CompressionCodec, error) {
	switch name {
	case "", "none":
		return kgo.NoCompression(), nil
	case "gzip":
		return kgo.GzipCompression(), nil
	case "snappy":
		return kgo.SnappyCompression(), nil
	case "lz4":
		return kgo.Lz4Compression(), nil
	case "zstd":
		return kgo.ZstdCompression(), nil
	}
	return kgo.CompressionCodec{}, fmt.Errorf("--compression-type %q: want none, gzip, snappy, lz4 or zstd", name)
}

func acksOpt(acks string) (kgo.Acks, bool, error) {
	switch acks {
	case "all", "-1":
		return kgo.AllISRAcks(), true, nil
	case "1":
		return kgo.LeaderAck(), false, nil
	case "0":
		return kgo.NoAck(), false, nil
	}
	return kgo.Acks{}, false, fmt.Errorf("--acks %q: want all, -1, 1 or 0", acks)
}

func newProduceCmd(g *Globals) *cobra.Command {
	var topic, acks, compression string
	var props, headers []string
	var partition int32
	var each bool
	cmd := &cobra.Command{
		Use:   "produce --topic T",
		Short: "Write lines from stdin as records (kafka-console-producer)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if topic == "" {
				return errors.New("--topic is required")
			}
			p, err := parseProducerProps(props)
			if err != nil {
				return err
			}
			codec, err := compressionCodec(compression)
			if err != nil {
				return err
			}
			ack, idempotent, err := acksOpt(acks)
			if err != nil {
				return err
			}
			var fixed []kgo.RecordHeader
			for _, h := range headers {
				k, v, ok := strings.Cut(h, "=")
				if !ok {
					return fmt.Errorf("--header %q: want key=value", h)
				}
				fixed = append(fixed, kgo.RecordHeader{Key: k, Value: []byte(v)})
			}
			opts := []kgo.Opt{kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(ack), kgo.ProducerBatchCompression(codec), kgo.RecordDeliveryTimeout(requestTimeout)}
			if !idempotent {
				opts = append(opts, kgo.DisableIdempotentWrite())
			}
			if partition >= 0 {
				opts = append(opts, kgo.RecordPartitioner(kgo.ManualPartitioner()))
			}
			cl, err := g.newClient(opts...)
			if err != nil {
				return err
			}
			defer cl.Close()
			return produceLines(cmd, g, cl, p, fixed, partition, each)
		},
	}
	f := cmd.Flags()
	f.StringVar(&topic, "topic", "", "topic to write to")
	f.StringArrayVar(&props, "property", nil, "parse.key, key.separator, parse.headers, headers.delimiter, headers.separator, headers.key.separator (as kafka-console-producer)")
	f.StringArrayVar(&headers, "header", nil, "a header key=value added to every record (repeatable)")
	f.StringVar(&acks, "acks", "all", "all (-1), 1 or 0")
	f.StringVar(&compression, "compression-type", "none", "none, gzip, snappy, lz4 or zstd")
	f.Int32Var(&partition, "partition", -1, "write every record to this partition (default: by key)")
	f.BoolVar(&each, "sync", false, "wait for each record's acknowledgement before reading the next line")
	return cmd
}

func produceLines(cmd *cobra.Command, g *Globals, cl *kgo.Client, p consoleProps, fixed []kgo.RecordHeader, partition int32, each bool) error {
	ctx := cmd.Context()
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	sc := bufio.NewScanner(cmd.InOrStdin())
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for n := 1; sc.Scan(); n++ {
		r, err := p.parseLine(sc.Text())
		if err != nil {
			return fmt.Errorf("line %d: %v", n, err)
		}
		r.Headers = append(r.Headers, fixed...)
		if partition >= 0 {
			r.Partition = partition
		}
		if each {
			if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
				return g.explain(fmt.Sprintf("line %d", n), err)
			}
			continue
		}
		wg.Add(1)
		line := n
		cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
			defer wg.Done()
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = g.explain(fmt.Sprintf("line %d", line), err)
				}
				mu.Unlock()
			}
		})
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading stdin: %w", err)
	}
	wg.Wait()
	return firstErr
}

package cli

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tiercel/tiercel/internal/recordbatch"
	"github.com/tiercel/tiercel/objstore"
	"github.com/tiercel/tiercel/tiering"
)

func init() { register(newLogCmd) }

func newLogCmd(g *Globals) *cobra.Command {
	cmd := &cobra.Command{Use: "log", Short: "Inspect log segment files"}
	cmd.AddCommand(logDumpCmd(g))
	return cmd
}

// logDumpCmd is kafka-dump-log: it prints the batches of a .log segment
// (or the entries of a .index / .timeindex file) and reports a corrupt or
// torn tail with its position.
func logDumpCmd(g *Globals) *cobra.Command {
	var printData, deep bool
	var store string
	cmd := &cobra.Command{
		Use:   "dump PATH...",
		Short: "Print the batches of a segment file, or the entries of an index (kafka-dump-log); with --objstore, of tiered segment objects",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var bucket objstore.Bucket
			if store != "" {
				b, err := objstore.Open(cmd.Context(), store)
				if err != nil {
					return err
				}
				defer b.Close()
				bucket = objstore.WithRetries(b, objstore.DefaultRetryPolicy)
			}
			for _, path := range args {
				fmt.Fprintf(cmd.OutOrStdout(), "Dumping %s\n", path)
				var err error
				if bucket != nil {
					err = dumpTiered(cmd.Context(), cmd.OutOrStdout(), g.Output == "json", bucket, path, printData, deep || printData)
				} else {
					err = dumpLocal(cmd.OutOrStdout(), g.Output == "json", path, printData, deep)
				}
				if err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&store, "objstore", "", "read segment objects (keys as listed by `tiercel objstore ls URL topics/`) from this object store URL")
	cmd.Flags().BoolVar(&printData, "print-data-log", false, "print every record (offset, timestamp, key, value, headers)")
	cmd.Flags().BoolVar(&deep, "deep-iteration", false, "decompress and check every record")
	return cmd
}

func dumpLocal(w io.Writer, asJSON bool, path string, printData, deep bool) error {
	switch filepath.Ext(path) {
	case ".index":
		return dumpIndex(w, path, 8)
	case ".timeindex":
		return dumpIndex(w, path, 12)
	}
	return dumpSegment(w, asJSON, path, printData, deep || printData)
}

func baseOffsetOf(path string) int64 {
	n, _ := strconv.ParseInt(strings.TrimSuffix(filepath.Base(path), filepath.Ext(path)), 10, 64)
	return n
}

func dumpIndex(w io.Writer, path string, entry int) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	base := baseOffsetOf(path)
	for i := 0; i+entry <= len(b); i += entry {
		if entry == 8 {
			fmt.Fprintf(w, "offset: %d position: %d\n", base+int64(binary.BigEndian.Uint32(b[i:])), binary.BigEndian.Uint32(b[i+4:]))
		} else {
			fmt.Fprintf(w, "timestamp: %d offset: %d\n", int64(binary.BigEndian.Uint64(b[i:])), base+int64(binary.BigEndian.Uint32(b[i+8:])))
		}
	}
	if len(b)%entry != 0 {
		return fmt.Errorf("%s: %d trailing bytes are not a whole entry", path, len(b)%entry)
	}
	return nil
}

type batchView struct {
	BaseOffset    int64        `json:"baseOffset"`
	LastOffset    int64        `json:"lastOffset"`
	Count         int32        `json:"count"`
	Position      int64        `json:"position"`
	Timestamp     int64        `json:"timestamp"`
	TimestampType string       `json:"timestampType"`
	Size          int          `json:"size"`
	Magic         int8         `json:"magic"`
	Compression   string       `json:"compression"`
	CRC           uint32       `json:"crc"`
	CRCValid      bool         `json:"crcValid"`
	ProducerID    int64        `json:"producerId"`
	ProducerEpoch int16        `json:"producerEpoch"`
	BaseSequence  int32        `json:"baseSequence"`
	Transactional bool         `json:"isTransactional"`
	Control       bool         `json:"isControl"`
	LeaderEpoch   int32        `json:"partitionLeaderEpoch"`
	Records       []recordView `json:"records,omitempty"`
}

type recordView struct {
	Offset    int64          `json:"offset"`
	Timestamp int64          `json:"timestamp"`
	Key       any            `json:"key"`
	Value     any            `json:"payload"`
	Headers   map[string]any `json:"headers,omitempty"`
}

var codecNames = map[recordbatch.Codec]string{0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}

// dumpSegment walks the batches of a segment. A torn or corrupt tail is
// reported with its position and makes the command fail after printing
// everything before it.
func dumpSegment(w io.Writer, asJSON bool, path string, printData, deep bool) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return dumpBatches(w, asJSON, path, data, printData, deep)
}

// dumpTiered prints a segment object in the bucket: its parts, then the
// batches of its log part (checked against the part's CRC-32C first).
func dumpTiered(ctx context.Context, w io.Writer, asJSON bool, b objstore.Bucket, key string, printData, deep bool) error {
	attrs, err := b.Head(ctx, key)
	if err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	f, err := tiering.ReadFooter(ctx, b, key, attrs.Size)
	if err != nil {
		return err
	}
	for _, p := range f.Parts {
		fmt.Fprintf(w, "part: %s position: %d size: %d crc32c: %d\n", p.Name, p.Offset, p.Length, p.CRC)
	}
	data, err := tiering.ReadPart(ctx, b, key, f, tiering.PartLog)
	if err != nil {
		return err
	}
	return dumpBatches(w, asJSON, key, data, printData, deep)
}

// dumpBatches walks the record batches of one segment's bytes.
func dumpBatches(w io.Writer, asJSON bool, path string, data []byte, printData, deep bool) error {
	for pos := 0; pos < len(data); {
		h, err := recordbatch.ParseHeader(data[pos:])
		if err != nil || h.TotalSize() < recordbatch.HeaderSize || pos+h.TotalSize() > len(data) {
			return fmt.Errorf("%s: corrupt or torn batch at position %d: %d bytes remain", path, pos, len(data)-pos)
		}
		raw := data[pos : pos+h.TotalSize()]
		v := batchView{BaseOffset: h.BaseOffset, LastOffset: h.LastOffset(), Count: h.NumRecords, Position: int64(pos), Timestamp: h.MaxTimestamp,
			TimestampType: "CreateTime", Size: len(raw), Magic: h.Magic, Compression: codecNames[h.Codec()], CRC: h.CRC,
			CRCValid: recordbatch.ComputeCRC(raw) == h.CRC, ProducerID: h.ProducerID, ProducerEpoch: h.ProducerEpoch,
			BaseSequence: h.BaseSequence, Transactional: h.Transactional(), Control: h.Control(), LeaderEpoch: h.PartitionLeaderEpoch}
		if h.LogAppendTime() {
			v.TimestampType = "LogAppendTime"
		}
		var recErr error
		if deep {
			recs, err := recordbatch.Records(recordbatch.Batch{Header: h, Bytes: raw})
			if err != nil {
				recErr = fmt.Errorf("%s: batch at position %d: %w", path, pos, err)
			}
			if printData {
				for _, r := range recs {
					rv := recordView{Offset: r.Offset, Timestamp: r.Timestamp, Key: jsonBytes(r.Key), Value: jsonBytes(r.Value)}
					if len(r.Headers) > 0 {
						rv.Headers = map[string]any{}
						for _, hd := range r.Headers {
							rv.Headers[hd.Key] = jsonBytes(hd.Value)
						}
					}
					v.Records = append(v.Records, rv)
				}
			}
		}
		if asJSON {
			if err := jsonLine(w, v); err != nil {
				return err
			}
		} else {
			fmt.Fprintf(w, "baseOffset: %d lastOffset: %d count: %d baseSequence: %d lastSequence: %d producerId: %d producerEpoch: %d partitionLeaderEpoch: %d isTransactional: %t isControl: %t position: %d %s: %d size: %d magic: %d compresscodec: %s crc: %d isvalid: %t\n",
				v.BaseOffset, v.LastOffset, v.Count, v.BaseSequence, h.LastSequence(), v.ProducerID, v.ProducerEpoch, v.LeaderEpoch, v.Transactional, v.Control, v.Position, v.TimestampType, v.Timestamp, v.Size, v.Magic, v.Compression, v.CRC, v.CRCValid)
			for _, r := range v.Records {
				fmt.Fprintf(w, "| offset: %d %s: %d key: %v payload: %v", r.Offset, v.TimestampType, r.Timestamp, r.Key, r.Value)
				if len(r.Headers) > 0 {
					fmt.Fprintf(w, " headers: %v", r.Headers)
				}
				fmt.Fprintln(w)
			}
		}
		if !v.CRCValid {
			return fmt.Errorf("%s: batch at position %d (offset %d) fails its CRC", path, pos, h.BaseOffset)
		}
		if recErr != nil {
			return recErr
		}
		pos += h.TotalSize()
	}
	return nil
}

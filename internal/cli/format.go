package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"unicode/utf8"
)

// table prints rows under a header, aligned.
func table(w io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// printJSON writes v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// jsonBytes renders record bytes for JSON output: the text when it is valid
// UTF-8, otherwise {"base64": "..."} so binary payloads survive.
func jsonBytes(b []byte) any {
	if b == nil {
		return nil
	}
	if utf8.Valid(b) {
		return string(b)
	}
	return map[string][]byte{"base64": b}
}

func (g *Globals) validateOutput() error {
	if g.Output != "table" && g.Output != "json" {
		return fmt.Errorf("--output %q: want table or json", g.Output)
	}
	return nil
}

// jsonLine writes v as one line of JSON (JSON Lines, for streams).
func jsonLine(w io.Writer, v any) error { return json.NewEncoder(w).Encode(v) }

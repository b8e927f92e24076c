package cli

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/tiercel/tiercel/objstore"
	_ "github.com/tiercel/tiercel/objstore/all" // every URL scheme
)

func init() { register(newObjstoreCmd) }

// refusal names why a store refused (objstore.Refusal), or "refused".
func refusal(err error) string {
	if r := objstore.Refusal(err); r != "" {
		return r
	}
	return "refused"
}

// newObjstoreCmd lets an operator check an object store URL: credentials,
// bucket and connectivity, with each failure named plainly.
func newObjstoreCmd(g *Globals) *cobra.Command {
	cmd := &cobra.Command{Use: "objstore", Short: "List, read, write and delete objects at an object store URL (s3://, file://, ...)"}
	open := func(c *cobra.Command, raw string) (objstore.Bucket, string, error) {
		b, err := objstore.Open(c.Context(), raw)
		if err != nil {
			return nil, "", err
		}
		return b, raw, nil
	}
	explain := func(raw string, err error) error {
		switch {
		case errors.Is(err, objstore.ErrNotFound):
			return fmt.Errorf("%s: not found", raw)
		case errors.Is(err, objstore.ErrRetriable):
			return fmt.Errorf("%s: the object store did not answer (unreachable endpoint, or throttled): %v", raw, err)
		case errors.Is(err, objstore.ErrPermanent):
			return fmt.Errorf("%s: %s: %v", raw, refusal(err), err)
		}
		return err
	}
	ls := &cobra.Command{Use: "ls URL [PREFIX]", Short: "List objects", Args: cobra.RangeArgs(1, 2), RunE: func(c *cobra.Command, args []string) error {
		b, raw, err := open(c, args[0])
		if err != nil {
			return err
		}
		defer b.Close()
		prefix := ""
		if len(args) == 2 {
			prefix = args[1]
		}
		var rows [][]string
		err = b.List(c.Context(), prefix, objstore.ListOptions{}, func(o objstore.ObjectInfo) error {
			if g.Output == "json" {
				return jsonLine(c.OutOrStdout(), o)
			}
			rows = append(rows, []string{fmt.Sprint(o.Size), o.Key})
			return nil
		})
		if err != nil {
			return explain(raw, err)
		}
		if g.Output != "json" {
			return table(c.OutOrStdout(), []string{"SIZE", "KEY"}, rows)
		}
		return nil
	}}
	cat := &cobra.Command{Use: "cat URL KEY", Short: "Write an object to stdout", Args: cobra.ExactArgs(2), RunE: func(c *cobra.Command, args []string) error {
		b, raw, err := open(c, args[0])
		if err != nil {
			return err
		}
		defer b.Close()
		rc, _, err := b.Get(c.Context(), args[1], 0, -1)
		if err != nil {
			return explain(raw+" "+args[1], err)
		}
		defer rc.Close()
		_, err = io.Copy(c.OutOrStdout(), rc)
		return err
	}}
	var ifNotExists bool
	put := &cobra.Command{Use: "put URL KEY [FILE]", Short: "Store stdin (or FILE) as an object", Args: cobra.RangeArgs(2, 3), RunE: func(c *cobra.Command, args []string) error {
		b, raw, err := open(c, args[0])
		if err != nil {
			return err
		}
		defer b.Close()
		var in io.Reader = c.InOrStdin()
		if len(args) == 3 {
			f, err := os.Open(args[2])
			if err != nil {
				return err
			}
			defer f.Close()
			in = f
		}
		attrs, err := b.Put(c.Context(), args[1], in, objstore.PutOptions{IfNotExists: ifNotExists, Size: -1})
		if errors.Is(err, objstore.ErrPrecondition) {
			return fmt.Errorf("%s %s: already exists", raw, args[1])
		}
		if err != nil {
			return explain(raw+" "+args[1], err)
		}
		fmt.Fprintf(c.OutOrStdout(), "stored %s (%d bytes, version %s)\n", args[1], attrs.Size, attrs.Version)
		return nil
	}}
	put.Flags().BoolVar(&ifNotExists, "if-not-exists", false, "fail if the key exists (a create-only write)")
	rm := &cobra.Command{Use: "rm URL KEY...", Short: "Delete objects", Args: cobra.MinimumNArgs(2), RunE: func(c *cobra.Command, args []string) error {
		b, raw, err := open(c, args[0])
		if err != nil {
			return err
		}
		defer b.Close()
		for _, k := range args[1:] {
			if err := b.Delete(c.Context(), k); err != nil {
				return explain(raw+" "+k, err)
			}
		}
		return nil
	}}
	cmd.AddCommand(ls, cat, put, rm, objstoreBenchCmd(g), objstoreMbCmd(g))
	return cmd
}

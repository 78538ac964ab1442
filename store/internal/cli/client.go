package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/ephemeral-store/ephemeral-store/store/client"
)

// defaultEndpoint is where the client commands look without --endpoints:
// the port of `ephemeral-store dev` and of a port-forward to the Service.
const defaultEndpoint = "https://127.0.0.1:8087"

// clientOptions are the connection flags every client command takes.
type clientOptions struct {
	endpoints []string
	cert      string
	key       string
	cacert    string
	timeout   time.Duration
}

func (o *clientOptions) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringSliceVar(&o.endpoints, "endpoints", []string{defaultEndpoint}, "store endpoints, comma-separated; tried in turn when one is down (env ES_ENDPOINTS)")
	f.StringVar(&o.cert, "cert", "", "client certificate (PEM); its Common Name is the user (env ES_CERT)")
	f.StringVar(&o.key, "key", "", "key of the client certificate (PEM) (env ES_KEY)")
	f.StringVar(&o.cacert, "cacert", "", "CA certificate the servers are checked against; default: the system's (env ES_CACERT)")
	f.DurationVar(&o.timeout, "timeout", client.DefaultTimeout, "bound on one request, failover included (env ES_TIMEOUT)")
}

// client builds the client. The store refuses connections without a
// certificate, so a missing --cert or --key is a usage error here rather
// than a handshake failure later.
func (o *clientOptions) client() (*client.Client, error) {
	if o.cert == "" || o.key == "" {
		return nil, usageErrorf("a client certificate is required: give --cert and --key (or ES_CERT and ES_KEY)")
	}
	tc, err := client.TLSConfigFromFiles(o.cert, o.key, o.cacert)
	if err != nil {
		return nil, err
	}
	timeout := o.timeout
	if timeout == 0 {
		timeout = -1 // --timeout 0: no bound
	}
	c, err := client.New(client.Config{Endpoints: o.endpoints, TLS: tc, Timeout: timeout})
	if err != nil {
		return nil, usageError{err}
	}
	return c, nil
}

// outputFlag adds -w/--output with the formats text and json.
func outputFlag(cmd *cobra.Command, dst *string, textHelp string) {
	cmd.Flags().StringVarP(dst, "output", "w", "text", "output format: text ("+textHelp+") or json")
	noEnv(cmd, "output")
}

func checkOutput(format string) error {
	if format != "text" && format != "json" {
		return usageErrorf("--output %q: want text or json", format)
	}
	return nil
}

// kvJSON is a key as the -w json output prints it: the fields of the API's
// list items, the value in base64 (left out when empty, and by --keys-only).
type kvJSON struct {
	Key            string `json:"key"`
	Value          []byte `json:"value,omitempty"`
	CreateRevision int64  `json:"create_revision"`
	ModifyRevision int64  `json:"modify_revision"`
	Revision       int64  `json:"revision"`
	TTLRemainingMS int64  `json:"ttl_remaining_ms,omitempty"`
}

func toJSON(kv client.KeyValue) kvJSON {
	return kvJSON{
		Key: kv.Key, Value: kv.Value, CreateRevision: kv.CreateRevision,
		ModifyRevision: kv.ModifyRevision, Revision: kv.Revision,
		TTLRemainingMS: kv.TTLRemaining.Milliseconds(),
	}
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printable shows s as is when it is one line of printable UTF-8 that
// cannot be mistaken for a quoted string, and quoted (Go syntax) otherwise,
// so that one item stays one line.
func printable(s string) string {
	if s == "" || !utf8.ValidString(s) || s[0] == '"' || strings.TrimSpace(s) != s {
		return strconv.Quote(s)
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}

// named shows a key or prefix in an error message.
func named(s string) string {
	if strings.ContainsRune(s, ' ') {
		return strconv.Quote(s)
	}
	return printable(s)
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func newGetCommand() *cobra.Command {
	var (
		co     clientOptions
		stale  bool
		output string
		expect string
	)
	cmd := &cobra.Command{
		Use:   "get KEY",
		Short: "Print the value of a key",
		Long: `Print the value of KEY to stdout, byte for byte. The read is linearizable
unless --stale. With -w json, print the key, its value (base64) and its
revisions. A missing key fails with exit code 1, and so does a value that
differs from --expect (for probes and helm test pods, which have no shell).`,
		Example: `  ephemeral-store get pools/web-1
  ephemeral-store get pools/web-1 -w json`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			c, err := co.client()
			if err != nil {
				return err
			}
			defer c.Close()
			key := args[0]
			var opts []client.GetOption
			if stale {
				opts = append(opts, client.Stale())
			}
			kv, err := c.Get(cmd.Context(), key, opts...)
			if err != nil {
				return fmt.Errorf("get %s: %w", named(key), err)
			}
			if cmd.Flags().Changed("expect") && string(kv.Value) != expect {
				return fmt.Errorf("get %s: value %q is not the expected %q", named(key), kv.Value, expect)
			}
			out := cmd.OutOrStdout()
			if output == "json" {
				return printJSON(out, toJSON(*kv))
			}
			if _, err := out.Write(kv.Value); err != nil {
				return err
			}
			if isTerminal(out) && len(kv.Value) > 0 && kv.Value[len(kv.Value)-1] != '\n' {
				_, err = io.WriteString(out, "\n") // keep the prompt off the value
			}
			return err
		},
	}
	co.addFlags(cmd)
	cmd.Flags().BoolVar(&stale, "stale", false, "read the answering node's copy without asking the leader (faster, may lag, works without quorum)")
	cmd.Flags().StringVar(&expect, "expect", "", "fail (exit 1) unless the value is exactly this")
	outputFlag(cmd, &output, "the raw value")
	noEnv(cmd, "stale", "expect")
	return cmd
}

func newPutCommand() *cobra.Command {
	var (
		co     clientOptions
		ttl    time.Duration
		prev   int64
		file   string
		output string
	)
	cmd := &cobra.Command{
		Use:   "put KEY [VALUE | -]",
		Short: "Write a key",
		Long: `Write KEY. The value is VALUE, or stdin when VALUE is "-", or the contents
of --file. Print the revision of the write once a majority has committed it.
--prev-revision makes the write a compare-and-swap: it applies only when the
key's modify revision is N, and --prev-revision 0 creates the key only if it
does not exist; otherwise it fails with exit code 1 (412 revision_mismatch).`,
		Example: `  ephemeral-store put pools/web-1 healthy --ttl 30s
  echo -n draining | ephemeral-store put pools/web-1 - --prev-revision 12
  ephemeral-store put config/app --file app.json`,
		Args: usageArgs(cobra.RangeArgs(1, 2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			key := args[0]
			value, err := putValue(cmd, args, file)
			if err != nil {
				return err
			}
			var opts []client.PutOption
			if cmd.Flags().Changed("ttl") {
				if ttl <= 0 {
					return usageErrorf("--ttl %s: want a positive duration such as 30s", ttl)
				}
				opts = append(opts, client.WithTTL(ttl))
			}
			if cmd.Flags().Changed("prev-revision") {
				if prev < 0 {
					return usageErrorf("--prev-revision %d: want 0 (create only) or a revision", prev)
				}
				opts = append(opts, client.WithPrevRevision(prev))
			}
			c, err := co.client()
			if err != nil {
				return err
			}
			defer c.Close()
			res, err := c.Put(cmd.Context(), key, value, opts...)
			if errors.Is(err, client.ErrQuotaExceeded) {
				return fmt.Errorf("put %s: the store is full, nothing was written: delete keys or write smaller values to make room (%w)", named(key), err)
			}
			if err != nil {
				return fmt.Errorf("put %s: %w", named(key), err)
			}
			if output == "json" {
				return printJSON(cmd.OutOrStdout(), res)
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), res.Revision)
			return err
		},
	}
	co.addFlags(cmd)
	f := cmd.Flags()
	f.DurationVar(&ttl, "ttl", 0, "expire the key after this long, e.g. 30s or 5m")
	f.Int64Var(&prev, "prev-revision", 0, "write only if the key's modify revision is N (0: only if the key does not exist)")
	f.StringVarP(&file, "file", "f", "", "read the value from this file")
	outputFlag(cmd, &output, "the revision")
	noEnv(cmd, "ttl", "prev-revision", "file")
	return cmd
}

// putValue takes the value from exactly one of VALUE, "-" (stdin), --file.
func putValue(cmd *cobra.Command, args []string, file string) ([]byte, error) {
	switch {
	case len(args) == 2 && file != "":
		return nil, usageErrorf("give the value either as an argument or with --file, not both")
	case len(args) == 2 && args[1] == "-":
		v, err := io.ReadAll(cmd.InOrStdin())
		if err != nil {
			return nil, fmt.Errorf("reading the value from stdin: %w", err)
		}
		return v, nil
	case len(args) == 2:
		return []byte(args[1]), nil
	case file != "":
		v, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("reading the value: %w", err)
		}
		return v, nil
	}
	return nil, usageErrorf("no value for %s: give VALUE, - to read stdin, or --file FILE", named(args[0]))
}

func newDeleteCommand() *cobra.Command {
	var (
		co     clientOptions
		prev   int64
		output string
	)
	cmd := &cobra.Command{
		Use:     "del KEY",
		Aliases: []string{"delete", "rm"},
		Short:   "Delete a key",
		Long: `Delete KEY and print the revision of the deletion. A missing key fails with
exit code 1. --prev-revision N deletes only if the key's modify revision is N.`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			key := args[0]
			var opts []client.DeleteOption
			if cmd.Flags().Changed("prev-revision") {
				if prev < 0 {
					return usageErrorf("--prev-revision %d: want a revision", prev)
				}
				opts = append(opts, client.WithDeletePrevRevision(prev))
			}
			c, err := co.client()
			if err != nil {
				return err
			}
			defer c.Close()
			res, err := c.Delete(cmd.Context(), key, opts...)
			if err != nil {
				return fmt.Errorf("del %s: %w", named(key), err)
			}
			if output == "json" {
				return printJSON(cmd.OutOrStdout(), res)
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), res.Revision)
			return err
		},
	}
	co.addFlags(cmd)
	cmd.Flags().Int64Var(&prev, "prev-revision", 0, "delete only if the key's modify revision is N")
	outputFlag(cmd, &output, "the revision")
	noEnv(cmd, "prev-revision")
	return cmd
}

// maxPage is the server's largest page.
const maxPage = 1000

func newListCommand() *cobra.Command {
	var (
		co       clientOptions
		limit    int
		keysOnly bool
		stale    bool
		output   string
	)
	cmd := &cobra.Command{
		Use:     "list [PREFIX]",
		Aliases: []string{"ls"},
		Short:   "List the keys under a prefix",
		Long: `List the keys starting with PREFIX (every key when none), in key order, one
per line: the key, a tab, the value (quoted when it is not one printable
line). All pages are fetched unless --limit. With -w json, print an array of
keys with values (base64) and revisions.`,
		Example: `  ephemeral-store list pools/
  ephemeral-store list pools/ --keys-only
  ephemeral-store list --limit 10 -w json`,
		Args: usageArgs(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if limit < 0 {
				return usageErrorf("--limit %d: want a positive number, or 0 for all", limit)
			}
			var prefix string
			if len(args) == 1 {
				prefix = args[0]
			}
			c, err := co.client()
			if err != nil {
				return err
			}
			defer c.Close()
			var opts []client.ListOption
			if keysOnly {
				opts = append(opts, client.KeysOnly())
			}
			if stale {
				opts = append(opts, client.Stale())
			}
			items, err := listItems(cmd, c, prefix, limit, opts)
			if err != nil {
				return fmt.Errorf("list %s: %w", named(prefix), err)
			}
			out := cmd.OutOrStdout()
			if output == "json" {
				js := make([]kvJSON, len(items))
				for i, kv := range items {
					js[i] = toJSON(kv)
					if keysOnly {
						js[i].Value = nil
					}
				}
				return printJSON(out, js)
			}
			for _, kv := range items {
				var err error
				if keysOnly {
					_, err = fmt.Fprintln(out, printable(kv.Key))
				} else {
					_, err = fmt.Fprintf(out, "%s\t%s\n", printable(kv.Key), printable(string(kv.Value)))
				}
				if err != nil {
					return err
				}
			}
			return nil
		},
	}
	co.addFlags(cmd)
	f := cmd.Flags()
	f.IntVar(&limit, "limit", 0, "print at most N keys (0: all, fetched page by page)")
	f.BoolVar(&keysOnly, "keys-only", false, "print keys without values")
	f.BoolVar(&stale, "stale", false, "read the answering node's copy without asking the leader")
	outputFlag(cmd, &output, "key<TAB>value lines")
	noEnv(cmd, "limit", "keys-only", "stale")
	return cmd
}

// listItems fetches every key under prefix, or the first limit of them.
func listItems(cmd *cobra.Command, c *client.Client, prefix string, limit int, opts []client.ListOption) ([]client.KeyValue, error) {
	if limit == 0 {
		return c.ListAll(cmd.Context(), prefix, opts...)
	}
	var items []client.KeyValue
	after := ""
	for len(items) < limit {
		page, err := c.List(cmd.Context(), prefix, append(opts, client.WithLimit(min(limit-len(items), maxPage)), client.WithAfter(after))...)
		if err != nil {
			return nil, err
		}
		items = append(items, page.Items...)
		if !page.More || page.Next == "" {
			break
		}
		after = page.Next
	}
	return items, nil
}

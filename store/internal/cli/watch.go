package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/ephemeral-store/ephemeral-store/store/client"
	"github.com/ephemeral-store/ephemeral-store/store/client/api"
)

func newWatchCommand() *cobra.Command {
	var (
		co     clientOptions
		from   int64
		output string
	)
	cmd := &cobra.Command{
		Use:   "watch [PREFIX]",
		Short: "Print every change under a prefix as it happens",
		Long: `Print one line per change to a key starting with PREFIX (every key when
none) until interrupted: the revision, the type (put, delete, expire), the
key and, for a put, the value (quoted when it is not one printable line).
With -w json, print each event as one JSON line (value in base64).

--from N starts with the change of revision N (the server keeps a bounded
history; an older N fails with 410 revision_compacted). When the stream
breaks (a node restarts, the watcher fell behind), the watch resumes on
another endpoint from the revision after the last one printed.`,
		Example: `  ephemeral-store watch pools/
  ephemeral-store watch pools/ --from 120 -w json`,
		Args: usageArgs(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if from < 0 {
				return usageErrorf("--from %d: want a revision", from)
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
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			err = watchLoop(ctx, c, prefix, from, eventPrinter(cmd.OutOrStdout(), output), cmd.ErrOrStderr())
			if err != nil {
				return fmt.Errorf("watch %s: %w", named(prefix), err)
			}
			return nil
		},
	}
	co.addFlags(cmd)
	cmd.Flags().Int64Var(&from, "from", 0, "first revision wanted (0: changes from now on)")
	outputFlag(cmd, &output, "revision type key value")
	noEnv(cmd, "from")
	return cmd
}

func eventPrinter(w io.Writer, format string) func(api.Event) error {
	if format == "json" {
		enc := json.NewEncoder(w)
		return func(ev api.Event) error { return enc.Encode(ev) }
	}
	return func(ev api.Event) error {
		var err error
		if ev.Type == api.EventPut {
			_, err = fmt.Fprintf(w, "%d %s %s %s\n", ev.Revision, ev.Type, printable(ev.Key), printable(string(ev.Value)))
		} else {
			_, err = fmt.Fprintf(w, "%d %s %s\n", ev.Revision, ev.Type, printable(ev.Key))
		}
		return err
	}
}

// watchLoop prints events until ctx ends (a nil error: the user stopped
// it). The client library resumes a stream that breaks from the revision
// after the last printed one, with backoff (client.Resume), and says so on
// stderr; an answer that resuming cannot fix (forbidden, compacted, a bad
// request) ends it with that error, and so does a failure to open the first
// stream.
func watchLoop(ctx context.Context, c *client.Client, prefix string, from int64, print func(api.Event) error, stderr io.Writer) error {
	w, err := c.Watch(ctx, prefix, from, client.Resume{OnRetry: func(err error, from int64, wait time.Duration) {
		fmt.Fprintf(stderr, "ephemeral-store: watch: %s; resuming from revision %d in %s\n", streamEnd(err), from, wait.Round(time.Millisecond))
	}})
	if err == nil {
		defer w.Close()
		err = drain(w, print)
	}
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// drain prints events until the stream ends, and returns why it ended.
func drain(w *client.Watcher, print func(api.Event) error) error {
	for {
		ev, err := w.Next()
		if err != nil {
			return err
		}
		if err := print(ev); err != nil {
			return fmt.Errorf("writing the output: %w", err)
		}
	}
}

func streamEnd(err error) string {
	if errors.Is(err, io.EOF) {
		return "the server ended the stream"
	}
	return err.Error()
}

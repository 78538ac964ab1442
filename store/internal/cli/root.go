// Package cli is the command line of the one ephemeral-store binary: the
// server (serve, dev), the client (get, put, del, list, watch, cluster),
// certificate generation (certs) and version. Every flag can also be given
// as an ES_ environment variable (see bindEnv).
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// Exit codes of Execute.
const (
	exitOK    = 0
	exitError = 1 // the command ran and failed: key not found, refused, unreachable
	exitUsage = 2 // the command line was wrong: unknown command or flag, missing argument
)

// Execute runs the command line args (without the program name) and
// returns the process exit code: 0 on success, 1 when the command failed,
// 2 for a usage error. Errors are printed to stderr as
// "ephemeral-store: <what>: <why>".
func Execute(args []string) int {
	return execute(context.Background(), args, os.Stdin, os.Stdout, os.Stderr)
}

// execute is Execute with its context and streams given, for tests.
func execute(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRootCommand()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "ephemeral-store: %v\n", err)
	var ue usageError
	if errors.As(err, &ue) {
		if cmd == nil {
			cmd = root
		}
		fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
		return exitUsage
	}
	return exitError
}

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "ephemeral-store",
		Short: "A distributed, in-memory, TLS-only key-value store for Kubernetes",
		Long: `ephemeral-store is a distributed, in-memory key-value store for Kubernetes.
This one binary is the server (serve, dev), its client (get, put, del, list,
watch, cluster) and its certificate tool (certs).

Every flag can also be set by an environment variable named ES_ and the flag
in upper snake case: --endpoints is ES_ENDPOINTS, --cacert is ES_CACERT,
--peers-dns is ES_PEERS_DNS. A flag on the command line wins.`,
		Example: `  ephemeral-store dev                          # a local 3-node cluster
  export ES_ENDPOINTS=https://127.0.0.1:8087 ES_CERT=myuser.crt ES_KEY=myuser.key ES_CACERT=rootCA.crt
  ephemeral-store put pools/web-1 healthy --ttl 30s
  ephemeral-store get pools/web-1
  ephemeral-store list pools/
  ephemeral-store watch pools/`,
		SilenceErrors: true,
		SilenceUsage:  true,
		// The root runs only to refuse an unknown command or show help.
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return nil
			}
			msg := fmt.Sprintf("unknown command %q", args[0])
			if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
				msg += fmt.Sprintf(" (did you mean %s?)", strings.Join(s, ", "))
			}
			return usageError{errors.New(msg)}
		},
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			for _, w := range envWarnings(cmd) {
				fmt.Fprintf(cmd.ErrOrStderr(), "ephemeral-store: warning: %s\n", w)
			}
			return bindEnv(cmd)
		},
		CompletionOptions:          cobra.CompletionOptions{HiddenDefaultCmd: true},
		SuggestionsMinimumDistance: 2,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(
		newGetCommand(),
		newPutCommand(),
		newDeleteCommand(),
		newListCommand(),
		newWatchCommand(),
		newClusterCommand(),
		newCertsCommand(),
		newVersionCommand(),
		newServeCommand(),
		newDevCommand(),
	)
	return root
}

// usageError marks an error in the command line rather than in the work:
// Execute answers it with exit code 2 and a pointer to --help.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usageErrorf(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// usageArgs turns a positional-argument validator's error into a usage
// error.
func usageArgs(v cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := v(cmd, args); err != nil {
			return usageError{err}
		}
		return nil
	}
}

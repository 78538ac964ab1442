package cli

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// envPrefix starts the name of every environment variable a flag is read
// from.
const envPrefix = "ES_"

// noEnvAnnotation marks a flag that bindEnv leaves alone: a per-call option
// such as --ttl or --force, which an environment variable left set in a
// shell must not apply silently to every command.
const noEnvAnnotation = "ephemeral-store/no-env"

// lookupEnv is os.LookupEnv; tests replace it.
var lookupEnv = os.LookupEnv

// envName is the variable a flag is read from: --peers-dns is ES_PEERS_DNS.
func envName(flag string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// bindEnv gives every flag of cmd (its own and those it inherits) that was
// not set on the command line the value of its ES_<UPPER_SNAKE> environment
// variable, when that variable is set and not empty. Flags annotated with
// noEnv and --help are skipped. A value the flag refuses is a usage error
// naming the variable. A list flag (--endpoints, --peers) takes the
// comma-separated form: ES_ENDPOINTS=https://a:8087,https://b:8087.
//
// The root command's PersistentPreRunE calls it for whichever command runs,
// at any depth; a subcommand that defines its own PersistentPreRunE must
// call bindEnv itself, since cobra runs only the nearest one.
func bindEnv(cmd *cobra.Command) error {
	var errs []error
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Changed || f.Name == "help" {
			return
		}
		if _, skip := f.Annotations[noEnvAnnotation]; skip {
			return
		}
		name := envName(f.Name)
		v, ok := lookupEnv(name)
		if !ok || v == "" {
			return
		}
		if err := cmd.Flags().Set(f.Name, v); err != nil {
			errs = append(errs, fmt.Errorf("%s=%q (for --%s): %w", name, v, f.Name, err))
		}
	})
	if len(errs) > 0 {
		return usageError{errors.Join(errs...)}
	}
	return nil
}

// noEnv marks flags of cmd that bindEnv must not read from the environment.
func noEnv(cmd *cobra.Command, names ...string) {
	for _, n := range names {
		if err := cmd.Flags().SetAnnotation(n, noEnvAnnotation, []string{"true"}); err != nil {
			panic(fmt.Sprintf("cli: noEnv: %v", err)) // a programming error: no such flag
		}
	}
}

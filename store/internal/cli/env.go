package cli

import (
	"errors"
	"fmt"
	"os"
	"slices"
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

// lookupEnv and environ are os.LookupEnv and os.Environ; tests replace
// them.
var (
	lookupEnv = os.LookupEnv
	environ   = os.Environ
)

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

// envWarnings lists the ES_ variables that will not set anything for cmd,
// as etcd's verifyEnv does, so that a misspelt variable
// (ES_QUORUM_LOSS_TIMOUT) does not leave a default in force without a
// word. Call it before bindEnv, while Changed still means "given on the
// command line". Reported:
//   - a variable that matches no flag of any command;
//   - a variable of a flag this command has, but given on the command line
//     too (the command line wins);
//   - a variable of a flag that is never read from the environment (--ttl).
//
// A variable of another command's flag is not reported: a shell exports
// ES_ENDPOINTS for the client and may run serve or dev too.
func envWarnings(cmd *cobra.Command) []string {
	known := map[string]bool{}
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		for _, fs := range []*pflag.FlagSet{c.Flags(), c.PersistentFlags()} {
			fs.VisitAll(func(f *pflag.Flag) { known[envName(f.Name)] = true })
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(cmd.Root())
	mine := map[string]*pflag.Flag{} // this command's flags by variable
	cmd.Flags().VisitAll(func(f *pflag.Flag) { mine[envName(f.Name)] = f })

	var out []string
	for _, kv := range environ() {
		name, value, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, envPrefix) || value == "" {
			continue
		}
		if !known[name] {
			out = append(out, fmt.Sprintf("%s is set, but no flag of any command reads it (a flag --x-y is read from %sX_Y)", name, envPrefix))
			continue
		}
		f := mine[name]
		switch {
		case f == nil || f.Name == "help":
		case f.Changed:
			out = append(out, fmt.Sprintf("%s is ignored: --%s is given on the command line", name, f.Name))
		case f.Annotations[noEnvAnnotation] != nil:
			out = append(out, fmt.Sprintf("%s is ignored: --%s is never read from the environment, give it on the command line", name, f.Name))
		}
	}
	slices.Sort(out)
	return out
}

// noEnv marks flags of cmd that bindEnv must not read from the environment.
func noEnv(cmd *cobra.Command, names ...string) {
	for _, n := range names {
		if err := cmd.Flags().SetAnnotation(n, noEnvAnnotation, []string{"true"}); err != nil {
			panic(fmt.Sprintf("cli: noEnv: %v", err)) // a programming error: no such flag
		}
	}
}

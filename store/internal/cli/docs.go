package cli

import (
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// NewRootCommand returns the binary's whole command tree, unexecuted, for
// tools that describe it: store/internal/cli/docgen writes the flag
// reference in docs/cli/ and the serve flag table of the README from it.
// Each call builds a fresh tree.
func NewRootCommand() *cobra.Command { return newRootCommand() }

// FlagEnv is the environment variable the flag is read from (--peers-dns:
// ES_PEERS_DNS), and false for a flag that reads none (--help, and per-call
// options such as --ttl).
func FlagEnv(f *pflag.Flag) (string, bool) {
	if _, skip := f.Annotations[noEnvAnnotation]; skip || f.Name == "help" {
		return "", false
	}
	return envName(f.Name), true
}

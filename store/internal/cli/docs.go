package cli

import "github.com/spf13/cobra"

// NewRootCommand returns the binary's whole command tree, unexecuted, for
// tools that describe it: store/internal/cli/docgen writes the flag
// reference in docs/cli/ from it. Each call builds a fresh tree.
func NewRootCommand() *cobra.Command { return newRootCommand() }

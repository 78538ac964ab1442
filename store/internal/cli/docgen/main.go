// Command docgen writes the command-line reference of ephemeral-store, one
// markdown file per command, and the table of serve's flags in the README
// (between its serve-flags markers), from the cobra command tree itself
// (github.com/spf13/cobra/doc), so that neither can drift from the flags the
// binary has. With -check it writes nothing and fails when the files in the
// directory or the README's table differ from what it would write.
//
//	go run ./store/internal/cli/docgen             # rewrite docs/cli/ and the README table
//	go run ./store/internal/cli/docgen -check      # fail when either is stale
//
// `make docs` runs the first, scripts/verify.sh (make verify) the second.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
	"github.com/spf13/pflag"

	"github.com/ephemeral-store/ephemeral-store/store/internal/cli"
)

func main() {
	out := flag.String("out", "docs/cli", "directory of the generated markdown files")
	readme := flag.String("readme", "README.md", "markdown file holding the serve flag table between its markers; empty: none")
	check := flag.Bool("check", false, "write nothing; fail when the directory or the table is not what would be written")
	flag.Parse()
	if err := run(*out, *readme, *check); err != nil {
		fmt.Fprintln(os.Stderr, "docgen:", err)
		os.Exit(1)
	}
}

func run(out, readme string, check bool) error {
	root := cli.NewRootCommand()
	machineIndependent(root)
	want, err := generate(root)
	if err != nil {
		return err
	}
	var table, doc []byte
	if readme != "" {
		if table, err = serveFlagTable(root); err != nil {
			return err
		}
		if doc, err = os.ReadFile(readme); err != nil {
			return err
		}
	}
	if check {
		err := compare(out, want)
		if readme != "" {
			if terr := checkTable(doc, table); terr != nil {
				err = errors.Join(err, fmt.Errorf("%s: %w\nrun `make docs` and commit the result", readme, terr))
			}
		}
		return err
	}
	if readme != "" {
		updated, err := spliceTable(doc, table)
		if err != nil {
			return fmt.Errorf("%s: %w", readme, err)
		}
		if err := os.WriteFile(readme, updated, 0o644); err != nil {
			return err
		}
		fmt.Printf("docgen: wrote the serve flag table of %s\n", readme)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	// Files of commands that no longer exist go away.
	old, err := filepath.Glob(filepath.Join(out, "*.md"))
	if err != nil {
		return err
	}
	for _, f := range old {
		if _, ok := want[filepath.Base(f)]; !ok {
			if err := os.Remove(f); err != nil {
				return err
			}
		}
	}
	for name, content := range want {
		if err := os.WriteFile(filepath.Join(out, name), content, 0o644); err != nil {
			return err
		}
	}
	fmt.Printf("docgen: wrote %d files to %s\n", len(want), out)
	return nil
}

// generate renders every command's page in memory: file name -> content.
func generate(root *cobra.Command) (map[string][]byte, error) {
	root.DisableAutoGenTag = true // no date line: the output depends on the code only
	dir, err := os.MkdirTemp("", "docgen-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if err := doc.GenMarkdownTree(root, dir); err != nil {
		return nil, err
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.md"))
	if err != nil {
		return nil, err
	}
	out := make(map[string][]byte, len(files))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		out[filepath.Base(f)] = b
	}
	if len(out) == 0 {
		return nil, errors.New("cobra/doc wrote no file")
	}
	return out, nil
}

// hostDefaults are the flags whose default is the host name of the machine
// the command runs on; their help text says so.
var hostDefaults = map[string]bool{"node-name": true}

// machineIndependent removes defaults that come from the machine the
// generator runs on, so that every machine generates the same files.
func machineIndependent(root *cobra.Command) {
	var visit func(*cobra.Command)
	visit = func(c *cobra.Command) {
		for _, fs := range []*pflag.FlagSet{c.LocalFlags(), c.PersistentFlags()} {
			fs.VisitAll(func(f *pflag.Flag) {
				if hostDefaults[f.Name] {
					f.DefValue = ""
				}
			})
		}
		for _, sub := range c.Commands() {
			visit(sub)
		}
	}
	visit(root)
}

// compare reports every file of dir that differs from want, is missing or
// should not be there.
func compare(dir string, want map[string][]byte) error {
	var stale []string
	for name, content := range want {
		have, err := os.ReadFile(filepath.Join(dir, name))
		switch {
		case errors.Is(err, os.ErrNotExist):
			stale = append(stale, filepath.Join(dir, name)+" is missing")
		case err != nil:
			return err
		case !bytes.Equal(have, content):
			stale = append(stale, filepath.Join(dir, name)+" differs")
		}
	}
	have, err := filepath.Glob(filepath.Join(dir, "*.md"))
	if err != nil {
		return err
	}
	for _, f := range have {
		if _, ok := want[filepath.Base(f)]; !ok {
			stale = append(stale, f+" describes no command")
		}
	}
	if len(stale) == 0 {
		return nil
	}
	sort.Strings(stale)
	return fmt.Errorf("the command-line reference is stale:\n  %s\nrun `make docs` and commit the result",
		strings.Join(stale, "\n  "))
}

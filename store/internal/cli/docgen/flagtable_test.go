package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ephemeral-store/ephemeral-store/store/internal/cli"
)

// readmePath is the repository README, from this package's directory.
var readmePath = filepath.Join("..", "..", "..", "..", "README.md")

func table(t *testing.T) []byte {
	t.Helper()
	root := cli.NewRootCommand()
	machineIndependent(root)
	tbl, err := serveFlagTable(root)
	require.NoError(t, err)
	return tbl
}

// TestReadmeServeFlagTableIsCurrent: the README documents every flag serve
// has, as the command tree gives it (make docs regenerates it).
func TestReadmeServeFlagTableIsCurrent(t *testing.T) {
	doc, err := os.ReadFile(readmePath)
	require.NoError(t, err)
	require.NoError(t, checkTable(doc, table(t)), "run `make docs`")
}

// TestServeFlagTableHasARowPerFlag: every flag of serve has its row with
// its environment variable, and a flag's default shows.
func TestServeFlagTableHasARowPerFlag(t *testing.T) {
	tbl := string(table(t))
	serve, _, err := cli.NewRootCommand().Find([]string{"serve"})
	require.NoError(t, err)
	n := 0
	serve.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Name == "help" {
			assert.NotContains(t, tbl, "`--help`")
			return
		}
		n++
		env, ok := cli.FlagEnv(f)
		require.True(t, ok, "--%s reads an environment variable", f.Name)
		assert.Contains(t, tbl, "| `--"+f.Name+"` | `"+env+"` |")
	})
	assert.Equal(t, n+2, strings.Count(tbl, "\n"), "a header, a separator and one row per flag")
	assert.Contains(t, tbl, "| `--memory-limit` | `ES_MEMORY_LIMIT` |  | the container's memory limit in bytes")
	assert.Contains(t, tbl, "| `--listen` | `ES_LISTEN` | `:8087` |")
	assert.Contains(t, tbl, "| `--node-name` | `ES_NODE_NAME` |  |", "no host name of the generating machine")
}

// TestCheckCatchesAStaleServeFlagTable: a row missing (a flag added without
// make docs), a row left over and missing markers each fail the check;
// splicing the table back in makes it pass.
func TestCheckCatchesAStaleServeFlagTable(t *testing.T) {
	tbl := table(t)
	doc := []byte("# x\n\n" + tableBegin + "\n\nold\n" + tableEnd + "\n\nafter\n")
	require.ErrorIs(t, checkTable(doc, tbl), errStaleTable)

	good, err := spliceTable(doc, tbl)
	require.NoError(t, err)
	require.NoError(t, checkTable(good, tbl))
	assert.True(t, bytes.HasSuffix(good, []byte(tableEnd+"\n\nafter\n")), "text after the table is kept")

	lines := strings.Split(string(good), "\n")
	var withoutRow []string
	for _, l := range lines {
		if !strings.HasPrefix(l, "| `--memory-limit` |") {
			withoutRow = append(withoutRow, l)
		}
	}
	require.Len(t, withoutRow, len(lines)-1)
	err = checkTable([]byte(strings.Join(withoutRow, "\n")), tbl)
	require.ErrorIs(t, err, errStaleTable)
	assert.Contains(t, err.Error(), "--memory-limit")

	extra := strings.Replace(string(good), tableEnd, "| `--gone` | | | a flag serve no longer has |\n"+tableEnd, 1)
	require.ErrorIs(t, checkTable([]byte(extra), tbl), errStaleTable)

	_, err = spliceTable([]byte("no markers\n"), tbl)
	require.ErrorContains(t, err, "not found")
	require.Error(t, checkTable([]byte(tableEnd+"\n"+tableBegin+"\n"), tbl), "markers out of order")
}

// TestCellKeepsTheTableIntact: a pipe does not end the cell and <placeholders>
// are not swallowed as HTML tags.
func TestCellKeepsTheTableIntact(t *testing.T) {
	assert.Equal(t, `read \| readwrite`, cell("read | readwrite"))
	assert.Equal(t, "default &lt;node-name&gt;.&lt;peers-dns&gt;", cell("default <node-name>.<peers-dns>"))
	assert.Equal(t, "one line", cell("one\n  line"))
}

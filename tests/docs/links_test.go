package docs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestEveryRelativeLinkResolves: every relative link of every markdown file
// of the repository names a file that exists, and every #anchor a heading
// (or <a id>) of the file it points into.
func TestEveryRelativeLinkResolves(t *testing.T) {
	root := filepath.Join("..", "..")
	files, err := MarkdownFiles(root)
	require.NoError(t, err)
	for _, want := range []string{"README.md", "docs/operations.md", "docs/testing.md", "charts/ephemeral-store/README.md"} {
		require.Contains(t, files, want)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	require.NoError(t, err)
	require.Greater(t, len(links(string(readme))), 20, "the README's links are found at all")
	problems, err := Check(root, files)
	require.NoError(t, err)
	for _, p := range problems {
		t.Error(p)
	}
}

func TestSlugIsGitHubs(t *testing.T) {
	for text, want := range map[string]string{
		"Rotating the root CA (caSecret)":            "rotating-the-root-ca-casecret",
		"Draining nodes: one pod at a time":          "draining-nodes-one-pod-at-a-time",
		"`serve` flags":                              "serve-flags",
		"Command line (env `ES_<FLAG_UPPER_SNAKE>`)": "command-line-env-es_flag_upper_snake",
		"Metrics (`/metrics` on the probe port)":     "metrics-metrics-on-the-probe-port",
		"Installing from `dist/`":                    "installing-from-dist",
		"See [the chart](charts/x.md) now":           "see-the-chart-now",
		"Side by side: `make bench`":                 "side-by-side-make-bench",
		"To 0.2.0":                                   "to-020",
	} {
		assert.Equal(t, want, Slug(text), text)
	}
}

// TestCheckFindsDeadLinks: a missing file, a missing anchor in another file
// and in the same file are each reported with file and line; good links,
// links in code, URLs, repeated headings and <a id> anchors are not.
func TestCheckFindsDeadLinks(t *testing.T) {
	root := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(root, name)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(root, name), []byte(content), 0o644))
	}
	write("docs/ops.md", "# Ops\n\n## Alerts: what to do\n\n## Repeat\n\n## Repeat\n\n<a id=\"by-hand\"></a>\n")
	write("README.md", strings.Join([]string{
		"# Readme",
		"[ok](docs/ops.md) [ok](docs/ops.md#alerts-what-to-do) [ok](docs/ops.md#repeat-1) [ok](docs/ops.md#by-hand)",
		"[ok](#readme) [ok](docs/) [url](https://example.com/x.md#nothing) ![img](docs/ops.md)",
		"`[in code](missing.md)`",
		"```",
		"[in a fence](missing.md)",
		"```",
		"[gone](docs/gone.md)",
		"[bad anchor](docs/ops.md#alerts)",
		"[bad here](#nowhere) [bad repeat](docs/ops.md#repeat-2)",
	}, "\n"))
	files, err := MarkdownFiles(root)
	require.NoError(t, err)
	assert.Equal(t, []string{"README.md", "docs/ops.md"}, files)
	problems, err := Check(root, files)
	require.NoError(t, err)
	var got []string
	for _, p := range problems {
		got = append(got, p.String())
	}
	assert.Equal(t, []string{
		"README.md:8: docs/gone.md: no such file or directory",
		"README.md:9: docs/ops.md#alerts: no heading or anchor #alerts in docs/ops.md",
		"README.md:10: #nowhere: no heading or anchor #nowhere in README.md",
		"README.md:10: docs/ops.md#repeat-2: no heading or anchor #repeat-2 in docs/ops.md",
	}, got)
}

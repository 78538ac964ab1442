package server_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ephemeral-store/ephemeral-store/store/client"
	"github.com/ephemeral-store/ephemeral-store/store/internal/testcluster"
)

var (
	pythonExample = filepath.Join("..", "..", "..", "docs", "examples", "python", "ephemeral_store_example.py")
	javaExample   = filepath.Join("..", "..", "..", "docs", "examples", "java", "EphemeralStoreExample.java")
)

// runExample runs the example program cmd against node 0 of c as user and
// returns its exit code, stdout and stderr.
func runExample(t *testing.T, c *testcluster.Cluster, user string, name string, args ...string) (int, string, string) {
	t.Helper()
	cert, key, ca := c.CertPaths(user)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, append(args,
		"--endpoint", "https://"+c.Node(0).Client, "--cert", cert, "--key", key, "--cacert", ca)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	require.NoError(t, ctx.Err(), "%s did not finish in time; stdout:\n%s\nstderr:\n%s", name, stdout.String(), stderr.String())
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), stdout.String(), stderr.String()
	}
	require.NoError(t, err, "running %s", name)
	return 0, stdout.String(), stderr.String()
}

// checkExample runs an example program (docs/examples/<lang>) against an
// in-process node over mutual TLS: put, get, compare-and-swap, a refused
// stale swap (revision_mismatch) and a missing key (key_not_found), with
// the key gone afterwards. Its twin runs it as a user the node does not
// know, which must fail with 401 unauthenticated and exit code 2.
func checkExample(t *testing.T, prefix, name string, args ...string) {
	t.Helper()
	c, _ := single(t)
	args = append(args, "--prefix", prefix)

	code, stdout, stderr := runExample(t, c, testcluster.UserAll, name, args...)
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
	k := regexp.QuoteMeta(prefix + "greeting")
	m := regexp.MustCompile(`(?s)^put ` + k + ` revision=(\d+)\n` +
		`get ` + k + ` value=hello revision=(\d+)\n` +
		`cas ` + k + ` revision=(\d+)\n` +
		`cas refused: code=revision_mismatch status=412\n` +
		`get missing: code=key_not_found status=404\n` +
		`deleted ` + k + `\n$`).FindStringSubmatch(stdout)
	require.NotNil(t, m, "unexpected output:\n%s\nstderr:\n%s", stdout, stderr)
	put, _ := strconv.ParseInt(m[1], 10, 64)
	got, _ := strconv.ParseInt(m[2], 10, 64)
	cas, _ := strconv.ParseInt(m[3], 10, 64)
	assert.Equal(t, put, got, "the read sees the put's revision")
	assert.Greater(t, cas, put, "the swap is a new revision")

	// The writes really happened on the node: the key is gone again and
	// the store's revision is past the delete.
	ctx := ctxT(t)
	cl := c.Client(testcluster.UserAll)
	_, err := cl.Get(ctx, prefix+"greeting")
	require.ErrorIs(t, err, client.ErrKeyNotFound)
	st, err := cl.Cluster(ctx)
	require.NoError(t, err)
	assert.Greater(t, st.Revision, cas, "the delete came after the swap")

	// Twin: a certificate whose CN is not a user.
	code, stdout, stderr = runExample(t, c, testcluster.UserUnknown, name, args...)
	assert.Equal(t, 2, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
	assert.Contains(t, stderr, "401 unauthenticated")
}

// TestPythonExampleAgainstARealNode runs docs/examples/python with python3
// (standard library only).
func TestPythonExampleAgainstARealNode(t *testing.T) {
	python := lookRuntime(t, "python3", "the Python example cannot run here (it needs only the standard library of Python 3)")
	checkExample(t, "examples/python/", python, pythonExample)
}

// TestJavaExampleAgainstARealNode runs docs/examples/java as a single
// source file (java 17+, JDK only).
func TestJavaExampleAgainstARealNode(t *testing.T) {
	java := lookRuntime(t, "java", "the Java example cannot run here (it needs a JDK 17 or later)")
	checkExample(t, "examples/java/", java, javaExample)
}

// lookRuntime finds an example's runtime on PATH. Without it the test skips
// on a developer's machine, but fails under CI (CI set, as .ci/run does),
// where a skip would count as a pass.
func lookRuntime(t *testing.T, name, why string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not on PATH under CI: %s", name, why)
		}
		t.Skipf("%s is not on PATH: %s", name, why)
	}
	return path
}

// Package kindcluster gives the end-to-end tests their kind cluster: created
// once per `go test` run, or reused when it already exists.
//
// Ensure runs the project's own scripts (the ones `make up` runs, and
// `make tools` and `make cluster` between them), so that no logic is
// duplicated here:
//
//	scripts/ensure-docker.sh   a Docker engine that can run kind
//	scripts/install-tools.sh   the pinned kind, kubectl and helm in bin/
//	scripts/node-image.sh      the kind node image, built offline (stamped:
//	                           about a second when it is up to date)
//	scripts/store-image.sh     the store image localhost/ephemeral-store:<appVersion>
//	scripts/kind-cluster.sh    creates or reuses the cluster, loads the store image
//
// Every line they print is streamed to the test log as it comes (go test -v
// shows it live). A stage that fails fails the test loudly, naming the stage
// and quoting the last lines of its output; every later Ensure in the same
// run fails with the same message instead of trying again. Ensure never
// skips; the e2e build tag, not -short, keeps the suites out of a plain
// go test.
//
// Environment:
//
//	ES_KIND_CLUSTER  cluster name (default $KIND_CLUSTER, else ephemeral-store,
//	                 the scripts' name); reused when `kind get clusters` lists it
//	ES_KUBECONFIG    kubeconfig path (default $ES_WORK/kubeconfig)
//	ES_WORK          the scripts' work directory (default /var/tmp/ephemeral-store)
//
// The cluster is left running at the end of the run, so that the next run
// takes seconds; `make down` deletes it.
package kindcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gruntwork-io/terratest/modules/k8s"
	corev1 "k8s.io/api/core/v1"
)

// DefaultName is the cluster name of scripts/kind-cluster.sh.
const DefaultName = "ephemeral-store"

// tailLines is how many lines of a failed stage's output the failure quotes.
const tailLines = 40

// Cluster is a kind cluster ready for the store: its nodes Ready, CoreDNS up
// and the store image loaded.
type Cluster struct {
	// Name is the kind cluster name.
	Name string
	// Kubeconfig is the path of the kubeconfig file holding Context.
	Kubeconfig string
	// Context is the kubeconfig context of the cluster (kind-<Name>).
	Context string
	// RepoRoot is the repository's top directory.
	RepoRoot string
	// Reused is true when the cluster existed before this run.
	Reused bool
}

// KubectlOptions returns terratest options for namespace of the cluster.
func (c *Cluster) KubectlOptions(namespace string) *k8s.KubectlOptions {
	return k8s.NewKubectlOptions(c.Context, c.Kubeconfig, namespace)
}

// ChartDir is the path of the store's Helm chart.
func (c *Cluster) ChartDir() string {
	return filepath.Join(c.RepoRoot, "charts", "ephemeral-store")
}

var (
	once       sync.Once
	theCluster *Cluster
	setupErr   error
)

// Ensure returns the kind cluster of this run, creating it (or bringing an
// existing one up to date) on the first call. It never skips: it fails the
// test when the cluster cannot be had.
func Ensure(t testing.TB) *Cluster {
	t.Helper()
	once.Do(func() {
		start := time.Now()
		theCluster, setupErr = setup(t)
		if setupErr == nil {
			how := "created"
			if theCluster.Reused {
				how = "reused"
			}
			t.Logf("kind cluster %s %s and ready in %s (kubeconfig %s, context %s)",
				theCluster.Name, how, time.Since(start).Round(time.Second), theCluster.Kubeconfig, theCluster.Context)
		}
	})
	if setupErr != nil {
		t.Fatalf("no kind cluster for the end-to-end tests: %v", setupErr)
	}
	return theCluster
}

func setup(t testing.TB) (*Cluster, error) {
	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	bin := filepath.Join(root, "bin")
	// The pinned tools first, for the scripts, terratest's helm and kubectl, and kind.
	if err := os.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH")); err != nil {
		return nil, err
	}
	c := &Cluster{
		Name:     envOr("ES_KIND_CLUSTER", envOr("KIND_CLUSTER", DefaultName)),
		RepoRoot: root,
	}
	c.Context = "kind-" + c.Name
	c.Kubeconfig = envOr("ES_KUBECONFIG", filepath.Join(envOr("ES_WORK", "/var/tmp/ephemeral-store"), "kubeconfig"))

	ctx, cancel := setupContext(t)
	defer cancel()
	env := append(os.Environ(), "KIND_CLUSTER="+c.Name, "ES_KUBECONFIG="+c.Kubeconfig)
	run := func(stage string, args ...string) error {
		return runStage(ctx, t, root, env, stage, args...)
	}

	t.Logf("kind cluster %s for the end-to-end tests (ES_KIND_CLUSTER), kubeconfig %s", c.Name, c.Kubeconfig)
	if err := run("docker engine", "scripts/ensure-docker.sh"); err != nil {
		return nil, err
	}
	if err := run("tools", "scripts/install-tools.sh", "kind", "kubectl", "helm"); err != nil {
		return nil, err
	}
	for _, tool := range []string{"kind", "kubectl", "helm"} {
		path, err := exec.LookPath(tool)
		if err != nil {
			return nil, fmt.Errorf("%s is not installed after stage \"tools\": the end-to-end tests need the pinned %s in %s; run `make tools`: %w",
				tool, tool, bin, err)
		}
		if filepath.Dir(path) != bin {
			t.Logf("note: %s is %s, not the pinned one in %s", tool, path, bin)
		}
	}
	c.Reused, err = clusterExists(ctx, c.Name)
	if err != nil {
		return nil, err
	}
	if c.Reused {
		t.Logf("kind cluster %s exists: reusing it unless it was made from another node image (scripts/kind-cluster.sh then re-creates it)", c.Name)
	}
	// Stamped stage by stage: about a second when the node image is up to date.
	if err := run("kind node image", "scripts/node-image.sh"); err != nil {
		return nil, err
	}
	if err := run("store image", "scripts/store-image.sh"); err != nil {
		return nil, err
	}
	if err := run("kind cluster "+c.Name, "scripts/kind-cluster.sh"); err != nil {
		return nil, err
	}
	if err := checkNodes(ctx, t, c); err != nil {
		return nil, err
	}
	return c, nil
}

// setupContext ends a minute before the go test -timeout would panic, so that a
// stage still running then fails with its name and output instead.
func setupContext(t testing.TB) (context.Context, context.CancelFunc) {
	if d, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if deadline, ok := d.Deadline(); ok {
			return context.WithDeadline(context.Background(), deadline.Add(-time.Minute))
		}
	}
	return context.WithCancel(context.Background())
}

// runStage runs one script from the repository root, its output streamed to
// the test log line by line; an error names the stage and quotes its last lines.
func runStage(ctx context.Context, t testing.TB, root string, env []string, stage string, args ...string) error {
	t.Logf("==> stage %q: %s", stage, strings.Join(args, " "))
	start := time.Now()
	out := &lineLogger{t: t, prefix: "[" + stage + "] "}
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Dir = root
	cmd.Env = env
	cmd.Stdout = out
	cmd.Stderr = out
	// Its own process group, so that a deadline stops the builds it started too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	err := cmd.Run()
	out.flush()
	took := time.Since(start).Round(time.Second)
	if err == nil {
		t.Logf("<== stage %q done in %s", stage, took)
		return nil
	}
	why := err.Error()
	if ctx.Err() != nil {
		why = fmt.Sprintf("stopped after %s: the go test -timeout is near (%v); raise -timeout", took, err)
	}
	return fmt.Errorf("stage %q (%s, run from %s) failed after %s: %s\n--- last %d lines of its output ---\n%s\n---",
		stage, strings.Join(args, " "), root, took, why, len(out.tail), strings.Join(out.tail, "\n"))
}

// clusterExists reports whether `kind get clusters` lists name.
func clusterExists(ctx context.Context, name string) (bool, error) {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "kind", "get", "clusters")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return false, fmt.Errorf("kind get clusters: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.TrimSpace(line) == name {
			return true, nil
		}
	}
	return false, nil
}

// checkNodes confirms through the kubeconfig the tests use that every node is Ready.
func checkNodes(ctx context.Context, t testing.TB, c *Cluster) error {
	if _, err := os.Stat(c.Kubeconfig); err != nil {
		return fmt.Errorf("stage \"kind cluster %s\" succeeded but left no kubeconfig: %w", c.Name, err)
	}
	nodes, err := k8s.GetNodesContextE(t, ctx, c.KubectlOptions(""))
	if err != nil {
		return fmt.Errorf("the API server of kind cluster %s (context %s in %s) does not answer: %w", c.Name, c.Context, c.Kubeconfig, err)
	}
	var notReady []string
	for _, n := range nodes {
		ready := false
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
				ready = true
			}
		}
		if !ready {
			notReady = append(notReady, n.Name)
		}
	}
	if len(nodes) == 0 || len(notReady) > 0 {
		return fmt.Errorf("kind cluster %s: %d nodes, not Ready: %v", c.Name, len(nodes), notReady)
	}
	t.Logf("kind cluster %s: %d nodes Ready", c.Name, len(nodes))
	return nil
}

// repoRoot walks up from the working directory (the test's package) to the
// repository's root: the directory with a go.mod and scripts/kind-cluster.sh
// (tests/ has a go.mod of its own, the test module's, and is passed by).
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		_, errMod := os.Stat(filepath.Join(dir, "go.mod"))
		_, errScript := os.Stat(filepath.Join(dir, "scripts", "kind-cluster.sh"))
		if errMod == nil && errScript == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod with scripts/kind-cluster.sh beside it above the working directory: run the tests with go test from the repository")
		}
		dir = parent
	}
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// lineLogger writes every complete line to the test log, and keeps the last
// tailLines for an error message. exec calls Write from one goroutine at a
// time when Stdout and Stderr are the same *lineLogger.
type lineLogger struct {
	t      testing.TB
	prefix string
	buf    []byte
	tail   []string
}

func (l *lineLogger) Write(p []byte) (int, error) {
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		l.line(string(l.buf[:i]))
		l.buf = l.buf[i+1:]
	}
	return len(p), nil
}

func (l *lineLogger) flush() {
	if len(l.buf) > 0 {
		l.line(string(l.buf))
		l.buf = nil
	}
}

func (l *lineLogger) line(s string) {
	s = strings.TrimRight(s, "\r")
	l.t.Logf("%s%s", l.prefix, s)
	l.tail = append(l.tail, s)
	if len(l.tail) > tailLines {
		l.tail = l.tail[len(l.tail)-tailLines:]
	}
}

// Package e2e holds the end-to-end tests of ephemeral-store on a kind cluster
// (DESIGN.md section 7, tier 4): the chart installed with helm into a fresh
// namespace, the store driven through port-forward tunnels with the project's
// Go client and a user certificate the chart generated. The cluster comes
// from tests/internal/kindcluster (created once per run, or reused).
//
//	go test -count=1 -run E2E -v -timeout 30m ./tests/...   (make test-e2e)
//
// Under -short every test here skips. ES_E2E_KEEP=1 keeps the namespace of a
// failed test for inspection.
package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gruntwork-io/terratest/modules/helm"
	"github.com/gruntwork-io/terratest/modules/k8s"
	"github.com/gruntwork-io/terratest/modules/random"
	"github.com/gruntwork-io/terratest/modules/retry"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ephemeral-store/ephemeral-store/store/client"
	"github.com/ephemeral-store/ephemeral-store/tests/internal/kindcluster"
)

const (
	// release keeps the chart's old object names (ephemeral-store-0, ...); the
	// unique namespace keeps it apart from a `make up` install.
	release    = "ephemeral-store"
	replicas   = 3 // values-kind.yaml
	clientPort = 8087
	testUser   = "myuser" // values-kind.yaml: a user with a client certificate Secret, every key
	// Readiness polls: 2s apart, 5 minutes at most.
	pollEvery = 2 * time.Second
	pollTries = 150
)

// store is one installed release in its own namespace.
type store struct {
	cluster *kindcluster.Cluster
	ns      string
	kubectl *k8s.KubectlOptions
	tls     *tls.Config
}

func (s *store) pod(i int) string { return fmt.Sprintf("%s-%d", release, i) }

// serviceDNS is the client Service's cluster DNS name, a SAN of the server
// certificate the chart generates (templates/_helpers.tpl serverSANs).
func (s *store) serviceDNS() string { return fmt.Sprintf("%s.%s.svc.cluster.local", release, s.ns) }

// installStore installs the chart with values-kind.yaml into a new unique
// namespace and waits until every store pod is Ready. Cleanup (helm delete,
// namespace delete) is registered as soon as there is something to clean.
func installStore(t *testing.T, ctx context.Context, c *kindcluster.Cluster) *store {
	ns := "e2e-" + strings.ToLower(random.UniqueID())
	s := &store{cluster: c, ns: ns, kubectl: c.KubectlOptions(ns)}

	t.Logf("creating namespace %s", ns)
	require.NoError(t, k8s.CreateNamespaceContextE(t, ctx, s.kubectl, ns))
	t.Cleanup(func() {
		if keep(t) {
			return
		}
		cctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		t.Logf("cleanup: deleting namespace %s", ns)
		if err := k8s.DeleteNamespaceContextE(t, cctx, s.kubectl, ns); err != nil {
			t.Errorf("cleanup: delete namespace %s: %v", ns, err)
		}
	})

	opts := &helm.Options{
		KubectlOptions: s.kubectl,
		ValuesFiles:    []string{filepath.Join(c.ChartDir(), "values-kind.yaml")},
		ExtraArgs:      map[string][]string{"install": {"--wait", "--timeout", "10m"}, "delete": {"--wait", "--timeout", "3m"}},
	}
	// Registered before the install: a --wait that times out leaves a release behind.
	t.Cleanup(func() {
		if keep(t) {
			return
		}
		cctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
		defer cancel()
		t.Logf("cleanup: helm delete %s in %s", release, ns)
		if err := helm.DeleteContextE(t, cctx, opts, release, true); err != nil {
			t.Logf("cleanup: helm delete %s: %v", release, err)
		}
	})
	// Registered last, so it runs first: the evidence, before anything is deleted.
	t.Cleanup(func() {
		if t.Failed() {
			dumpDiagnostics(t, s)
		}
	})

	t.Logf("helm install %s %s -f values-kind.yaml --namespace %s --wait (up to 10m)", release, c.ChartDir(), ns)
	start := time.Now()
	require.NoError(t, helm.InstallContextE(t, ctx, opts, c.ChartDir(), release), "helm install")
	t.Logf("helm install done in %s", time.Since(start).Round(time.Second))

	for i := range replicas {
		require.NoError(t, k8s.WaitUntilPodAvailableContextE(t, ctx, s.kubectl, s.pod(i), pollTries, pollEvery),
			"store pod %s never became Ready", s.pod(i))
	}
	t.Logf("all %d store pods Ready", replicas)

	s.tls = userTLS(t, ctx, s, testUser)
	return s
}

// userTLS builds the client TLS configuration from the user's certificate
// Secret (<release>-user-<name>: tls.crt, tls.key, ca.crt), checking the
// server as the client Service, whatever local port the tunnel uses.
func userTLS(t *testing.T, ctx context.Context, s *store, user string) *tls.Config {
	t.Helper()
	name := fmt.Sprintf("%s-user-%s", release, user)
	secret, err := k8s.GetSecretContextE(t, ctx, s.kubectl, name)
	require.NoError(t, err, "user certificate Secret %s", name)
	for _, k := range []string{"tls.crt", "tls.key", "ca.crt"} {
		require.NotEmpty(t, secret.Data[k], "Secret %s has no %s", name, k)
	}
	cert, err := tls.X509KeyPair(secret.Data["tls.crt"], secret.Data["tls.key"])
	require.NoError(t, err, "Secret %s: tls.crt/tls.key", name)
	roots := x509.NewCertPool()
	require.True(t, roots.AppendCertsFromPEM(secret.Data["ca.crt"]), "Secret %s: no PEM certificate in ca.crt", name)
	t.Logf("user %s: client certificate from Secret %s, server checked as %s", user, name, s.serviceDNS())
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		RootCAs:      roots,
		Certificates: []tls.Certificate{cert},
		ServerName:   s.serviceDNS(),
	}
}

// tunnel opens a port-forward to port 8087 of a pod or of the client Service
// and returns a store client for it; both are closed by cleanup, or earlier
// by the returned function.
func (s *store) tunnel(t *testing.T, kind k8s.KubeResourceType, name string) (*client.Client, func()) {
	t.Helper()
	tun := k8s.NewTunnel(s.kubectl, kind, name, 0, clientPort)
	require.NoError(t, tun.ForwardPortE(t), "port-forward to %s/%s", kind, name)
	cl, err := client.New(client.Config{
		Endpoints: []string{"https://" + tun.Endpoint()},
		TLS:       s.tls,
		Timeout:   20 * time.Second,
	})
	require.NoError(t, err)
	t.Logf("tunnel %s/%s:%d -> %s", kind, name, clientPort, tun.Endpoint())
	closed := false
	closeFn := func() {
		if !closed {
			closed = true
			_ = cl.Close()
			tun.Close()
		}
	}
	t.Cleanup(closeFn)
	return cl, closeFn
}

// TestE2EStoreOnKindReplicatesAndSurvivesPodDeletion installs the chart on
// kind, writes keys through pod 0, reads them linearizably through pod 1 and
// through the client Service, checks the membership (3 voters, one leader),
// deletes pod 1, and reads every key through its new incarnation.
func TestE2EStoreOnKindReplicatesAndSurvivesPodDeletion(t *testing.T) {
	c := kindcluster.Ensure(t)
	ctx := t.Context()
	start := time.Now()
	s := installStore(t, ctx, c)

	// Write through pod 0.
	pod0, _ := s.tunnel(t, k8s.ResourceTypePod, s.pod(0))
	want := map[string][]byte{}
	run := strings.ToLower(random.UniqueID())
	for i := range 20 {
		key := fmt.Sprintf("e2e/%s/key-%02d", run, i)
		want[key] = []byte(fmt.Sprintf("value %d of run %s", i, run))
	}
	want["pools/"+run+"/slash/and space"] = []byte("a key with / and a space")
	for _, key := range sortedKeys(want) {
		res, err := pod0.Put(ctx, key, want[key])
		require.NoError(t, err, "put %q through %s", key, s.pod(0))
		require.Positive(t, res.Revision)
	}
	t.Logf("wrote %d keys through %s", len(want), s.pod(0))

	// Linearizable reads through pod 1 and through the client Service.
	pod1, closePod1 := s.tunnel(t, k8s.ResourceTypePod, s.pod(1))
	requireKeys(t, ctx, pod1, s.pod(1), want)
	svc, _ := s.tunnel(t, k8s.ResourceTypeService, release)
	requireKeys(t, ctx, svc, "Service "+release, want)

	// Membership: every pod a voter, one leader.
	before := requireMembership(t, ctx, pod0, s)
	oldID := before[s.pod(1)]

	// Delete pod 1; the StatefulSet brings it back as a new, empty incarnation
	// that rejoins and catches up from the others.
	closePod1()
	oldPod, err := k8s.GetPodContextE(t, ctx, s.kubectl, s.pod(1))
	require.NoError(t, err)
	t.Logf("deleting pod %s (uid %s, member %s)", s.pod(1), oldPod.UID, oldID)
	require.NoError(t, k8s.RunKubectlContextE(t, ctx, s.kubectl, "delete", "pod", s.pod(1), "--wait=true"))
	_, err = retry.DoWithRetryContextE(t, ctx, fmt.Sprintf("new pod %s Ready", s.pod(1)), pollTries, pollEvery,
		func() (string, error) {
			p, err := k8s.GetPodContextE(t, ctx, s.kubectl, s.pod(1))
			switch {
			case err != nil:
				return "", err
			case p.UID == oldPod.UID:
				return "", fmt.Errorf("pod %s is still the deleted one (uid %s)", p.Name, p.UID)
			case !k8s.IsPodAvailable(p):
				return "", k8s.NewPodNotAvailableError(p)
			}
			return "pod " + p.Name + " Ready, uid " + string(p.UID), nil
		})
	require.NoError(t, err, "pod %s did not come back Ready", s.pod(1))
	t.Logf("pod %s is back and Ready", s.pod(1))

	// Every key through the new incarnation: linearizable, then from its own replica.
	pod1, _ = s.tunnel(t, k8s.ResourceTypePod, s.pod(1))
	requireKeys(t, ctx, pod1, s.pod(1)+" (new incarnation)", want)
	for _, key := range sortedKeys(want) {
		kv, err := pod1.Get(ctx, key, client.Stale())
		require.NoError(t, err, "stale get %q through the new %s", key, s.pod(1))
		require.Equal(t, string(want[key]), string(kv.Value), "stale get %q through the new %s", key, s.pod(1))
	}
	t.Logf("the new %s also serves all %d keys from its own replica (stale reads)", s.pod(1), len(want))

	// The old incarnation of pod 1 has left the configuration; the new one is a voter.
	var after map[string]string
	_, err = retry.DoWithRetryContextE(t, ctx, "membership after the rejoin", 30, pollEvery, func() (string, error) {
		st, err := pod1.Cluster(ctx)
		if err != nil {
			return "", err
		}
		m, err := membership(st, s)
		if err != nil {
			return "", err
		}
		if m[s.pod(1)] == oldID {
			return "", fmt.Errorf("%s is still the old incarnation %s", s.pod(1), oldID)
		}
		after = m
		return "", nil
	})
	require.NoError(t, err)
	t.Logf("membership after the rejoin: %v (%s was %s)", after, s.pod(1), oldID)
	t.Logf("done in %s (install included)", time.Since(start).Round(time.Second))
}

// requireKeys reads every key of want through cl (linearizable reads).
func requireKeys(t *testing.T, ctx context.Context, cl *client.Client, via string, want map[string][]byte) {
	t.Helper()
	for _, key := range sortedKeys(want) {
		kv, err := cl.Get(ctx, key)
		require.NoError(t, err, "get %q through %s", key, via)
		require.Equal(t, string(want[key]), string(kv.Value), "get %q through %s", key, via)
	}
	t.Logf("read all %d keys back through %s (linearizable reads)", len(want), via)
}

// requireMembership checks GET /v1/cluster: one member per pod, every one a
// voter, exactly one leader, agreed on by the answering node. It returns the
// member ID (incarnation) of each pod.
func requireMembership(t *testing.T, ctx context.Context, cl *client.Client, s *store) map[string]string {
	t.Helper()
	st, err := cl.Cluster(ctx)
	require.NoError(t, err, "GET /v1/cluster")
	m, err := membership(st, s)
	require.NoError(t, err)
	t.Logf("GET /v1/cluster: %d members %v, leader %s, revision %d", len(st.Members), m, st.Leader, st.Revision)
	return m
}

func membership(st *client.ClusterStatus, s *store) (map[string]string, error) {
	ids := map[string]string{}
	var leaders []string
	for _, mem := range st.Members {
		if mem.Suffrage != "voter" {
			return nil, fmt.Errorf("member %s (%s) is a %s, not a voter", mem.Name, mem.ID, mem.Suffrage)
		}
		ids[mem.Name] = mem.ID
		if mem.Leader {
			leaders = append(leaders, mem.ID)
		}
	}
	if len(st.Members) != replicas || len(ids) != replicas {
		return nil, fmt.Errorf("want %d members, one per pod; have %d: %+v", replicas, len(st.Members), st.Members)
	}
	for i := range replicas {
		if ids[s.pod(i)] == "" {
			return nil, fmt.Errorf("pod %s is not a member: %+v", s.pod(i), st.Members)
		}
	}
	if len(leaders) != 1 {
		return nil, fmt.Errorf("want exactly one leader, have %d: %+v", len(leaders), st.Members)
	}
	if st.Leader != leaders[0] {
		return nil, fmt.Errorf("leader %q in the status, %q in the member list", st.Leader, leaders[0])
	}
	return ids, nil
}

func sortedKeys(m map[string][]byte) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// keep reports whether a failed test's namespace is kept (ES_E2E_KEEP=1).
func keep(t *testing.T) bool {
	if t.Failed() && os.Getenv("ES_E2E_KEEP") == "1" {
		t.Logf("ES_E2E_KEEP=1: namespace kept for inspection")
		return true
	}
	return false
}

// dumpDiagnostics logs what a failure needs: pods, their description and
// logs (current and previous container), the release's objects and events.
func dumpDiagnostics(t *testing.T, s *store) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	t.Logf("=== diagnostics of namespace %s (the test failed) ===", s.ns)
	kubectl := func(args ...string) {
		out, err := k8s.RunKubectlAndGetOutputContextE(t, ctx, s.kubectl, args...)
		if err != nil && out == "" {
			out = err.Error()
		}
		t.Logf("$ kubectl -n %s %s\n%s", s.ns, strings.Join(args, " "), out)
	}
	kubectl("get", "all,secrets,configmaps,pdb", "-o", "wide")
	kubectl("describe", "pods")
	pods, err := k8s.ListPodsContextE(t, ctx, s.kubectl, metav1.ListOptions{LabelSelector: "app.kubernetes.io/instance=" + release})
	if err != nil {
		t.Logf("list pods: %v", err)
	}
	for _, p := range pods {
		kubectl("logs", p.Name, "--all-containers", "--tail=300")
		kubectl("logs", p.Name, "--all-containers", "--previous", "--tail=100")
	}
	kubectl("get", "events", "--sort-by=.lastTimestamp")
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Logf("diagnostics cut short: %v", ctx.Err())
	}
}

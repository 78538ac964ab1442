//go:build e2e

// Package e2e holds the end-to-end suites of ephemeral-store on a kind
// cluster (docs/architecture.md, "Test tiers"). Every suite installs the chart with
// terratest's helm module into its own namespace, drives the store from the
// host through port-forwards and from inside the cluster through a client
// pod of the project's image, runs `helm test` on every install, and cleans
// up. The cluster comes from tests/internal/kindcluster (created once per
// run, or reused).
//
//	make test-e2e                       every suite
//	cd tests && go test -tags e2e -count=1 -timeout 75m -run 'E2EReplication' -v ./e2e/
//
// The package is behind the e2e build tag, so that a plain `go test ./...`
// never starts Docker. ES_E2E_KEEP=1 keeps the namespace of a failed suite
// for inspection.
//
// This file is the harness the suites share: install, upgrade, readiness,
// tunnels, the in-cluster client pod, metrics and diagnostics.
package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gruntwork-io/terratest/modules/helm"
	"github.com/gruntwork-io/terratest/modules/k8s"
	"github.com/gruntwork-io/terratest/modules/random"
	"github.com/gruntwork-io/terratest/modules/retry"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ephemeral-store/ephemeral-store/store/client"
	"github.com/ephemeral-store/ephemeral-store/store/client/api"
	"github.com/ephemeral-store/ephemeral-store/tests/internal/kindcluster"
)

const (
	// defaultRelease keeps the chart's old object names (ephemeral-store-0, ...).
	defaultRelease = "ephemeral-store"
	clientPort     = 8087
	peerPort       = 8088
	probePort      = 8089
	respPort       = 6379 // containerPorts.resp, with resp.enabled
	// testUser is the values-kind.yaml user with a client certificate Secret and every key.
	testUser = "myuser"
	// Readiness polls: 2 s apart, 5 minutes at most. The VM can freeze for
	// minutes; every bound here is generous and every wait is on a condition.
	pollEvery = 2 * time.Second
	pollTries = 150
)

// suite starts a suite: it runs in parallel with the other suites (each has
// its own namespace; `-parallel` bounds how many at once), logs its scenario,
// and returns the kind cluster.
func suite(t *testing.T, name string) *kindcluster.Cluster {
	t.Helper()
	t.Parallel()
	scenario(t, name)
	return kindcluster.Ensure(t)
}

// scenario logs the suite's name now and its outcome and duration when the
// test ends (registered first, so it is logged last, after the cleanup).
func scenario(t *testing.T, name string) {
	t.Helper()
	start := time.Now()
	t.Logf("=== scenario %q", name)
	t.Cleanup(func() {
		outcome := "passed"
		if t.Failed() {
			outcome = "FAILED"
		}
		t.Logf("=== scenario %q %s in %s", name, outcome, time.Since(start).Round(time.Second))
	})
}

// installOptions says what to install; zero values take the defaults.
type installOptions struct {
	// Release is the Helm release name (default ephemeral-store).
	Release string
	// Namespace is created for the release (default e2e-<Label>-<random>).
	Namespace string
	// Label names the namespace (lower case, short).
	Label string
	// Replicas is replicaCount (default 3, from values-kind.yaml).
	Replicas int
	// ValuesFiles are given after values-kind.yaml.
	ValuesFiles []string
	// Set and SetString are --set and --set-string values.
	Set       map[string]string
	SetString map[string]string
	// User is the user whose certificate Secret the host's clients use (default myuser).
	User string
	// BeforeInstall runs in the new namespace before helm install (for
	// objects an operator creates first, such as a CA Secret).
	BeforeInstall func(r *release)
}

// release is one installed chart in its own namespace.
type release struct {
	cluster *kindcluster.Cluster
	// name is the Helm release; fullname prefixes every object of the chart
	// (the release name when it contains "ephemeral-store", else
	// <release>-ephemeral-store: templates/_helpers.tpl fullname).
	name     string
	fullname string
	ns       string
	replicas int
	// user is the user of tls.
	user    string
	kubectl *k8s.KubectlOptions
	helm    *helm.Options
	// kube is the API for the tunnels and the log followers.
	kube *kubeAccess
	// tls is the host's client configuration for the user of installOptions.
	tls *tls.Config
}

func (r *release) pod(i int) string { return fmt.Sprintf("%s-%d", r.fullname, i) }

// serviceDNS is the client Service's cluster DNS name, a SAN of the server
// certificate the chart generates (templates/_helpers.tpl serverSANs).
func (r *release) serviceDNS() string {
	return fmt.Sprintf("%s.%s.svc.cluster.local", r.fullname, r.ns)
}

// podDNS is a store pod's name under the headless Service (<fullname>-info), also a SAN.
func (r *release) podDNS(i int) string {
	return fmt.Sprintf("%s.%s-info.%s.svc.cluster.local", r.pod(i), r.fullname, r.ns)
}

// podURL is pod i's client endpoint inside the cluster.
func (r *release) podURL(i int) string { return fmt.Sprintf("https://%s:%d", r.podDNS(i), clientPort) }

// serviceURL is the client Service's endpoint inside the cluster.
func (r *release) serviceURL() string {
	return fmt.Sprintf("https://%s:%d", r.serviceDNS(), clientPort)
}

// revision is the store's current revision as cl's node reports it: a
// watch from it sees every later write.
func revision(t *testing.T, cl *client.Client) int64 {
	t.Helper()
	st, err := cl.Cluster(t.Context())
	require.NoError(t, err, "GET /v1/cluster")
	require.Positive(t, st.Revision)
	return st.Revision
}

// userSecretName is the user's client certificate Secret the chart makes.
func (r *release) userSecretName(user string) string { return r.fullname + "-user-" + user }

// caSecretName is the root CA Secret (generate and caSecret modes).
func (r *release) caSecretName() string { return r.fullname + "-secret" }

// clientLabel is the label that lets a pod through the NetworkPolicy to the client port.
func (r *release) clientLabel() string { return r.fullname + "-client" }

// selector selects the store pods of the release.
func (r *release) selector() string {
	return "app.kubernetes.io/instance=" + r.name + ",app.kubernetes.io/component=store"
}

// install installs the chart into a new namespace, waits until every store
// pod is Ready and the cluster has one voter per pod and a leader, and runs
// `helm test`. Cleanup (diagnostics on failure, helm delete, namespace
// delete) is registered as soon as there is something to clean.
func install(t *testing.T, c *kindcluster.Cluster, o installOptions) *release {
	t.Helper()
	ctx := t.Context()
	if o.Release == "" {
		o.Release = defaultRelease
	}
	if o.Label == "" {
		o.Label = "suite"
	}
	if o.Namespace == "" {
		o.Namespace = "e2e-" + o.Label + "-" + strings.ToLower(random.UniqueID())
	}
	if o.Replicas == 0 {
		o.Replicas = 3
	}
	if o.User == "" {
		o.User = testUser
	}
	set := map[string]string{"replicaCount": fmt.Sprint(o.Replicas)}
	// ES_E2E_IMAGE_TAG runs the suites on another tag of the store image
	// (built with STORE_IMAGE=localhost/ephemeral-store:<tag> scripts/store-image.sh
	// and loaded with kind load), so that several work trees can share one cluster.
	if tag := os.Getenv("ES_E2E_IMAGE_TAG"); tag != "" {
		set["image.tag"] = tag
	}
	for k, v := range o.Set {
		set[k] = v
	}
	r := &release{cluster: c, name: o.Release, fullname: fullname(o.Release), ns: o.Namespace, replicas: o.Replicas,
		user: o.User, kubectl: c.KubectlOptions(o.Namespace)}
	r.kube = newKubeAccess(t, c, r)
	r.helm = &helm.Options{
		KubectlOptions: r.kubectl,
		ValuesFiles:    append([]string{filepath.Join(c.ChartDir(), "values-kind.yaml")}, o.ValuesFiles...),
		SetValues:      set,
		SetStrValues:   o.SetString,
		ExtraArgs: map[string][]string{
			"install": {"--wait", "--timeout", "10m"},
			"upgrade": {"--wait", "--timeout", "15m"},
			"delete":  {"--wait", "--timeout", "3m"},
		},
	}

	t.Logf("creating namespace %s", r.ns)
	require.NoError(t, k8s.CreateNamespaceContextE(t, ctx, r.kubectl, r.ns))
	t.Cleanup(func() {
		if keep(t) {
			return
		}
		cctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		t.Logf("cleanup: deleting namespace %s", r.ns)
		if err := k8s.DeleteNamespaceContextE(t, cctx, r.kubectl, r.ns); err != nil {
			t.Errorf("cleanup: delete namespace %s: %v", r.ns, err)
		}
	})
	// Registered before the install: a --wait that times out leaves a release behind.
	t.Cleanup(func() {
		if keep(t) {
			return
		}
		cctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
		defer cancel()
		t.Logf("cleanup: helm delete %s in %s", r.name, r.ns)
		if err := helm.DeleteContextE(t, cctx, r.helm, r.name, true); err != nil {
			t.Logf("cleanup: helm delete %s: %v", r.name, err)
		}
	})
	// Registered last, so it runs first: the evidence, before anything is deleted.
	t.Cleanup(func() {
		if t.Failed() {
			r.dumpDiagnostics(t)
		}
	})

	if o.BeforeInstall != nil {
		o.BeforeInstall(r)
	}
	t.Logf("helm install %s (%d replicas, namespace %s, values-kind.yaml %v, set %v %v) --wait",
		r.name, r.replicas, r.ns, o.ValuesFiles, set, o.SetString)
	start := time.Now()
	require.NoError(t, helm.InstallContextE(t, ctx, r.helm, c.ChartDir(), r.name), "helm install")
	t.Logf("helm install done in %s", time.Since(start).Round(time.Second))
	r.waitHealthy(t)
	r.helmTest(t)
	return r
}

// fullname is the chart's fullname of a release without overrides.
func fullname(release string) string {
	if strings.Contains(release, defaultRelease) {
		return release
	}
	return release + "-" + defaultRelease
}

// upgrade runs `helm upgrade --wait` with extra --set-string values (on top
// of the install's), then waits until the cluster is whole again and runs
// `helm test`. Strings, so that a random ID of digits stays a string.
func (r *release) upgrade(t *testing.T, set map[string]string) {
	t.Helper()
	if r.helm.SetStrValues == nil {
		r.helm.SetStrValues = map[string]string{}
	}
	for k, v := range set {
		r.helm.SetStrValues[k] = v
	}
	t.Logf("helm upgrade %s --set %v --wait", r.name, set)
	start := time.Now()
	require.NoError(t, helm.UpgradeContextE(t, t.Context(), r.helm, r.cluster.ChartDir(), r.name), "helm upgrade")
	t.Logf("helm upgrade done in %s", time.Since(start).Round(time.Second))
	r.waitHealthy(t)
	r.helmTest(t)
}

// helmTest runs the chart's `helm test` pod (a write and a read through the
// client Service with a user certificate) and fails the test when it fails.
func (r *release) helmTest(t *testing.T) {
	t.Helper()
	start := time.Now()
	// No --logs: the hook pod is deleted once it succeeds; a failed one stays
	// and its containers' logs are shown here.
	out, err := helm.RunHelmCommandAndGetOutputContextE(t, t.Context(), r.helm, "test", r.name, "--timeout", "5m")
	if err != nil {
		logs, _ := k8s.RunKubectlAndGetOutputContextE(t, t.Context(), r.kubectl, "logs", "--all-containers", "--prefix",
			"-l", "app.kubernetes.io/instance="+r.name+",app.kubernetes.io/component=test")
		require.NoError(t, err, "helm test %s:\n%s\ntest pod logs:\n%s", r.name, out, logs)
	}
	t.Logf("helm test %s passed in %s", r.name, time.Since(start).Round(time.Second))
}

// waitHealthy waits until every store pod is Ready and GET /v1/cluster
// through pod 0 shows one voter per pod (no placeholder) and a leader.
func (r *release) waitHealthy(t *testing.T) {
	t.Helper()
	ctx := t.Context()
	for i := range r.replicas {
		require.NoError(t, k8s.WaitUntilPodAvailableContextE(t, ctx, r.kubectl, r.pod(i), pollTries, pollEvery),
			"store pod %s never became Ready", r.pod(i))
	}
	t.Logf("all %d store pods Ready", r.replicas)
	if r.tls == nil {
		r.tls = r.userTLS(t, r.user)
	}
	cl, closeFn := r.podClient(t, 0)
	defer closeFn()
	ids := r.members(t, cl)
	t.Logf("one voter per pod and a leader: %v", ids)
}

// members waits until status (through cl) shows exactly one voter per pod,
// each pod a member, one leader agreed on; it returns each pod's member ID.
func (r *release) members(t *testing.T, cl *client.Client) map[string]string {
	t.Helper()
	var ids map[string]string
	_, err := retry.DoWithRetryContextE(t, t.Context(), "one voter per pod and a leader", pollTries, pollEvery, func() (string, error) {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		st, err := cl.Cluster(ctx)
		if err != nil {
			return "", err
		}
		m, err := r.membership(st)
		if err != nil {
			return "", err
		}
		ids = m
		return fmt.Sprintf("members %v, leader %s, revision %d", m, st.Leader, st.Revision), nil
	})
	require.NoError(t, err)
	return ids
}

// membership checks a /v1/cluster answer: one voter per pod, no other
// member (placeholders included), one leader, agreed on by the node.
func (r *release) membership(st *api.ClusterStatus) (map[string]string, error) {
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
	if len(st.Members) != r.replicas || len(ids) != r.replicas {
		return nil, fmt.Errorf("want %d members, one per pod; have %d: %+v", r.replicas, len(st.Members), st.Members)
	}
	for i := range r.replicas {
		if ids[r.pod(i)] == "" {
			return nil, fmt.Errorf("pod %s is not a member: %+v", r.pod(i), st.Members)
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

// userSecret returns the user's client certificate Secret the chart made
// (<release>-user-<name>: tls.crt, tls.key, ca.crt).
func (r *release) userSecret(t *testing.T, user string) *corev1.Secret {
	t.Helper()
	name := r.userSecretName(user)
	secret, err := k8s.GetSecretContextE(t, t.Context(), r.kubectl, name)
	require.NoError(t, err, "user certificate Secret %s", name)
	for _, k := range []string{"tls.crt", "tls.key", "ca.crt"} {
		require.NotEmpty(t, secret.Data[k], "Secret %s has no %s", name, k)
	}
	return secret
}

// userTLS builds a host client's TLS configuration from the user's
// certificate Secret, checking the server as the client Service whatever
// local port the tunnel uses.
func (r *release) userTLS(t *testing.T, user string) *tls.Config {
	t.Helper()
	secret := r.userSecret(t, user)
	cfg := r.tlsConfig(t, secret.Data["tls.crt"], secret.Data["tls.key"], secret.Data["ca.crt"])
	t.Logf("user %s: client certificate from Secret %s, server checked as %s", user, secret.Name, r.serviceDNS())
	return cfg
}

// tlsConfig is a client configuration from PEM bytes; certPEM may be nil
// (no client certificate).
func (r *release) tlsConfig(t *testing.T, certPEM, keyPEM, caPEM []byte) *tls.Config {
	t.Helper()
	roots := x509.NewCertPool()
	require.True(t, roots.AppendCertsFromPEM(caPEM), "no PEM certificate in the CA bundle")
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots, ServerName: r.serviceDNS()}
	if certPEM != nil {
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		require.NoError(t, err, "client key pair")
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg
}

// forward opens a tunnel (localTunnel) from a free local port to port of a
// pod or Service; it is closed by cleanup, or earlier by the returned
// function.
func (r *release) forward(t *testing.T, kind k8s.KubeResourceType, name string, port int) (endpoint string, closeFn func()) {
	t.Helper()
	var tun *localTunnel
	_, err := retry.DoWithRetryContextE(t, t.Context(), fmt.Sprintf("port-forward to %s/%s:%d", kind, name, port), 30, pollEvery,
		func() (string, error) {
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			var err error
			tun, err = openTunnel(ctx, r.kube, kind, name, port)
			return "", err
		})
	require.NoError(t, err)
	t.Cleanup(tun.Close)
	return tun.endpoint(), tun.Close
}

// tunnel returns a store client through a port-forward to the client port
// of a pod or Service, with cfg (the release's user when nil).
func (r *release) tunnel(t *testing.T, kind k8s.KubeResourceType, name string, cfg *tls.Config) (*client.Client, func()) {
	t.Helper()
	if cfg == nil {
		cfg = r.tls
	}
	endpoint, closeTunnel := r.forward(t, kind, name, clientPort)
	cl, err := client.New(client.Config{Endpoints: []string{"https://" + endpoint}, TLS: cfg, Timeout: 20 * time.Second})
	require.NoError(t, err)
	t.Logf("tunnel %s/%s:%d -> %s", kind, name, clientPort, endpoint)
	closeFn := func() {
		_ = cl.Close()
		closeTunnel()
	}
	t.Cleanup(closeFn)
	return cl, closeFn
}

// podClient is a store client through a port-forward to pod i.
func (r *release) podClient(t *testing.T, i int) (*client.Client, func()) {
	t.Helper()
	return r.tunnel(t, k8s.ResourceTypePod, r.pod(i), nil)
}

// metrics scrapes /metrics on pod i's probe port and returns every sample
// of the family name, keyed by its labels (a="b",c="d"; "" when none).
func (r *release) metrics(t *testing.T, i int, name string) map[string]float64 {
	t.Helper()
	endpoint, closeFn := r.forward(t, k8s.ResourceTypePod, r.pod(i), probePort)
	defer closeFn()
	var body []byte
	_, err := retry.DoWithRetryContextE(t, t.Context(), "GET /metrics of "+r.pod(i), 15, pollEvery, func() (string, error) {
		// Each attempt is bounded: a tunnel that accepts and then stalls
		// must not hold the suite until the go test timeout.
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+endpoint+"/metrics", nil)
		if err != nil {
			return "", err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("GET /metrics: %s", resp.Status)
		}
		body, err = io.ReadAll(resp.Body)
		return "", err
	})
	require.NoError(t, err)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	require.NoError(t, err, "parse /metrics of %s", r.pod(i))
	out := map[string]float64{}
	fam, ok := families[name]
	if !ok {
		return out
	}
	for _, m := range fam.GetMetric() {
		var labels []string
		for _, l := range m.GetLabel() {
			labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
		}
		var v float64
		switch {
		case m.GetCounter() != nil:
			v = m.GetCounter().GetValue()
		case m.GetGauge() != nil:
			v = m.GetGauge().GetValue()
		case m.GetUntyped() != nil:
			v = m.GetUntyped().GetValue()
		}
		out[strings.Join(labels, ",")] = v
	}
	return out
}

// metricSum is the sum of every sample of the family name on pod i.
func (r *release) metricSum(t *testing.T, i int, name string) float64 {
	t.Helper()
	var sum float64
	for _, v := range r.metrics(t, i, name) {
		sum += v
	}
	return sum
}

// storePods lists the release's store pods, by name.
func (r *release) storePods(t *testing.T) map[string]corev1.Pod {
	t.Helper()
	pods, err := k8s.ListPodsContextE(t, t.Context(), r.kubectl, metav1.ListOptions{LabelSelector: r.selector()})
	require.NoError(t, err)
	out := map[string]corev1.Pod{}
	for _, p := range pods {
		out[p.Name] = p
	}
	return out
}

// podIdentity is what proves a pod did not restart: its UID and the restart
// count of every container.
func podIdentity(p corev1.Pod) string {
	var restarts []string
	for _, cs := range p.Status.ContainerStatuses {
		restarts = append(restarts, fmt.Sprintf("%s:%d", cs.Name, cs.RestartCount))
	}
	sort.Strings(restarts)
	return fmt.Sprintf("uid=%s restarts=%s", p.UID, strings.Join(restarts, ","))
}

// identities is podIdentity of every store pod.
func (r *release) identities(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for name, p := range r.storePods(t) {
		out[name] = podIdentity(p)
	}
	return out
}

// requireKeys reads every key of want through cl (linearizable reads).
func requireKeys(t *testing.T, cl *client.Client, via string, want map[string][]byte) {
	t.Helper()
	for _, key := range sortedKeys(want) {
		kv, err := cl.Get(t.Context(), key)
		require.NoError(t, err, "get %q through %s", key, via)
		require.Equal(t, string(want[key]), string(kv.Value), "get %q through %s", key, via)
	}
	t.Logf("read all %d keys back through %s (linearizable reads)", len(want), via)
}

// writeKeys writes n keys under prefix through cl and returns them.
func writeKeys(t *testing.T, cl *client.Client, via, prefix string, n int) map[string][]byte {
	t.Helper()
	want := map[string][]byte{}
	for i := range n {
		want[fmt.Sprintf("%s/key-%03d", prefix, i)] = []byte(fmt.Sprintf("value %d under %s", i, prefix))
	}
	for _, key := range sortedKeys(want) {
		res, err := cl.Put(t.Context(), key, want[key])
		require.NoError(t, err, "put %q through %s", key, via)
		require.Positive(t, res.Revision)
	}
	t.Logf("wrote %d keys under %s through %s", n, prefix, via)
	return want
}

// sortedKeys is the keys of m, sorted.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
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
func (r *release) dumpDiagnostics(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	t.Logf("=== diagnostics of namespace %s (the test failed) ===", r.ns)
	kubectl := func(args ...string) {
		out, err := k8s.RunKubectlAndGetOutputContextE(t, ctx, r.kubectl, args...)
		if err != nil && out == "" {
			out = err.Error()
		}
		t.Logf("$ kubectl -n %s %s\n%s", r.ns, strings.Join(args, " "), out)
	}
	kubectl("get", "all,secrets,configmaps,pdb,networkpolicies", "-o", "wide")
	kubectl("describe", "pods")
	pods, err := k8s.ListPodsContextE(t, ctx, r.kubectl, metav1.ListOptions{})
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

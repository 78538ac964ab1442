//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/gruntwork-io/terratest/modules/k8s"
	"github.com/gruntwork-io/terratest/modules/retry"
	"github.com/stretchr/testify/require"
)

// TestE2ENetworkPolicy: with the chart's NetworkPolicy, the cluster's policy
// agent (kube-network-policies, deployed by scripts/kind-cluster.sh) lets a
// pod labelled <fullname>-client reach the client port of every store pod and
// drops a pod without the label there, while that pod still reaches the
// probe port of the same store pod; the peer port is dropped for the labelled
// client too, while the store pods replicate over it. With the policy deleted,
// the same probes connect where they were dropped: the drops were the
// policy's.
func TestE2ENetworkPolicy(t *testing.T) {
	c := suite(t, "network policy")
	r := install(t, c, installOptions{Label: "netpol", Set: map[string]string{
		"networkPolicy.enabled":       "true",
		"networkPolicy.allowExternal": "false",
		"resp.enabled":                "true",
	}})
	_, err := k8s.RunKubectlAndGetOutputContextE(t, t.Context(), r.kubectl, "get", "networkpolicy", r.fullname)
	require.NoError(t, err, "the chart made no NetworkPolicy %s", r.fullname)

	// The peer port carries Raft between the store pods under the policy: a
	// write through pod 0 is read linearizably through every other pod.
	pod0, _ := r.podClient(t, 0)
	r.members(t, pod0)
	want := writeKeys(t, pod0, r.pod(0), "e2e/netpol", 5)
	for i := 1; i < r.replicas; i++ {
		cl, _ := r.podClient(t, i)
		requireKeys(t, cl, r.pod(i), want)
	}

	image := busyboxImage(t, c.RepoRoot)
	labelled := r.startProbePod(t, "probe-labelled", image, true)
	unlabelled := r.startProbePod(t, "probe-unlabelled", image, false)
	pods := r.storePods(t)
	ips := map[int]string{}
	for i := range r.replicas {
		p := pods[r.pod(i)]
		require.NotEmpty(t, p.Status.PodIP, "pod %s has no IP", r.pod(i))
		ips[i] = p.Status.PodIP
	}

	for i := range r.replicas {
		at := fmt.Sprintf("%s (%s)", r.pod(i), ips[i])
		r.expectProbe(t, labelled, ips[i], clientPort, connected, "labelled client -> client port of "+at)
		r.expectProbe(t, unlabelled, ips[i], clientPort, dropped, "unlabelled pod -> client port of "+at)
		r.expectProbe(t, unlabelled, ips[i], probePort, connected, "unlabelled pod -> probe port of "+at)
		r.expectProbe(t, labelled, ips[i], peerPort, dropped, "labelled client -> peer port of "+at)
	}
	r.expectProbe(t, unlabelled, ips[0], peerPort, dropped, "unlabelled pod -> peer port of "+r.pod(0))
	// The Redis-protocol port admits the client port's clients, no one else.
	r.expectProbe(t, labelled, ips[0], respPort, connected, "labelled client -> RESP port of "+r.pod(0))
	r.expectProbe(t, unlabelled, ips[0], respPort, dropped, "unlabelled pod -> RESP port of "+r.pod(0))

	// The twin: without the policy the dropped probes connect.
	require.NoError(t, k8s.RunKubectlContextE(t, t.Context(), r.kubectl, "delete", "networkpolicy", r.fullname))
	t.Logf("NetworkPolicy %s deleted: the same probes must now connect", r.fullname)
	r.expectProbe(t, unlabelled, ips[0], clientPort, connected, "unlabelled pod -> client port of "+r.pod(0)+", no policy")
	r.expectProbe(t, unlabelled, ips[0], respPort, connected, "unlabelled pod -> RESP port of "+r.pod(0)+", no policy")
	r.expectProbe(t, labelled, ips[0], peerPort, connected, "labelled client -> peer port of "+r.pod(0)+", no policy")
}

// busyboxImage is the busybox image the offline node image holds under our
// own name (scripts/node-image.sh; the version is BUSYBOX_VERSION of
// scripts/versions.sh): the store's image has no shell and no nc.
func busyboxImage(t *testing.T, root string) string {
	t.Helper()
	versions, err := os.ReadFile(filepath.Join(root, "scripts", "versions.sh"))
	require.NoError(t, err)
	m := regexp.MustCompile(`(?m)^export BUSYBOX_VERSION=(\S+)`).FindSubmatch(versions)
	require.NotNil(t, m, "no BUSYBOX_VERSION in scripts/versions.sh")
	return "localhost/ephemeral-store/busybox:" + string(m[1])
}

// probePodSpec is a busybox pod that only sleeps; probes are `kubectl exec`s of nc.
const probePodSpec = `apiVersion: v1
kind: Pod
metadata:
  name: %[1]s
  labels:
    app.kubernetes.io/name: e2e-netpol-probe
%[2]s
spec:
  automountServiceAccountToken: false
  enableServiceLinks: false
  terminationGracePeriodSeconds: 1
  securityContext:
    runAsNonRoot: true
    runAsUser: 65534
    runAsGroup: 65534
    seccompProfile: {type: RuntimeDefault}
  containers:
    - name: probe
      image: %[3]s
      imagePullPolicy: IfNotPresent
      command: [sleep, "3600"]
      resources:
        requests: {cpu: 5m, memory: 8Mi}
      securityContext:
        allowPrivilegeEscalation: false
        readOnlyRootFilesystem: true
        capabilities: {drop: [ALL]}
`

// startProbePod creates a probe pod, with the NetworkPolicy's client label
// when labelled, and waits until it runs.
func (r *release) startProbePod(t *testing.T, name, image string, labelled bool) string {
	t.Helper()
	labels := ""
	if labelled {
		labels = fmt.Sprintf("    %s: \"true\"", r.clientLabel())
	}
	spec := fmt.Sprintf(probePodSpec, name, labels, image)
	require.NoError(t, k8s.KubectlApplyFromStringContextE(t, t.Context(), r.kubectl, spec), "create probe pod %s", name)
	require.NoError(t, k8s.WaitUntilPodAvailableContextE(t, t.Context(), r.kubectl, name, pollTries, pollEvery),
		"probe pod %s never ran (image %s: built into the node image by scripts/node-image.sh)", name, image)
	p, err := k8s.GetPodContextE(t, t.Context(), r.kubectl, name)
	require.NoError(t, err)
	t.Logf("probe pod %s (client label: %t) runs on %s at %s", name, labelled, p.Spec.NodeName, p.Status.PodIP)
	return name
}

// outcome is what a TCP connect from a probe pod met.
type outcome string

const (
	connected outcome = "connected"
	// dropped: no answer until nc's connect timeout, what a policy's drop
	// looks like (the agent drops the SYN; nothing answers).
	dropped outcome = "dropped (connect timed out)"
	// refused and unreachable are answers, never a policy's drop: nothing
	// listens there, or no route.
	refused     outcome = "refused (RST)"
	unreachable outcome = "unreachable (ICMP)"
)

// probe connects from pod to ip:port with busybox nc (3 s connect timeout)
// and says what happened, with nc's output.
func (r *release) probe(t *testing.T, pod, ip string, port int) (outcome, string) {
	t.Helper()
	out, err := k8s.ExecPodContextE(t, t.Context(), r.kubectl, pod, "probe", "sh", "-c",
		fmt.Sprintf(`timeout 10 nc -w 3 %s %d </dev/null 2>&1; echo "rc=$?"`, ip, port))
	if err != nil {
		return outcome("exec failed"), fmt.Sprintf("%v: %s", err, out)
	}
	out = strings.TrimSpace(out)
	switch {
	case strings.HasSuffix(out, "rc=0"):
		return connected, out
	case strings.Contains(out, "timed out"):
		return dropped, out
	case strings.Contains(out, "refused"):
		return refused, out
	case strings.Contains(out, "unreachable"), strings.Contains(out, "No route"):
		return unreachable, out
	}
	return outcome("other failure"), out
}

// expectProbe polls the probe until it meets want (the agent learns new pods
// and policies within seconds), then logs it; it fails with the last outcome.
func (r *release) expectProbe(t *testing.T, pod, ip string, port int, want outcome, what string) {
	t.Helper()
	var got outcome
	var out string
	_, err := retry.DoWithRetryContextE(t, t.Context(), what, 15, pollEvery, func() (string, error) {
		got, out = r.probe(t, pod, ip, port)
		if got != want {
			return "", fmt.Errorf("%s: %s, want %s (nc: %q)", what, got, want, out)
		}
		return string(got), nil
	})
	require.NoError(t, err, "%s: %s, want %s; nc said %q. Without a NetworkPolicy agent on the cluster nothing is "+
		"dropped: kubectl -n kube-system get ds kube-network-policies (scripts/kind-cluster.sh deploys it)", what, got, want, out)
	t.Logf("%s: %s", what, got)
}

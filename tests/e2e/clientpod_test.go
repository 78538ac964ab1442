//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/gruntwork-io/terratest/modules/k8s"
	"github.com/gruntwork-io/terratest/modules/retry"
	"github.com/stretchr/testify/require"

	"github.com/ephemeral-store/ephemeral-store/store/client/api"
)

// clientPod is a client inside the cluster: a pod of the store's own image
// (FROM scratch, so no shell) labelled as a client of the NetworkPolicy,
// with a user's certificate Secret mounted. Its container runs
// `ephemeral-store watch PREFIX -w json` against one endpoint, so its log is
// the watch's events; `kubectl exec` runs one CLI command beside it.
type clientPod struct {
	kubectl *k8s.KubectlOptions // the pod's namespace
	name    string
}

// clientPodSpec is the pod; the CLI reads its flags from ES_* variables.
const clientPodSpec = `apiVersion: v1
kind: Pod
metadata:
  name: %[1]s
  labels:
    app.kubernetes.io/name: e2e-client
    %[2]s: "true"
spec:
  restartPolicy: Always
  automountServiceAccountToken: false
  enableServiceLinks: false
  securityContext:
    runAsNonRoot: true
    runAsUser: 65532
    runAsGroup: 65532
    fsGroup: 65532
    seccompProfile: {type: RuntimeDefault}
  terminationGracePeriodSeconds: 2
  dnsConfig:
    options: [{name: ndots, value: "2"}]  # as the chart's test pod: FQDNs resolve at the first query
  containers:
    - name: client
      image: %[3]s
      imagePullPolicy: IfNotPresent
      args: [watch, %[4]q, -w, json, --from, "%[7]d"]
      env:
        - {name: ES_ENDPOINTS, value: %[5]q}
        - {name: ES_CERT, value: /etc/ephemeral-store/user/tls.crt}
        - {name: ES_KEY, value: /etc/ephemeral-store/user/tls.key}
        - {name: ES_CACERT, value: /etc/ephemeral-store/user/ca.crt}
      resources:
        requests: {cpu: 10m, memory: 16Mi}
      securityContext:
        allowPrivilegeEscalation: false
        readOnlyRootFilesystem: true
        capabilities: {drop: [ALL]}
      volumeMounts:
        - {name: user, mountPath: /etc/ephemeral-store/user, readOnly: true}
  volumes:
    - name: user
      secret:
        secretName: %[6]s
        defaultMode: 288
`

// storeImage is the image the release's StatefulSet runs.
func (r *release) storeImage(t *testing.T) string {
	t.Helper()
	img, err := k8s.RunKubectlAndGetOutputContextE(t, t.Context(), r.kubectl, "get", "statefulset", r.fullname,
		"-o", "jsonpath={.spec.template.spec.containers[0].image}")
	require.NoError(t, err)
	require.NotEmpty(t, img, "statefulset %s has no image", r.fullname)
	return img
}

// startClientPod creates the client pod name as user, watching prefix
// through endpoint (a URL inside the cluster) from revision from on, and
// waits until it runs. Starting from a revision known to precede the writes
// a suite waits for, the watch cannot miss them, however late its stream
// opens or often its container restarts.
func (r *release) startClientPod(t *testing.T, name, user, endpoint, prefix string, from int64) *clientPod {
	t.Helper()
	require.Positive(t, from, "the watch of a client pod starts at a known revision")
	secret := r.userSecretName(user)
	spec := fmt.Sprintf(clientPodSpec, name, r.clientLabel(), r.storeImage(t), prefix, endpoint, secret, from)
	c := applyClientPod(t, r.kubectl, name, spec)
	t.Logf("client pod %s: user %s, watching %q through %s", name, user, prefix, endpoint)
	return c
}

// applyClientPod creates the client pod of spec in kubectl's namespace and
// waits until it runs.
func applyClientPod(t *testing.T, kubectl *k8s.KubectlOptions, name, spec string) *clientPod {
	t.Helper()
	require.NoError(t, k8s.KubectlApplyFromStringContextE(t, t.Context(), kubectl, spec), "create client pod %s", name)
	require.NoError(t, k8s.WaitUntilPodAvailableContextE(t, t.Context(), kubectl, name, pollTries, pollEvery),
		"client pod %s never ran", name)
	return &clientPod{kubectl: kubectl, name: name}
}

// run runs `ephemeral-store ARGS...` in the client pod and returns its
// combined output.
func (c *clientPod) run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return k8s.ExecPodContextE(t, t.Context(), c.kubectl, c.name, "client", append([]string{"/ephemeral-store"}, args...)...)
}

// mustRun is run, retried while kubectl exec itself fails (the API server
// or the kubelet hiccups); a command that ran and failed (kubectl reports
// its exit code: a store refusal, a usage error) fails the test at once.
func (c *clientPod) mustRun(t *testing.T, args ...string) string {
	t.Helper()
	var out string
	_, err := retry.DoWithRetryContextE(t, t.Context(), "kubectl exec in "+c.name, 10, pollEvery, func() (string, error) {
		var err error
		out, err = c.run(t, args...)
		if err != nil && strings.Contains(out+err.Error(), "command terminated with exit code") {
			return "", retry.FatalError{Underlying: err}
		}
		return out, err
	})
	require.NoError(t, err, "in pod %s: ephemeral-store %s\n%s", c.name, strings.Join(args, " "), out)
	return out
}

// events returns the watch events the pod has printed so far.
func (c *clientPod) events(t *testing.T) []api.Event {
	t.Helper()
	out, err := k8s.RunKubectlAndGetOutputContextE(t, t.Context(), c.kubectl, "logs", c.name, "-c", "client")
	require.NoError(t, err, "logs of %s", c.name)
	var evs []api.Event
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var ev api.Event
		if json.Unmarshal([]byte(line), &ev) == nil && ev.Key != "" {
			evs = append(evs, ev)
		}
	}
	return evs
}

// waitEvent waits until the pod's watch has printed a put of key with value.
func (c *clientPod) waitEvent(t *testing.T, key, value string) api.Event {
	t.Helper()
	var found api.Event
	_, err := retry.DoWithRetryContextE(t, t.Context(), fmt.Sprintf("watch in %s sees put %s", c.name, key), 60, pollEvery,
		func() (string, error) {
			for _, ev := range c.events(t) {
				if ev.Key == key && ev.Type == api.EventPut && string(ev.Value) == value {
					found = ev
					return fmt.Sprintf("revision %d", ev.Revision), nil
				}
			}
			return "", fmt.Errorf("no put of %s=%q in the watch of %s yet", key, value, c.name)
		})
	require.NoError(t, err)
	return found
}

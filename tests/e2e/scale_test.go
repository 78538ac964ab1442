//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gruntwork-io/terratest/modules/k8s"
	"github.com/gruntwork-io/terratest/modules/random"
	"github.com/gruntwork-io/terratest/modules/retry"
	"github.com/stretchr/testify/require"

	"github.com/ephemeral-store/ephemeral-store/store/client"
)

// TestE2EScaleDownAndUpUnderLoad: `helm upgrade --set replicaCount=3` from
// 5 replicas, back to 5, then `kubectl scale statefulset --replicas=3`, all
// while four clients write and read through the pods that stay (and the
// client Service), retrying what fails. After each change every pod acts on
// the new count and the configuration is exactly one voter per pod (no
// placeholder of a removed pod); the pods that stay are never restarted (the
// pod template does not depend on the count); the history is linearizable
// (porcupine); no acknowledged write is lost; no pod counted a data loss;
// and every pod reports the cluster id of the start. The pods' egress is
// restricted (networkPolicy.restrictEgress): the chart must let them reach
// the API server, or they never learn the count. Issue 18: a scale-down
// from 5 to 3 rolled every pod while the survivors still counted 5
// replicas, and the cluster re-formed empty.
func TestE2EScaleDownAndUpUnderLoad(t *testing.T) {
	c := suite(t, "scale down and up under load")
	// With egress locked down, as values-prod.yaml does: the pods must
	// still reach the Kubernetes API for the count.
	r := install(t, c, installOptions{Label: "scale", Replicas: 5, Set: map[string]string{"networkPolicy.restrictEgress": "true"}})
	run := strings.ToLower(random.UniqueID())

	kube := r.kube
	tunnels := &podTunnels{kube: kube, r: r, tls: r.tls.Clone()}
	tunnels.tls.NextProtos = []string{"h2", "http/1.1"}
	const stay = 3 // pods 0..2 are in every step
	clusterID := r.requireScaled(t, tunnels, "")

	load := newUpgradeLoad(run)
	stopLoad := load.start(t, newLoadClients(t, r, tunnels, stay))
	load.waitOps(t, opsBeforeAndAfter, "before the first scale")
	from := load.h.Now()
	staying := func() map[string]string {
		ids := r.identities(t)
		out := map[string]string{}
		for i := range stay {
			out[r.pod(i)] = ids[r.pod(i)]
		}
		return out
	}
	before := staying()

	// replicaCount is an integer in the schema: --set, not the harness's
	// --set-string.
	helmScale := func(n int) func() {
		return func() {
			r.helm.SetValues["replicaCount"] = fmt.Sprint(n)
			r.upgrade(t, nil)
		}
	}
	steps := []struct {
		what  string
		to    int
		scale func()
	}{
		{"helm upgrade --set replicaCount=3", 3, helmScale(3)},
		{"helm upgrade --set replicaCount=5", 5, helmScale(5)},
		{"kubectl scale statefulset --replicas=3", 3, func() {
			k8s.RunKubectlContext(t, t.Context(), r.kubectl, "scale", "statefulset", r.fullname, "--replicas=3")
			r.waitHealthy(t)
		}},
	}
	for _, s := range steps {
		start := time.Now()
		r.replicas = s.to
		s.scale()
		r.requireScaled(t, tunnels, clusterID)
		t.Logf("%s: %d pods, each acting on %d replicas, one voter each, %s after the change began",
			s.what, s.to, s.to, time.Since(start).Round(time.Second))
		require.Equal(t, before, staying(), "%s restarted a pod that stays: the pod template must not depend on the count", s.what)
		load.waitOps(t, 5, "after "+s.what)
	}
	to := load.h.Now()
	stopLoad()

	final := load.finalReads(t, r, tunnels)

	load.reportWithGap(t, from, to, "while scaling")
	for i := range r.replicas {
		require.Zero(t, r.metricSum(t, i, "ephemeral_store_data_loss_events_total"), "%s counted a data loss", r.pod(i))
	}
	load.verdicts(t, final, "e2e-scale-linearizability-*.html")
}

// requireScaled waits until every store pod, asked alone, acts on
// r.replicas replicas, shows one voter per pod and no other member
// (membership), and reports one cluster id (clusterID when given); it
// returns that id.
func (r *release) requireScaled(t *testing.T, tunnels *podTunnels, clusterID string) string {
	t.Helper()
	pods := make([]*client.Client, r.replicas)
	for i := range pods {
		pods[i] = tunnels.client(t, r.pod(i))
	}
	var id string
	_, err := retry.DoWithRetryContextE(t, t.Context(), fmt.Sprintf("every pod acts on %d replicas", r.replicas), pollTries, pollEvery, func() (string, error) {
		ids := map[string]bool{}
		for i := range r.replicas {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			st, err := pods[i].Cluster(ctx)
			cancel()
			if err != nil {
				return "", fmt.Errorf("%s: %w", r.pod(i), err)
			}
			if st.Replicas != r.replicas {
				return "", fmt.Errorf("%s acts on %d replicas, want %d", r.pod(i), st.Replicas, r.replicas)
			}
			if _, err := r.membership(st); err != nil {
				return "", fmt.Errorf("%s: %w", r.pod(i), err)
			}
			ids[st.ClusterID] = true
			id = st.ClusterID
		}
		if len(ids) != 1 || (clusterID != "" && id != clusterID) {
			return "", fmt.Errorf("cluster ids %v, want one: %q", ids, clusterID)
		}
		return id, nil
	})
	require.NoError(t, err)
	return id
}

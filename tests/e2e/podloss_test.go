//go:build e2e

package e2e

import (
	"context"
	"errors"
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

const dataLossMetric = "ephemeral_store_data_loss_events_total"

// TestE2EPodLossAndNonPersistence: five replicas. Each store pod is deleted
// in turn, and each time the new incarnation rejoins, is promoted, and
// serves every key written before: one pod lost, data present. Then three
// of the five are force-deleted at once: the two survivors cannot know the
// data is safe, so the cluster re-forms by itself, empty, serves again, and
// counts the loss in ephemeral_store_data_loss_events_total. Nothing is on
// disk, so nothing comes back.
func TestE2EPodLossAndNonPersistence(t *testing.T) {
	c := suite(t, "pod loss and non-persistence")
	r := install(t, c, installOptions{Label: "loss", Replicas: 5})
	requireObjectNames(t, r, defaultRelease) // the default release keeps the old object names
	prefix := "e2e/" + strings.ToLower(random.UniqueID())

	cl, closeCl := r.podClient(t, 0)
	before := r.members(t, cl)
	want := writeKeys(t, cl, r.pod(0), prefix, 25)
	closeCl()

	// The twin of the absence check below: one pod lost at a time, data present.
	for i := range r.replicas {
		r.replacePod(t, i, before[r.pod(i)], false)
		cl, closeCl := r.podClient(t, i)
		after := r.members(t, cl)
		require.NotEqual(t, before[r.pod(i)], after[r.pod(i)], "%s is a new incarnation", r.pod(i))
		requireKeys(t, cl, r.pod(i)+" (new incarnation)", want)
		for _, key := range sortedKeys(want) {
			kv, err := cl.Get(t.Context(), key, client.Stale())
			require.NoError(t, err, "stale get %q through the new %s", key, r.pod(i))
			require.Equal(t, string(want[key]), string(kv.Value))
		}
		t.Logf("the new %s serves all %d keys, also from its own replica (stale reads)", r.pod(i), len(want))
		before = after
		closeCl()
	}
	for i := range r.replicas {
		require.Zero(t, r.metricSum(t, i, dataLossMetric), "%s counted a data loss while a majority lived", r.pod(i))
	}
	t.Logf("%d single-pod losses: no key lost, %s is 0 on every pod", r.replicas, dataLossMetric)

	// A majority lost at once: three of five force-deleted. A survivor is
	// asked to write from the moment of the delete on: it answers no_quorum
	// until the cluster has re-formed.
	lost := []string{r.pod(0), r.pod(1), r.pod(2)}
	old := r.storePods(t)
	survivor, closeSurvivor := r.podClient(t, 4)
	t.Logf("force-deleting %v at once", lost)
	start := time.Now()
	require.NoError(t, k8s.RunKubectlContextE(t, t.Context(), r.kubectl,
		append([]string{"delete", "pod", "--grace-period=0", "--force", "--wait=false"}, lost...)...))
	_, err := retry.DoWithRetryContextE(t, t.Context(), "a write through the survivor "+r.pod(4)+" after the majority loss", pollTries, time.Second,
		func() (string, error) {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			if _, err := survivor.Put(ctx, prefix+"/after", []byte("after the loss")); err != nil {
				return "", err
			}
			// Re-formed means the new, empty cluster: while the deleted
			// pods' containers are still being killed, the old one may
			// briefly still take a write.
			if _, err := survivor.Get(ctx, sortedKeys(want)[0]); !errors.Is(err, client.ErrKeyNotFound) {
				return "", fmt.Errorf("still the old cluster (an old key reads %w)", err)
			}
			return "", nil
		})
	require.NoError(t, err)
	reformed := time.Since(start)
	closeSurvivor()
	t.Logf("re-formed: a write through the survivor %s succeeded %s after the force-delete", r.pod(4), reformed.Round(100*time.Millisecond))
	for _, name := range lost {
		r.waitReplaced(t, name, string(old[name].UID))
	}
	t.Logf("the three deleted pods are back and Ready %s after the force-delete", time.Since(start).Round(100*time.Millisecond))
	r.waitHealthy(t)

	// The old keys are gone on every pod, and the loss was counted.
	for i := range r.replicas {
		cl, closeCl := r.podClient(t, i)
		for _, key := range sortedKeys(want) {
			_, err := cl.Get(t.Context(), key)
			require.Truef(t, errors.Is(err, client.ErrKeyNotFound), "get %q through %s after the majority loss: want key_not_found, got %v", key, r.pod(i), err)
		}
		kv, err := cl.Get(t.Context(), prefix+"/after")
		require.NoError(t, err)
		require.Equal(t, "after the loss", string(kv.Value))
		closeCl()
	}
	t.Logf("all %d old keys are gone on every pod; the key written after re-forming is everywhere", len(want))
	var counted float64
	for i := range r.replicas {
		n := r.metricSum(t, i, dataLossMetric)
		t.Logf("%s: %s = %v", r.pod(i), dataLossMetric, n)
		counted += n
	}
	require.GreaterOrEqual(t, counted, 1.0, "no pod counted the data loss in %s", dataLossMetric)
	r.helmTest(t)
}

// replacePod deletes pod i (gracefully, or forced) and waits until its new
// incarnation is Ready and a voter in place of oldID.
func (r *release) replacePod(t *testing.T, i int, oldID string, force bool) {
	t.Helper()
	name := r.pod(i)
	p, err := k8s.GetPodContextE(t, t.Context(), r.kubectl, name)
	require.NoError(t, err)
	args := []string{"delete", "pod", name, "--wait=true"}
	if force {
		args = append(args, "--grace-period=0", "--force")
	}
	start := time.Now()
	t.Logf("deleting pod %s (uid %s, member %s)", name, p.UID, oldID)
	require.NoError(t, k8s.RunKubectlContextE(t, t.Context(), r.kubectl, args...))
	r.waitReplaced(t, name, string(p.UID))
	t.Logf("pod %s replaced and Ready in %s", name, time.Since(start).Round(100*time.Millisecond))
}

// waitReplaced waits until pod name is a new pod (not uid) and Ready.
func (r *release) waitReplaced(t *testing.T, name, uid string) {
	t.Helper()
	_, err := retry.DoWithRetryContextE(t, t.Context(), fmt.Sprintf("new pod %s Ready", name), pollTries, pollEvery,
		func() (string, error) {
			p, err := k8s.GetPodContextE(t, t.Context(), r.kubectl, name)
			switch {
			case err != nil:
				return "", err
			case string(p.UID) == uid:
				return "", fmt.Errorf("pod %s is still the deleted one (uid %s)", name, uid)
			case !k8s.IsPodAvailable(p):
				return "", k8s.NewPodNotAvailableError(p)
			}
			return "pod " + name + " Ready, uid " + string(p.UID), nil
		})
	require.NoError(t, err, "pod %s did not come back Ready", name)
}

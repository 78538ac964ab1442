//go:build e2e

package e2e

import (
	"strings"
	"testing"

	"github.com/gruntwork-io/terratest/modules/k8s"
	"github.com/gruntwork-io/terratest/modules/random"
	"github.com/stretchr/testify/require"
)

// TestE2EOldDocsShape: the old documentation's deployment, five pods, under
// a release name other than ephemeral-store in a namespace other than
// default. `helm test` passes (install runs it), every object carries the
// release's fullname, and a client inside the cluster writes and reads
// through the client Service by its DNS name.
func TestE2EOldDocsShape(t *testing.T) {
	c := suite(t, "old docs shape: five replicas, another release name and namespace")
	r := install(t, c, installOptions{Release: "kvcache", Label: "docs", Replicas: 5})
	require.Equal(t, "kvcache-ephemeral-store", r.fullname)
	requireObjectNames(t, r, r.fullname)

	cl, _ := r.podClient(t, 4)
	ids := r.members(t, cl)
	t.Logf("five voters: %v", ids)

	run := strings.ToLower(random.UniqueID())
	inside := r.startClientPod(t, "client-"+run, testUser, r.serviceURL(), "pools/", revision(t, cl))
	inside.mustRun(t, "put", "pools/"+run, "healthy")
	out := inside.mustRun(t, "get", "pools/"+run, "--expect", "healthy")
	t.Logf("in-cluster put and get through %s: %s", r.serviceDNS(), strings.TrimSpace(out))
	kv, err := cl.Get(t.Context(), "pools/"+run)
	require.NoError(t, err)
	require.Equal(t, "healthy", string(kv.Value))
}

// requireObjectNames checks the names an operator of the old system knows:
// the users ConfigMap <name>-users, the headless Service <name>-info, the
// client Service and the StatefulSet <name>, the root CA Secret
// <name>-secret. With the default release, <name> is ephemeral-store.
func requireObjectNames(t *testing.T, r *release, name string) {
	t.Helper()
	for _, obj := range []string{
		"configmap/" + name + "-users",
		"service/" + name + "-info",
		"service/" + name,
		"statefulset/" + name,
		"secret/" + name + "-secret",
	} {
		_, err := k8s.RunKubectlAndGetOutputContextE(t, t.Context(), r.kubectl, "get", obj, "-o", "name")
		require.NoError(t, err, "no %s in %s", obj, r.ns)
	}
	t.Logf("objects named as the old docs name them: %s-users, %s-info, %s, %s-secret", name, name, name, name)
}

//go:build e2e

package e2e

import (
	"strings"
	"testing"

	"github.com/gruntwork-io/terratest/modules/k8s"
	"github.com/gruntwork-io/terratest/modules/random"
	"github.com/stretchr/testify/require"
)

// TestE2EReplication: a write through one pod is read, linearizably, through
// every other pod and through the client Service, from the host (port-
// forwards) and from a client pod inside the cluster (pod DNS names); a
// watch opened on pod 0 sees a write made through pod 2.
func TestE2EReplication(t *testing.T) {
	c := suite(t, "replication")
	r := install(t, c, installOptions{Label: "repl"})
	run := strings.ToLower(random.UniqueID())
	prefix := "e2e/" + run

	// From the host: write through pod 0, read through pods 1 and 2 and the Service.
	pod0, _ := r.podClient(t, 0)
	r.members(t, pod0)
	want := writeKeys(t, pod0, r.pod(0), prefix, 20)
	want["pools/"+run+"/slash/and space"] = []byte("a key with / and a space")
	_, err := pod0.Put(t.Context(), "pools/"+run+"/slash/and space", want["pools/"+run+"/slash/and space"])
	require.NoError(t, err)
	for i := 1; i < r.replicas; i++ {
		cl, _ := r.podClient(t, i)
		requireKeys(t, cl, r.pod(i), want)
	}
	svc, _ := r.tunnel(t, k8s.ResourceTypeService, r.fullname, nil)
	requireKeys(t, svc, "Service "+r.fullname, want)

	// Inside the cluster: a client pod watches through pod 0 and reads through
	// every pod by its DNS name and through the Service.
	watcher := r.startClientPod(t, "client-"+run, testUser, r.podURL(0), prefix+"/", revision(t, pod0))
	probe := prefix + "/key-007"
	for i := range r.replicas {
		out := watcher.mustRun(t, "get", probe, "--endpoints", r.podURL(i),
			"--expect", string(want[probe]))
		t.Logf("in-cluster get %s through %s: %s", probe, r.podDNS(i), strings.TrimSpace(out))
	}
	watcher.mustRun(t, "get", probe, "--endpoints", r.serviceURL(),
		"--expect", string(want[probe]))
	t.Logf("in-cluster get %s through the Service %s: ok", probe, r.serviceDNS())

	// The watch on pod 0 sees a write made through pod 2 (from the host) and
	// one made inside the cluster through pod 1.
	pod2, _ := r.podClient(t, r.replicas-1)
	res, err := pod2.Put(t.Context(), prefix+"/watched", []byte("written through "+r.pod(r.replicas-1)))
	require.NoError(t, err)
	ev := watcher.waitEvent(t, prefix+"/watched", "written through "+r.pod(r.replicas-1))
	require.Equal(t, res.Revision, ev.Revision, "the watch reports the write's revision")
	t.Logf("the watch through %s saw the put through %s at revision %d", r.pod(0), r.pod(r.replicas-1), ev.Revision)
	watcher.mustRun(t, "put", prefix+"/watched-2", "from inside", "--endpoints", r.podURL(1))
	watcher.waitEvent(t, prefix+"/watched-2", "from inside")
	t.Logf("the watch through %s saw the in-cluster put through %s", r.pod(0), r.pod(1))
}

//go:build e2e

package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/gruntwork-io/terratest/modules/k8s"
	"github.com/gruntwork-io/terratest/modules/random"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// TestE2EReplication: a write through one pod is read, linearizably, through
// every other pod and through the client Service, from the host (port-
// forwards) and from a client pod inside the cluster (pod DNS names); a
// watch opened on pod 0 sees a write made through pod 2.
func TestE2EReplication(t *testing.T) {
	c := suite(t, "replication")
	r := install(t, c, installOptions{Label: "repl", Set: map[string]string{"resp.enabled": "true"}})
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

	// The same keys over the Redis protocol, through the Service's resp
	// port, with a Redis client library and the user's certificate.
	rc := r.respClient(t, k8s.ResourceTypeService, r.fullname)
	for _, k := range sortedKeys(want) {
		got, err := rc.Get(t.Context(), k).Result()
		require.NoError(t, err, "RESP GET %q through the Service", k)
		require.Equal(t, string(want[k]), got, "RESP GET %q through the Service", k)
	}
	require.NoError(t, rc.Set(t.Context(), prefix+"/over-resp", "written over RESP", 0).Err(), "RESP SET through the Service")
	kv, err := svc.Get(t.Context(), prefix+"/over-resp")
	require.NoError(t, err, "HTTP GET of the key SET over RESP")
	require.Equal(t, "written over RESP", string(kv.Value))
	t.Logf("RESP: %d keys read and one written through the Service's resp port", len(want))

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

// respClient is a go-redis client (one connection, RESP2, linearizable
// reads) through a port-forward to the resp port of a pod or Service, with
// the release's user.
func (r *release) respClient(t *testing.T, kind k8s.KubeResourceType, name string) *redis.Client {
	t.Helper()
	endpoint, _ := r.forward(t, kind, name, respPort)
	rc := redis.NewClient(&redis.Options{
		Addr: endpoint, TLSConfig: r.tls.Clone(), Protocol: 2, PoolSize: 1,
		DialTimeout: 20 * time.Second, ReadTimeout: 20 * time.Second, WriteTimeout: 20 * time.Second,
	})
	t.Cleanup(func() { _ = rc.Close() })
	return rc
}

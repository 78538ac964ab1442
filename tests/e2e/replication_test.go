//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"sync"
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

	// A Redis Cluster client seeded with the Service: CLUSTER SLOTS names
	// the leader by its pod DNS name (a SAN of its certificate), and the
	// client sends every SET there, none through a follower.
	st, err := pod0.Cluster(t.Context())
	require.NoError(t, err)
	leader := -1
	for i := range r.replicas {
		if strings.HasPrefix(st.Leader, r.pod(i)+"/") {
			leader = i
		}
	}
	require.GreaterOrEqual(t, leader, 0, "leader %q is one of the pods", st.Leader)
	setsBefore := make([]float64, r.replicas)
	for i := range r.replicas {
		setsBefore[i] = r.metrics(t, i, "ephemeral_store_resp_commands_total")[`command="SET",result="ok"`]
	}
	cc, dialed := r.respClusterClient(t)
	slots, err := cc.ClusterSlots(t.Context()).Result()
	require.NoError(t, err, "CLUSTER SLOTS")
	require.Len(t, slots, 1)
	require.Equal(t, fmt.Sprintf("%s:%d", r.podDNS(leader), respPort), slots[0].Nodes[0].Addr, "the leader owns every slot")
	require.Len(t, slots[0].Nodes, r.replicas, "the leader and its replicas")
	const clusterSets = 10
	for i := range clusterSets {
		k := fmt.Sprintf("%s/cluster-%d", prefix, i)
		require.NoError(t, cc.Set(t.Context(), k, "through the cluster client", 0).Err(), "RESP cluster SET %s", k)
		kv, err := svc.Get(t.Context(), k)
		require.NoError(t, err, "HTTP GET of the key SET by the cluster client")
		require.Equal(t, "through the cluster client", string(kv.Value))
	}
	require.Contains(t, dialed(), r.podDNS(leader), "the cluster client dialed the leader's pod name")
	for i := range r.replicas {
		sets := r.metrics(t, i, "ephemeral_store_resp_commands_total")[`command="SET",result="ok"`] - setsBefore[i]
		if i == leader {
			require.Equal(t, float64(clusterSets), sets, "every cluster-client SET reached the leader %s", r.pod(i))
		} else {
			require.Zero(t, sets, "no cluster-client SET went through follower %s", r.pod(i))
		}
	}
	t.Logf("RESP cluster client: CLUSTER SLOTS names %s; %d SETs all on its port", slots[0].Nodes[0].Addr, clusterSets)

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

// respClusterClient is go-redis's Redis Cluster client seeded with the
// Service's resp port. The host cannot resolve pod DNS names, so its
// dialer port-forwards to the pod an address names (the Service for the
// seed) and verifies the TLS certificate against the name dialed, as a
// client inside the cluster would. dialed lists the names dialed so far.
// It keeps go-redis's retries off (MaxRetries, MaxRedirects), so each SET
// is sent once.
func (r *release) respClusterClient(t *testing.T) (*redis.ClusterClient, func() []string) {
	t.Helper()
	seed := fmt.Sprintf("%s:%d", r.serviceDNS(), respPort)
	var mu sync.Mutex
	endpoints := map[string]string{}
	var names []string
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		mu.Lock()
		endpoint, ok := endpoints[addr]
		mu.Unlock()
		if !ok {
			kind, name := k8s.ResourceTypePod, strings.Split(host, ".")[0]
			if addr == seed {
				kind, name = k8s.ResourceTypeService, r.fullname
			}
			// go-redis may dial from its own goroutines (a background
			// slot reload): an error goes back to it, never FailNow.
			tun, err := openTunnel(ctx, r.kube, kind, name, respPort)
			if err != nil {
				return nil, fmt.Errorf("port-forward to %s/%s:%d for %s: %w", kind, name, respPort, addr, err)
			}
			t.Cleanup(tun.Close)
			endpoint = tun.endpoint()
			mu.Lock()
			endpoints[addr] = endpoint
			mu.Unlock()
		}
		mu.Lock()
		names = append(names, host)
		mu.Unlock()
		raw, err := (&net.Dialer{Timeout: 20 * time.Second}).DialContext(ctx, network, endpoint)
		if err != nil {
			return nil, err
		}
		cfg := r.tls.Clone()
		cfg.ServerName = host
		return tls.Client(raw, cfg), nil
	}
	cc := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs: []string{seed}, Dialer: dial, Protocol: 2, PoolSize: 1, MaxRetries: -1, MaxRedirects: -1,
		DialTimeout: 20 * time.Second, ReadTimeout: 20 * time.Second, WriteTimeout: 20 * time.Second,
	})
	t.Cleanup(func() { _ = cc.Close() })
	return cc, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), names...)
	}
}

package server_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ephemeral-store/ephemeral-store/store/client"
	"github.com/ephemeral-store/ephemeral-store/store/internal/mtls"
	"github.com/ephemeral-store/ephemeral-store/store/internal/testcluster"
)

// respClient is a real Redis client library (go-redis, one connection) on
// node i's RESP port, with user's certificate; stale sends READONLY on
// every new connection.
func respClient(t *testing.T, c *testcluster.Cluster, i int, user string, stale bool) *redis.Client {
	t.Helper()
	cert, key, ca := c.CertPaths(user)
	cfg, err := mtls.ClientConfig(cert, key, ca)
	require.NoError(t, err)
	cfg.ServerName = "127.0.0.1"
	opts := &redis.Options{
		Addr: c.Node(i).RESP, TLSConfig: cfg, Protocol: 2, PoolSize: 1, MaxRetries: -1,
		DialTimeout: 10 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second,
	}
	if stale {
		opts.OnConnect = func(ctx context.Context, cn *redis.Conn) error { return cn.ReadOnly(ctx).Err() }
	}
	rc := redis.NewClient(opts)
	t.Cleanup(func() { rc.Close() })
	return rc
}

// TestRESPReadsSeeEveryAcknowledgedWrite: a write acknowledged through the
// HTTP API is at once visible to a linearizable GET on a follower's RESP
// port, with the library's default handshake (HELLO, CLIENT SETINFO), and
// a SET or DEL acknowledged on that port at once visible to the HTTP API.
func TestRESPReadsSeeEveryAcknowledgedWrite(t *testing.T) {
	c := testcluster.New(t, 3)
	c.WaitReady(readyTimeout)
	f := c.Follower()
	require.GreaterOrEqual(t, f, 0)
	ctx := context.Background()
	hc := c.Client(testcluster.UserAll, c.Leader())
	rc := respClient(t, c, f, testcluster.UserAll, false)
	for i := range 50 {
		v := fmt.Sprintf("v%d", i)
		_, err := hc.Put(ctx, "pools/web", []byte(v))
		require.NoError(t, err)
		got, err := rc.Get(ctx, "pools/web").Result()
		require.NoError(t, err)
		require.Equal(t, v, got, "write %d acknowledged, then read on follower %d", i, f)
	}
	_, err := rc.Get(ctx, "pools/none").Result()
	assert.ErrorIs(t, err, redis.Nil)
	vals, err := rc.MGet(ctx, "pools/web", "pools/none").Result()
	require.NoError(t, err)
	assert.Equal(t, []any{"v49", nil}, vals)
	n, err := rc.Exists(ctx, "pools/web", "pools/none").Result()
	require.NoError(t, err)
	assert.Equal(t, int64(1), n)

	// Writes on the follower's port are acknowledged once committed: the
	// leader's HTTP API sees each at once, with the TTL SET gave.
	for i := range 20 {
		v := fmt.Sprintf("w%d", i)
		require.NoError(t, rc.Set(ctx, "pools/resp", v, 30*time.Second).Err())
		kv, err := hc.Get(ctx, "pools/resp")
		require.NoError(t, err)
		require.Equal(t, v, string(kv.Value), "SET %d acknowledged on follower %d, then read on the leader", i, f)
		require.Positive(t, kv.TTLRemaining)
		require.LessOrEqual(t, kv.TTLRemaining, 30*time.Second)
	}
	ok, err := rc.SetNX(ctx, "pools/resp", "other", 0).Result()
	require.NoError(t, err)
	assert.False(t, ok, "NX on an existing key writes nothing")
	ok, err = rc.SetNX(ctx, "pools/created", "first", 0).Result()
	require.NoError(t, err)
	assert.True(t, ok)
	deleted, err := rc.Del(ctx, "pools/resp", "pools/created", "pools/none").Result()
	require.NoError(t, err)
	assert.Equal(t, int64(2), deleted)
	_, err = hc.Get(ctx, "pools/resp")
	assert.ErrorIs(t, err, client.ErrKeyNotFound, "the DEL is committed")

	// Prefixes apply as on the HTTP API.
	reader := respClient(t, c, f, testcluster.UserReader, true)
	_, err = hc.Put(ctx, "secret/x", []byte("s"))
	require.NoError(t, err)
	err = reader.Get(ctx, "secret/x").Err()
	require.Error(t, err)
	assert.Equal(t, `NOPERM user "reader" may not read "secret/x"`, err.Error())
	assert.EqualError(t, reader.Set(ctx, "pools/web", "x", 0).Err(), `NOPERM user "reader" may not write "pools/web"`)
	stranger := respClient(t, c, f, testcluster.UserUnknown, true)
	assert.EqualError(t, stranger.Get(ctx, "pools/web").Err(), `NOAUTH user "stranger" is not allowed in`)
}

// TestRESPReadsWithoutQuorum: with the majority gone a linearizable read
// is refused with TRYAGAIN, never answered from a copy that may be stale;
// after READONLY the surviving node answers from its copy.
func TestRESPReadsWithoutQuorum(t *testing.T) {
	c := testcluster.New(t, 3)
	c.WaitReady(readyTimeout)
	ctx := context.Background()
	_, err := c.Client(testcluster.UserAll).Put(ctx, "pools/web", []byte("up"))
	require.NoError(t, err)
	survivor := c.Follower()
	require.GreaterOrEqual(t, survivor, 0)
	stale := respClient(t, c, survivor, testcluster.UserAll, true)
	require.Eventually(t, func() bool { v, err := stale.Get(ctx, "pools/web").Result(); return err == nil && v == "up" },
		readyTimeout, 50*time.Millisecond, "the follower applies the write")
	for i := range 3 {
		if i != survivor {
			c.Kill(i)
		}
	}
	linear := respClient(t, c, survivor, testcluster.UserAll, false)
	err = linear.Get(ctx, "pools/web").Err()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "TRYAGAIN linearizable read not served")
	v, err := stale.Get(ctx, "pools/web").Result()
	require.NoError(t, err)
	assert.Equal(t, "up", v)
}

// respClusterClient is go-redis's Redis Cluster client seeded with every
// node's RESP port: it asks CLUSTER SLOTS which node owns the slots.
func respClusterClient(t *testing.T, c *testcluster.Cluster, user string, readOnly bool) *redis.ClusterClient {
	t.Helper()
	cert, key, ca := c.CertPaths(user)
	cfg, err := mtls.ClientConfig(cert, key, ca)
	require.NoError(t, err)
	cfg.ServerName = "127.0.0.1"
	var seeds []string
	for i := range 3 {
		seeds = append(seeds, c.Node(i).RESP)
	}
	rc := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs: seeds, TLSConfig: cfg, Protocol: 2, ReadOnly: readOnly,
		DialTimeout: 10 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second,
	})
	t.Cleanup(func() { rc.Close() })
	return rc
}

// respSETs is how many SETs node i's RESP port has answered +OK.
func respSETs(t *testing.T, c *testcluster.Cluster, i int) float64 {
	t.Helper()
	return respOK(t, c, i, "SET")
}

// respOK is how many of command node i's RESP port has answered without
// an error.
func respOK(t *testing.T, c *testcluster.Cluster, i int, command string) float64 {
	t.Helper()
	g, ok := c.Node(i).Server.Metrics().(prometheus.Gatherer)
	require.True(t, ok, "the server's registry gathers")
	families, err := g.Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() != "ephemeral_store_resp_commands_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["command"] == command && labels["result"] == "ok" {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// TestRESPClusterClientWritesToTheLeader: CLUSTER SLOTS names the leader
// as the owner of every slot and the followers as its replicas, so a Redis
// Cluster client sends every SET straight to the leader (no follower
// answers one), reads it back linearizably there, and after the leader is
// killed finds the new one and goes on writing.
func TestRESPClusterClientWritesToTheLeader(t *testing.T) {
	c := testcluster.New(t, 3)
	c.WaitReady(readyTimeout)
	ctx := context.Background()
	leader := c.Leader()
	require.GreaterOrEqual(t, leader, 0)

	slots, err := respClient(t, c, c.Follower(), testcluster.UserAll, false).ClusterSlots(ctx).Result()
	require.NoError(t, err)
	require.Len(t, slots, 1)
	assert.Equal(t, 0, slots[0].Start)
	assert.Equal(t, 16383, slots[0].End)
	require.Len(t, slots[0].Nodes, 3, "the leader and two replicas")
	assert.Equal(t, c.Node(leader).RESP, slots[0].Nodes[0].Addr, "the leader owns the slots")
	assert.Len(t, slots[0].Nodes[0].ID, 40)
	for _, n := range slots[0].Nodes[1:] {
		assert.NotEqual(t, c.Node(leader).RESP, n.Addr)
	}
	nodes, err := respClient(t, c, leader, testcluster.UserAll, false).ClusterNodes(ctx).Result()
	require.NoError(t, err)
	assert.Contains(t, nodes, c.Node(leader).RESP+"@0 myself,master - 0 0 1 connected 0-16383")

	cc := respClusterClient(t, c, testcluster.UserAll, false)
	for i := range 30 {
		v := fmt.Sprintf("v%d", i)
		require.NoError(t, cc.Set(ctx, "pools/web", v, 0).Err())
		got, err := cc.Get(ctx, "pools/web").Result()
		require.NoError(t, err)
		require.Equal(t, v, got)
	}
	assert.Equal(t, 30.0, respSETs(t, c, leader), "every SET reached the leader's port")
	for i := range 3 {
		if i != leader {
			assert.Zero(t, respSETs(t, c, i), "node %d is a follower: no SET should reach it", i)
		}
	}

	// The leader dies. go-redis reloads its slots only on a redirect or
	// every 10 s, so, as docs/interfaces.md advises, the application
	// asks for a reload when a write fails on a connection error; the
	// next CLUSTER SLOTS names the new leader.
	c.Kill(leader)
	require.Eventually(t, func() bool {
		err := cc.Set(ctx, "pools/web", "after", 0).Err()
		if err != nil {
			cc.ReloadState(ctx)
		}
		return err == nil
	}, readyTimeout, 100*time.Millisecond, "a SET succeeds after the leader is killed")
	next := c.Leader()
	require.GreaterOrEqual(t, next, 0)
	require.NotEqual(t, leader, next)
	got, err := c.Client(testcluster.UserAll, next).Get(ctx, "pools/web")
	require.NoError(t, err)
	assert.Equal(t, "after", string(got.Value))
	require.Eventually(t, func() bool {
		before := respSETs(t, c, next)
		return cc.Set(ctx, "pools/web", "direct", 0).Err() == nil && respSETs(t, c, next) == before+1
	}, readyTimeout, 100*time.Millisecond, "the client's SETs reach the new leader's port directly")

	// Read-only routing: COMMAND flags GET readonly, so a cluster client
	// with ReadOnly sends its GETs to the replica (after READONLY: its
	// own, possibly stale copy), none to the leader.
	ro := respClusterClient(t, c, testcluster.UserAll, true)
	require.Eventually(t, func() bool { v, err := ro.Get(ctx, "pools/web").Result(); return err == nil && v == "direct" },
		readyTimeout, 50*time.Millisecond)
	leaderGETs := respOK(t, c, next, "GET")
	for range 20 {
		require.NoError(t, ro.Get(ctx, "pools/web").Err())
	}
	assert.Equal(t, leaderGETs, respOK(t, c, next, "GET"), "no read-only GET reached the leader")
	var replicaGETs float64
	for i := range 3 {
		if i != next && i != leader {
			replicaGETs += respOK(t, c, i, "GET")
		}
	}
	assert.GreaterOrEqual(t, replicaGETs, 20.0, "the read-only GETs went to the replica")
}

package server_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ephemeral-store/ephemeral-store/store/client"
	"github.com/ephemeral-store/ephemeral-store/store/internal/config"
	"github.com/ephemeral-store/ephemeral-store/store/internal/scenario"
	"github.com/ephemeral-store/ephemeral-store/store/internal/testcluster"
)

const readyTimeout = 30 * time.Second

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestWritesReplicateToEveryNode(t *testing.T) {
	c := testcluster.New(t, 3)
	c.WaitReady(readyTimeout)
	ctx := ctxT(t)
	_, err := c.Client(testcluster.UserAll, 0).Put(ctx, "pools/web-1", []byte("healthy"))
	require.NoError(t, err)
	for i := 0; i < 3; i++ {
		cl := c.Client(testcluster.UserAll, i)
		require.Eventually(t, func() bool {
			kv, err := cl.Get(ctx, "pools/web-1", client.Stale())
			return err == nil && string(kv.Value) == "healthy"
		}, 10*time.Second, 20*time.Millisecond, "node %d never got the write", i)
	}
}

func TestFollowerForwardsWritesToTheLeader(t *testing.T) {
	c := testcluster.New(t, 3)
	c.WaitReady(readyTimeout)
	ctx := ctxT(t)
	f := c.Follower()
	res, err := c.Client(testcluster.UserAll, f).Put(ctx, "k", []byte("from-follower"))
	require.NoError(t, err)
	require.Positive(t, res.Revision)
	kv, err := c.Client(testcluster.UserAll, c.Leader()).Get(ctx, "k")
	require.NoError(t, err)
	require.Equal(t, "from-follower", string(kv.Value))
}

// A write acknowledged by one node is visible to a linearizable read on any
// other node at once, with no polling.
func TestLinearizableReadOnFollowerSeesWriteOnAnotherNode(t *testing.T) {
	c := testcluster.New(t, 3)
	c.WaitReady(readyTimeout)
	ctx := ctxT(t)
	leader, follower := c.Leader(), c.Follower()
	w := c.Client(testcluster.UserAll, leader)
	r := c.Client(testcluster.UserAll, follower)
	for i := 0; i < 50; i++ {
		v := fmt.Sprintf("v%d", i)
		_, err := w.Put(ctx, "counter", []byte(v))
		require.NoError(t, err)
		kv, err := r.Get(ctx, "counter")
		require.NoError(t, err)
		require.Equal(t, v, string(kv.Value), "read %d on the follower missed the acknowledged write", i)
	}
}

func TestStaleReadServesLocalCopyWithoutQuorum(t *testing.T) {
	c := testcluster.New(t, 3)
	c.WaitReady(readyTimeout)
	ctx := ctxT(t)
	_, err := c.Client(testcluster.UserAll).Put(ctx, "k", []byte("v"))
	require.NoError(t, err)
	survivor := 2
	require.Eventually(t, func() bool {
		kv, err := c.Client(testcluster.UserAll, survivor).Get(ctx, "k", client.Stale())
		return err == nil && string(kv.Value) == "v"
	}, 10*time.Second, 20*time.Millisecond)
	c.Kill(0)
	c.Kill(1)

	cl := c.Client(testcluster.UserAll, survivor)
	kv, err := cl.Get(ctx, "k", client.Stale())
	require.NoError(t, err, "a stale read needs no quorum")
	require.Equal(t, "v", string(kv.Value))
	_, err = cl.Get(ctx, "k")
	require.ErrorIs(t, err, client.ErrNoQuorum, "a linearizable read without quorum must fail")
	_, err = cl.Put(ctx, "k", []byte("w"))
	require.ErrorIs(t, err, client.ErrNoQuorum)
}

func TestLeaderLossElectsANewLeaderAndKeepsData(t *testing.T) {
	c := testcluster.New(t, 3)
	c.WaitReady(readyTimeout)
	ctx := ctxT(t)
	_, err := c.Client(testcluster.UserAll).Put(ctx, "k", []byte("before"))
	require.NoError(t, err)
	old := c.Leader()
	c.Kill(old)
	rest := allBut(c.Size(), old)
	c.WaitReady(readyTimeout, rest...)
	cl := c.Client(testcluster.UserAll, rest...)
	kv, err := cl.Get(ctx, "k")
	require.NoError(t, err)
	require.Equal(t, "before", string(kv.Value))
	_, err = cl.Put(ctx, "k", []byte("after"))
	require.NoError(t, err)
}

// allBut lists the node indexes below n except one.
func allBut(n, except int) []int {
	var out []int
	for i := 0; i < n; i++ {
		if i != except {
			out = append(out, i)
		}
	}
	return out
}

// smallSnapshots makes the leader compact its log quickly, so that a node
// restarted empty must be caught up through a snapshot.
func smallSnapshots(_ int, c *config.Config) {
	c.SnapshotThreshold = 64
	c.TrailingLogs = 16
}

func TestRestartedNodeRejoinsAsNewIncarnationAndCatchesUp(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.WithConfig(smallSnapshots))
	c.WaitReady(readyTimeout)
	ctx := ctxT(t)
	cl := c.Client(testcluster.UserAll)
	const keys = 400
	for i := 0; i < keys; i++ {
		_, err := cl.Put(ctx, fmt.Sprintf("pools/k%04d", i), []byte(fmt.Sprint(i)))
		require.NoError(t, err)
	}
	f := c.Follower()
	oldID := string(c.Node(f).Server.Node().ID())
	c.Kill(f)
	c.Start(f)
	c.WaitReady(readyTimeout)

	st := c.Node(f).Server.Node().Status()
	require.NotEqual(t, oldID, st.Self, "a restarted node must not come back as its old incarnation")
	require.Len(t, st.Members, 3, "the old incarnation must be removed: %+v", st.Members)
	for _, m := range st.Members {
		require.NotEqual(t, oldID, m.ID)
	}
	all, err := c.Client(testcluster.UserAll, f).ListAll(ctx, "pools/")
	require.NoError(t, err)
	require.Len(t, all, keys)
}

func TestTwoNodesRestartedAtOnceRejoin(t *testing.T) {
	c := testcluster.New(t, 5, testcluster.WithConfig(smallSnapshots))
	c.WaitReady(readyTimeout)
	ctx := ctxT(t)
	cl := c.Client(testcluster.UserAll)
	for i := 0; i < 100; i++ {
		_, err := cl.Put(ctx, fmt.Sprintf("k%03d", i), []byte("v"))
		require.NoError(t, err)
	}
	var down []int
	for i := 0; i < 5 && len(down) < 2; i++ {
		if i != c.Leader() {
			down = append(down, i)
		}
	}
	c.Kill(down[0])
	c.Kill(down[1])
	// Through a survivor: cl's pooled connection may be to a killed node,
	// and a write cut mid-send is not provably unsent, so the client
	// rightly reports it instead of resending it elsewhere.
	_, err := c.Client(testcluster.UserAll, c.Leader()).Put(ctx, "during", []byte("outage"))
	require.NoError(t, err, "three of five still form a majority")
	c.Start(down[0])
	c.Start(down[1])
	c.WaitReady(readyTimeout)
	for _, i := range down {
		all, err := c.Client(testcluster.UserAll, i).ListAll(ctx, "")
		require.NoError(t, err)
		require.Len(t, all, 101, "node %d after restart", i)
		require.Len(t, c.Node(i).Server.Node().Status().Members, 5)
	}
}

func TestScaleFromThreeToFiveAndBack(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.WithSpareSlots(2))
	c.WaitReady(readyTimeout)
	ctx := ctxT(t)
	_, err := c.Client(testcluster.UserAll).Put(ctx, "k", []byte("v"))
	require.NoError(t, err)
	a, b := c.AddSlot(), c.AddSlot()
	c.Start(a)
	c.Start(b)
	c.WaitReady(readyTimeout)
	require.Len(t, c.Node(0).Server.Node().Status().Members, 5)
	kv, err := c.Client(testcluster.UserAll, b).Get(ctx, "k")
	require.NoError(t, err)
	require.Equal(t, "v", string(kv.Value))

	// Scale down as a StatefulSet does: the count first, then the highest
	// ordinals leave, gracefully; they leave no placeholders.
	c.RemoveSlot()
	c.RemoveSlot()
	c.WaitReady(readyTimeout, 0, 1, 2)
	require.Eventually(t, func() bool {
		members := c.Node(0).Server.Node().Status().Members
		for _, m := range members {
			if strings.HasSuffix(m.ID, "/placeholder") {
				return false
			}
		}
		return len(members) == 3
	}, 10*time.Second, 50*time.Millisecond, "leaving nodes must leave the configuration")
	_, err = c.Client(testcluster.UserAll, 0, 1, 2).Put(ctx, "k2", []byte("v2"))
	require.NoError(t, err)
}

func TestGracefulStopOfTheLeaderHandsOver(t *testing.T) {
	c := testcluster.New(t, 3)
	c.WaitReady(readyTimeout)
	ctx := ctxT(t)
	_, err := c.Client(testcluster.UserAll).Put(ctx, "k", []byte("v"))
	require.NoError(t, err)
	l := c.Leader()
	leaverID := c.Node(l).Server.Node().Status().Self
	start := time.Now()
	c.Stop(l)
	t.Logf("graceful stop of the leader took %s", time.Since(start))
	rest := allBut(c.Size(), l)
	c.WaitReady(readyTimeout, rest...)
	// The leaver's incarnation is gone; its replica keeps its voting place
	// through a placeholder until its next incarnation is promoted, so a
	// quorum stays a majority of the replicas.
	members := c.Node(rest[0]).Server.Node().Status().Members
	require.Len(t, members, 3)
	placeholders := 0
	for _, m := range members {
		require.NotEqual(t, leaverID, m.ID, "the leaver's incarnation must be out of the configuration")
		if strings.HasSuffix(m.ID, "/placeholder") {
			placeholders++
		}
	}
	require.Equal(t, 1, placeholders)
	kv, err := c.Client(testcluster.UserAll, rest...).Get(ctx, "k")
	require.NoError(t, err)
	require.Equal(t, "v", string(kv.Value))

	// Its next incarnation takes the placeholder's place.
	c.Start(l)
	c.WaitReady(readyTimeout)
	require.Eventually(t, func() bool {
		for _, m := range c.Node(rest[0]).Server.Node().Status().Members {
			if strings.HasSuffix(m.ID, "/placeholder") || m.Suffrage != "voter" {
				return false
			}
		}
		return len(c.Node(rest[0]).Server.Node().Status().Members) == 3
	}, readyTimeout, 50*time.Millisecond, "the restarted node replaces its placeholder as a voter")
}

// When a majority dies at once and comes back empty, the data is gone and
// the cluster re-forms empty by itself. The scenario is shared with the
// multi-process tier (store/internal/faulttest), where the nodes are real
// processes killed with SIGKILL.
func TestMajorityLossReformsAnEmptyCluster(t *testing.T) {
	c := testcluster.New(t, 3)
	c.WaitReady(readyTimeout)
	scenario.MajorityLoss(t, c.Scenario())
}

// The twin that proves the assertion above can fail: the same procedure
// with the leader alone killed keeps the data.
func TestSingleNodeLossKeepsData(t *testing.T) {
	c := testcluster.New(t, 3)
	c.WaitReady(readyTimeout)
	scenario.SingleNodeLoss(t, c.Scenario())
}

// Large values trigger snapshots by bytes long before the entry count
// would, so the in-memory log stays bounded.
func TestLargeValuesTriggerSnapshotsByBytes(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.WithConfig(func(_ int, cfg *config.Config) {
		cfg.SnapshotThreshold = 1 << 20 // never by count in this test
		cfg.SnapshotBytes = 256 << 10
	}))
	c.WaitReady(readyTimeout)
	ctx := ctxT(t)
	cl := c.Client(testcluster.UserAll)
	value := make([]byte, 64<<10)
	for i := 0; i < 8; i++ {
		_, err := cl.Put(ctx, fmt.Sprintf("big/%d", i), value)
		require.NoError(t, err)
	}
	for i := 0; i < 3; i++ {
		require.Eventually(t, func() bool {
			return c.Node(i).Server.Node().Status().SnapshotIndex > 0
		}, 10*time.Second, 50*time.Millisecond, "node %d never snapshotted 512 KiB of commands", i)
	}
}

package server_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ephemeral-store/ephemeral-store/store/client"
	"github.com/ephemeral-store/ephemeral-store/store/internal/config"
	"github.com/ephemeral-store/ephemeral-store/store/internal/scenario"
	"github.com/ephemeral-store/ephemeral-store/store/internal/testcluster"
)

// handLeadership makes node to the leader of c, by a transfer from the
// current leader, and waits until every node agrees.
func handLeadership(t *testing.T, c *testcluster.Cluster, to int) {
	t.Helper()
	target := c.Node(to).Server.Node().ID()
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		l := c.Leader()
		if l < 0 {
			ct.Errorf("no leader")
			return
		}
		if l != to {
			ct.Errorf("n%d leads, not n%d", l, to)
			if err := c.Node(l).Server.Node().TransferLeadershipTo(target); err != nil {
				t.Logf("transfer from n%d to n%d: %v", l, to, err)
			}
		}
	}, 60*time.Second, 500*time.Millisecond, "n%d leads", to)
	c.WaitReady(readyTimeout)
}

// A node whose wall clock is an hour ahead (an NTP step, a bad RTC) takes
// over the leadership of keys another leader wrote with 30-minute TTLs.
// Expiry runs on the replicated cluster time, not on any wall clock: the
// keys stay, with their TTLs, while a key the stepped node writes itself
// with a 1s TTL expires on time (the twin that shows its expiry loop ran).
// On the wall-clock design the new leader found every key an hour overdue
// and expired it at once.
func TestAWallClockAnHourAheadExpiresNoKeyEarly(t *testing.T) {
	const stepped = 2
	c := testcluster.New(t, 3, testcluster.WithConfig(func(i int, cfg *config.Config) {
		if i == stepped {
			// Round(0) drops the monotonic reading: a wall clock alone,
			// as a stepped system clock is.
			cfg.WallClock = func() time.Time { return time.Now().Add(time.Hour).Round(0) }
		}
	}))
	c.WaitReady(readyTimeout)
	ctx := ctxT(t)
	handLeadership(t, c, (stepped+1)%3) // a leader with the true clock writes
	cl := c.Client(testcluster.UserAll)
	_, err := cl.Put(ctx, "lease", []byte("v"), client.WithTTL(30*time.Minute))
	require.NoError(t, err)

	kv, err := c.Client(testcluster.UserAll, stepped).Get(ctx, "lease")
	require.NoError(t, err)
	require.Greater(t, kv.TTLRemaining, 29*time.Minute, "the stepped node shows the TTL the leader gave")

	handLeadership(t, c, stepped)
	viaStepped := c.Client(testcluster.UserAll, stepped)
	_, err = viaStepped.Put(ctx, "short", []byte("v"), client.WithTTL(time.Second))
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		_, err := viaStepped.Get(ctx, "short")
		return errors.Is(err, client.ErrKeyNotFound)
	}, 60*time.Second, 100*time.Millisecond, "the stepped leader expires a 1s key")

	kv, err = viaStepped.Get(ctx, "lease")
	require.NoError(t, err, "a key with 30 minutes to live expired when a node with its wall clock an hour ahead took over")
	require.Greater(t, kv.TTLRemaining, 29*time.Minute)

	// Back to a leader with the true clock: what the stepped leader wrote
	// is measured on the same cluster time.
	_, err = viaStepped.Put(ctx, "lease2", []byte("v"), client.WithTTL(30*time.Minute))
	require.NoError(t, err)
	handLeadership(t, c, (stepped+1)%3)
	for _, key := range []string{"lease", "lease2"} {
		kv, err = cl.Get(ctx, key)
		require.NoError(t, err, key)
		require.Greater(t, kv.TTLRemaining, 29*time.Minute, key)
	}
}

// Every node's wall clock steps back, just below the revisions the lost
// cluster handed out, and then a majority is lost: the re-formed cluster
// must still start above every old revision, or a client's stale
// compare-and-swap matches an unrelated new write. On the wall-clock base
// the first new write got exactly the old marker's revision and the stale
// compare-and-swap succeeded. The survivor remembers the highest revision
// it held when it emptied itself, and the base starts above it whichever
// node leads first.
func TestANewClusterStartsAboveTheLostRevisionsWhenClocksStepBack(t *testing.T) {
	var frozen atomic.Int64 // wall clock in Unix microseconds; 0: the real one
	wall := func() time.Time {
		if us := frozen.Load(); us != 0 {
			return time.UnixMicro(us)
		}
		return time.Now()
	}
	c := testcluster.New(t, 3, testcluster.WithConfig(func(_ int, cfg *config.Config) { cfg.WallClock = wall }))
	c.WaitReady(readyTimeout)
	sc := c.Scenario()
	before := scenario.WriteMarker(t, sc, "marker", "before")
	frozen.Store(before.ModifyRevision - 1)

	l := scenario.WaitLeader(t, sc, 30*time.Second)
	victims := []int{l, (l + 1) % 3}
	survivor := scenario.Others(sc, victims...)[0]
	sc.KillAll(victims...)
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		ready, why := sc.Ready(survivor)
		assert.False(ct, ready, "n%d is still ready: %s", survivor, why)
	}, 30*time.Second, 100*time.Millisecond, "the survivor notices the loss")
	for _, v := range victims {
		c.Start(v)
	}
	within := sc.QuorumLossTimeout() + time.Minute
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		for i := 0; i < 3; i++ {
			ready, why := sc.Ready(i)
			if !assert.True(ct, ready, "n%d: %s", i, why) {
				return
			}
		}
		p := scenario.ReadEverywhere(sc, "marker", "before")
		assert.True(ct, p.Absent, "re-formed empty: %s", p.Detail)
	}, within, 250*time.Millisecond, "the cluster re-forms empty")

	after := scenario.WriteMarker(t, sc, "marker", "after")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := c.Client(testcluster.UserAll).Put(ctx, "marker", []byte("stale cas"), client.WithPrevRevision(before.ModifyRevision))
	require.ErrorIs(t, err, client.ErrRevisionMismatch,
		"a compare-and-swap on the lost cluster's revision %d matched the new write at %d", before.ModifyRevision, after.ModifyRevision)
	require.Greater(t, after.ModifyRevision, before.ModifyRevision, "the new cluster's revisions start above the lost one's")
}

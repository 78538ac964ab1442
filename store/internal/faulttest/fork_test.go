package faulttest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ephemeral-store/ephemeral-store/store/internal/scenario"
)

// forkMetric counts probes that found a peer in another cluster.
const forkMetric = "ephemeral_store_cluster_forks_detected_total"

// An operator who forces a reform behind a partition (the voters that
// looked dead were alive after all) makes a second cluster: the one thing
// the store otherwise never does. Fork detection must repair it once the
// partition heals: the smaller cluster gives way, loses what it
// acknowledged (a data-loss event) and joins the other; the majority keeps
// every write. Runs on a real network cut.
func TestForcedReformBehindAPartitionIsRepairedByForkDetection(t *testing.T) {
	opts := DefaultOptions()
	opts.Network = true
	opts.QuorumLossTimeout = 2 * time.Second
	c := NewCluster(t, bin, opts)
	lab := c.Lab()
	l := c.WaitLeader(30 * time.Second)
	minority := []int{l, (l + 1) % len(c.Nodes)}
	majority := others(c, minority)
	writeMarker(t, c, "before", "kept")

	t.Logf("cut %v from %v", minority, majority)
	if err := lab.Partition(minority, majority); err != nil {
		t.Fatalf("partition: %v", err)
	}
	status := func(i int) (string, string, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		st, err := c.Status(ctx, i)
		if err != nil {
			return "", "", err.Error()
		}
		return st.ClusterID, st.Quorum.State, fmt.Sprintf("n%d cluster=%s quorum=%s leader=%q", i, st.ClusterID, st.Quorum.State, st.Leader)
	}
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		_, q, why := status(minority[0])
		assert.Equal(ct, "waiting_for_silent_voters", q, why)
	}, 60*time.Second, 100*time.Millisecond, "the cut-off minority should wait for its silent voters")
	majorityID, _, _ := status(majority[0])
	put := func(node int, key, value string) {
		t.Helper()
		cl := c.NodeClient(node, 5*time.Second)
		require.EventuallyWithT(t, func(ct *assert.CollectT) {
			_, err := cl.Put(context.Background(), key, []byte(value))
			assert.NoError(ct, err)
		}, 60*time.Second, 100*time.Millisecond, "put %s through n%d", key, node)
	}
	put(majority[0], "majority", "kept")

	oldID, _, _ := status(minority[0])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	st, err := c.NodeClient(minority[0], 30*time.Second).Reform(ctx, oldID)
	cancel()
	if err != nil {
		t.Fatalf("forced reform through n%d: %v", minority[0], err)
	}
	t.Logf("n%d re-formed by force: cluster %s", minority[0], st.ClusterID)
	put(minority[0], "minority", "doomed")
	if forcedID, _, why := status(minority[0]); forcedID == majorityID || forcedID == "" {
		t.Fatalf("the forced cluster should be a new one: %s", why)
	}

	healed := time.Now()
	if err := lab.Heal(); err != nil {
		t.Fatalf("heal: %v", err)
	}
	if !assert.EventuallyWithT(t, func(ct *assert.CollectT) {
		for i := range c.Nodes {
			id, _, why := status(i)
			assert.Equal(ct, majorityID, id, why)
		}
	}, 90*time.Second, 100*time.Millisecond, "after healing every node should be in the majority's cluster %s", majorityID) {
		t.Fatalf("cluster:\n  %s", scenario.Describe(c.Scenario()))
	}
	c.WaitAllReady(90 * time.Second)
	t.Logf("one cluster again %s after healing", time.Since(healed).Round(time.Millisecond))

	forks := 0.0
	for i := range c.Nodes {
		v, _ := c.Metric(i, forkMetric)
		forks += v
	}
	if forks == 0 {
		t.Errorf("no node counted the fork in %s", forkMetric)
	}
	if v, _ := c.Metric(minority[0], dataLossMetric); v < 2 {
		t.Errorf("n%d lost data twice (the forced reform, then giving way), but %s=%v", minority[0], dataLossMetric, v)
	}
	sc := c.Scenario()
	for _, key := range []string{"before", "majority"} {
		assert.EventuallyWithT(t, func(ct *assert.CollectT) {
			p := scenario.ReadEverywhere(sc, key, "kept")
			assert.True(ct, p.Present, p.Detail)
		}, 30*time.Second, 100*time.Millisecond, "%s must survive on every node", key)
	}
	assert.EventuallyWithT(t, func(ct *assert.CollectT) {
		p := scenario.ReadEverywhere(sc, "minority", "doomed")
		assert.True(ct, p.Absent, p.Detail)
	}, 30*time.Second, 100*time.Millisecond, "what the forced cluster acknowledged is gone with it")
}

package faulttest

import (
	"context"
	"fmt"
	"testing"
	"time"
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
	if ok, why := waitFor(60*time.Second, func() (bool, string) {
		_, q, why := status(minority[0])
		return q == "waiting_for_silent_voters", why
	}); !ok {
		t.Fatalf("the cut-off minority should wait for its silent voters: %s", why)
	}
	majorityID, _, _ := status(majority[0])
	put := func(node int, key, value string) {
		t.Helper()
		cl := c.NodeClient(node, 5*time.Second)
		if ok, why := waitFor(60*time.Second, func() (bool, string) {
			if _, err := cl.Put(context.Background(), key, []byte(value)); err != nil {
				return false, err.Error()
			}
			return true, ""
		}); !ok {
			t.Fatalf("put %s through n%d: %s", key, node, why)
		}
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
	if ok, why := waitFor(90*time.Second, func() (bool, string) {
		for i := range c.Nodes {
			id, _, why := status(i)
			if id != majorityID {
				return false, why
			}
		}
		return true, ""
	}); !ok {
		t.Fatalf("after healing every node should be in the majority's cluster %s: %s\n  %s", majorityID, why, c.describe())
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
	for _, key := range []string{"before", "majority"} {
		if ok, why := waitFor(30*time.Second, func() (bool, string) {
			present, _, _, why := markerOnEveryNode(c, key, "kept")
			return present, why
		}); !ok {
			t.Errorf("%s must survive on every node: %s", key, why)
		}
	}
	if ok, why := waitFor(30*time.Second, func() (bool, string) {
		_, absent, _, why := markerOnEveryNode(c, "minority", "doomed")
		return absent, why
	}); !ok {
		t.Errorf("what the forced cluster acknowledged is gone with it: %s", why)
	}
}

package scenario

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ephemeral-store/ephemeral-store/store/client"
)

// MajorityLoss kills a majority of the nodes at once, the leader among
// them, and starts them again. The restarted nodes have forgotten
// everything and never vote as their old selves, so the data is gone: the
// cluster must re-form empty by itself (the restarted nodes' answers, new
// incarnations at the old addresses, prove the old ones gone), count a
// data-loss event on a survivor, hand out revisions above the lost
// cluster's (an old compare-and-swap matches nothing), keep one member per
// replica and take writes again. SingleNodeLoss is its twin, which proves
// that the absence checked here can be told from a loss that must keep the
// data.
func MajorityLoss(t *testing.T, c Cluster) {
	t.Helper()
	before := WriteMarker(t, c, "marker", "before")
	n := c.Size()
	l := WaitLeader(t, c, 30*time.Second)
	victims := []int{l}
	for k := 1; len(victims) < n/2+1; k++ {
		victims = append(victims, (l+k)%n)
	}
	survivors := Others(c, victims...)
	t.Logf("killing %v at once (leader n%d); survivors %v", victims, l, survivors)
	c.KillAll(victims...)

	// The survivors notice that their leader is gone before the victims
	// come back, as they would in Kubernetes, where a restart takes seconds.
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		for _, s := range survivors {
			ready, why := c.Ready(s)
			assert.False(ct, ready, "n%d is still ready: %s", s, why)
		}
	}, 30*time.Second, 100*time.Millisecond, "survivors %v still ready after losing a majority", survivors)
	for _, v := range victims {
		c.Start(v)
	}
	restarted := time.Now()

	within := c.QuorumLossTimeout() + time.Minute
	if !assert.EventuallyWithT(t, func(ct *assert.CollectT) {
		for i := 0; i < n; i++ {
			ready, why := c.Ready(i)
			if !assert.True(ct, ready, "n%d is not ready: %s", i, why) {
				return
			}
		}
		p := ReadEverywhere(c, "marker", "before")
		assert.True(ct, p.Absent, "the key written before the loss must be gone from every node: %s", p.Detail)
	}, within, 250*time.Millisecond, "the cluster re-forms empty within %s of the restart", within) {
		t.Fatalf("data-loss events counted by the survivors: %v\ncluster:\n  %s", DataLossEvents(c, survivors), Describe(c))
	}
	t.Logf("re-formed empty %s after the restart", time.Since(restarted).Round(time.Millisecond))
	assert.GreaterOrEqual(t, DataLossEvents(c, survivors), 1.0, "%s summed over the survivors %v", DataLossMetric, survivors)

	after := WriteMarker(t, c, "marker", "after")
	require.Greater(t, after.Revision, before.Revision, "a new cluster's revisions start above the lost one's")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := c.Client().Put(ctx, "marker", []byte("stale cas"), client.WithPrevRevision(before.ModifyRevision))
	require.ErrorIs(t, err, client.ErrRevisionMismatch, "a revision of the lost cluster must match nothing")
	RequireEverywhere(t, c, "marker", "after", 30*time.Second)

	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		for i := 0; i < n; i++ {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			st, err := c.Client(i).Cluster(ctx)
			cancel()
			if assert.NoError(ct, err, "n%d", i) {
				assert.Len(ct, st.Members, n, "n%d: one member per replica", i)
			}
		}
	}, 30*time.Second, 100*time.Millisecond, "the re-formed cluster has one member per replica")
}

// SingleNodeLoss is MajorityLoss with the leader alone killed: a majority
// survives, so the key must stay on every node through the restart and
// for longer than the quorum-loss timeout after it (a wrong re-forming
// would have happened by then), and no data-loss event is counted.
func SingleNodeLoss(t *testing.T, c Cluster) {
	t.Helper()
	WriteMarker(t, c, "marker", "before")
	l := WaitLeader(t, c, 30*time.Second)
	survivors := Others(c, l)
	t.Logf("killing the leader n%d", l)
	c.KillAll(l)
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		nl := c.Leader()
		assert.True(ct, nl >= 0 && nl != l, "leader %d", nl)
	}, 30*time.Second, 100*time.Millisecond, "a new leader among the survivors %v", survivors)
	c.Start(l)
	restarted := time.Now()
	WaitReady(t, c, c.QuorumLossTimeout()+time.Minute)
	t.Logf("all %d nodes ready %s after the restart", c.Size(), time.Since(restarted).Round(time.Millisecond))

	// Watch the key for longer than the quorum-loss timeout. A read may fail
	// while the cluster elects (a loaded machine makes leaders step down),
	// but no node may ever answer that the key is missing or changed.
	var wrong firstWrong
	if watch := time.Until(restarted.Add(c.QuorumLossTimeout() + 2*time.Second)); watch > 0 {
		if !assert.Never(t, func() bool {
			p := ReadEverywhere(c, "marker", "before")
			if p.Wrong != "" {
				wrong.set(p.Detail)
			}
			return p.Wrong != ""
		}, watch, 250*time.Millisecond, "the key stays on every node after losing one node") {
			t.Fatalf("after losing one node of %d the key is gone or changed: %s\ncluster:\n  %s", c.Size(), wrong.get(), Describe(c))
		}
	}
	RequireEverywhere(t, c, "marker", "before", 30*time.Second)
	assert.Zero(t, DataLossEvents(c, survivors), "%s summed over the survivors %v after losing one node", DataLossMetric, survivors)
	WriteMarker(t, c, "marker", "after")
}

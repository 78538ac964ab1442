package faulttest

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ephemeral-store/ephemeral-store/store/internal/scenario"
)

// Scaling the replica count with real processes, under a porcupine-checked
// load. The processes read the count from a file (--replicas-from=file:),
// which the test rewrites as Kubernetes rewrites a StatefulSet's
// spec.replicas, then stops the highest ordinals with SIGTERM (scale-down)
// or starts new ones (scale-up), all at once as a StatefulSet with
// parallel pod management does. After each step the configuration must be
// exactly the new replicas, and a rolling restart of all of them (what a
// later image upgrade does) must keep every acknowledged write: issue 18
// lost every key right there, because the survivors of 5 -> 3 still
// counted 5 replicas and kept two placeholders as voters.
func TestScaleUnderLoadKeepsEveryWrite(t *testing.T) {
	for _, tc := range []struct {
		name  string
		start int
		steps []int
	}{
		{"5 to 3 to 5", 5, []int{3, 5}},
		{"7 to 3", 7, []int{3}},
		{"3 to 5", 3, []int{5}},
	} {
		t.Run(tc.name, func(t *testing.T) { scaleUnderLoad(t, tc.start, tc.steps...) })
	}
}

func scaleUnderLoad(t *testing.T, start int, steps ...int) {
	most := start
	for _, n := range steps {
		most = max(most, n)
	}
	countFile := filepath.Join(t.TempDir(), "replicas")
	setCount := func(n int) { writeReplicaCount(t, countFile, n) }
	setCount(start)
	o := DefaultOptions()
	o.Nodes = most
	o.ExtraArgs = []string{"--replicas-from", "file:" + countFile}
	c := Prepare(t, bin, o)
	current := start
	running := func() []int { return upTo(current) }
	for _, i := range running() {
		c.Start(i)
	}
	require.NoError(t, c.WaitReadyErr(running(), 60*time.Second))
	clusterID := scenario.RequireScaled(t, c.Scenario(), current, "")

	w := newWorkload(c, 6, "k0", "k1", "k2", "k3")
	ctx, cancel := context.WithCancel(context.Background())
	wait := w.run(ctx)
	defer func() { cancel(); wait() }()
	require.Eventually(t, func() bool { return w.acked.Load() >= 50 }, 30*time.Second, 20*time.Millisecond, "the load runs before the first change")

	for _, n := range steps {
		began := time.Now()
		setCount(n)
		var wg sync.WaitGroup
		for i := current - 1; i >= n; i-- { // scale-down: SIGTERM, all at once
			wg.Add(1)
			go func() { defer wg.Done(); c.Stop(i) }()
		}
		for i := current; i < n; i++ { // scale-up
			c.Start(i)
		}
		wg.Wait()
		current = n
		require.NoError(t, c.WaitReadyErr(running(), 60*time.Second))
		scenario.RequireScaled(t, c.Scenario(), n, clusterID)
		t.Logf("scaled to %d replicas: the configuration is those %d voters %s after the change", n, n, time.Since(began).Round(time.Millisecond))
		before := w.acked.Load()
		// A rolling restart at the new count, highest ordinal first.
		for i := n - 1; i >= 0; i-- {
			c.Stop(i)
			c.Start(i)
			require.NoError(t, c.WaitReadyErr(running(), 60*time.Second), "after restarting n%d", i)
		}
		scenario.RequireScaled(t, c.Scenario(), n, clusterID)
		require.Greater(t, w.acked.Load(), before, "writes were acknowledged during the rolling restart at %d replicas", n)
	}
	cancel()
	wait()
	w.writeAfterHeal(t)
	w.verify(t)
	for _, i := range running() {
		v, ok := c.Metric(i, "ephemeral_store_data_loss_events_total")
		assert.True(t, ok, "n%d exports the data-loss counter", i)
		assert.Zero(t, v, "n%d counted a data loss", i)
	}
	scenario.RequireScaled(t, c.Scenario(), current, clusterID)
}

func upTo(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

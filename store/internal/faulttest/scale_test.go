package faulttest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
	setCount := func(n int) {
		tmp := countFile + ".tmp"
		require.NoError(t, os.WriteFile(tmp, []byte(fmt.Sprintln(n)), 0o644))
		require.NoError(t, os.Rename(tmp, countFile))
	}
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
	clusterID := waitScaled(t, c, current, "")

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
		waitScaled(t, c, n, clusterID)
		t.Logf("scaled to %d replicas: the configuration is those %d voters %s after the change", n, n, time.Since(began).Round(time.Millisecond))
		before := w.acked.Load()
		// A rolling restart at the new count, highest ordinal first.
		for i := n - 1; i >= 0; i-- {
			c.Stop(i)
			c.Start(i)
			require.NoError(t, c.WaitReadyErr(running(), 60*time.Second), "after restarting n%d", i)
		}
		waitScaled(t, c, n, clusterID)
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
	waitScaled(t, c, current, clusterID)
}

func upTo(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

// waitScaled waits until every running node of 0..n-1 reports n replicas,
// a configuration of exactly those n replicas as voters (no placeholder,
// no server beyond the count) and one cluster id (clusterID when given).
// It returns that id.
func waitScaled(t *testing.T, c *Cluster, n int, clusterID string) string {
	t.Helper()
	var (
		mu   sync.Mutex // the condition runs on its own goroutine
		seen string
	)
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		ids := map[string]bool{}
		for i := 0; i < n; i++ {
			sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			st, err := c.Status(sctx, i)
			cancel()
			if !assert.NoError(ct, err, "status of n%d", i) {
				return
			}
			ids[st.ClusterID] = true
			assert.Equal(ct, n, st.Replicas, "n%d acts on the replica count", i)
			names := map[string]bool{}
			for _, m := range st.Members {
				assert.Equal(ct, "voter", m.Suffrage, "n%d sees %s", i, m.ID)
				assert.False(ct, strings.HasSuffix(m.ID, "/placeholder"), "n%d sees placeholder %s", i, m.ID)
				names[m.Name] = true
			}
			assert.Len(ct, st.Members, n, "n%d members %+v", i, st.Members)
			for j := 0; j < n; j++ {
				assert.True(ct, names[c.Nodes[j].Name], "n%d: %s is a member", i, c.Nodes[j].Name)
			}
		}
		if assert.Len(ct, ids, 1, "one cluster id: %v", ids) {
			for id := range ids {
				if clusterID != "" {
					assert.Equal(ct, clusterID, id, "the cluster of the start, never a re-formed one")
				}
				mu.Lock()
				seen = id
				mu.Unlock()
			}
		}
	}, 60*time.Second, 200*time.Millisecond, "the configuration of %d replicas", n)
	mu.Lock()
	defer mu.Unlock()
	return seen
}

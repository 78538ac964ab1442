package server_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ephemeral-store/ephemeral-store/store/internal/scenario"
	"github.com/ephemeral-store/ephemeral-store/store/internal/testcluster"
)

// Scaling the StatefulSet is an operation, and operations are faults: it
// must keep every acknowledged write. Issue 18: from 5 to 3, the survivors
// kept counting 5 replicas, the leaving pods became placeholders, the
// configuration {a0,a1,a2,ph3,ph4} needed all three live voters, and the
// next restart of one of them (the rolling update that changing the pod
// template's --replicas starts) lost every key. Each test below scales
// under concurrent writes, then restarts the survivors one at a time as a
// rolling update does, and reads every acknowledged write back.

func TestScaleDownFromFiveToThreeAndBackUnderWrites(t *testing.T) {
	scaleUnderWrites(t, 5, 3, 5)
}

func TestScaleDownFromSevenToThreeUnderWrites(t *testing.T) {
	scaleUnderWrites(t, 7, 3)
}

func TestScaleUpFromThreeToFiveUnderWrites(t *testing.T) {
	scaleUnderWrites(t, 3, 5)
}

// scaleUnderWrites starts a cluster of start replicas, keeps writers busy
// through the nodes every step keeps, and scales through steps; after each
// step the configuration must be exactly the new replicas, all voters, and
// a rolling restart of them must keep every key.
func scaleUnderWrites(t *testing.T, start int, steps ...int) {
	most, least := start, start
	for _, n := range steps {
		most, least = max(most, n), min(least, n)
	}
	c := testcluster.New(t, start, testcluster.WithSpareSlots(most-start))
	c.WaitReady(readyTimeout)
	clusterID := scenario.RequireScaled(t, c.Scenario(), start, "")

	stable := make([]int, least) // the nodes no step removes
	for i := range stable {
		stable[i] = i
	}
	w := startWriters(t, c, 4, stable)

	for _, n := range steps {
		t.Logf("scaling from %d to %d replicas", c.Size(), n)
		began := time.Now()
		c.ScaleTo(n)
		scenario.RequireScaled(t, c.Scenario(), n, clusterID)
		t.Logf("configuration is the %d replicas, all voters, %s after the change", n, time.Since(began).Round(time.Millisecond))
		w.require(t, fmt.Sprintf("after scaling to %d", n))
		// A rolling update after the change (an image upgrade, a changed
		// setting), highest ordinal first: each pod restarts empty and
		// must find a quorum that keeps the data.
		for i := n - 1; i >= 0; i-- {
			c.Stop(i)
			c.Start(i)
			c.WaitReady(readyTimeout)
		}
		scenario.RequireScaled(t, c.Scenario(), n, clusterID)
		w.require(t, fmt.Sprintf("after a rolling restart at %d replicas", n))
	}
	acked := w.stop()
	require.NotZero(t, len(acked), "the writers acknowledged nothing")

	ctx := ctxT(t)
	all, err := c.Client(testcluster.UserAll).ListAll(ctx, "w/")
	require.NoError(t, err)
	got := map[string]string{}
	for _, kv := range all {
		got[kv.Key] = string(kv.Value)
	}
	var lost []string
	for k, v := range acked {
		if got[k] != v {
			lost = append(lost, k)
		}
	}
	require.Empty(t, lost, "%d of %d acknowledged writes lost", len(lost), len(acked))
	t.Logf("%d acknowledged writes, all read back; one cluster id %s", len(acked), clusterID)
}

// writers put unique keys through the given nodes until stopped, and
// remember what was acknowledged.
type writers struct {
	mu     sync.Mutex
	acked  map[string]string
	errors int
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func startWriters(t *testing.T, c *testcluster.Cluster, n int, through []int) *writers {
	ctx, cancel := context.WithCancel(context.Background())
	w := &writers{acked: map[string]string{}, cancel: cancel}
	cl := c.Client(testcluster.UserAll, through...)
	for id := 0; id < n; id++ {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			for seq := 0; ctx.Err() == nil; seq++ {
				key, value := fmt.Sprintf("w/%d/%06d", id, seq), fmt.Sprintf("v%d", seq)
				pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
				_, err := cl.Put(pctx, key, []byte(value))
				pcancel()
				w.mu.Lock()
				if err == nil {
					w.acked[key] = value
				} else {
					w.errors++
				}
				w.mu.Unlock()
				if err != nil {
					select {
					case <-ctx.Done():
					case <-time.After(50 * time.Millisecond):
					}
				}
			}
		}()
	}
	t.Cleanup(func() { w.stop() })
	return w
}

// require checks that the writers still get writes acknowledged: the
// cluster did not stop serving.
func (w *writers) require(t *testing.T, when string) {
	t.Helper()
	w.mu.Lock()
	before := len(w.acked)
	w.mu.Unlock()
	require.Eventually(t, func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return len(w.acked) > before+10
	}, readyTimeout, 50*time.Millisecond, "writes are acknowledged %s", when)
}

func (w *writers) stop() map[string]string {
	w.cancel()
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.acked
}

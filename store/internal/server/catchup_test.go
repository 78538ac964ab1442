package server_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ephemeral-store/ephemeral-store/store/client"
	"github.com/ephemeral-store/ephemeral-store/store/internal/config"
	"github.com/ephemeral-store/ephemeral-store/store/internal/testcluster"
)

// tinySnapshots makes every node snapshot and compact its log every few
// dozen writes, so a node restarted empty can only catch up through
// InstallSnapshot, and a node that has just caught up soon receives entries
// past the leader's snapshot, then another snapshot.
func tinySnapshots(_ int, c *config.Config) {
	c.SnapshotThreshold = 32
	c.TrailingLogs = 16
	c.SnapshotBytes = 4 << 10 // checked every 250 ms: a snapshot about every half second under load
}

// ackedWrite is a Put the cluster acknowledged.
type ackedWrite struct{ key, value string }

// Regression test for hashicorp/raft#697 (see store/third_party/raft/PATCH.md):
// restarted nodes, followers and leaders alike, rejoin empty under a steady
// write load and catch up through InstallSnapshot, again and again. Every
// restarted node must become ready, every acknowledged write must be on every
// node at the end, and nothing may panic (a panic in any node's Raft
// goroutine kills this whole test process).
//
// It also caught two faults outside #697, fixed in the cluster package:
// raft's InmemSnapshotStore let a leader send a snapshot still being written
// (cluster.snapshotStore publishes only complete ones), and Kill of a leader
// blocked in raft's Shutdown behind a pipelined append (shutdownRaft closes
// the stream layer first).
func TestRestartsUnderLoadCatchUpThroughSnapshots(t *testing.T) {
	const (
		nodes     = 3
		rounds    = 16 // alternately a follower and the leader
		writers   = 4
		perRound  = 40 // acknowledged writes between a node's return and the next kill
		stepLimit = 30 * time.Second
	)
	testStart := time.Now()
	c := testcluster.New(t, nodes, testcluster.WithConfig(tinySnapshots))
	c.WaitReady(readyTimeout)

	// Steady write load: each writer writes keys of its own, each once, so
	// an acknowledged write must stay readable with its value. Writes that
	// fail (node killed, election, outcome unknown) are not retried and not
	// checked.
	stop := make(chan struct{})
	var (
		wg      sync.WaitGroup
		acks    atomic.Int64
		fails   atomic.Int64
		results = make([][]ackedWrite, writers)
	)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := c.Client(testcluster.UserAll)
			defer func() { _ = cl.Close() }()
			pad := bytes.Repeat([]byte{'x'}, 64)
			for seq := 0; ; seq++ {
				select {
				case <-stop:
					return
				default:
				}
				key := fmt.Sprintf("catchup/w%d/%06d", w, seq)
				value := fmt.Sprintf("w%d-%d-%s", w, seq, pad)
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_, err := cl.Put(ctx, key, []byte(value))
				cancel()
				if err != nil {
					fails.Add(1)
					time.Sleep(20 * time.Millisecond) // pace retries while the cluster recovers
					continue
				}
				results[w] = append(results[w], ackedWrite{key, value})
				acks.Add(1)
			}
		}()
	}
	stopped := false
	stopWriters := func() {
		if !stopped {
			stopped = true
			close(stop)
			wg.Wait()
		}
	}
	t.Cleanup(stopWriters)

	status := func(i int) (ready bool, snapshot uint64) {
		if s := c.Node(i).Server; s != nil {
			return s.Ready(), s.Node().Status().SnapshotIndex
		}
		return false, 0
	}
	leaderSnapshot := func() uint64 {
		if l := c.Leader(); l >= 0 {
			_, idx := status(l)
			return idx
		}
		return 0
	}
	// The leader must have compacted its log before the first restart, so
	// that a node that comes back empty cannot be caught up from the log.
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.Positive(ct, leaderSnapshot(), "the leader's snapshot index")
	}, stepLimit, 20*time.Millisecond, "first leader snapshot")

	for round := 0; round < rounds; round++ {
		roundStart := time.Now()
		victim := c.Follower()
		role := "follower"
		if round%2 == 1 {
			victim, role = c.Leader(), "leader"
		}
		require.GreaterOrEqual(t, victim, 0, "round %d: no %s to restart", round, role)
		snapBefore := leaderSnapshot()

		c.Kill(victim)
		rest := allBut(nodes, victim)
		c.WaitReady(stepLimit, rest...)
		c.Start(victim)
		c.WaitReady(stepLimit)
		_, snap := status(victim)
		require.Positive(t, snap, "round %d: restarted %s %d is ready without a snapshot", round, role, victim)

		// Keep the load on the returned node long enough for it to take
		// entries past the snapshot it installed and for the leader to
		// snapshot again, so the next restart needs a newer snapshot.
		acksAtReady := acks.Load()
		require.EventuallyWithT(t, func(ct *assert.CollectT) {
			assert.GreaterOrEqual(ct, acks.Load(), acksAtReady+perRound, "acknowledged writes")
			assert.Greater(ct, leaderSnapshot(), snapBefore, "the leader's snapshot index")
		}, stepLimit, 20*time.Millisecond, "round %d: writes after node %d returned", round, victim)
		t.Logf("round %d: %s node %d killed, back and caught up in %s (leader snapshot %d -> %d, %d acked, %d failed)",
			round, role, victim, time.Since(roundStart).Round(time.Millisecond), snapBefore, leaderSnapshot(), acks.Load(), fails.Load())
	}

	stopWriters()
	c.WaitReady(stepLimit)
	var want []ackedWrite
	for _, r := range results {
		want = append(want, r...)
	}
	require.NotEmpty(t, want)

	// Every node, read locally, holds every acknowledged write.
	for i := 0; i < nodes; i++ {
		cl := c.Client(testcluster.UserAll, i)
		require.EventuallyWithT(t, func(ct *assert.CollectT) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			all, err := cl.ListAll(ctx, "catchup/", client.Stale())
			if !assert.NoError(ct, err) {
				return
			}
			have := make(map[string]string, len(all))
			for _, kv := range all {
				have[kv.Key] = string(kv.Value)
			}
			var missing []string
			for _, w := range want {
				if have[w.key] != w.value {
					missing = append(missing, w.key)
				}
			}
			if len(missing) > 0 {
				ct.Errorf("node %d: %d of %d acknowledged writes missing or wrong, e.g. %q", i, len(missing), len(want), missing[0])
			}
		}, stepLimit, 20*time.Millisecond, "node %d holds all %d acknowledged writes", i, len(want))
		_ = cl.Close()
	}
	t.Logf("%d rounds, %d acknowledged writes on all %d nodes, %d failed writes, %s",
		rounds, len(want), nodes, fails.Load(), time.Since(testStart).Round(time.Millisecond))
}

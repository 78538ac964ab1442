package faulttest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/ephemeral-store/ephemeral-store/store/client"
)

// TestResumedLeaderServesNoStaleRead freezes the leader while writes flow
// through it, lets the others elect a new leader and acknowledge a newer
// value, then sends linearizable reads to the frozen node over connections
// it accepted before, and resumes it. The old leader wakes up with answers
// to its last replication requests waiting in its sockets ("yes, you lead",
// sent before the election); if those count as confirmation for a read that
// began after the wake-up, it serves its stale copy as linearizable. Every
// read must see the newer value or fail.
func TestResumedLeaderServesNoStaleRead(t *testing.T) {
	c := NewCluster(t, bin, DefaultOptions())
	cycles := 3
	if testing.Short() {
		cycles = 2
	}

	// Background writes keep AppendEntries in flight at the moment of
	// the freeze. They go through every node; nothing is asserted on them.
	ctx, stop := context.WithCancel(context.Background())
	var bg sync.WaitGroup
	for g := 0; g < 4; g++ {
		cl := c.Client(g%len(c.Nodes), 2*time.Second)
		bg.Add(1)
		go func() {
			defer bg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				if _, err := cl.Put(context.Background(), fmt.Sprintf("bg/%d", g), []byte(fmt.Sprint(i))); err != nil {
					select {
					case <-ctx.Done():
					case <-time.After(50 * time.Millisecond):
					}
				}
			}
		}()
	}
	t.Cleanup(func() { stop(); bg.Wait() })

	// Readers: several connections to every node, opened before any freeze.
	const perNode = 4
	readers := make([][]*client.Client, len(c.Nodes))
	for i := range c.Nodes {
		for k := 0; k < perNode; k++ {
			readers[i] = append(readers[i], c.NodeClient(i, 10*time.Second))
		}
	}
	writeMarker(t, c, "marker", "v0")
	for i := range c.Nodes {
		for _, cl := range readers[i] {
			if _, err := cl.Get(context.Background(), "marker"); err != nil {
				t.Fatalf("warming the connection to n%d: %v", i, err)
			}
		}
	}

	var stale []string
	for cycle := 1; cycle <= cycles; cycle++ {
		old, fresh := fmt.Sprintf("v%d", cycle-1), fmt.Sprintf("v%d", cycle)
		l := c.WaitLeader(10 * time.Second)
		c.Pause(l)
		// A new leader among the others acknowledges a newer value.
		if !assert.EventuallyWithT(t, func(ct *assert.CollectT) {
			nl := c.Leader(context.Background())
			assert.True(ct, nl >= 0 && nl != l, "leader %d", nl)
		}, 15*time.Second, 100*time.Millisecond, "cycle %d: a new leader while n%d is frozen", cycle, l) {
			c.Resume(l)
			t.FailNow()
		}
		w := c.Client((l+1)%len(c.Nodes), 5*time.Second)
		if !assert.EventuallyWithT(t, func(ct *assert.CollectT) {
			_, err := w.Put(context.Background(), "marker", []byte(fresh))
			assert.NoError(ct, err)
		}, 15*time.Second, 100*time.Millisecond, "cycle %d: put %s while n%d is frozen", cycle, fresh, l) {
			c.Resume(l)
			t.FailNow()
		}
		// Reads that begin after that acknowledgement, queued on the frozen node.
		type answer struct {
			value string
			err   error
		}
		answers := make(chan answer, perNode*2)
		var rd sync.WaitGroup
		for _, cl := range readers[l] {
			for k := 0; k < 2; k++ {
				rd.Add(1)
				go func() {
					defer rd.Done()
					kv, err := cl.Get(context.Background(), "marker")
					if err != nil {
						answers <- answer{err: err}
						return
					}
					answers <- answer{value: string(kv.Value)}
				}()
			}
		}
		// Keep the node frozen a moment longer so the requests are in its
		// sockets when it wakes up (a fault duration, not a wait).
		time.Sleep(300 * time.Millisecond)
		c.Resume(l)
		rd.Wait()
		close(answers)
		counts := map[string]int{}
		for a := range answers {
			switch {
			case a.err == nil && a.value == old:
				stale = append(stale, fmt.Sprintf("cycle %d: n%d answered %q after %q was acknowledged", cycle, l, old, fresh))
				counts["stale"]++
			case a.err == nil && a.value == fresh:
				counts["fresh"]++
			case a.err == nil:
				t.Errorf("cycle %d: n%d answered %q, never written", cycle, l, a.value)
			case errors.Is(a.err, client.ErrNoQuorum), errors.Is(a.err, context.DeadlineExceeded):
				counts["error"]++
			default:
				counts["error"]++
			}
		}
		t.Logf("cycle %d: froze leader n%d; reads through it after resuming: %v", cycle, l, counts)
		c.WaitAllReady(30 * time.Second)
	}
	if len(stale) > 0 {
		t.Fatalf("a resumed old leader served stale linearizable reads:\n  %v", stale)
	}
}

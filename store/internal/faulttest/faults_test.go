package faulttest

import (
	"context"
	"testing"
	"time"
)

// Each fault test runs a fresh five-node cluster, eight clients over four
// keys (half linearizable reads, the rest puts and deletes), injects one
// fault while they run, lets it heal, and then checks that the history is
// linearizable, that every node converged, and that no acknowledged write
// was lost.

// fault injects a failure into c and returns once it has healed (every
// process it touched runs again and is ready).
type fault func(t *testing.T, c *Cluster)

// holdFault is how long a fault lasts before it is healed: the time the
// clients spend against the damaged cluster.
const holdFault = 1500 * time.Millisecond

func runFaultScenario(t *testing.T, f fault) {
	c := NewCluster(t, bin, DefaultOptions())
	w := newWorkload(c, 8, "k0", "k1", "k2", "k3")
	w.resp = true
	total := trafficDuration()
	warmup := total / 6

	ctx, stop := context.WithCancel(context.Background())
	wait := w.run(ctx)
	t.Cleanup(func() { stop(); wait() }) // before the processes are killed
	trafficStart := time.Now()

	// Let the clients run against the healthy cluster first. This is the
	// length of the traffic, not a wait for a condition.
	time.Sleep(warmup)
	faultAt := w.h.Now()
	f(t, c)
	healedAt := w.h.Now()
	healedAfter := time.Duration(healedAt - faultAt)

	// Traffic continues on the healed cluster for the rest of the run, at
	// least two seconds.
	rest := max(total-time.Since(trafficStart), 2*time.Second)
	time.Sleep(rest)
	stop()
	wait()
	t.Logf("fault healed %s after injection; traffic ran %s", healedAfter.Round(time.Millisecond), time.Since(trafficStart).Round(time.Millisecond))

	if n := w.acked.Load(); n < 20 {
		t.Errorf("only %d writes were acknowledged in %s of traffic", n, total)
	}
	t.Logf("%d writes acknowledged after the fault healed", w.ackedWritesAfter(healedAt))
	w.writeAfterHeal(t)
	w.verify(t)
}

// follower returns some node other than the leader.
func follower(c *Cluster, leader int) int { return (leader + 1) % len(c.Nodes) }

func TestLinearizableWhenFollowerIsKilled(t *testing.T) {
	runFaultScenario(t, func(t *testing.T, c *Cluster) {
		f := follower(c, c.WaitLeader(10*time.Second))
		t.Logf("SIGKILL follower n%d", f)
		c.Kill(f)
		time.Sleep(holdFault) // the cluster runs without it for a while
		c.Start(f)
		c.WaitReady(f, 30*time.Second)
	})
}

func TestLinearizableWhenLeaderIsKilled(t *testing.T) {
	runFaultScenario(t, func(t *testing.T, c *Cluster) {
		l := c.WaitLeader(10 * time.Second)
		t.Logf("SIGKILL leader n%d", l)
		c.Kill(l)
		time.Sleep(holdFault)
		c.Start(l)
		c.WaitReady(l, 30*time.Second)
	})
}

func TestLinearizableWhenTwoNodesAreKilled(t *testing.T) {
	runFaultScenario(t, func(t *testing.T, c *Cluster) {
		l := c.WaitLeader(10 * time.Second)
		f := follower(c, l)
		t.Logf("SIGKILL leader n%d and follower n%d at once", l, f)
		c.KillAll(l, f)
		time.Sleep(holdFault)
		c.Start(l)
		c.Start(f)
		if err := c.WaitReadyErr([]int{l, f}, 30*time.Second); err != nil {
			t.Fatal(err)
		}
	})
}

// The paused leader stays frozen longer than the quorum-loss timeout: the
// others must elect a new leader and must not mistake the frozen (still
// alive) incarnation for a lost majority; when it resumes, the old leader
// must step down without serving a stale read or losing a write.
func TestLinearizableWhenLeaderIsPaused(t *testing.T) {
	runFaultScenario(t, func(t *testing.T, c *Cluster) {
		l := c.WaitLeader(10 * time.Second)
		hold := c.Options().QuorumLossTimeout + time.Second
		t.Logf("SIGSTOP leader n%d for %s", l, hold)
		c.Pause(l)
		time.Sleep(hold)
		c.Resume(l)
		t.Logf("SIGCONT n%d", l)
		c.WaitReady(l, 30*time.Second)
	})
}

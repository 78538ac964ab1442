package faulttest

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// SIGTERM to the real binary: the leader hands over, leaves the
// configuration and exits in time (Stop fails the test otherwise); the
// others keep the data and shrink to four members; a new process at the
// same address joins back as a fifth.
func TestSIGTERMOfTheLeaderHandsOverAndLeaves(t *testing.T) {
	c := NewCluster(t, bin, DefaultOptions())
	writeMarker(t, c, "marker", "before")
	l := c.WaitLeader(10 * time.Second)

	start := time.Now()
	c.Stop(l)
	t.Logf("n%d exited %s after SIGTERM", l, time.Since(start).Round(time.Millisecond))

	survivor := others(c, []int{l})[0]
	members := func(want int) (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		st, err := c.Status(ctx, survivor)
		if err != nil {
			return false, err.Error()
		}
		leader := false
		for _, m := range st.Members {
			leader = leader || m.Leader
		}
		return len(st.Members) == want && leader, fmt.Sprintf("%d members, leader %q", len(st.Members), st.Leader)
	}
	if ok, why := waitFor(15*time.Second, func() (bool, string) { return members(4) }); !ok {
		t.Fatalf("after a graceful stop the leader must have left, and a new one lead: %s", why)
	}

	c.Start(l)
	c.WaitAllReady(30 * time.Second)
	if ok, why := waitFor(15*time.Second, func() (bool, string) { return members(5) }); !ok {
		t.Fatalf("the restarted node did not join back: %s", why)
	}
	if present, _, wrong, why := markerOnEveryNode(c, "marker", "before"); !present || wrong != "" {
		t.Fatalf("the key written before the stop is not on every node: %s", why)
	}
}

package faulttest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// SIGTERM to the real binary: the leader hands over, leaves the
// configuration and exits in time (Stop fails the test otherwise); the
// others keep the data and a placeholder keeps the leaver's vote; a new
// process at the same address joins back as a voter in its place.
func TestSIGTERMOfTheLeaderHandsOverAndLeaves(t *testing.T) {
	c := NewCluster(t, bin, DefaultOptions())
	writeMarker(t, c, "marker", "before")
	l := c.WaitLeader(10 * time.Second)
	ctx0, cancel0 := context.WithTimeout(context.Background(), 3*time.Second)
	st0, err := c.Status(ctx0, l)
	cancel0()
	if err != nil {
		t.Fatalf("status of the leader: %v", err)
	}
	leaver := st0.Self

	start := time.Now()
	c.Stop(l)
	t.Logf("n%d exited %s after SIGTERM", l, time.Since(start).Round(time.Millisecond))

	survivor := others(c, []int{l})[0]
	// members checks the survivor's view: five voters, a leader, and want
	// placeholders; the leaver's incarnation is never among them.
	members := func(want int) (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		st, err := c.Status(ctx, survivor)
		if err != nil {
			return false, err.Error()
		}
		leader, placeholders, voters, gone := false, 0, 0, true
		for _, m := range st.Members {
			leader = leader || m.Leader
			if strings.HasSuffix(m.ID, "/placeholder") {
				placeholders++
			}
			if m.Suffrage == "voter" {
				voters++
			}
			gone = gone && m.ID != leaver
		}
		return voters == 5 && leader && placeholders == want && gone,
			fmt.Sprintf("%d members (%d voters, %d placeholders), leader %q, leaver %s gone: %v", len(st.Members), voters, placeholders, st.Leader, leaver, gone)
	}
	if ok, why := waitFor(15*time.Second, func() (bool, string) { return members(1) }); !ok {
		t.Fatalf("after a graceful stop the leader must have left, a placeholder keep its vote, and a new leader lead: %s", why)
	}

	c.Start(l)
	c.WaitAllReady(30 * time.Second)
	if ok, why := waitFor(15*time.Second, func() (bool, string) { return members(0) }); !ok {
		t.Fatalf("the restarted node did not take its placeholder's place: %s", why)
	}
	if present, _, wrong, why := markerOnEveryNode(c, "marker", "before"); !present || wrong != "" {
		t.Fatalf("the key written before the stop is not on every node: %s", why)
	}
}

package faulttest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ephemeral-store/ephemeral-store/store/internal/scenario"
)

// SIGTERM to the real binary: the leader hands over, leaves the
// configuration and exits in time (Stop fails the test otherwise); the
// others keep the data and a placeholder keeps the leaver's vote; a new
// process at the same address joins back as a voter in its place.
func TestSIGTERMOfTheLeaderHandsOverAndLeaves(t *testing.T) {
	c := NewCluster(t, bin, DefaultOptions())
	writeMarker(t, c, "marker", "before")
	l := c.WaitLeader(10 * time.Second)
	leaver := memberID(t, c, l)

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
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		ok, why := members(1)
		assert.True(ct, ok, why)
	}, 15*time.Second, 100*time.Millisecond, "after a graceful stop the leader must have left, a placeholder keep its vote, and a new leader lead")

	c.Start(l)
	c.WaitAllReady(30 * time.Second)
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		ok, why := members(0)
		assert.True(ct, ok, why)
	}, 15*time.Second, 100*time.Millisecond, "the restarted node takes its placeholder's place")
	if p := scenario.ReadEverywhere(c.Scenario(), "marker", "before"); !p.Present || p.Wrong != "" {
		t.Fatalf("the key written before the stop is not on every node: %s", p.Detail)
	}
}

// A retirement cut short: the leader hands over on SIGTERM and asks the new
// leader to retire it, but the third node is paused, so the new leader
// loses its lease between removing the leaver and adding its placeholder
// (seen on kind in a rolling upgrade). The configuration must not stay with
// fewer voters than replicas: once the paused node is back, the leader
// restores the placeholder (asked by the leaver, which asks every peer when
// it knows no leader, or on its own tick once the leaver gave up).
func TestSIGTERMRetirementCutShortByAStepDownRestoresThePlaceholder(t *testing.T) {
	o := DefaultOptions()
	o.Nodes = 3
	c := NewCluster(t, bin, o)
	writeMarker(t, c, "marker", "before")
	l := c.WaitLeader(10 * time.Second)
	f := others(c, []int{l})
	y, z := f[0], f[1]
	leaver := memberID(t, c, l)

	// With z paused, one write puts y ahead of z, so the transfer picks y.
	c.Pause(z)
	if _, err := c.NodeClient(y, 5*time.Second).Put(context.Background(), "after-pause", []byte("x")); err != nil {
		t.Fatalf("put with n%d paused: %v", z, err)
	}
	done := make(chan struct{})
	go func() { defer close(done); c.Stop(l) }()
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.Contains(ct, c.LogTail(y, 400), "stepping down", "n%d's log", y)
	}, 20*time.Second, 100*time.Millisecond, "the new leader n%d loses its lease with n%d paused", y, z)
	c.Resume(z)
	<-done

	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		st, err := c.Status(ctx, y)
		if !assert.NoError(ct, err) {
			return
		}
		voters, placeholders, leader, gone := 0, 0, false, true
		for _, m := range st.Members {
			if m.Suffrage == "voter" {
				voters++
			}
			if strings.HasSuffix(m.ID, "/placeholder") {
				placeholders++
			}
			leader = leader || m.Leader
			gone = gone && m.ID != leaver
		}
		assert.True(ct, voters == 3 && placeholders == 1 && leader && gone,
			"%d voters, %d placeholders, leader %v, leaver %s gone %v", voters, placeholders, leader, leaver, gone)
	}, 20*time.Second, 100*time.Millisecond, "one voter per replica after the cut-short retirement")
	// Whether the leaver heard back before its shutdown deadline depends on
	// how soon the paused node returns; either way it exited in time (Stop).
	t.Logf("n%d learnt that it left before its deadline: %v", l, strings.Contains(c.LogTail(l, 200), "left the cluster"))
	for _, i := range []int{y, z} {
		kv, err := c.NodeClient(i, 5*time.Second).Get(context.Background(), "marker")
		if err != nil || string(kv.Value) != "before" {
			t.Fatalf("the key written before the stop, read through n%d: %v %v", i, kv, err)
		}
	}
}

// memberID is node i's member ID (its incarnation), from its /v1/cluster.
func memberID(t *testing.T, c *Cluster, i int) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	st, err := c.Status(ctx, i)
	if err != nil {
		t.Fatalf("status of n%d: %v", i, err)
	}
	return st.Self
}

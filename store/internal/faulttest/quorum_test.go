package faulttest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ephemeral-store/ephemeral-store/store/client"
)

// dataLossMetric counts the times a node re-formed an empty cluster.
const dataLossMetric = "ephemeral_store_data_loss_events_total"

// waitFor polls cond every 100ms until it holds or timeout passes; it
// returns the last explanation cond gave.
func waitFor(timeout time.Duration, cond func() (bool, string)) (bool, string) {
	deadline := time.Now().Add(timeout)
	for {
		ok, why := cond()
		if ok {
			return true, why
		}
		if time.Now().After(deadline) {
			return false, why
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// writeMarker writes a key through the cluster and checks every node has
// it, retrying while the cluster elects (an unconditional put of the same
// value may safely be repeated).
func writeMarker(t *testing.T, c *Cluster, key, value string) {
	t.Helper()
	cl := c.Client(0, 5*time.Second)
	if ok, why := waitFor(30*time.Second, func() (bool, string) {
		if _, err := cl.Put(context.Background(), key, []byte(value)); err != nil {
			return false, err.Error()
		}
		return true, ""
	}); !ok {
		t.Fatalf("put %s: %s", key, why)
	}
	if ok, why := waitFor(30*time.Second, func() (bool, string) {
		present, _, wrong, why := markerOnEveryNode(c, key, value)
		if wrong != "" {
			t.Fatalf("%s was acknowledged but a node answers otherwise: %s", key, why)
		}
		return present, why
	}); !ok {
		t.Fatalf("get %s through every node: %s", key, why)
	}
}

// markerOnEveryNode reads key with a linearizable read through each node:
// present when every node answered value, absent when every node answered
// 404, wrong when some node answered 404 or another value (errors, such as
// a timeout during an election, make neither present nor absent).
func markerOnEveryNode(c *Cluster, key, value string) (present, absent bool, wrong, why string) {
	present, absent = true, true
	var parts, bad []string
	for i := range c.Nodes {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		kv, err := c.statusClient(i).Get(ctx, key)
		cancel()
		switch {
		case err == nil && string(kv.Value) == value:
			absent = false
			parts = append(parts, fmt.Sprintf("n%d: present@%d", i, kv.ModifyRevision))
		case err == nil:
			present, absent = false, false
			bad = append(bad, fmt.Sprintf("n%d: %q@%d", i, kv.Value, kv.ModifyRevision))
			parts = append(parts, bad[len(bad)-1])
		case errors.Is(err, client.ErrKeyNotFound):
			present = false
			bad = append(bad, fmt.Sprintf("n%d: absent", i))
			parts = append(parts, bad[len(bad)-1])
		default:
			present, absent = false, false
			parts = append(parts, fmt.Sprintf("n%d: %v", i, err))
		}
	}
	return present, absent, strings.Join(bad, "; "), strings.Join(parts, "; ")
}

func (c *Cluster) dataLossEvents(idx []int) float64 {
	var sum float64
	for _, i := range idx {
		v, _ := c.Metric(i, dataLossMetric)
		sum += v
	}
	return sum
}

func (c *Cluster) describe() string {
	var parts []string
	for i := range c.Nodes {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		st, err := c.Status(ctx, i)
		cancel()
		if err != nil {
			parts = append(parts, fmt.Sprintf("n%d: %v", i, err))
			continue
		}
		var ms []string
		for _, m := range st.Members {
			ms = append(ms, m.ID+":"+m.Suffrage)
		}
		parts = append(parts, fmt.Sprintf("n%d: self=%s state=%s leader=%s revision=%d members=[%s]",
			i, st.Self, st.State, st.Leader, st.Revision, strings.Join(ms, " ")))
	}
	return strings.Join(parts, "\n  ")
}

func others(c *Cluster, victims []int) []int {
	var out []int
	for i := range c.Nodes {
		dead := false
		for _, v := range victims {
			dead = dead || v == i
		}
		if !dead {
			out = append(out, i)
		}
	}
	return out
}

// TestMajorityLossReformsEmptyCluster kills three of five processes at
// once. The restarted processes have forgotten everything and must never
// vote as their old selves, so the data is gone: within the quorum-loss
// timeout plus a margin the cluster re-forms empty by itself, counts a
// data-loss event, and serves writes again.
func TestMajorityLossReformsEmptyCluster(t *testing.T) {
	c := NewCluster(t, bin, DefaultOptions())
	writeMarker(t, c, "marker", "before")

	l := c.WaitLeader(10 * time.Second)
	victims := []int{l, (l + 1) % 5, (l + 2) % 5}
	survivors := others(c, victims)
	t.Logf("SIGKILL n%d, n%d, n%d (leader n%d); survivors %v", victims[0], victims[1], victims[2], l, survivors)
	c.KillAll(victims...)
	// The survivors notice that their leader is gone before the pods come
	// back, as they would in Kubernetes, where a restart takes seconds.
	if ok, why := waitFor(10*time.Second, func() (bool, string) {
		for _, s := range survivors {
			if ready, msg := c.Ready(s); ready {
				return false, fmt.Sprintf("n%d still ready: %s", s, msg)
			}
		}
		return true, ""
	}); !ok {
		t.Fatalf("survivors still ready 10s after losing a majority: %s", why)
	}
	for _, v := range victims {
		c.Start(v)
	}
	restarted := time.Now()
	bound := c.Options().QuorumLossTimeout + 20*time.Second

	ok, why := waitFor(bound, func() (bool, string) {
		if err := c.WaitReadyErr([]int{0, 1, 2, 3, 4}, 0); err != nil {
			return false, err.Error()
		}
		present, absent, _, why := markerOnEveryNode(c, "marker", "before")
		if present {
			return false, "the key written before is still on every node: " + why
		}
		return absent, why
	})
	if !ok {
		t.Fatalf("the cluster did not re-form empty within %s of the restart: %s\nevents counted by survivors: %v\ncluster:\n  %s",
			bound, why, c.dataLossEvents(survivors), c.describe())
	}
	t.Logf("re-formed empty %s after the restart", time.Since(restarted).Round(time.Millisecond))
	if n := c.dataLossEvents(survivors); n < 1 {
		t.Errorf("%s summed over the survivors = %v, want at least 1", dataLossMetric, n)
	}
	writeMarker(t, c, "marker", "after")
}

// TestSingleNodeLossKeepsData is the twin that proves the assertion above
// can fail: the same procedure with one process instead of three, and the
// key must still be on every node after the restarted node rejoined and
// longer than the quorum-loss timeout has passed.
func TestSingleNodeLossKeepsData(t *testing.T) {
	c := NewCluster(t, bin, DefaultOptions())
	writeMarker(t, c, "marker", "before")

	l := c.WaitLeader(10 * time.Second)
	survivors := others(c, []int{l})
	t.Logf("SIGKILL leader n%d", l)
	c.Kill(l)
	if ok, why := waitFor(10*time.Second, func() (bool, string) {
		nl := c.Leader(context.Background())
		return nl >= 0 && nl != l, fmt.Sprintf("leader %d", nl)
	}); !ok {
		t.Fatalf("no new leader among the survivors: %s", why)
	}
	c.Start(l)
	restarted := time.Now()
	c.WaitAllReady(c.Options().QuorumLossTimeout + 20*time.Second)
	t.Logf("all five ready %s after the restart", time.Since(restarted).Round(time.Millisecond))

	// Watch the key for longer than the quorum-loss timeout: a wrong
	// re-formation would have happened by then. A read may fail while the
	// cluster elects (a loaded machine makes leaders step down), but no
	// node may ever answer that the key is missing.
	until := restarted.Add(c.Options().QuorumLossTimeout + 2*time.Second)
	for time.Now().Before(until) {
		if _, _, wrong, why := markerOnEveryNode(c, "marker", "before"); wrong != "" {
			t.Fatalf("after losing one node of five the key is gone or changed: %s\ncluster:\n  %s", why, c.describe())
		}
		time.Sleep(250 * time.Millisecond)
	}
	if ok, why := waitFor(20*time.Second, func() (bool, string) {
		present, _, wrong, why := markerOnEveryNode(c, "marker", "before")
		if wrong != "" {
			t.Fatalf("after losing one node of five the key is gone or changed: %s\ncluster:\n  %s", why, c.describe())
		}
		return present, why
	}); !ok {
		t.Fatalf("the key could not be read through every node: %s\ncluster:\n  %s", why, c.describe())
	}
	if n := c.dataLossEvents(survivors); n != 0 {
		t.Errorf("%s summed over the survivors = %v after losing one node, want 0", dataLossMetric, n)
	}
	writeMarker(t, c, "marker", "after")
}

// Package scenario holds cluster tests written once and run on two tiers,
// as etcd's tests/framework does: in process (store/internal/testcluster:
// several nodes in the test process, a crash is Server.Kill) and against
// real processes (store/internal/faulttest: `ephemeral-store serve`
// processes, a crash is SIGKILL). A scenario sees a cluster only through
// the Cluster interface, which each tier implements over its own harness
// (testcluster.Cluster.Scenario, faulttest.Cluster.Scenario).
//
// Waits are testify's EventuallyWithT with generous bounds: the machines
// these tests run on are shared and can stall for seconds, and a bound only
// decides how long a failing test takes to say so.
package scenario

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ephemeral-store/ephemeral-store/store/client"
	"github.com/ephemeral-store/ephemeral-store/store/client/api"
)

// Cluster is a running cluster of store nodes, numbered 0 to Size()-1, as
// a scenario drives it. Its methods are called from the test goroutine,
// except Leader, Ready, Client (for a node set used before) and Metric,
// which are also called inside EventuallyWithT conditions and must not
// fail the test.
type Cluster interface {
	// Size is the number of node slots, running or not.
	Size() int
	// Leader is the index of the running node that says it leads, or -1.
	Leader() int
	// KillAll stops the listed nodes together as a crash would: no
	// leadership transfer, no leave, and whatever they held is lost.
	KillAll(nodes ...int)
	// Start starts node i again, at its old address, as a new incarnation
	// with an empty state. It does not wait for the node to be ready.
	Start(i int)
	// Ready reports whether node i is ready (a voting member that knows a
	// leader, as /readyz says), and why not.
	Ready(i int) (bool, string)
	// Client is a client of a user with read/write on every key that
	// talks to the listed nodes only, every node when none is given, each
	// call bounded by a few seconds. The same node set gets the same client.
	Client(nodes ...int) *client.Client
	// Metric reads a counter or gauge without labels from node i's
	// /metrics; ok is false when the node does not answer or lacks it.
	Metric(i int, name string) (value float64, ok bool)
	// QuorumLossTimeout is the nodes' --quorum-loss-timeout.
	QuorumLossTimeout() time.Duration
}

// DataLossMetric counts the times a node re-formed an empty cluster.
const DataLossMetric = "ephemeral_store_data_loss_events_total"

// Presence is what a linearizable read of one key through each node found.
type Presence struct {
	// Present: every node answered the value.
	Present bool
	// Absent: every node answered 404.
	Absent bool
	// Wrong lists the nodes that answered 404 or another value; a node
	// that failed to answer (an election, a timeout) is not wrong.
	Wrong string
	// Detail is every node's answer.
	Detail string
}

// ReadEverywhere reads key with a linearizable read through each node in
// turn and says whether every node has value.
func ReadEverywhere(c Cluster, key, value string) Presence {
	p := Presence{Present: true, Absent: true}
	var parts, wrong []string
	for i := 0; i < c.Size(); i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		kv, err := c.Client(i).Get(ctx, key)
		cancel()
		switch {
		case err == nil && string(kv.Value) == value:
			p.Absent = false
			parts = append(parts, fmt.Sprintf("n%d: present@%d", i, kv.ModifyRevision))
		case err == nil:
			p.Present, p.Absent = false, false
			wrong = append(wrong, fmt.Sprintf("n%d: %q@%d", i, kv.Value, kv.ModifyRevision))
			parts = append(parts, wrong[len(wrong)-1])
		case errors.Is(err, client.ErrKeyNotFound):
			p.Present = false
			wrong = append(wrong, fmt.Sprintf("n%d: absent", i))
			parts = append(parts, wrong[len(wrong)-1])
		default:
			p.Present, p.Absent = false, false
			parts = append(parts, fmt.Sprintf("n%d: %v", i, err))
		}
	}
	p.Wrong, p.Detail = strings.Join(wrong, "; "), strings.Join(parts, "; ")
	return p
}

// WriteMarker puts key=value through the cluster, retrying while it elects
// (an unconditional put of the same value may safely be repeated), then
// waits until a linearizable read through every node answers value. A node
// that answers anything else after the acknowledgement fails the test at
// once. It returns the acknowledged put.
func WriteMarker(t *testing.T, c Cluster, key, value string) *api.PutResult {
	t.Helper()
	for i := 0; i < c.Size(); i++ {
		c.Client(i) // made here, in the test goroutine
	}
	cl := c.Client()
	var put *api.PutResult
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		res, err := cl.Put(ctx, key, []byte(value))
		if assert.NoError(ct, err) {
			put = res
		}
	}, 30*time.Second, 100*time.Millisecond, "put %s=%q through the cluster", key, value)
	RequireEverywhere(t, c, key, value, 30*time.Second)
	return put
}

// RequireEverywhere waits until a linearizable read through every node
// answers value for key. A node that answers 404 or another value fails
// the test at once: the caller knows the value was acknowledged.
func RequireEverywhere(t *testing.T, c Cluster, key, value string, within time.Duration) {
	t.Helper()
	var wrong firstWrong
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		p := ReadEverywhere(c, key, value)
		if p.Wrong != "" {
			wrong.set(p.Detail) // ends the wait: reported below
			return
		}
		assert.True(ct, p.Present, "%s through every node: %s", key, p.Detail)
	}, within, 100*time.Millisecond, "%s=%q on every node", key, value)
	if w := wrong.get(); w != "" {
		t.Fatalf("%s=%q was acknowledged, but a node answers otherwise: %s\ncluster:\n  %s", key, value, w, Describe(c))
	}
}

// firstWrong keeps the first wrong answer a condition saw; conditions run
// on their own goroutine.
type firstWrong struct {
	mu  sync.Mutex
	why string
}

func (w *firstWrong) set(why string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.why == "" {
		w.why = why
	}
}

func (w *firstWrong) get() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.why
}

// WaitLeader waits until some node says it leads and returns its index.
func WaitLeader(t *testing.T, c Cluster, within time.Duration) int {
	t.Helper()
	var mu sync.Mutex
	leader := -1
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		l := c.Leader()
		if assert.GreaterOrEqual(ct, l, 0, "no node says it leads") {
			mu.Lock()
			leader = l
			mu.Unlock()
		}
	}, within, 100*time.Millisecond, "a leader\ncluster:\n  %s", lazy{c})
	mu.Lock()
	defer mu.Unlock()
	return leader
}

// WaitReady waits until every listed node is ready (every node when none
// is listed).
func WaitReady(t *testing.T, c Cluster, within time.Duration, nodes ...int) {
	t.Helper()
	if len(nodes) == 0 {
		nodes = All(c)
	}
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		for _, i := range nodes {
			ready, why := c.Ready(i)
			assert.True(ct, ready, "n%d: %s", i, why)
		}
	}, within, 100*time.Millisecond, "nodes %v ready", nodes)
}

// All lists every node index.
func All(c Cluster) []int {
	idx := make([]int, c.Size())
	for i := range idx {
		idx[i] = i
	}
	return idx
}

// Others lists the node indexes not in except.
func Others(c Cluster, except ...int) []int {
	var out []int
	for i := 0; i < c.Size(); i++ {
		skip := false
		for _, e := range except {
			skip = skip || e == i
		}
		if !skip {
			out = append(out, i)
		}
	}
	return out
}

// DataLossEvents sums DataLossMetric over the listed nodes.
func DataLossEvents(c Cluster, nodes []int) float64 {
	var sum float64
	for _, i := range nodes {
		v, _ := c.Metric(i, DataLossMetric)
		sum += v
	}
	return sum
}

// Describe is every node's view of the cluster, for failure messages.
func Describe(c Cluster) string {
	var parts []string
	for i := 0; i < c.Size(); i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		st, err := c.Client(i).Cluster(ctx)
		cancel()
		if err != nil {
			parts = append(parts, fmt.Sprintf("n%d: %v", i, err))
			continue
		}
		var ms []string
		for _, m := range st.Members {
			ms = append(ms, m.ID+":"+m.Suffrage)
		}
		parts = append(parts, fmt.Sprintf("n%d: self=%s state=%s leader=%s revision=%d quorum=%s members=[%s]",
			i, st.Self, st.State, st.Leader, st.Revision, st.Quorum.State, strings.Join(ms, " ")))
	}
	return strings.Join(parts, "\n  ")
}

// lazy describes the cluster only when a failure message is printed.
type lazy struct{ c Cluster }

func (l lazy) String() string { return Describe(l.c) }

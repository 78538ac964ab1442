// Package systems runs the three key-value stores the benchmark compares
// (ephemeral-store, etcd, Redis) as child processes on 127.0.0.1, behind
// one small interface, so every workload drives them the same way.
package systems

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ephemeral-store/ephemeral-store/bench/internal/proc"
)

// System is one store under test: a set of nodes the harness started.
// Node indexes run from 0 to Nodes()-1 and keep their ports across restarts.
type System interface {
	// Name is the short label of the tables ("ephemeral-store", "etcd", "redis").
	Name() string
	// Version is what the server binary reports about itself.
	Version() string
	// Replicated is false for a single node without followers (Redis):
	// follower reads, failover and catch-up do not apply.
	Replicated() bool
	// Start launches every node and returns once all are healthy.
	Start(ctx context.Context) error
	// Stop kills every node by PID; safe to call more than once.
	Stop() error
	Nodes() int
	// Leader returns the index of the node that leads now, -1 if none does.
	Leader(ctx context.Context) int
	// Kill sends SIGKILL to node i and waits until it is gone.
	Kill(i int) error
	// Restart starts node i again with its original command line.
	Restart(i int) error
	// Ready asks node i's health endpoint once.
	Ready(ctx context.Context, i int) bool
	// PIDs are the process ids of the running nodes, by index.
	PIDs() []int
	// DataBytes is the space of the nodes' data directories (etcd keeps
	// its on tmpfs, which is memory); 0 for the in-memory stores.
	DataBytes() (int64, error)
	// Client returns a client that talks to the listed nodes, the first
	// one first, over TLS with a client certificate.
	Client(nodes []int) (Client, error)
}

// Client is one client of a System with its own connection.
type Client interface {
	Put(ctx context.Context, key string, value []byte) error
	// PutBatch writes every key with value in as few round trips as the
	// system allows (an etcd txn, a Redis pipeline, one by one for the store).
	PutBatch(ctx context.Context, keys []string, value []byte) error
	// Get reads key: linearizable unless stale, which allows a replica's
	// possibly old value. Redis has one mode.
	Get(ctx context.Context, key string, stale bool) ([]byte, error)
	Close() error
}

// WaitHealthy polls until every node is ready and a leader exists, or ctx
// ends.
func WaitHealthy(ctx context.Context, s System) error {
	var last string
	for {
		pending := 0
		for i := 0; i < s.Nodes(); i++ {
			if !s.Ready(ctx, i) {
				pending++
			}
		}
		lead := s.Leader(ctx)
		if pending == 0 && lead >= 0 {
			return nil
		}
		last = fmt.Sprintf("%d of %d nodes not ready, leader %d", pending, s.Nodes(), lead)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not healthy: %s: %w", s.Name(), last, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Ring lists every node starting at first, so a client prefers node first
// and can fall back to the others.
func Ring(n, first int) []int {
	out := make([]int, n)
	for k := range out {
		out[k] = (first + k) % n
	}
	return out
}

// LeaderChanges is the count of leader changes a system's running nodes
// have seen, summed over the nodes, for the systems that export one; the
// harness reports how it moved during each workload (elections under load
// cost writes a retry).
func LeaderChanges(ctx context.Context, s System) (float64, bool) {
	lc, ok := s.(interface {
		LeaderChanges(ctx context.Context) (float64, bool)
	})
	if !ok {
		return 0, false
	}
	return lc.LeaderChanges(ctx)
}

// sumOverRunning adds read(i) over the nodes whose process runs; false if
// any of them cannot be read.
func sumOverRunning(procs []*proc.Proc, read func(i int) (float64, bool)) (float64, bool) {
	var sum float64
	for i, p := range procs {
		if !p.Running() {
			continue
		}
		v, ok := read(i)
		if !ok {
			return 0, false
		}
		sum += v
	}
	return sum, true
}

// scrape reads one unlabelled sample from a Prometheus text endpoint.
func scrape(ctx context.Context, hc *http.Client, url, name string) (float64, bool) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, false
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return v, err == nil
		}
	}
	return 0, false
}

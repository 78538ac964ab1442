package load

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ephemeral-store/ephemeral-store/bench/internal/systems"
)

// Workload is one request pattern of the comparison.
type Workload struct {
	Name  string // file-name safe
	Title string
	// Targets picks the nodes client g talks to, or nil when the workload
	// does not apply to the system (follower reads on one Redis node).
	Targets func(s systems.System, leader, g int) []int
	// WriteRatio of requests are PUTs, the rest GETs.
	WriteRatio float64
	Stale      bool
}

// allNodes spreads clients: client g talks to node g mod n.
func allNodes(s systems.System, _, g int) []int { return []int{g % s.Nodes()} }

func followers(s systems.System, leader, g int) []int {
	if !s.Replicated() {
		return nil
	}
	var f []int
	for i := 0; i < s.Nodes(); i++ {
		if i != leader {
			f = append(f, i)
		}
	}
	return []int{f[g%len(f)]}
}

func leaderOnly(s systems.System, leader, _ int) []int {
	if !s.Replicated() {
		return nil
	}
	return []int{leader}
}

// Workloads are the five patterns of the comparison, in report order.
func Workloads() []Workload {
	return []Workload{
		{Name: "put", Title: "Replicated PUT (all endpoints)", Targets: allNodes, WriteRatio: 1},
		{Name: "get-followers", Title: "Linearizable GET through followers", Targets: followers},
		{Name: "get-leader", Title: "Linearizable GET through the leader", Targets: leaderOnly},
		{Name: "get-stale", Title: "Stale GET (all endpoints; Redis GET)", Targets: allNodes, Stale: true},
		{Name: "mix", Title: "90/10 read/write mix (all endpoints)", Targets: allNodes, WriteRatio: 0.1},
	}
}

// Key is the benchmark's key i: 16 bytes.
func Key(i int) string { return fmt.Sprintf("k/%014d", i) }

// Run sends exactly requests requests from conc clients (each with its own
// connection, made before the clock starts) over keys preloaded keys.
func Run(ctx context.Context, s systems.System, w Workload, leader, conc, requests, keys int, value []byte, timeout time.Duration) (Summary, bool, error) {
	clients := make([]systems.Client, conc)
	defer func() {
		for _, c := range clients {
			if c != nil {
				_ = c.Close()
			}
		}
	}()
	for g := range clients {
		nodes := w.Targets(s, leader, g)
		if nodes == nil {
			return Summary{}, false, nil
		}
		c, err := s.Client(nodes)
		if err != nil {
			return Summary{}, true, fmt.Errorf("%s %s client %d: %w", s.Name(), w.Name, g, err)
		}
		clients[g] = c
		// Warm up: the TLS handshake and the first request are not part
		// of the measurement.
		wctx, cancel := context.WithTimeout(ctx, timeout)
		_, err = c.Get(wctx, Key(g%keys), true)
		if err == nil && !w.Stale && w.WriteRatio < 1 {
			// A read in the mode the workload measures: a client whose
			// connection has a read mode (the store's RESP port) switches
			// it before the clock starts.
			_, err = c.Get(wctx, Key(g%keys), false)
		}
		cancel()
		if err != nil {
			return Summary{}, true, fmt.Errorf("%s %s warm-up of client %d: %w", s.Name(), w.Name, g, err)
		}
	}
	var next atomic.Int64
	lats := make([][]time.Duration, conc)
	errs := make([]int, conc)
	var firstErr atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for g := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 42))
			c := clients[g]
			for next.Add(1) <= int64(requests) && ctx.Err() == nil {
				key := Key(rng.IntN(keys))
				write := rng.Float64() < w.WriteRatio
				rctx, cancel := context.WithTimeout(ctx, timeout)
				t0 := time.Now()
				var err error
				if write {
					err = c.Put(rctx, key, value)
				} else {
					_, err = c.Get(rctx, key, w.Stale)
				}
				d := time.Since(t0)
				cancel()
				if err != nil {
					errs[g]++
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				lats[g] = append(lats[g], d)
			}
		}()
	}
	wg.Wait()
	wall := time.Since(start)
	var all []time.Duration
	nerr := 0
	for g := range lats {
		all = append(all, lats[g]...)
		nerr += errs[g]
	}
	sum := Summarise(all, nerr, wall)
	if e, ok := firstErr.Load().(string); ok {
		sum.FirstErr = e
	}
	return sum, true, ctx.Err()
}

package load

import (
	"context"
	"fmt"
	"time"

	"github.com/ephemeral-store/ephemeral-store/bench/internal/systems"
)

// CatchUp is how long a follower that restarted empty takes to serve.
type CatchUp struct {
	Keys      int     `json:"keys"`
	Node      int     `json:"node"`
	ReadyMs   float64 `json:"ready_ms"`   // restart to /readyz 200
	AppliedMs float64 `json:"applied_ms"` // restart to its stale read of the last key written
}

// CatchUpTime needs keys already loaded. It writes one marker key last,
// SIGKILLs a follower, restarts it (empty, a new incarnation) and times,
// from the restart, its readiness and the moment its own stale read of the
// marker returns the marker's value: Raft applies in log order, so every
// earlier key is applied by then.
func CatchUpTime(ctx context.Context, s systems.System, keys int, value []byte, logf func(string, ...any)) (CatchUp, error) {
	leader := s.Leader(ctx)
	if leader < 0 {
		return CatchUp{}, fmt.Errorf("catch-up: no leader")
	}
	node := (leader + 1) % s.Nodes()
	marker := fmt.Sprintf("catchup/marker/%d", time.Now().UnixNano())
	w, err := s.Client([]int{leader})
	if err != nil {
		return CatchUp{}, err
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = w.Put(wctx, "catchup/marker", []byte(marker))
	cancel()
	w.Close()
	if err != nil {
		return CatchUp{}, fmt.Errorf("catch-up marker write: %w", err)
	}
	if err := s.Kill(node); err != nil {
		return CatchUp{}, err
	}
	start := time.Now()
	if err := s.Restart(node); err != nil {
		return CatchUp{}, err
	}
	r, err := s.Client([]int{node})
	if err != nil {
		return CatchUp{}, err
	}
	defer r.Close()
	cu := CatchUp{Keys: keys, Node: node}
	deadline := start.Add(5 * time.Minute)
	for cu.ReadyMs == 0 || cu.AppliedMs == 0 {
		if cu.ReadyMs == 0 && s.Ready(ctx, node) {
			cu.ReadyMs = float64(time.Since(start)) / float64(time.Millisecond)
			logf("  %s node %d ready after %.0f ms", s.Name(), node, cu.ReadyMs)
		}
		if cu.AppliedMs == 0 {
			rctx, cancel := context.WithTimeout(ctx, time.Second)
			v, err := r.Get(rctx, "catchup/marker", true)
			cancel()
			if err == nil && string(v) == marker {
				cu.AppliedMs = float64(time.Since(start)) / float64(time.Millisecond)
				logf("  %s node %d applied the last key after %.0f ms", s.Name(), node, cu.AppliedMs)
			}
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			return cu, fmt.Errorf("node %d not caught up within 5m (ready %.0f ms)", node, cu.ReadyMs)
		}
		time.Sleep(20 * time.Millisecond) // polling period
	}
	return cu, nil
}

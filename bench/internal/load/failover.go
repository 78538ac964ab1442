package load

import (
	"context"
	"fmt"
	"time"

	"github.com/ephemeral-store/ephemeral-store/bench/internal/systems"
)

// Failover is the leader-SIGKILL measurement of one system.
type Failover struct {
	SamplesMs []float64 `json:"samples_ms"`
	MedianMs  float64   `json:"median_ms"`
	Attempts  []int     `json:"attempts"` // writes tried per kill until one was acknowledged
}

// FailoverTimes kills the leader kills times. Each time a writer, already
// connected to every surviving node, retries a PUT with a short per-attempt
// timeout; the sample runs on the monotonic clock from just before the
// SIGKILL to the first acknowledged write. The killed node is then
// restarted and the cluster must be healthy again before the next kill.
func FailoverTimes(ctx context.Context, s systems.System, kills int, attempt time.Duration, value []byte, logf func(string, ...any)) (Failover, error) {
	var f Failover
	for k := 0; k < kills; k++ {
		hctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
		err := systems.WaitHealthy(hctx, s)
		cancel()
		if err != nil {
			return f, fmt.Errorf("before kill %d: %w", k+1, err)
		}
		leader := s.Leader(ctx)
		if leader < 0 {
			return f, fmt.Errorf("before kill %d: no leader", k+1)
		}
		var survivors []int
		for i := 0; i < s.Nodes(); i++ {
			if i != leader {
				survivors = append(survivors, i)
			}
		}
		c, err := s.Client(survivors)
		if err != nil {
			return f, err
		}
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err = c.Put(wctx, "failover/warmup", value) // connect before the clock starts
		cancel()
		if err != nil {
			c.Close()
			return f, fmt.Errorf("failover warm-up write: %w", err)
		}
		start := time.Now()
		if err := s.Kill(leader); err != nil {
			c.Close()
			return f, err
		}
		deadline := start.Add(2 * time.Minute)
		tries := 0
		var took time.Duration
		for {
			tries++
			actx, cancel := context.WithTimeout(ctx, attempt)
			err := c.Put(actx, fmt.Sprintf("failover/%d", k), value)
			cancel()
			if err == nil {
				took = time.Since(start)
				break
			}
			if ctx.Err() != nil || time.Now().After(deadline) {
				c.Close()
				return f, fmt.Errorf("no write acknowledged within 2m of killing leader %d: %w", leader, err)
			}
			time.Sleep(10 * time.Millisecond) // a pause between attempts, not a wait for state
		}
		c.Close()
		ms := float64(took) / float64(time.Millisecond)
		f.SamplesMs = append(f.SamplesMs, ms)
		f.Attempts = append(f.Attempts, tries)
		logf("  %s kill %d/%d: leader %d, first write after %.0f ms (%d attempts)", s.Name(), k+1, kills, leader, ms, tries)
		if err := s.Restart(leader); err != nil {
			return f, err
		}
	}
	hctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	if err := systems.WaitHealthy(hctx, s); err != nil {
		return f, fmt.Errorf("after the last kill: %w", err)
	}
	f.MedianMs = Median(f.SamplesMs)
	return f, nil
}

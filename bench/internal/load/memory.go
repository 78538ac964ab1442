package load

import (
	"context"
	"fmt"
	"time"

	"github.com/ephemeral-store/ephemeral-store/bench/internal/proc"
	"github.com/ephemeral-store/ephemeral-store/bench/internal/systems"
)

// Memory is the resident memory of each node before and after a load.
type Memory struct {
	KeysTarget     int       `json:"keys_target"`
	KeysLoaded     int       `json:"keys_loaded"`
	Complete       bool      `json:"complete"`
	LoadSeconds    float64   `json:"load_seconds"`
	BaselineRSS    []int64   `json:"baseline_rss_bytes"`
	AfterRSS       []int64   `json:"after_rss_bytes"`
	RawBytesPerKey int       `json:"raw_bytes_per_key"`
	PerKeyBytes    []float64 `json:"growth_per_key_bytes"` // per node
	MeanPerKey     float64   `json:"mean_growth_per_key_bytes"`
	Ratio          float64   `json:"ratio_to_raw"` // mean growth per key / raw key+value bytes
	DataDirBytes   int64     `json:"data_dir_bytes,omitempty"`
	Note           string    `json:"note,omitempty"`
}

// MemoryAt loads keys keys into a freshly started system, within bound,
// and reads every node's VmRSS before and after. Replicas must hold the
// last key before the second reading, so followers are not measured
// half-applied.
func MemoryAt(ctx context.Context, s systems.System, spec BulkSpec, keys int, bound time.Duration, value []byte, logf func(string, ...any)) (Memory, error) {
	m := Memory{KeysTarget: keys, RawBytesPerKey: len(Key(0)) + len(value)}
	pids := s.PIDs()
	for _, pid := range pids {
		rss, err := proc.RSS(pid)
		if err != nil {
			return m, err
		}
		m.BaselineRSS = append(m.BaselineRSS, rss)
	}
	lctx, cancel := context.WithTimeout(ctx, bound)
	start := time.Now()
	n, err := Bulk(lctx, s, spec, 0, keys, value, logf)
	cancel()
	m.LoadSeconds = time.Since(start).Seconds()
	m.KeysLoaded = n
	m.Complete = n == keys
	if err != nil {
		return m, err
	}
	if ctx.Err() != nil {
		return m, ctx.Err()
	}
	if !m.Complete {
		m.Note = fmt.Sprintf("load stopped at the %s bound: memory at %d of %d keys", bound, n, keys)
		logf("  %s: %s", s.Name(), m.Note)
	}
	if err := waitReplicated(ctx, s); err != nil {
		return m, err
	}
	for _, pid := range pids {
		rss, err := proc.RSS(pid)
		if err != nil {
			return m, err
		}
		m.AfterRSS = append(m.AfterRSS, rss)
	}
	var sum float64
	for i := range m.AfterRSS {
		per := 0.0
		if n > 0 {
			per = float64(m.AfterRSS[i]-m.BaselineRSS[i]) / float64(n)
		}
		m.PerKeyBytes = append(m.PerKeyBytes, per)
		sum += per
	}
	if len(m.PerKeyBytes) > 0 {
		m.MeanPerKey = sum / float64(len(m.PerKeyBytes))
		m.Ratio = m.MeanPerKey / float64(m.RawBytesPerKey)
	}
	if m.DataDirBytes, err = s.DataBytes(); err != nil {
		return m, err
	}
	return m, nil
}

// waitReplicated writes a marker and waits until every node's stale read
// returns it.
func waitReplicated(ctx context.Context, s systems.System) error {
	marker := fmt.Sprintf("mem/%d", time.Now().UnixNano())
	w, err := s.Client([]int{0})
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = w.Put(wctx, "mem/marker", []byte(marker))
	cancel()
	w.Close()
	if err != nil {
		return fmt.Errorf("memory marker write: %w", err)
	}
	deadline := time.Now().Add(5 * time.Minute)
	for i := 0; i < s.Nodes(); i++ {
		c, err := s.Client([]int{i})
		if err != nil {
			return err
		}
		for {
			rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			v, err := c.Get(rctx, "mem/marker", true)
			cancel()
			if err == nil && string(v) == marker {
				break
			}
			if ctx.Err() != nil || time.Now().After(deadline) {
				c.Close()
				return fmt.Errorf("node %d did not apply the memory marker within 5m: %w", i, err)
			}
			time.Sleep(50 * time.Millisecond) // polling period
		}
		c.Close()
	}
	return nil
}

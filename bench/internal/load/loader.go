package load

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ephemeral-store/ephemeral-store/bench/internal/systems"
)

// BulkSpec says how to load a system fast: conc clients, each writing
// batches of batch keys (an etcd txn, a Redis pipeline; the store has no
// batch, so it gets more clients).
type BulkSpec struct {
	Conc  int
	Batch int
}

// Bulk writes keys [from, to) with value and returns how many it wrote
// (whole batches, in order of claim). It stops early, without an error,
// when ctx ends: the caller reports what was loaded. Progress goes to logf
// every few seconds.
func Bulk(ctx context.Context, s systems.System, spec BulkSpec, from, to int, value []byte, logf func(string, ...any)) (int, error) {
	var next atomic.Int64
	next.Store(int64(from))
	var done atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	stop := make(chan struct{})
	start := time.Now()
	go func() {
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				n := done.Load()
				logf("  %s load: %d/%d keys, %.0f keys/s", s.Name(), n, to-from, float64(n)/time.Since(start).Seconds())
			}
		}
	}()
	for g := 0; g < spec.Conc; g++ {
		c, err := s.Client([]int{g % s.Nodes()})
		if err != nil {
			close(stop)
			wg.Wait()
			return int(done.Load()), fmt.Errorf("%s bulk client %d: %w", s.Name(), g, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			keys := make([]string, 0, spec.Batch)
			for ctx.Err() == nil {
				lo := int(next.Add(int64(spec.Batch))) - spec.Batch
				if lo >= to {
					return
				}
				hi := min(lo+spec.Batch, to)
				keys = keys[:0]
				for i := lo; i < hi; i++ {
					keys = append(keys, Key(i))
				}
				// A put is idempotent: retry a failed batch a few times
				// (a leader change during a long load is not fatal).
				var err error
				for attempt := 0; attempt < 5 && ctx.Err() == nil; attempt++ {
					bctx, cancel := context.WithTimeout(ctx, 30*time.Second)
					err = c.PutBatch(bctx, keys, value)
					cancel()
					if err == nil {
						break
					}
				}
				if err != nil {
					if ctx.Err() == nil {
						once.Do(func() { firstErr = fmt.Errorf("%s bulk load of keys %d-%d: %w", s.Name(), lo, hi, err) })
					}
					return
				}
				done.Add(int64(hi - lo))
			}
		}()
	}
	wg.Wait()
	close(stop)
	n := int(done.Load())
	logf("  %s load: %d keys in %.1fs (%.0f keys/s)", s.Name(), n, time.Since(start).Seconds(), float64(n)/time.Since(start).Seconds())
	return n, firstErr
}

package server_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ephemeral-store/ephemeral-store/store/client"
	"github.com/ephemeral-store/ephemeral-store/store/internal/config"
	"github.com/ephemeral-store/ephemeral-store/store/internal/kvtable"
	"github.com/ephemeral-store/ephemeral-store/store/internal/testcluster"
)

// heldFromOS is the memory the Go runtime holds from the operating system
// (every class of runtime/metrics but the heap pages returned to it) and
// the state machines' tables outside the heap: the resident memory of a
// process, as near as Go can tell.
func heldFromOS() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64() - s[1].Value.Uint64() + uint64(kvtable.HeldBytes())
}

// liveHeap is the heap after a full collection, and the tables outside it.
func liveHeap() uint64 {
	runtime.GC()
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64() + uint64(kvtable.HeldBytes())
}

// peakSampler records the highest heldFromOS while it runs.
type peakSampler struct {
	peak atomic.Uint64
	stop chan struct{}
	done sync.WaitGroup
}

func samplePeak() *peakSampler {
	p := &peakSampler{stop: make(chan struct{})}
	p.done.Add(1)
	go func() {
		defer p.done.Done()
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			if v := heldFromOS(); v > p.peak.Load() {
				p.peak.Store(v)
			}
			select {
			case <-p.stop:
				return
			case <-t.C:
			}
		}
	}()
	return p
}

func (p *peakSampler) Stop() uint64 {
	close(p.stop)
	p.done.Wait()
	return p.peak.Load()
}

// BenchmarkMemoryAtQuota measures what a node holds when its data is at
// the quota a memory limit derives (--memory-limit 256 MiB, every other
// setting at its default), to choose config.DefaultQuotaRatio. Three nodes
// run in this process, so Go's soft limit is set to three times a pod's
// and the figures are divided by three; a restarted node's catch-up (a
// snapshot from the leader, received as bytes, then restored) is measured
// alone, as the growth of the process while it happens. Run with
// -benchtime 1x:
//
//	go test -run '^$' -bench MemoryAtQuota -benchtime 1x ./store/internal/server
func BenchmarkMemoryAtQuota(b *testing.B) {
	const limit = 256 << 20
	for _, size := range []int{64 << 10, 1 << 20, 1 << 10} {
		b.Run(fmt.Sprintf("value=%dB", size), func(b *testing.B) {
			for range b.N {
				measureAtQuota(b, limit, size)
			}
		})
	}
}

func measureAtQuota(b *testing.B, limit int64, size int) {
	const nodes = 3
	old := debug.SetMemoryLimit(int64(float64(nodes*limit) * config.DefaultMemoryLimitRatio))
	defer debug.SetMemoryLimit(old)
	c := testcluster.New(b, nodes, testcluster.WithConfig(func(_ int, cfg *config.Config) { cfg.MemoryLimit = limit }))
	c.WaitReady(readyTimeout)
	quota := c.Node(0).Config.Quota()
	empty := liveHeap()
	fill := samplePeak()

	cl := c.Client(testcluster.UserAll, c.Leader())
	value := bytes.Repeat([]byte("m"), size)
	var (
		next    atomic.Int64
		full    atomic.Bool
		wg      sync.WaitGroup
		written atomic.Int64
		failed  atomic.Int64
	)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !full.Load() {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				_, err := cl.Put(ctx, fmt.Sprintf("m/%09d", next.Add(1)), value)
				cancel()
				switch {
				case errors.Is(err, client.ErrQuotaExceeded):
					full.Store(true)
				case err != nil:
					// Three nodes share one process and its collector: near
					// the soft limit a leader can miss its lease. Counted.
					failed.Add(1)
					if failed.Load() > 100 {
						b.Error(err)
						return
					}
				default:
					written.Add(int64(size))
				}
			}
		}()
	}
	wg.Wait()
	fillPeak := fill.Stop()
	atQuota := liveHeap()

	// A follower restarts empty and catches up through a snapshot.
	f := c.Follower()
	c.Kill(f)
	before := heldFromOS()
	beforeLive := liveHeap()
	catchup := samplePeak()
	c.Start(f)
	c.WaitReady(readyTimeout)
	catchupPeak := catchup.Stop()

	mib := func(v float64) float64 { return v / (1 << 20) }
	b.ReportMetric(mib(float64(quota)), "quota-MiB")
	b.ReportMetric(mib(float64(written.Load())), "values-written-MiB")
	b.ReportMetric(mib(float64(atQuota-empty)/nodes), "live-at-quota-MiB/node")
	b.ReportMetric(mib(float64(fillPeak)/nodes), "held-peak-filling-MiB/node")
	b.ReportMetric(mib(float64(beforeLive)/(nodes-1)), "live-MiB/node")
	b.ReportMetric(mib(float64(catchupPeak)-float64(before)), "catchup-growth-MiB")
	b.ReportMetric(float64(fillPeak)/nodes/float64(limit), "held-peak/limit")
	b.ReportMetric(float64(failed.Load()), "failed-writes")
}

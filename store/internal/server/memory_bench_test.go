package server_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ephemeral-store/ephemeral-store/store/internal/testcluster"
)

var (
	memKeys = flag.Int("memkeys", 100_000, "keys BenchmarkMemoryPerKey loads")
	memHeap = flag.String("memheap", "", "file BenchmarkMemoryPerKey writes a heap profile of the loaded cluster to")
)

// vmRSS is the process's resident set (VmRSS of /proc/self/status), 0
// where there is no such file.
func vmRSS(tb testing.TB) uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				tb.Fatalf("VmRSS %q: %v", rest, err)
			}
			return kb << 10
		}
	}
	return 0
}

// heapInUse is the heap the Go runtime has spans in use for (live and
// not yet collected objects, and the size classes' rounding).
func heapInUse() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/heap/unused:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64() + s[1].Value.Uint64()
}

// BenchmarkMemoryPerKey loads -memkeys keys of make bench's memory shape
// (16-byte keys, 256-byte values) through the client API into three
// nodes in this process, with every setting at its default (no memory
// limit, as make bench runs the store), and reports per key and node: the
// live heap after a full collection (the state, the Raft log, the watch
// history, retained snapshots; again 25 s later, once the Raft logs are
// compacted), the heap in use and the resident set
// right after the load (what the collector's pacing lets the process
// hold), against the 272 raw bytes. The three nodes share one collector,
// so the pacing is that of one process with three times a node's heap.
//
//	go test -run '^$' -bench MemoryPerKey -benchtime 1x ./store/internal/server -memkeys 1000000
func BenchmarkMemoryPerKey(b *testing.B) {
	const nodes, raw = 3, 16 + 256
	for range b.N {
		n := *memKeys
		c := testcluster.New(b, nodes)
		c.WaitReady(readyTimeout)
		baseLive, baseRSS := liveHeap(), vmRSS(b)
		var peakRSS atomic.Uint64
		stopPeak := make(chan struct{})
		var peakDone sync.WaitGroup
		peakDone.Add(1)
		go func() {
			defer peakDone.Done()
			t := time.NewTicker(20 * time.Millisecond)
			defer t.Stop()
			for {
				if v := vmRSS(b); v > peakRSS.Load() {
					peakRSS.Store(v)
				}
				select {
				case <-stopPeak:
					return
				case <-t.C:
				}
			}
		}()

		value := bytes.Repeat([]byte("v"), 256)
		var (
			next   atomic.Int64
			failed atomic.Int64
			wg     sync.WaitGroup
		)
		start := time.Now()
		for g := range 16 {
			cl := c.Client(testcluster.UserAll, g%nodes)
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := next.Add(1)
					if i > int64(n) {
						return
					}
					// Three nodes share two cores with the load: a leader
					// change can fail a write. Retried, counted, bounded.
					for {
						ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
						_, err := cl.Put(ctx, fmt.Sprintf("k/%014d", i), value)
						cancel()
						if err == nil {
							break
						}
						if failed.Add(1) > 1000 {
							b.Errorf("put %d: %v (over 1000 failed writes)", i, err)
							return
						}
					}
				}
			}()
		}
		wg.Wait()
		load := time.Since(start)
		inUse, rss := heapInUse(), vmRSS(b)
		close(stopPeak)
		peakDone.Wait()
		live := liveHeap()
		if *memHeap != "" {
			writeHeapProfile(b, *memHeap)
		}
		// With no writes, every node's next snapshot check (Raft's
		// SnapshotInterval, 10 to 20 s) compacts its log to TrailingLogs
		// entries: what is left is the state's own cost.
		time.Sleep(25 * time.Second)
		settled := liveHeap()
		per := func(v, base uint64) float64 { return (float64(v) - float64(base)) / nodes / float64(n) }
		b.ReportMetric(load.Seconds(), "load-s")
		b.ReportMetric(float64(failed.Load()), "failed-writes")
		b.ReportMetric(per(live, baseLive), "live-B/key/node")
		b.ReportMetric(per(settled, baseLive), "live-log-compacted-B/key/node")
		b.ReportMetric(per(inUse, baseLive), "inuse-B/key/node")
		b.ReportMetric(per(rss, baseRSS), "rss-B/key/node")
		b.ReportMetric(per(peakRSS.Load(), baseRSS), "peak-rss-B/key/node")
		b.ReportMetric(per(rss, baseRSS)/raw, "rss-x-raw")
		runtime.KeepAlive(c)
		c.Close()
	}
}

func writeHeapProfile(tb testing.TB, path string) {
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	if err := pprof.WriteHeapProfile(f); err != nil {
		tb.Fatal(err)
	}
}

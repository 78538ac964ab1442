package fsm

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"runtime"
	"testing"

	"github.com/ephemeral-store/ephemeral-store/store/internal/kvtable"
)

var memKeys = flag.Int("memkeys", 200_000, "keys BenchmarkStateMemoryPerKey loads")

// BenchmarkStateMemoryPerKey reports the memory one key costs in the
// state machine: the live heap it adds plus what the key's table maps
// outside the heap (record, index slot, size-class rounding), and what a
// retained snapshot adds, against the raw key and value bytes (272: 16 +
// 256, the shape of make bench's memory test). heap-B/key is the part the
// collector manages, which GOGC's headroom multiplies. Run with
// -benchtime 1x:
//
// Each command goes through Encode and DecodeCommand, as the Raft log
// hands it to the state machine (JSON's base64 decoding leaves a value's
// slice a little larger than the value).
//
//	go test -run '^$' -bench StateMemory -benchtime 1x ./store/internal/fsm -memkeys 1000000
func BenchmarkStateMemoryPerKey(b *testing.B) {
	n := *memKeys
	value := bytes.Repeat([]byte("v"), 256)
	heapOnly := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	heap := func() uint64 { return heapOnly() + uint64(kvtable.HeldBytes()) }
	for range b.N {
		before, beforeHeap := heap(), heapOnly()
		s := New(DefaultLimits())
		for i := range n {
			c := Command{Op: OpPut, Key: fmt.Sprintf("k/%014d", i), Value: value}
			data, err := c.Encode()
			if err != nil {
				b.Fatal(err)
			}
			if c, err = DecodeCommand(data); err != nil {
				b.Fatal(err)
			}
			s.Apply(c)
		}
		// The history keeps the last events' values: drop them from the
		// measure by keeping only what the map holds.
		s.hub.reset(s.revision)
		loaded, loadedHeap := heap(), heapOnly()
		snap := s.Snapshot()
		withSnap := heap()
		// What writing the snapshot allocates: the gob format allocated
		// the whole encoding at once; the stream format a fixed buffer.
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		if err := snap(io.Discard); err != nil {
			b.Fatal(err)
		}
		runtime.ReadMemStats(&m1)
		b.ReportMetric(float64(m1.TotalAlloc-m0.TotalAlloc), "snapshot-write-alloc-B")
		raw := float64(16 + 256)
		perKey := float64(loaded-before) / float64(n)
		b.ReportMetric(perKey, "B/key")
		b.ReportMetric(perKey/raw, "x-raw")
		b.ReportMetric(float64(loadedHeap-beforeHeap)/float64(n), "heap-B/key")
		b.ReportMetric(float64(withSnap-loaded)/float64(n), "snapshot-B/key")
		runtime.KeepAlive(s)
		runtime.KeepAlive(snap)
	}
}

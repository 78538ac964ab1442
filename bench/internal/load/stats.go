// Package load drives the systems: fixed-count workloads with latency
// percentiles, bulk loads, failover, catch-up and memory measurements.
package load

import (
	"math"
	"sort"
	"time"
)

// Percentile is the nearest-rank percentile p (0 < p <= 100) of sorted
// latencies: the smallest sample with at least p% of the samples at or
// below it. Nearest rank never invents a value between two samples, so
// p99.9 of 2 000 requests is the second worst, not an interpolation.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	// The epsilon keeps float error (99.9/100*1000 = 999.0000000000001)
	// from moving the rank one sample up.
	rank := int(math.Ceil(p/100*float64(len(sorted)) - 1e-9))
	if rank < 1 {
		rank = 1
	}
	if rank > len(sorted) {
		rank = len(sorted)
	}
	return sorted[rank-1]
}

// Summary is what a workload reports for one system at one concurrency.
type Summary struct {
	Requests  int     `json:"requests"`
	Errors    int     `json:"errors"`
	Seconds   float64 `json:"seconds"`
	OpsPerSec float64 `json:"ops_per_sec"`
	P50ms     float64 `json:"p50_ms"`
	P99ms     float64 `json:"p99_ms"`
	P999ms    float64 `json:"p999_ms"`
	FirstErr  string  `json:"first_error,omitempty"`
}

// Summarise turns the successful requests' latencies and the wall time of
// the run into a Summary; throughput counts successful requests only.
func Summarise(lat []time.Duration, errs int, wall time.Duration) Summary {
	sorted := append([]time.Duration(nil), lat...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	s := Summary{Requests: len(lat) + errs, Errors: errs, Seconds: wall.Seconds()}
	if wall > 0 {
		s.OpsPerSec = float64(len(lat)) / wall.Seconds()
	}
	s.P50ms = ms(Percentile(sorted, 50))
	s.P99ms = ms(Percentile(sorted, 99))
	s.P999ms = ms(Percentile(sorted, 99.9))
	return s
}

// Median of samples (the mean of the middle two for an even count).
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

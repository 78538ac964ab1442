package load

import (
	"testing"
	"time"
)

func TestPercentileNearestRank(t *testing.T) {
	var lat []time.Duration
	for i := 1; i <= 1000; i++ {
		lat = append(lat, time.Duration(i)*time.Millisecond)
	}
	for _, tc := range []struct {
		p    float64
		want time.Duration
	}{
		{50, 500 * time.Millisecond},
		{99, 990 * time.Millisecond},
		{99.9, 999 * time.Millisecond},
		{100, 1000 * time.Millisecond},
		{0.01, 1 * time.Millisecond},
	} {
		if got := Percentile(lat, tc.p); got != tc.want {
			t.Errorf("p%v = %v, want %v", tc.p, got, tc.want)
		}
	}
}

func TestPercentileOfFewSamplesIsTheWorst(t *testing.T) {
	lat := []time.Duration{1, 2, 3}
	if got := Percentile(lat, 99.9); got != 3 {
		t.Errorf("p99.9 of 3 samples = %v, want the largest", got)
	}
	if got := Percentile(nil, 50); got != 0 {
		t.Errorf("p50 of no samples = %v, want 0", got)
	}
}

func TestSummariseCountsOnlySuccessesInThroughput(t *testing.T) {
	lat := []time.Duration{3 * time.Millisecond, 1 * time.Millisecond, 2 * time.Millisecond} // unsorted on purpose
	s := Summarise(lat, 1, time.Second)
	if s.Requests != 4 || s.Errors != 1 || s.OpsPerSec != 3 {
		t.Errorf("summary %+v: want 4 requests, 1 error, 3 ops/s", s)
	}
	if s.P50ms != 2 || s.P999ms != 3 {
		t.Errorf("p50 %v p99.9 %v, want 2 and 3", s.P50ms, s.P999ms)
	}
	if lat[0] != 3*time.Millisecond {
		t.Error("Summarise sorted the caller's slice")
	}
}

func TestMedian(t *testing.T) {
	if got := Median([]float64{5, 1, 3}); got != 3 {
		t.Errorf("odd median = %v", got)
	}
	if got := Median([]float64{4, 1, 3, 2}); got != 2.5 {
		t.Errorf("even median = %v", got)
	}
	if got := Median(nil); got != 0 {
		t.Errorf("empty median = %v", got)
	}
}

func TestKeyIs16Bytes(t *testing.T) {
	if k := Key(999999); len(k) != 16 {
		t.Errorf("Key = %q, %d bytes, want 16", k, len(k))
	}
}

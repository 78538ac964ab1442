package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// config is every knob of a run.
type config struct {
	Out, Repo                   string
	StoreBin, EtcdBin, RedisBin string
	Systems                     string
	Concs                       string
	RequestsC1, Requests, Keys  int
	Kills                       int
	Attempt                     time.Duration
	CatchUpKeys, MemKeys        int
	MemBound, Timeout           time.Duration
	LatencyAt                   int
	Keep                        bool
	StoreArgs                   string
	// MemLimit is the store's --memory-limit in the memory measurement,
	// as the chart passes resources.limits.memory (0: none).
	MemLimit int64
	// StoreRESP measures the store's workloads over its RESP port too.
	StoreRESP bool
}

// defaultConfig is sized so the whole run of the three systems stays well
// under 25 minutes on a 2-core machine.
func defaultConfig() config {
	return config{
		Systems:     "ephemeral-store,etcd,redis",
		Concs:       "1,16,64",
		RequestsC1:  2000,
		Requests:    10000,
		Keys:        10000,
		Kills:       5,
		Attempt:     200 * time.Millisecond,
		CatchUpKeys: 100000,
		MemKeys:     1000000,
		MemBound:    12 * time.Minute,
		// The chart's default settings at the limit a million keys of the
		// memory shape need: its default quota (a fifth of the limit, at
		// 272 + 96 bytes per key) holds 583 000 of them at 1Gi, 1.17
		// million at 2Gi. The limit also gives the chart's Go settings:
		// GOGC 50 and a soft limit of 90 %.
		MemLimit:  2 << 30,
		Timeout:   10 * time.Second,
		LatencyAt: 16,
		StoreRESP: true,
	}
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || v < 1 {
			return nil, fmt.Errorf("concurrency %q: want a positive integer", f)
		}
		out = append(out, v)
	}
	return out, nil
}

func (c config) requestsAt(conc int) int {
	if conc == 1 {
		return c.RequestsC1
	}
	return c.Requests
}

func (c config) settings() map[string]any {
	return map[string]any{
		"concurrency": c.Concs, "requests_c1": c.RequestsC1, "requests": c.Requests, "keys": c.Keys,
		"value_bytes": valueSize, "kills": c.Kills, "attempt_timeout": c.Attempt.String(),
		"catchup_keys": c.CatchUpKeys, "mem_keys": c.MemKeys, "mem_bound": c.MemBound.String(),
		"store_mem_limit": c.MemLimit,
		"store_resp":      c.StoreRESP,
		// How the RESP rows' writes reach the leader (storeRESP.Client).
		"resp_writes": "cluster",
	}
}

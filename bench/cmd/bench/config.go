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
		Timeout:     10 * time.Second,
		LatencyAt:   16,
		StoreRESP:   true,
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
		"store_resp": c.StoreRESP,
		// How the RESP rows' writes reach the leader (storeRESP.Client).
		"resp_writes": "cluster",
	}
}

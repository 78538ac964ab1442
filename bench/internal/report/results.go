// Package report turns the raw numbers of a run into results.json,
// results.md and PNG charts.
package report

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/ephemeral-store/ephemeral-store/bench/internal/load"
	"github.com/ephemeral-store/ephemeral-store/bench/internal/systems"
)

// Systems in the order of every table: ours first, then the references.
var Systems = []string{"ephemeral-store", "etcd", "redis"}

// StoreRESP keys the store's read workloads measured over its RESP port
// (go-redis) instead of its HTTP/2 API; Systems[0]'s results are HTTP's.
const StoreRESP = systems.StoreRESPName

// series are the result keys of the workload tables' error notes and of
// the charts: the three systems, then the store over RESP.
var series = append(append([]string{}, Systems...), StoreRESP)

// label names a series in the workload tables and charts, with the
// store's protocol.
func label(s string) string {
	if s == Systems[0] {
		return s + " (HTTP)"
	}
	return s
}

// Results is everything one run measured.
type Results struct {
	Machine   Machine                  `json:"machine"`
	Settings  map[string]any           `json:"settings"`
	Workloads []WorkloadResult         `json:"workloads"`
	Failover  map[string]load.Failover `json:"failover"`
	CatchUp   map[string]load.CatchUp  `json:"catch_up"`
	Memory    map[string]load.Memory   `json:"memory"`
	Errors    []string                 `json:"errors,omitempty"`
}

// WorkloadResult is one workload at one concurrency; a system for which
// the workload does not apply is absent from Per.
type WorkloadResult struct {
	Name        string                  `json:"name"`
	Title       string                  `json:"title"`
	Concurrency int                     `json:"concurrency"`
	Per         map[string]load.Summary `json:"per_system"`
	// Leader is the index of each system's leader during the run: with
	// client g on node g mod 5, it says whether c=1 talked to the leader.
	Leader map[string]int `json:"leader_node"`
	// LeaderChanges is how much each system's leader-change count (summed
	// over its nodes, see systems.LeaderChanges) moved during the run.
	LeaderChanges map[string]float64 `json:"leader_changes,omitempty"`
}

// Find returns the result of workload name at concurrency c.
func (r *Results) Find(name string, c int) *WorkloadResult {
	for i := range r.Workloads {
		if r.Workloads[i].Name == name && r.Workloads[i].Concurrency == c {
			return &r.Workloads[i]
		}
	}
	return nil
}

// WriteJSON writes r indented to path.
func (r *Results) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("results json: %w", err)
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

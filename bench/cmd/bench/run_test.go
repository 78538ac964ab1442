package main

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/ephemeral-store/ephemeral-store/bench/internal/load"
	"github.com/ephemeral-store/ephemeral-store/bench/internal/report"
	"github.com/ephemeral-store/ephemeral-store/bench/internal/systems"
)

// counting is a System of five in-memory nodes, node 0 leading, whose
// clients count the requests they serve; with a RESP view (resp set) it
// stands for the store started with --resp-listen.
type counting struct {
	name string
	resp *counting
	mu   sync.Mutex
	puts int
	gets int
}

func (f *counting) Name() string                         { return f.name }
func (f *counting) Version() string                      { return "test" }
func (f *counting) Replicated() bool                     { return true }
func (f *counting) Start(context.Context) error          { return nil }
func (f *counting) Stop() error                          { return nil }
func (f *counting) Nodes() int                           { return 5 }
func (f *counting) Leader(context.Context) int           { return 0 }
func (f *counting) Kill(int) error                       { return nil }
func (f *counting) Restart(int) error                    { return nil }
func (f *counting) Ready(context.Context, int) bool      { return true }
func (f *counting) PIDs() []int                          { return nil }
func (f *counting) DataBytes() (int64, error)            { return 0, nil }
func (f *counting) Client([]int) (systems.Client, error) { return countingClient{f}, nil }

// RESPView is nil without a RESP view, as the store's without RESP.
func (f *counting) RESPView() systems.System {
	if f.resp == nil {
		return nil
	}
	return f.resp
}

type countingClient struct{ f *counting }

func (c countingClient) Put(context.Context, string, []byte) error {
	c.f.mu.Lock()
	defer c.f.mu.Unlock()
	c.f.puts++
	return nil
}

func (c countingClient) PutBatch(ctx context.Context, keys []string, v []byte) error {
	for _, k := range keys {
		if err := c.Put(ctx, k, v); err != nil {
			return err
		}
	}
	return nil
}

func (c countingClient) Get(context.Context, string, bool) ([]byte, error) {
	c.f.mu.Lock()
	defer c.f.mu.Unlock()
	c.f.gets++
	return []byte("v"), nil
}

func (c countingClient) Close() error { return nil }

func TestRunRESPMeasuresEveryWorkloadOverTheRESPView(t *testing.T) {
	cfg := defaultConfig()
	cfg.RequestsC1, cfg.Requests, cfg.Keys, cfg.Timeout = 50, 200, 100, 5*time.Second
	ctx := context.Background()
	for _, w := range load.Workloads() {
		for _, c := range []int{1, 16} {
			resp := &counting{name: systems.StoreRESPName}
			s := &counting{name: "ephemeral-store", resp: resp}
			wr := &report.WorkloadResult{Name: w.Name, Concurrency: c, Per: map[string]load.Summary{},
				Leader: map[string]int{}, LeaderChanges: map[string]float64{}}
			if err := runRESP(ctx, cfg, s, w, c, []byte("v"), wr); err != nil {
				t.Fatalf("%s c=%d: %v", w.Name, c, err)
			}
			sum, ok := wr.Per[systems.StoreRESPName]
			want := cfg.requestsAt(c)
			if !ok || sum.Requests != want || sum.Errors != 0 {
				t.Errorf("%s c=%d: RESP summary %+v (recorded %v), want %d requests", w.Name, c, sum, ok, want)
			}
			// The warm-up reads; only the measured requests write.
			if w.WriteRatio == 1 && resp.puts != want {
				t.Errorf("%s c=%d: %d SETs over the RESP view, want %d", w.Name, c, resp.puts, want)
			}
			if w.WriteRatio > 0 && w.WriteRatio < 1 && (resp.puts == 0 || resp.puts == want) {
				t.Errorf("%s c=%d: %d of %d requests wrote over the RESP view, want some", w.Name, c, resp.puts, want)
			}
			if w.WriteRatio == 0 && resp.puts != 0 {
				t.Errorf("%s c=%d: a read workload wrote %d times", w.Name, c, resp.puts)
			}
			if s.puts != 0 || s.gets != 0 {
				t.Errorf("%s c=%d: the HTTP system served %d puts and %d gets during the RESP run", w.Name, c, s.puts, s.gets)
			}
		}
	}

	// No RESP view (the store without --resp-listen): nothing is recorded.
	s := &counting{name: "ephemeral-store"}
	wr := &report.WorkloadResult{Name: "put", Concurrency: 1, Per: map[string]load.Summary{}, Leader: map[string]int{}}
	if err := runRESP(ctx, cfg, s, load.Workloads()[0], 1, []byte("v"), wr); err != nil || len(wr.Per) != 0 || s.puts != 0 {
		t.Errorf("without a RESP view: err %v, results %v, %d puts", err, wr.Per, s.puts)
	}
}

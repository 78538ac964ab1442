// Command bench runs ephemeral-store, etcd and Redis one after another on
// 127.0.0.1 and writes a side-by-side comparison (results.md, results.json,
// PNG charts). scripts/bench.sh builds the binaries and calls it; main only
// parses flags and wires the steps of run.go.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	cfg := defaultConfig()
	flag.StringVar(&cfg.Out, "out", "", "results directory (default bench/results/<YYYY-MM-DD> under -repo)")
	flag.StringVar(&cfg.Repo, "repo", ".", "repository root, for the store commit and the default -out")
	flag.StringVar(&cfg.StoreBin, "store-bin", "", "ephemeral-store binary (required)")
	flag.StringVar(&cfg.EtcdBin, "etcd-bin", "", "etcd binary (required)")
	flag.StringVar(&cfg.RedisBin, "redis-bin", "redis-server", "redis-server binary")
	flag.StringVar(&cfg.Systems, "systems", cfg.Systems, "comma-separated systems to run")
	flag.StringVar(&cfg.Concs, "conc", cfg.Concs, "client concurrencies")
	flag.IntVar(&cfg.RequestsC1, "requests-c1", cfg.RequestsC1, "requests per workload at concurrency 1")
	flag.IntVar(&cfg.Requests, "requests", cfg.Requests, "requests per workload at higher concurrency")
	flag.IntVar(&cfg.Keys, "keys", cfg.Keys, "keys preloaded for the workloads")
	flag.IntVar(&cfg.Kills, "kills", cfg.Kills, "leader kills per replicated system")
	flag.DurationVar(&cfg.Attempt, "attempt-timeout", cfg.Attempt, "per-attempt timeout of the failover writer")
	flag.IntVar(&cfg.CatchUpKeys, "catchup-keys", cfg.CatchUpKeys, "keys a restarted store node catches up (0 skips)")
	flag.IntVar(&cfg.MemKeys, "mem-keys", cfg.MemKeys, "keys of the memory measurement (0 skips)")
	flag.DurationVar(&cfg.MemBound, "mem-bound", cfg.MemBound, "bound on each system's memory load; memory is then reported at the keys loaded")
	flag.DurationVar(&cfg.Timeout, "request-timeout", cfg.Timeout, "bound on one workload request")
	flag.IntVar(&cfg.LatencyAt, "latency-at", cfg.LatencyAt, "concurrency of the latency charts")
	flag.Int64Var(&cfg.MemLimit, "mem-limit", cfg.MemLimit, "the store's --memory-limit in the memory measurement, as the chart passes the pod's limit (0: none)")
	flag.StringVar(&cfg.StoreArgs, "store-args", "", "extra flags for every store node, space-separated (e.g. --pprof to profile them)")
	flag.BoolVar(&cfg.StoreRESP, "store-resp", cfg.StoreRESP, "also measure the store's workloads (GET, SET) over its RESP port (--resp-listen); false for a store binary without one")
	flag.BoolVar(&cfg.Keep, "keep", false, "keep the temporary directory (logs, certificates, etcd data)")
	render := flag.String("render", "", "only re-render results.md and the charts of this results.json (into -out, default its directory)")
	quick := flag.Bool("quick", false, "smoke test: 200 requests, 2 kills, 20k catch-up and memory keys")
	flag.Parse()
	if *quick {
		cfg.RequestsC1, cfg.Requests, cfg.Kills = 200, 200, 2
		cfg.CatchUpKeys, cfg.MemKeys, cfg.MemBound = 20000, 20000, 3*time.Minute
		cfg.Keys = 2000
	}
	if *render != "" {
		if err := rerender(*render, cfg); err != nil {
			fmt.Fprintf(os.Stderr, "bench: %v\n", err)
			os.Exit(1)
		}
		return
	}
	if cfg.StoreBin == "" || cfg.EtcdBin == "" {
		fmt.Fprintln(os.Stderr, "bench: -store-bin and -etcd-bin are required (scripts/bench.sh builds both)")
		os.Exit(2)
	}
	// Ctrl-C or SIGTERM cancels the run; every step returns and the
	// deferred cleanup kills the children by PID.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		stop()
		os.Exit(1)
	}
}

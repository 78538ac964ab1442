package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ephemeral-store/ephemeral-store/bench/internal/load"
	"github.com/ephemeral-store/ephemeral-store/bench/internal/report"
	"github.com/ephemeral-store/ephemeral-store/bench/internal/systems"
)

const valueSize = 256

var started = time.Now()

// logf prints a progress line with the time since the run began.
func logf(format string, args ...any) {
	fmt.Printf("[%6.1fs] %s\n", time.Since(started).Seconds(), fmt.Sprintf(format, args...))
}

func run(ctx context.Context, cfg config) error {
	concs, err := parseInts(cfg.Concs)
	if err != nil {
		return err
	}
	if cfg.Out == "" {
		cfg.Out = filepath.Join(cfg.Repo, "bench", "results", time.Now().Format("2006-01-02"))
	}
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return fmt.Errorf("results dir: %w", err)
	}
	// /dev/shm is tmpfs: etcd's data dirs there cost memory, not disk
	// writes, like the in-memory store's Raft log.
	tmp, err := os.MkdirTemp("/dev/shm", "es-bench-")
	if err != nil {
		return fmt.Errorf("temp dir: %w", err)
	}
	if cfg.Keep {
		logf("keeping %s", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	certDir := filepath.Join(tmp, "certs")
	if err := systems.WriteCerts(cfg.StoreBin, certDir); err != nil {
		return err
	}
	value := []byte(strings.Repeat("v", valueSize))

	res := &report.Results{
		Machine:  report.Describe(cfg.Repo),
		Settings: cfg.settings(),
		Failover: map[string]load.Failover{},
		CatchUp:  map[string]load.CatchUp{},
		Memory:   map[string]load.Memory{},
	}
	res.Machine.Date = time.Now().Format("2006-01-02")
	for _, w := range load.Workloads() {
		for _, c := range concs {
			res.Workloads = append(res.Workloads, report.WorkloadResult{Name: w.Name, Title: w.Title, Concurrency: c,
				Per: map[string]load.Summary{}, Leader: map[string]int{}, LeaderChanges: map[string]float64{}})
		}
	}
	save := func() error {
		charts, err := res.Charts(cfg.Out, concs, cfg.LatencyAt)
		if err != nil {
			return err
		}
		if err := res.WriteJSON(filepath.Join(cfg.Out, "results.json")); err != nil {
			return err
		}
		return res.WriteMarkdown(filepath.Join(cfg.Out, "results.md"), charts)
	}

	for _, name := range strings.Split(cfg.Systems, ",") {
		name = strings.TrimSpace(name)
		mk, err := factory(name, cfg, tmp, certDir)
		if err != nil {
			return err
		}
		if err := runSystem(ctx, cfg, mk, concs, value, res); err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("%s: interrupted: %w", name, err)
			}
			// One system failing should not lose the others' numbers.
			logf("%s FAILED: %v", name, err)
			res.Errors = append(res.Errors, fmt.Sprintf("%s: %v", name, err))
		}
		if err := save(); err != nil {
			return err
		}
	}
	logf("results in %s", cfg.Out)
	if len(res.Errors) > 0 {
		return fmt.Errorf("%d system(s) failed: %s", len(res.Errors), strings.Join(res.Errors, "; "))
	}
	return nil
}

// factory returns a maker of fresh, unstarted instances of a system: the
// memory measurement needs a cluster that has seen nothing else.
func factory(name string, cfg config, tmp, certDir string) (func(phase string) systems.System, error) {
	dir := func(phase string) string {
		d := filepath.Join(tmp, name+"-"+phase)
		_ = os.MkdirAll(d, 0o755)
		return d
	}
	switch name {
	case "ephemeral-store":
		return func(p string) systems.System {
			// The RESP port only on the cluster of the workloads: the
			// memory measurement's cluster reads nothing. That one runs
			// with the memory limit the chart would pass.
			args := strings.Fields(cfg.StoreArgs)
			if p == "memory" && cfg.MemLimit > 0 {
				args = append([]string{fmt.Sprintf("--memory-limit=%d", cfg.MemLimit)}, args...)
			}
			return &systems.Store{Bin: cfg.StoreBin, Dir: dir(p), CertDir: certDir, N: 5, ExtraArgs: args,
				RESP: cfg.StoreRESP && p == "main"}
		}, nil
	case "etcd":
		return func(p string) systems.System {
			d := dir(p)
			return &systems.Etcd{Bin: cfg.EtcdBin, Dir: d, DataDir: filepath.Join(d, "data"), N: 5, CertDir: certDir,
				QuotaBytes: 8 << 30, MaxTxnOps: 1024}
		}, nil
	case "redis":
		return func(p string) systems.System {
			return &systems.Redis{Bin: cfg.RedisBin, Dir: dir(p), CertDir: certDir}
		}, nil
	}
	return nil, fmt.Errorf("unknown system %q (want ephemeral-store, etcd or redis)", name)
}

// bulkSpec: etcd takes txns of 128 puts, Redis pipelines; the store has
// one key per request. Its throughput peaks near 16 clients on 2 cores
// (64 and 128 clients were slower in trial runs), so it loads with 16.
func bulkSpec(name string) load.BulkSpec {
	switch name {
	case "etcd":
		return load.BulkSpec{Conc: 16, Batch: 128}
	case "redis":
		return load.BulkSpec{Conc: 4, Batch: 1000}
	}
	return load.BulkSpec{Conc: 16, Batch: 16}
}

func runSystem(ctx context.Context, cfg config, mk func(string) systems.System, concs []int, value []byte, res *report.Results) error {
	s := mk("main")
	name := s.Name()
	if err := withSystem(ctx, s, func() error {
		switch name {
		case "ephemeral-store":
			res.Machine.StoreVersion = s.Version()
		case "etcd":
			res.Machine.EtcdVersion = s.Version()
		case "redis":
			res.Machine.RedisVersion = s.Version()
		}
		logf("%s: preloading %d keys", name, cfg.Keys)
		if _, err := load.Bulk(ctx, s, bulkSpec(name), 0, cfg.Keys, value, logf); err != nil {
			return err
		}
		for _, w := range load.Workloads() {
			for _, c := range concs {
				leader := s.Leader(ctx)
				if leader < 0 {
					return fmt.Errorf("no leader before %s c=%d", w.Name, c)
				}
				changesBefore, counted := systems.LeaderChanges(ctx, s)
				sum, ok, err := load.Run(ctx, s, w, leader, c, cfg.requestsAt(c), cfg.Keys, value, cfg.Timeout)
				if err != nil {
					return err
				}
				if !ok {
					continue
				}
				wr := res.Find(w.Name, c)
				wr.Per[name] = sum
				wr.Leader[name] = leader
				if changesAfter, ok := systems.LeaderChanges(ctx, s); ok && counted {
					wr.LeaderChanges[name] = changesAfter - changesBefore
				}
				logf("%s %-13s c=%-3d %8.0f ops/s  p50 %.2f  p99 %.2f  p99.9 %.2f ms  errors %d",
					name, w.Name, c, sum.OpsPerSec, sum.P50ms, sum.P99ms, sum.P999ms, sum.Errors)
				if err := runRESP(ctx, cfg, s, w, c, value, wr); err != nil {
					return err
				}
			}
		}
		if s.Replicated() && cfg.Kills > 0 {
			logf("%s: %d leader kills", name, cfg.Kills)
			f, err := load.FailoverTimes(ctx, s, cfg.Kills, cfg.Attempt, value, logf)
			if len(f.SamplesMs) > 0 {
				f.MedianMs = load.Median(f.SamplesMs)
				res.Failover[name] = f
			}
			if err != nil {
				return fmt.Errorf("failover: %w", err)
			}
			logf("%s: failover median %.0f ms", name, f.MedianMs)
		}
		// The store alone restarts empty; etcd replays its own data dir.
		if name == "ephemeral-store" && cfg.CatchUpKeys > 0 {
			logf("%s: loading %d keys for the catch-up", name, cfg.CatchUpKeys)
			if _, err := load.Bulk(ctx, s, bulkSpec(name), cfg.Keys, cfg.CatchUpKeys, value, logf); err != nil {
				return err
			}
			cu, err := load.CatchUpTime(ctx, s, cfg.CatchUpKeys, value, logf)
			if err != nil {
				return fmt.Errorf("catch-up: %w", err)
			}
			res.CatchUp[name] = cu
		}
		return nil
	}); err != nil {
		return err
	}
	if cfg.MemKeys == 0 {
		return nil
	}
	m := mk("memory")
	return withSystem(ctx, m, func() error {
		logf("%s: memory at %d keys (fresh start, bound %s)", name, cfg.MemKeys, cfg.MemBound)
		mem, err := load.MemoryAt(ctx, m, bulkSpec(name), cfg.MemKeys, cfg.MemBound, value, logf)
		if err != nil {
			return fmt.Errorf("memory: %w", err)
		}
		res.Memory[name] = mem
		logf("%s: %d keys, growth %.0f B/key/node (%.1fx raw), data dir %.1f MiB",
			name, mem.KeysLoaded, mem.MeanPerKey, mem.Ratio, float64(mem.DataDirBytes)/(1<<20))
		return nil
	})
}

// runRESP measures a workload again over the store's RESP port (GET and
// SET through go-redis), on the same cluster right after the HTTP run at
// the same concurrency, into wr.Per[systems.StoreRESPName].
func runRESP(ctx context.Context, cfg config, s systems.System, w load.Workload, c int, value []byte, wr *report.WorkloadResult) error {
	rv, ok := s.(interface{ RESPView() systems.System })
	if !ok {
		return nil
	}
	v := rv.RESPView()
	if v == nil {
		return nil
	}
	name := v.Name()
	leader := s.Leader(ctx)
	if leader < 0 {
		return fmt.Errorf("no leader before %s over RESP c=%d", w.Name, c)
	}
	changesBefore, counted := systems.LeaderChanges(ctx, s)
	sum, ok, err := load.Run(ctx, v, w, leader, c, cfg.requestsAt(c), cfg.Keys, value, cfg.Timeout)
	if err != nil || !ok {
		return err
	}
	wr.Per[name] = sum
	wr.Leader[name] = leader
	if changesAfter, ok := systems.LeaderChanges(ctx, s); ok && counted {
		wr.LeaderChanges[name] = changesAfter - changesBefore
	}
	logf("%s %-13s c=%-3d %8.0f ops/s  p50 %.2f  p99 %.2f  p99.9 %.2f ms  errors %d",
		name, w.Name, c, sum.OpsPerSec, sum.P50ms, sum.P99ms, sum.P999ms, sum.Errors)
	return nil
}

// withSystem starts s, runs f and always stops s (every node by PID), also
// when f fails or the run is interrupted.
func withSystem(ctx context.Context, s systems.System, f func() error) (err error) {
	logf("%s: starting", s.Name())
	sctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	defer func() {
		if serr := s.Stop(); serr != nil {
			err = errors.Join(err, fmt.Errorf("stopping %s: %w", s.Name(), serr))
		}
		logf("%s: stopped", s.Name())
	}()
	if err := s.Start(sctx); err != nil {
		return fmt.Errorf("starting %s: %w", s.Name(), err)
	}
	logf("%s: %d nodes healthy (%s)", s.Name(), s.Nodes(), s.Version())
	return f()
}

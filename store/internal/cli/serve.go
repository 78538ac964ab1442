package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/ephemeral-store/ephemeral-store/store/internal/config"
	"github.com/ephemeral-store/ephemeral-store/store/internal/kvtable"
	"github.com/ephemeral-store/ephemeral-store/store/internal/raftmetrics"
	"github.com/ephemeral-store/ephemeral-store/store/internal/server"
)

// newServeCommand runs one store node until SIGTERM or SIGINT. With no
// discovery flag it is a single-node cluster.
func newServeCommand() *cobra.Command {
	cfg := config.Default()
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run a store node",
		Long: `Run a store node. Every flag can also be set by an ES_ environment variable
(--peers-dns is ES_PEERS_DNS). With neither --peers-dns nor --peers the node is
a single-node cluster.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := newLogger(cmd.ErrOrStderr(), cfg.LogLevel)
			return runServe(cmd.Context(), cfg, log)
		},
	}
	addServeFlags(cmd, &cfg)
	return cmd
}

func addServeFlags(cmd *cobra.Command, cfg *config.Config) {
	f := cmd.Flags()
	f.StringVar(&cfg.Listen, "listen", cfg.Listen, "client API address (TLS, client certificates required)")
	f.StringVar(&cfg.PeerListen, "peer-listen", cfg.PeerListen, "peer address (mutual TLS: Raft, joins, forwarded writes)")
	f.StringVar(&cfg.ProbeListen, "probe-listen", cfg.ProbeListen, "plain HTTP address of /healthz, /readyz and /metrics (no data)")
	f.StringVar(&cfg.RESPListen, "resp-listen", cfg.RESPListen, "address of the Redis-protocol (RESP2) port: GET, MGET, EXISTS, SET, SETNX, SETEX, PSETEX, DEL with the client port's TLS, certificates and users; reads linearizable unless the connection sends READONLY; empty: off")
	f.StringVar(&cfg.NodeName, "node-name", cfg.NodeName, "stable node name (default: the host name, i.e. the pod name); with --peers-dns its -<n> suffix is the ordinal, with --peers a -<n> suffix must match the position in --peers")
	f.StringVar(&cfg.Advertise, "advertise", cfg.Advertise, "host[:port] peers reach this node by, a DNS name (default <node-name>.<peers-dns>); without a port, the --peer-listen port; with --peers it must be this node's entry in the list")
	f.StringVar(&cfg.PeersDNS, "peers-dns", cfg.PeersDNS, "headless Service domain for Kubernetes discovery, e.g. ephemeral-store-info.default.svc.cluster.local")
	f.IntVar(&cfg.Replicas, "replicas", cfg.Replicas, "number of pods with --peers-dns, when --replicas-from is not set")
	f.StringVar(&cfg.ReplicasFrom, "replicas-from", cfg.ReplicasFrom, "where the replica count comes from while the node runs: statefulset (the pod's own StatefulSet's spec.replicas, read through the Kubernetes API with the pod's service account; namespace from POD_NAMESPACE or the service account) or file:PATH (a number in a file; with --peers it takes the first entries of the list); empty: --replicas (or the length of --peers), fixed. The leader replicates the count, so scaling needs no restart")
	f.StringSliceVar(&cfg.RESPPeers, "resp-peers", cfg.RESPPeers, "host:port clients reach each node's RESP port at, in --peers order: CLUSTER SLOTS names the leader by it so Redis Cluster clients write to it directly; default: each peer's host with this node's --resp-listen port")
	f.StringSliceVar(&cfg.Peers, "peers", cfg.Peers, "static discovery: host:port of every node's peer listener, the same list in the same order on every node; a node's ordinal is the position of its --advertise in it (0 bootstraps), and a --node-name ending in -<n> must agree with that position")
	f.StringVar(&cfg.TLSCert, "tls-cert", cfg.TLSCert, "serving certificate (PEM)")
	f.StringVar(&cfg.TLSKey, "tls-key", cfg.TLSKey, "serving key (PEM)")
	f.StringVar(&cfg.TLSCA, "tls-ca", cfg.TLSCA, "CA certificate that signed the serving certificate")
	f.StringVar(&cfg.TLSCAKey, "tls-ca-key", cfg.TLSCAKey, "CA key: mint the serving and peer certificate in memory (no --tls-cert)")
	f.StringSliceVar(&cfg.SANs, "san", cfg.SANs, "extra DNS names for a minted certificate (e.g. the client Service)")
	f.StringVar(&cfg.ClientCA, "client-ca", cfg.ClientCA, "CA that client certificates must chain to (default --tls-ca)")
	f.StringVar(&cfg.PeerCert, "peer-cert", cfg.PeerCert, "peer certificate (default the serving one); its CN must be --peer-cn and it must chain to --peer-ca, or a node with --peers or --peers-dns refuses to start")
	f.StringVar(&cfg.PeerKey, "peer-key", cfg.PeerKey, "peer key")
	f.StringVar(&cfg.PeerCA, "peer-ca", cfg.PeerCA, "CA of peer certificates (default --tls-ca)")
	f.StringVar(&cfg.PeerCN, "peer-cn", cfg.PeerCN, "Common Name a peer certificate must carry")
	f.DurationVar(&cfg.CARotationGrace, "ca-rotation-grace", cfg.CARotationGrace, "how long a CA certificate that left --tls-ca, --client-ca or --peer-ca stays trusted after the file changed (in memory only: a restarted node trusts what the files say); 0: none")
	f.StringVar(&cfg.UsersDir, "users-dir", cfg.UsersDir, "directory of user entries (the mounted ConfigMap)")
	f.DurationVar(&cfg.ReloadInterval, "reload-interval", cfg.ReloadInterval, "how often users and certificates are re-read by hash")
	f.IntVar(&cfg.MaxKeyBytes, "max-key-bytes", cfg.MaxKeyBytes, "largest key in bytes")
	f.IntVar(&cfg.MaxValueBytes, "max-value-bytes", cfg.MaxValueBytes, "largest value in bytes")
	f.DurationVar(&cfg.QuorumLossTimeout, "quorum-loss-timeout", cfg.QuorumLossTimeout, "wait without a leader, with a majority confirmed gone, before re-forming empty")
	f.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", cfg.ShutdownTimeout, "bound on the graceful exit (drain, leadership transfer and leave)")
	f.DurationVar(&cfg.DrainDelay, "drain-delay", cfg.DrainDelay, "at SIGTERM, report not ready and keep serving this long before closing the API")
	f.DurationVar(&cfg.HeartbeatTimeout, "raft-heartbeat-timeout", cfg.HeartbeatTimeout, "Raft heartbeat timeout")
	f.DurationVar(&cfg.ElectionTimeout, "raft-election-timeout", cfg.ElectionTimeout, "Raft election timeout")
	f.Uint64Var(&cfg.SnapshotThreshold, "raft-snapshot-threshold", cfg.SnapshotThreshold, "log entries between snapshots (bounds the in-memory log)")
	f.Uint64Var(&cfg.SnapshotBytes, "raft-snapshot-bytes", cfg.SnapshotBytes, "bytes of commands between snapshots, whatever their count; 0: 64 MiB, or a sixteenth of --memory-limit when smaller")
	f.Int64Var(&cfg.MemoryLimit, "memory-limit", cfg.MemoryLimit, "the container's memory limit in bytes (the chart passes limits.memory); Go's soft memory limit is set to --memory-limit-ratio of it unless GOMEMLIMIT is set; 0: none")
	f.Float64Var(&cfg.MemoryLimitRatio, "memory-limit-ratio", cfg.MemoryLimitRatio, "share of --memory-limit the Go heap aims to stay under; 0: Go's default (the limit still derives the data quota)")
	f.IntVar(&cfg.GCPercent, "gc-percent", cfg.GCPercent, fmt.Sprintf("the collector's GOGC: how far (in percent) the heap may grow past the live data before a collection; 0: %d under a soft memory limit (--memory-limit or GOMEMLIMIT), Go's default (100) otherwise; -1: off, collecting only near the soft memory limit; a GOGC environment variable wins", config.GCPercentWithLimit))
	f.Int64Var(&cfg.QuotaBytes, "quota-bytes", cfg.QuotaBytes, "bound on the data's estimated memory (key and value bytes plus 96 per key): writes that would grow it further are refused with 507 quota_exceeded, reads and deletes go on; 0: --quota-ratio of --memory-limit (no quota without a limit); -1: no quota")
	f.Float64Var(&cfg.QuotaRatio, "quota-ratio", cfg.QuotaRatio, "share of --memory-limit the data may take when --quota-bytes is 0")
	f.StringVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "debug, info, warn or error")
	f.BoolVar(&cfg.Pprof, "pprof", cfg.Pprof, "serve Go's runtime profiles under /debug/pprof/ on the probe listener (for profiling; off by default)")
}

func runServe(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	srv, err := server.New(cfg, server.Listeners{}, log)
	if err != nil {
		return err
	}
	// One node per process here, so Raft's process-wide metrics and the
	// process's memory limit are this node's.
	if err := raftmetrics.Install(srv.Metrics()); err != nil {
		return err
	}
	if err := srv.Metrics().Register(offHeapGauge()); err != nil {
		return fmt.Errorf("register the off-heap gauge: %w", err)
	}
	soft, limited := applyMemoryLimit(cfg, log, lookupEnv, debug.SetMemoryLimit)
	applyGCPercent(cfg, limited, log, lookupEnv, debug.SetGCPercent)
	if err := srv.Start(); err != nil {
		return err
	}
	sig, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if soft > 0 {
		ticker := time.NewTicker(time.Second)
		defer ticker.Stop()
		go followOffHeap(sig, soft, kvtable.HeldBytes, debug.SetMemoryLimit, ticker.C)
	}
	<-sig.Done()
	log.Info("signal received, leaving the cluster", "timeout", cfg.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	return srv.Close(sctx)
}

// applyMemoryLimit sets Go's soft memory limit to --memory-limit-ratio of
// --memory-limit, so that near the container's limit the collector runs
// more often instead of the kernel killing the pod: a killed pod rejoins
// empty and has to catch up from the others. GOMEMLIMIT, when set, has been
// read by the runtime already and wins.
//
// It returns the soft limit in force, for followOffHeap (0: none), and
// whether there is one (set here or by GOMEMLIMIT).
func applyMemoryLimit(cfg config.Config, log *slog.Logger, lookup func(string) (string, bool), set func(int64) int64) (int64, bool) {
	if v, ok := lookup("GOMEMLIMIT"); ok && v != "" {
		if cfg.MemoryLimit > 0 && cfg.MemoryLimitRatio != 0 {
			log.Info("GOMEMLIMIT is set; --memory-limit not applied", "GOMEMLIMIT", v, "memory_limit", cfg.MemoryLimit)
		}
		if v == "off" {
			return 0, false
		}
		// The operator's limit was meant for everything the process
		// holds, so it is followed too; a negative argument only reads it.
		return set(-1), true
	}
	if cfg.MemoryLimit <= 0 || cfg.MemoryLimitRatio == 0 {
		return 0, false // no limit known, or Go's default asked for
	}
	soft := int64(float64(cfg.MemoryLimit) * cfg.MemoryLimitRatio)
	set(soft)
	log.Info("Go soft memory limit set", "bytes", soft, "memory_limit", cfg.MemoryLimit, "ratio", cfg.MemoryLimitRatio)
	return soft, true
}

// offHeapGauge exports kvtable.HeldBytes: the data's memory, which the Go
// runtime's own memory metrics no longer include.
func offHeapGauge() prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "ephemeral_store_data_offheap_bytes",
		Help: "Memory the keys, values, their index and the snapshots' pins hold outside the Go heap (mapped from the kernel; Go's memory metrics do not count it).",
	}, func() float64 { return float64(kvtable.HeldBytes()) })
}

// followOffHeap keeps Go's soft memory limit at soft minus the memory the
// state machine holds outside the heap (kvtable.HeldBytes), which the
// runtime does not count though the container's limit does: without it a
// heap allowed the whole soft limit plus the data beside it could pass the
// container's limit. The heap keeps at least an eighth of soft, so a full
// table does not leave the collector running without pause. It looks at
// once and on every tick until ctx ends, and sets the limit when it moved
// by a MiB or more.
func followOffHeap(ctx context.Context, soft int64, offHeap func() int64, set func(int64) int64, tick <-chan time.Time) {
	const slack = 1 << 20
	last := soft
	for {
		if limit := max(soft-offHeap(), soft/8); limit > last+slack || limit < last-slack {
			set(limit)
			last = limit
		}
		select {
		case <-ctx.Done():
			return
		case <-tick:
		}
	}
}

// applyGCPercent sets the collector's GOGC from --gc-percent (see
// config.GCPercentWithLimit): with a soft limit in force, a lower GOGC
// keeps the resident memory nearer the live data, and the limit still
// guards the pod. GOGC, when set, has been read by the runtime and wins.
func applyGCPercent(cfg config.Config, limited bool, log *slog.Logger, lookup func(string) (string, bool), set func(int) int) {
	pct := cfg.GCPercentFor(limited)
	if pct == 0 {
		return // Go's default
	}
	if v, ok := lookup("GOGC"); ok && v != "" {
		log.Info("GOGC is set; --gc-percent not applied", "GOGC", v, "gc_percent", pct)
		return
	}
	set(pct)
	log.Info("Go collector percent set", "gc_percent", pct)
}

// newLogger logs JSON unless stderr is a terminal.
func newLogger(w io.Writer, level string) *slog.Logger {
	opts := &slog.HandlerOptions{Level: logLevel(level)}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// logLevel is --log-level as a slog level, in any case; a level the
// configuration would refuse (config.LogLevels) is info.
func logLevel(level string) slog.Level {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return slog.LevelInfo
	}
	return lv
}

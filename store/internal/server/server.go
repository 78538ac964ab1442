// Package server is the composition root of a store node: it builds the TLS
// material, the users directory, the state machine, the Raft node and the
// three listeners from a validated config.Config, starts them in order and
// stops them in the reverse order.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ephemeral-store/ephemeral-store/store/internal/auth"
	"github.com/ephemeral-store/ephemeral-store/store/internal/buildinfo"
	"github.com/ephemeral-store/ephemeral-store/store/internal/cluster"
	"github.com/ephemeral-store/ephemeral-store/store/internal/config"
	"github.com/ephemeral-store/ephemeral-store/store/internal/filewatch"
	"github.com/ephemeral-store/ephemeral-store/store/internal/fsm"
	"github.com/ephemeral-store/ephemeral-store/store/internal/httpapi"
	"github.com/ephemeral-store/ephemeral-store/store/internal/mtls"
	"github.com/ephemeral-store/ephemeral-store/store/internal/quota"
	"github.com/ephemeral-store/ephemeral-store/store/internal/replicas"
	"github.com/ephemeral-store/ephemeral-store/store/internal/resp"
	"github.com/ephemeral-store/ephemeral-store/store/internal/transport"
)

// Listeners lets a caller (tests, `dev`) bind the ports before the server
// starts, so addresses are known up front. Nil fields are bound from Config.
type Listeners struct {
	Client, Peer, Probe net.Listener
	// RESP is bound only when Config.RESPListen is set (or given here).
	RESP net.Listener
}

// Server is one running node.
type Server struct {
	cfg config.Config
	log *slog.Logger

	state *fsm.State
	node  *cluster.Node
	mux   *transport.Mux
	users *auth.Directory
	tls   *tlsMaterial

	clientLn, peerLn, probeLn net.Listener
	respLn                    net.Listener // nil: no RESP port
	api, probe                *http.Server
	resp                      *resp.Server
	registry                  *prometheus.Registry

	wg        sync.WaitGroup
	closeOnce sync.Once
}

// New builds a node from a validated config. Nothing is started.
func New(cfg config.Config, ls Listeners, log *slog.Logger) (_ *Server, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: log, registry: prometheus.NewRegistry()}
	defer func() {
		if err != nil {
			s.closeListeners()
			s.closeMaterial()
		}
	}()
	s.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildinfo.NewCollector())

	if s.tls, err = loadTLS(&cfg, log); err != nil {
		return nil, err
	}
	s.registry.MustRegister(newCertificateCollector(s.tls))
	s.users, err = auth.OpenDirectory(cfg.UsersDir, filewatch.Config{Interval: cfg.ReloadInterval}, log.With("component", "users"))
	if err != nil {
		return nil, fmt.Errorf("users directory: %w", err)
	}

	if s.clientLn, err = listen(ls.Client, cfg.Listen); err != nil {
		return nil, err
	}
	if s.peerLn, err = listen(ls.Peer, cfg.PeerListen); err != nil {
		return nil, err
	}
	if s.probeLn, err = listen(ls.Probe, cfg.ProbeListen); err != nil {
		return nil, err
	}
	if ls.RESP != nil || cfg.RESPListen != "" {
		if s.respLn, err = listen(ls.RESP, cfg.RESPListen); err != nil {
			return nil, err
		}
	}

	limits := fsm.DefaultLimits()
	limits.HistoryBytes = int(cfg.MemoryShare(int64(limits.HistoryBytes)))
	s.state = fsm.New(limits)
	// The data's quota: writes that would grow the data past it are
	// refused before they are proposed, so that every replica, growing in
	// lockstep, stays under its memory limit.
	dataQuota := quota.New(cfg.Quota(), s.state)
	dataQuota.Register(s.registry)
	log.Info("data quota", "quota_bytes", cfg.Quota(), "memory_limit", cfg.MemoryLimit,
		"watch_history_bytes", limits.HistoryBytes, "raft_snapshot_bytes", cfg.SnapshotBytes)
	s.mux = transport.NewMux(s.peerLn, cfg.PeerAddress(),
		mtls.PeerServerConfig(s.tls.peerCert, s.tls.peerCAs, cfg.PeerCN),
		mtls.PeerClientConfig(s.tls.peerCert, s.tls.peerCAs, cfg.PeerCN),
		log.With("component", "peer"))

	ordinal, _ := cfg.Ordinal()
	var peers []cluster.Peer
	for _, p := range cfg.DiscoveredPeers() {
		peers = append(peers, cluster.Peer{Ordinal: p.Ordinal, Address: p.Address})
	}
	source, err := replicas.Parse(cfg.ReplicasFrom, len(peers), cfg.NodeName)
	if err != nil {
		return nil, err
	}
	s.node, err = cluster.New(cluster.Options{
		Name: cfg.NodeName, Address: cfg.PeerAddress(), Ordinal: ordinal, Peers: peers,
		Topology:          cluster.Topology{Address: cfg.PeerAt, Ordinal: cfg.OrdinalOfPeer},
		ReplicaSource:     source,
		QuorumLossTimeout: cfg.QuorumLossTimeout, JoinRetry: cfg.JoinRetry,
		HeartbeatTimeout: cfg.HeartbeatTimeout, ElectionTimeout: cfg.ElectionTimeout,
		SnapshotThreshold: cfg.SnapshotThreshold, TrailingLogs: cfg.TrailingLogs, SnapshotBytes: cfg.SnapshotBytes,
		Mux: s.mux, State: s.state, Quota: dataQuota, Logger: log.With("component", "cluster"),
		Metrics: cluster.NewMetrics(s.registry), Wall: cfg.WallClock,
	})
	if err != nil {
		return nil, err
	}

	apiMetrics := httpapi.NewMetrics(s.registry, s.state)
	api := httpapi.New(httpapi.Options{
		Cluster: s.node, State: s.state, Users: s.users, UserOf: mtls.UserFromState,
		MaxKeyBytes: cfg.MaxKeyBytes, MaxValueBytes: cfg.MaxValueBytes, Quota: dataQuota,
		Logger: log.With("component", "api"), Metrics: apiMetrics,
	})
	if s.respLn != nil {
		_, respPort, _ := net.SplitHostPort(s.respLn.Addr().String())
		s.resp = resp.New(resp.Options{
			State: s.state, Barrier: s.node, Writer: s.node, Quota: dataQuota, Users: s.users, UserOf: mtls.UserFromState,
			Topology:    respTopology{status: s.node.Status, peers: cfg.Peers, respPeers: cfg.RESPPeers, respPort: respPort},
			TLS:         mtls.ServerConfig(s.tls.serving, s.tls.clientCAs),
			MaxKeyBytes: cfg.MaxKeyBytes, MaxValueBytes: cfg.MaxValueBytes,
			Logger: log.With("component", "resp"), Metrics: resp.NewMetrics(s.registry, apiMetrics.AuthFailures),
		})
	}
	s.api = &http.Server{
		Handler:           api,
		TLSConfig:         mtls.ServerConfig(s.tls.serving, s.tls.clientCAs),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.With("component", "tls").Handler(), slog.LevelDebug),
	}
	s.probe = &http.Server{Handler: s.probeHandler(), ReadHeaderTimeout: 5 * time.Second}
	return s, nil
}

func listen(given net.Listener, addr string) (net.Listener, error) {
	if given != nil {
		return given, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	return ln, nil
}

// Start runs the listeners and joins or forms the cluster. It returns at
// once; Ready tells when the node serves.
func (s *Server) Start() error {
	s.goServe("peer", func() error { return s.mux.Serve() })
	if err := s.node.Start(); err != nil {
		return err
	}
	s.goServe("probe", func() error { return s.probe.Serve(s.probeLn) })
	s.goServe("client", func() error { return s.api.ServeTLS(s.clientLn, "", "") })
	if s.resp != nil {
		s.goServe("resp", func() error { return s.resp.Serve(s.respLn) })
		s.log.Info("serving the Redis protocol", "resp", s.respLn.Addr().String())
	}
	s.log.Info("serving", "client", s.clientLn.Addr().String(), "peer", s.peerLn.Addr().String(),
		"probe", s.probeLn.Addr().String(), "advertise", s.cfg.PeerAddress(), "id", s.node.ID())
	return nil
}

func (s *Server) goServe(name string, f func() error) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := f(); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, resp.ErrServerClosed) {
			s.log.Error("listener stopped", "listener", name, "err", err)
		}
	}()
}

// Ready: a voting member that knows its leader.
func (s *Server) Ready() bool { return s.node.Ready() }

// Metrics is the registry /metrics serves, for collectors the caller owns
// (serve adds Raft's process-wide metrics; dev and tests do not).
func (s *Server) Metrics() prometheus.Registerer { return s.registry }

// Node exposes the cluster node (tests, status).
func (s *Server) Node() *cluster.Node { return s.node }

// ClientAddr is the bound address of the client API.
func (s *Server) ClientAddr() net.Addr { return s.clientLn.Addr() }

// closeRESP ends the RESP port's connections, each once its command in
// progress is answered (within ctx); clients reconnect to another node.
func (s *Server) closeRESP(ctx context.Context) {
	if s.resp != nil {
		_ = s.resp.Close(ctx)
	}
}

// Close stops the node gracefully within ctx: the client API stops taking
// requests first (in-flight ones finish), then the node hands over
// leadership and leaves, then the peer port closes.
func (s *Server) Close(ctx context.Context) error {
	var err error
	s.closeOnce.Do(func() {
		s.log.Info("shutting down")
		// Report not ready first and keep serving a moment, so the Service
		// stops routing clients here before the API closes.
		s.node.Drain()
		if d := s.cfg.DrainDelay; d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
			}
		}
		apiCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
		respClosed := make(chan struct{})
		go func() { s.closeRESP(apiCtx); close(respClosed) }() // both doors at once
		_ = s.api.Shutdown(apiCtx)                             // watch streams end when the deadline passes
		<-respClosed
		cancel()
		_ = s.api.Close()
		err = s.node.Close(ctx)
		_ = s.mux.Close()
		_ = s.probe.Close()
		s.wg.Wait()
		s.closeMaterial()
		s.log.Info("stopped")
	})
	return err
}

// Kill stops the node without leaving the cluster, as a crash would: tests
// use it to simulate SIGKILL in process.
func (s *Server) Kill() {
	s.closeOnce.Do(func() {
		_ = s.api.Close()
		gone, cancel := context.WithCancel(context.Background())
		cancel() // a crash waits for nothing
		s.closeRESP(gone)
		_ = s.probe.Close()
		_ = s.mux.Close()
		s.node.Kill()
		s.wg.Wait()
		s.closeMaterial()
	})
}

func (s *Server) closeListeners() {
	for _, ln := range []net.Listener{s.clientLn, s.peerLn, s.probeLn, s.respLn} {
		if ln != nil {
			_ = ln.Close()
		}
	}
}

func (s *Server) closeMaterial() {
	if s.users != nil {
		s.users.Close()
	}
	if s.tls != nil {
		s.tls.close()
	}
}

// ProbeRoutes are the patterns ("METHOD /path") of the probe port, plain
// HTTP without data: docs/openapi.yaml documents them under its probe
// server. pprof's, which only --pprof adds, are left out.
func ProbeRoutes() []string {
	var s Server
	out := make([]string, 0, 3)
	for _, r := range s.probeRoutes() {
		out = append(out, r.pattern)
	}
	return out
}

type probeRoute struct {
	pattern string
	handler http.Handler
}

// probeRoutes is the one list probeHandler registers and ProbeRoutes reports.
func (s *Server) probeRoutes() []probeRoute {
	return []probeRoute{
		{"GET /healthz", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = w.Write([]byte("ok\n"))
		})},
		{"GET /readyz", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			if !s.Ready() {
				st := s.node.Status()
				http.Error(w, fmt.Sprintf("not ready: state=%s leader=%q members=%d\n", st.State, st.Leader, len(st.Members)), http.StatusServiceUnavailable)
				return
			}
			_, _ = w.Write([]byte("ok\n"))
		})},
		{"GET /metrics", promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{})},
	}
}

func (s *Server) probeHandler() http.Handler {
	mux := http.NewServeMux()
	for _, r := range s.probeRoutes() {
		mux.Handle(r.pattern, r.handler)
	}
	if s.cfg.Pprof {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// tlsMaterial holds the certificate sources, reloading from disk or minted.
type tlsMaterial struct {
	serving   mtls.CertSource
	peerCert  mtls.CertSource
	clientCAs *mtls.PoolReloader
	peerCAs   *mtls.PoolReloader
	closers   []func()
}

func (t *tlsMaterial) close() {
	for _, c := range t.closers {
		c()
	}
}

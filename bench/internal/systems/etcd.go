package systems

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/ephemeral-store/ephemeral-store/bench/internal/proc"
)

// Etcd is a cluster of etcd members with mutual TLS on the client and the
// peer ports, data directories on tmpfs so that etcd's fsyncs cost what
// the store's in-memory log costs: nothing reaches a disk.
type Etcd struct {
	Bin     string
	Dir     string // logs
	DataDir string // on tmpfs
	N       int
	// CertDir holds rootCA.crt, server.crt/key (serving and peer, both
	// usages) and bench.crt/key: the store's own test PKI, reused.
	CertDir string
	// QuotaBytes is --quota-backend-bytes.
	QuotaBytes int64
	// MaxTxnOps is --max-txn-ops.
	MaxTxnOps int

	clientURL, peerURL, metricsURL []string
	procs                          []*proc.Proc
	hc                             *http.Client
	tls                            *tls.Config
	version                        string
	initial                        string // --initial-cluster
}

func (e *Etcd) Name() string     { return "etcd" }
func (e *Etcd) Version() string  { return e.version }
func (e *Etcd) Replicated() bool { return true }
func (e *Etcd) Nodes() int       { return e.N }

func (e *Etcd) Start(ctx context.Context) error {
	if out, err := exec.Command(e.Bin, "--version").CombinedOutput(); err == nil {
		// The first line names the version; the rest is build metadata.
		e.version, _, _ = strings.Cut(strings.TrimSpace(string(out)), "\n")
	}
	cfg, err := tlsConfig(e.CertDir)
	if err != nil {
		return fmt.Errorf("etcd client TLS: %w", err)
	}
	e.tls = cfg
	ports, err := proc.ReservePorts(3 * e.N)
	if err != nil {
		return err
	}
	e.clientURL, e.peerURL, e.metricsURL = nil, nil, nil
	var initial []string
	for i := 0; i < e.N; i++ {
		e.clientURL = append(e.clientURL, fmt.Sprintf("https://127.0.0.1:%d", ports[3*i]))
		e.peerURL = append(e.peerURL, fmt.Sprintf("https://127.0.0.1:%d", ports[3*i+1]))
		e.metricsURL = append(e.metricsURL, fmt.Sprintf("http://127.0.0.1:%d", ports[3*i+2]))
		initial = append(initial, fmt.Sprintf("e%d=%s", i, e.peerURL[i]))
	}
	if err := os.RemoveAll(e.DataDir); err != nil {
		return err
	}
	if err := os.MkdirAll(e.DataDir, 0o700); err != nil {
		return fmt.Errorf("etcd data dir: %w", err)
	}
	e.procs = make([]*proc.Proc, e.N)
	e.hc = &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for i := 0; i < e.N; i++ {
		if err := e.start(i, strings.Join(initial, ",")); err != nil {
			return err
		}
	}
	return WaitHealthy(ctx, e)
}

func (e *Etcd) start(i int, initial string) error {
	cert := func(f string) string { return filepath.Join(e.CertDir, f) }
	args := []string{
		"--name", fmt.Sprintf("e%d", i),
		"--data-dir", filepath.Join(e.DataDir, fmt.Sprintf("e%d", i)),
		"--listen-client-urls", e.clientURL[i],
		"--advertise-client-urls", e.clientURL[i],
		"--listen-peer-urls", e.peerURL[i],
		"--initial-advertise-peer-urls", e.peerURL[i],
		"--listen-metrics-urls", e.metricsURL[i],
		"--initial-cluster", initial,
		"--initial-cluster-state", "new", // ignored once the data dir exists
		"--initial-cluster-token", "bench",
		"--client-cert-auth", "--trusted-ca-file", cert("rootCA.crt"),
		"--cert-file", cert("server.crt"), "--key-file", cert("server.key"),
		"--peer-client-cert-auth", "--peer-trusted-ca-file", cert("rootCA.crt"),
		"--peer-cert-file", cert("server.crt"), "--peer-key-file", cert("server.key"),
		"--quota-backend-bytes", fmt.Sprint(e.QuotaBytes),
		"--max-txn-ops", fmt.Sprint(e.MaxTxnOps),
		"--log-level", "warn",
	}
	p, err := proc.Start(fmt.Sprintf("e%d", i), filepath.Join(e.Dir, fmt.Sprintf("e%d.log", i)), e.Bin, args...)
	if err != nil {
		return err
	}
	e.procs[i] = p
	e.initial = initial
	return nil
}

// Restart starts member i again on its data directory: etcd replays its
// WAL and catches up from the leader.
func (e *Etcd) Restart(i int) error {
	if e.procs[i].Running() {
		return fmt.Errorf("etcd member %d already running", i)
	}
	return e.start(i, e.initial)
}

func (e *Etcd) Kill(i int) error { return e.procs[i].Kill() }

func (e *Etcd) Stop() error {
	var errs []error
	for _, p := range e.procs {
		if p != nil {
			errs = append(errs, p.Kill())
		}
	}
	return errors.Join(errs...)
}

func (e *Etcd) PIDs() []int {
	var out []int
	for _, p := range e.procs {
		if p.Running() {
			out = append(out, p.PID())
		}
	}
	return out
}

func (e *Etcd) DataBytes() (int64, error) { return proc.DiskBytes(e.DataDir) }

// Ready is GET /health on the plain metrics listener: true only when the
// member sees a leader and has no alarm.
func (e *Etcd) Ready(ctx context.Context, i int) bool {
	if !e.procs[i].Running() {
		return false
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.metricsURL[i]+"/health", nil)
	resp, err := e.hc.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// LeaderChanges sums etcd_server_leader_changes_seen_total over the
// running members: each member counts every new leader it sees, so one
// change of leader counts once per live member.
func (e *Etcd) LeaderChanges(ctx context.Context) (float64, bool) {
	return sumOverRunning(e.procs, func(i int) (float64, bool) {
		return scrape(ctx, e.hc, e.metricsURL[i]+"/metrics", "etcd_server_leader_changes_seen_total")
	})
}

// Leader asks each running member for its status: the one whose leader id
// is its own id leads.
func (e *Etcd) Leader(ctx context.Context) int {
	for i := 0; i < e.N; i++ {
		if !e.procs[i].Running() {
			continue
		}
		c, err := e.newClient([]int{i})
		if err != nil {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := c.Status(cctx, e.clientURL[i])
		cancel()
		_ = c.Close()
		if err == nil && st.Leader != 0 && st.Leader == st.Header.MemberId {
			return i
		}
	}
	return -1
}

func (e *Etcd) newClient(nodes []int) (*clientv3.Client, error) {
	var eps []string
	for _, i := range nodes {
		eps = append(eps, e.clientURL[i])
	}
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   eps,
		TLS:         e.tls.Clone(),
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
		// No keep-alive probes or auto-sync: the benchmark's own requests
		// are the only traffic.
	})
	if err != nil {
		return nil, fmt.Errorf("etcd client: %w", err)
	}
	return c, nil
}

// Client is one clientv3.Client (one gRPC connection per listed member;
// the workloads list a single member).
func (e *Etcd) Client(nodes []int) (Client, error) {
	c, err := e.newClient(nodes)
	if err != nil {
		return nil, err
	}
	return etcdClient{c}, nil
}

type etcdClient struct{ c *clientv3.Client }

func (c etcdClient) Put(ctx context.Context, key string, value []byte) error {
	_, err := c.c.Put(ctx, key, string(value))
	return err
}

// PutBatch is one txn of puts (bounded by --max-txn-ops).
func (c etcdClient) PutBatch(ctx context.Context, keys []string, value []byte) error {
	ops := make([]clientv3.Op, len(keys))
	for i, k := range keys {
		ops[i] = clientv3.OpPut(k, string(value))
	}
	_, err := c.c.Txn(ctx).Then(ops...).Commit()
	return err
}

// Get is a linearizable Range (etcd's default), or a serializable one that
// the member answers from its own state.
func (c etcdClient) Get(ctx context.Context, key string, stale bool) ([]byte, error) {
	var opts []clientv3.OpOption
	if stale {
		opts = append(opts, clientv3.WithSerializable())
	}
	resp, err := c.c.Get(ctx, key, opts...)
	if err != nil {
		return nil, err
	}
	if len(resp.Kvs) == 0 {
		return nil, fmt.Errorf("etcd get %q: %w", key, ErrNotFound)
	}
	return resp.Kvs[0].Value, nil
}

func (c etcdClient) Close() error { return c.c.Close() }

package systems

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ephemeral-store/ephemeral-store/bench/internal/proc"
	"github.com/ephemeral-store/ephemeral-store/store/client"
)

// Store is a cluster of `ephemeral-store serve` processes, started as
// store/internal/faulttest does, but with the store's default Raft timings:
// the benchmark measures what a user gets without tuning.
type Store struct {
	Bin     string // the ephemeral-store binary
	Dir     string // certificates, users and logs
	N       int
	Verbose bool
	// ExtraArgs are appended to every serve command line (for example
	// --pprof, to profile the nodes under the benchmark's load).
	ExtraArgs []string
	// CertDir receives the store's own test PKI (`certs`), which the
	// other systems reuse.
	CertDir string
	// RESP starts every node with a Redis-protocol port (--resp-listen),
	// which RESPView's clients read and write through.
	RESP bool

	certDir, usersDir string
	client, peer      []string // host:port per node
	probe, resp       []string
	procs             []*proc.Proc
	hc                *http.Client
	mu                sync.Mutex
	status            map[int]*client.Client
	version           string
}

const benchUser = "bench"

func (s *Store) Name() string     { return "ephemeral-store" }
func (s *Store) Version() string  { return s.version }
func (s *Store) Replicated() bool { return true }
func (s *Store) Nodes() int       { return s.N }

// Start writes certificates (the store's own `certs` command, whose server
// certificate names 127.0.0.1) and a users directory, then starts every node.
func (s *Store) Start(ctx context.Context) error {
	s.certDir = s.CertDir
	s.usersDir = filepath.Join(s.Dir, "users")
	if out, err := exec.Command(s.Bin, "version").CombinedOutput(); err == nil {
		s.version = strings.TrimSpace(string(out))
	}
	if err := WriteCerts(s.Bin, s.certDir); err != nil {
		return err
	}
	if s.RESP {
		// A binary from before the RESP port would exit on the unknown
		// flag and leave WaitHealthy to time out: say so at once.
		if out, err := exec.Command(s.Bin, "serve", "--help").CombinedOutput(); err != nil || !strings.Contains(string(out), "--resp-peers") {
			return fmt.Errorf("%s serve has no --resp-listen and --resp-peers (run the harness with -store-resp=false to measure it over HTTP only)", s.Bin)
		}
	}
	if err := os.MkdirAll(s.usersDir, 0o755); err != nil {
		return err
	}
	entry := fmt.Sprintf(`{ "name": %q, "auth_mode": "certificate" }`+"\n", benchUser)
	if err := os.WriteFile(filepath.Join(s.usersDir, benchUser+".json"), []byte(entry), 0o644); err != nil {
		return fmt.Errorf("store users: %w", err)
	}
	per := 3
	if s.RESP {
		per = 4
	}
	ports, err := proc.ReservePorts(per * s.N)
	if err != nil {
		return err
	}
	s.client, s.peer, s.probe, s.resp = nil, nil, nil, nil
	for i := 0; i < s.N; i++ {
		addr := func(k int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[per*i+k])) }
		s.client = append(s.client, addr(0))
		s.peer = append(s.peer, addr(1))
		s.probe = append(s.probe, addr(2))
		if s.RESP {
			s.resp = append(s.resp, addr(3))
		}
	}
	s.procs = make([]*proc.Proc, s.N)
	s.status = map[int]*client.Client{}
	s.hc = &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for i := 0; i < s.N; i++ {
		if err := s.Restart(i); err != nil {
			return err
		}
	}
	return WaitHealthy(ctx, s)
}

// WriteCerts makes the test PKI with the store's `certs` command unless
// dir already has it: rootCA, a server certificate for 127.0.0.1 usable as
// server and client (etcd peers use it both ways), a peer certificate and
// the bench user's client certificate.
func WriteCerts(bin, dir string) error {
	if _, err := os.Stat(filepath.Join(dir, benchUser+".key")); err == nil {
		return nil
	}
	if out, err := exec.Command(bin, "certs", "--out", dir, "--user", benchUser).CombinedOutput(); err != nil {
		return fmt.Errorf("%s certs: %w\n%s", bin, err, out)
	}
	return nil
}

func (s *Store) args(i int) []string {
	cert := func(f string) string { return filepath.Join(s.certDir, f) }
	level := "warn"
	if s.Verbose {
		level = "info"
	}
	args := []string{"serve",
		"--node-name", fmt.Sprintf("es-%d", i),
		"--listen", s.client[i],
		"--peer-listen", s.peer[i],
		"--probe-listen", s.probe[i],
		"--advertise", s.peer[i],
		"--peers", strings.Join(s.peer, ","),
		"--tls-cert", cert("server.crt"),
		"--tls-key", cert("server.key"),
		"--tls-ca", cert("rootCA.crt"),
		"--peer-cert", cert("peer.crt"),
		"--peer-key", cert("peer.key"),
		"--users-dir", s.usersDir,
		"--log-level", level,
	}
	if s.RESP {
		// Every node's RESP port differs on loopback: CLUSTER SLOTS
		// names the leader by the address given here.
		args = append(args, "--resp-listen", s.resp[i], "--resp-peers", strings.Join(s.resp, ","))
	}
	return append(args, s.ExtraArgs...)
}

// Restart starts node i with its original command line. The store keeps no
// data on disk: the node comes back empty, as a new incarnation that joins
// and receives a snapshot.
func (s *Store) Restart(i int) error {
	if s.procs[i].Running() {
		return fmt.Errorf("store node %d already running (pid %d)", i, s.procs[i].PID())
	}
	p, err := proc.Start(fmt.Sprintf("es-%d", i), filepath.Join(s.Dir, fmt.Sprintf("es-%d.log", i)), s.Bin, s.args(i)...)
	if err != nil {
		return err
	}
	s.procs[i] = p
	return nil
}

func (s *Store) Kill(i int) error { return s.procs[i].Kill() }

func (s *Store) Stop() error {
	var errs []error
	for _, p := range s.procs {
		if p != nil {
			errs = append(errs, p.Kill())
		}
	}
	s.mu.Lock()
	for _, c := range s.status {
		_ = c.Close()
	}
	s.status = map[int]*client.Client{}
	s.mu.Unlock()
	return errors.Join(errs...)
}

func (s *Store) PIDs() []int {
	var out []int
	for _, p := range s.procs {
		if p.Running() {
			out = append(out, p.PID())
		}
	}
	return out
}

func (s *Store) DataBytes() (int64, error) { return 0, nil }

// Ready is GET /readyz on the plain-HTTP probe port.
func (s *Store) Ready(ctx context.Context, i int) bool {
	if !s.procs[i].Running() {
		return false
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.probe[i]+"/readyz", nil)
	resp, err := s.hc.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// LeaderChanges sums ephemeral_store_leader_changes_total over the running
// nodes: each node counts its own leadership won and lost, so one change
// of leader between two live nodes counts 2.
func (s *Store) LeaderChanges(ctx context.Context) (float64, bool) {
	return sumOverRunning(s.procs, func(i int) (float64, bool) {
		return scrape(ctx, s.hc, "http://"+s.probe[i]+"/metrics", "ephemeral_store_leader_changes_total")
	})
}

// Leader asks each running node for /v1/cluster; the one that says it
// leads (and names itself the leader) wins.
func (s *Store) Leader(ctx context.Context) int {
	for i := 0; i < s.N; i++ {
		if !s.procs[i].Running() {
			continue
		}
		c, err := s.statusClient(i)
		if err != nil {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := c.Cluster(cctx)
		cancel()
		if err == nil && st.State == "Leader" && st.Self != "" && st.Self == st.Leader {
			return i
		}
	}
	return -1
}

func (s *Store) statusClient(i int) (*client.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.status[i]; ok {
		return c, nil
	}
	c, err := s.newClient([]int{i}, 2*time.Second)
	if err != nil {
		return nil, err
	}
	s.status[i] = c
	return c, nil
}

func (s *Store) newClient(nodes []int, timeout time.Duration) (*client.Client, error) {
	cert := func(f string) string { return filepath.Join(s.certDir, f) }
	tlsCfg, err := client.TLSConfigFromFiles(cert(benchUser+".crt"), cert(benchUser+".key"), cert("rootCA.crt"))
	if err != nil {
		return nil, fmt.Errorf("store client TLS: %w", err)
	}
	var eps []string
	for _, i := range nodes {
		eps = append(eps, "https://"+s.client[i])
	}
	// Each client.Client has its own transport, so one HTTP/2 connection
	// per client and node.
	c, err := client.New(client.Config{Endpoints: eps, TLS: tlsCfg, Timeout: timeout})
	if err != nil {
		return nil, fmt.Errorf("store client: %w", err)
	}
	return c, nil
}

// Client talks to the listed nodes through one client.Client, which moves
// to the next endpoint only when the current one fails.
func (s *Store) Client(nodes []int) (Client, error) {
	c, err := s.newClient(nodes, 10*time.Second)
	if err != nil {
		return nil, err
	}
	return storeClient{c}, nil
}

type storeClient struct{ c *client.Client }

func (c storeClient) Put(ctx context.Context, key string, value []byte) error {
	_, err := c.c.Put(ctx, key, value)
	return err
}

// PutBatch has no batch API to use: the store's is one key per request.
func (c storeClient) PutBatch(ctx context.Context, keys []string, value []byte) error {
	for _, k := range keys {
		if _, err := c.c.Put(ctx, k, value); err != nil {
			return err
		}
	}
	return nil
}

func (c storeClient) Get(ctx context.Context, key string, stale bool) ([]byte, error) {
	var opts []client.GetOption
	if stale {
		opts = append(opts, client.Stale())
	}
	kv, err := c.c.Get(ctx, key, opts...)
	if err != nil {
		return nil, err
	}
	return kv.Value, nil
}

func (c storeClient) Close() error { return c.c.Close() }

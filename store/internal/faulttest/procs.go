// Package faulttest is the multi-process tier of the tests
// (docs/architecture.md, "Test tiers"): real `ephemeral-store serve` processes on loopback, killed
// with SIGKILL, stopped with SIGTERM, frozen with SIGSTOP and restarted,
// while concurrent clients record a history that porcupine checks for
// linearizability. The benchmarks of the replicated store run against the
// same clusters.
//
// This file is the harness. Each node keeps its three ports for the life of
// a Cluster, so a restarted process comes back at the same address, the way
// a pod keeps its DNS name; the ports are taken below the kernel's ephemeral
// range, so no outgoing connection can hold one while its node is down.
// Every process writes its stdout and stderr to a per-node log file; when a
// test fails the tail of every log is printed and the logs are copied to a
// directory that outlives the test.
//
// With Options.Network each node runs instead inside its own network
// namespace of a netlab.Lab, at its own address with the usual ports, and
// every connection the harness makes comes from the lab's hub namespace:
// the test can then cut the network between nodes for real (Cluster.Lab)
// while it still reaches every node.
package faulttest

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ephemeral-store/ephemeral-store/store/client"
	"github.com/ephemeral-store/ephemeral-store/store/client/api"
	"github.com/ephemeral-store/ephemeral-store/store/internal/faulttest/netlab"
	"github.com/ephemeral-store/ephemeral-store/store/internal/scenario"
)

// MainPackage is the import path of the binary under test.
const MainPackage = "github.com/ephemeral-store/ephemeral-store/store/cmd/ephemeral-store"

// User is the certificate user every test client presents.
const User = "myuser"

// Binary is a built ephemeral-store binary with the certificates and users
// directory every cluster of a test run shares.
type Binary struct {
	// Path of the executable.
	Path string
	// CertDir holds rootCA.crt, server.crt/key and myuser.crt/key.
	CertDir string
	// UsersDir holds myuser.json.
	UsersDir string
}

// Build compiles the server into dir with `go build`, writes certificates
// with its `certs` command and a users directory granting User every key.
// TestMain calls it once per test run and fails the run when it errs.
func Build(dir string) (*Binary, error) {
	// `go test` puts its own GOROOT/bin first on the PATH of the tests it runs
	goTool, err := exec.LookPath("go")
	if err != nil {
		return nil, fmt.Errorf("the go command, to build the server: %w", err)
	}
	b := &Binary{
		Path:     filepath.Join(dir, "ephemeral-store"),
		CertDir:  filepath.Join(dir, "certs"),
		UsersDir: filepath.Join(dir, "users"),
	}
	if prebuilt := os.Getenv(ServerBinaryEnv); prebuilt != "" {
		// Another build of the server, such as an older commit's, to
		// show what the tests find in it.
		abs, err := filepath.Abs(prebuilt)
		if err != nil {
			return nil, err
		}
		if _, err := os.Stat(abs); err != nil {
			return nil, fmt.Errorf("%s: %w", ServerBinaryEnv, err)
		}
		b.Path = abs
	} else {
		build := exec.Command(goTool, "build", "-buildvcs=false", "-o", b.Path, MainPackage)
		if out, err := build.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go build %s: %w\n%s", MainPackage, err, out)
		}
	}
	certs := exec.Command(b.Path, "certs", "--out", b.CertDir, "--user", User)
	certs.Env = cleanEnv()
	if out, err := certs.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("%s certs: %w\n%s", b.Path, err, out)
	}
	for _, f := range []string{"rootCA.crt", "server.crt", "server.key", User + ".crt", User + ".key"} {
		if _, err := os.Stat(filepath.Join(b.CertDir, f)); err != nil {
			return nil, fmt.Errorf("certs did not write %s: %w", f, err)
		}
	}
	if err := os.MkdirAll(b.UsersDir, 0o755); err != nil {
		return nil, err
	}
	entry := fmt.Sprintf(`{ "name": %q, "auth_mode": "certificate" }`+"\n", User)
	if err := os.WriteFile(filepath.Join(b.UsersDir, User+".json"), []byte(entry), 0o644); err != nil {
		return nil, err
	}
	return b, nil
}

// ServerBinaryEnv names an environment variable: when set, the tests run
// that server binary instead of building the one of this tree.
const ServerBinaryEnv = "FAULTTEST_SERVER_BINARY"

// cleanEnv is the test's environment without ES_ variables, which the
// binary would read as flags.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ES_") {
			env = append(env, kv)
		}
	}
	return env
}

// Options shape a cluster. Zero fields take the defaults of DefaultOptions.
type Options struct {
	// Nodes is the number of processes (5).
	Nodes int
	// QuorumLossTimeout is --quorum-loss-timeout (5s).
	QuorumLossTimeout time.Duration
	// HeartbeatTimeout and ElectionTimeout are the Raft timings (500ms).
	HeartbeatTimeout time.Duration
	ElectionTimeout  time.Duration
	// ShutdownTimeout is --shutdown-timeout (5s).
	ShutdownTimeout time.Duration
	// LogLevel is --log-level (info).
	LogLevel string
	// ExtraArgs are appended to every `serve` command line.
	ExtraArgs []string
	// Network runs every node in its own network namespace of a
	// netlab.Lab (root only), so that Cluster.Lab can cut the network
	// between nodes; clients connect from the lab's hub namespace.
	Network bool
}

// DefaultOptions is a five-node cluster with short timeouts.
func DefaultOptions() Options {
	return Options{
		Nodes:             5,
		QuorumLossTimeout: 5 * time.Second,
		HeartbeatTimeout:  500 * time.Millisecond,
		ElectionTimeout:   500 * time.Millisecond,
		ShutdownTimeout:   5 * time.Second,
		LogLevel:          "info",
	}
}

func (o Options) withDefaults() Options {
	d := DefaultOptions()
	if o.Nodes == 0 {
		o.Nodes = d.Nodes
	}
	if o.QuorumLossTimeout == 0 {
		o.QuorumLossTimeout = d.QuorumLossTimeout
	}
	if o.HeartbeatTimeout == 0 {
		o.HeartbeatTimeout = d.HeartbeatTimeout
	}
	if o.ElectionTimeout == 0 {
		o.ElectionTimeout = d.ElectionTimeout
	}
	if o.ShutdownTimeout == 0 {
		o.ShutdownTimeout = d.ShutdownTimeout
	}
	if o.LogLevel == "" {
		o.LogLevel = d.LogLevel
	}
	return o
}

// Cluster is a set of serve processes on loopback.
type Cluster struct {
	t     testing.TB
	bin   *Binary
	opts  Options
	dir   string // logs
	peers []string
	// respPeers are the nodes' RESP addresses, in the order of peers.
	respPeers []string
	Nodes     []*Node
	probe     *http.Client
	lab       *netlab.Lab // with Options.Network

	statusMu      sync.Mutex
	statusClients map[int]*client.Client
	scenario      *processes // made by Scenario
}

// Node is one slot of the cluster: fixed name and ports, a process that is
// replaced on restart.
type Node struct {
	Index int
	// Name is --node-name: "n<index>".
	Name string
	// ClientAddr, PeerAddr, ProbeAddr and RESPAddr (the Redis-protocol
	// port) are host:port on 127.0.0.1, or on the node's own address in
	// the lab with Options.Network.
	ClientAddr, PeerAddr, ProbeAddr, RESPAddr string
	// LogPath collects the output of every process of this slot.
	LogPath string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when the current process has exited
	exit   error         // its wait status, valid once exited is closed
	paused bool
	starts int
}

// NewCluster reserves ports for opts.Nodes nodes, starts every process and
// waits until all of them are ready. Every process is killed when the test
// ends; if the test failed, the tail of each node's log is printed first.
func NewCluster(t testing.TB, bin *Binary, opts Options) *Cluster {
	t.Helper()
	c := Prepare(t, bin, opts)
	for i := range c.Nodes {
		c.Start(i)
	}
	c.WaitAllReady(60 * time.Second)
	return c
}

// Prepare reserves the ports and log files of a cluster without starting
// any process.
func Prepare(t testing.TB, bin *Binary, opts Options) *Cluster {
	t.Helper()
	opts = opts.withDefaults()
	c := &Cluster{
		t: t, bin: bin, opts: opts, dir: t.TempDir(),
		probe: &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}},
	}
	var addr func(i, k int) string // node i's client (k=0), peer (1), probe (2) and RESP (3) address
	if opts.Network {
		lab, err := netlab.New(opts.Nodes)
		if err != nil {
			t.Fatalf("network lab of %d nodes (needs root; scripts/ensure-netlab.sh installs ip and iptables): %v", opts.Nodes, err)
		}
		// Registered before c.cleanup, so it runs after every process
		// is dead.
		t.Cleanup(func() {
			if err := lab.Close(); err != nil {
				t.Errorf("closing the network lab: %v", err)
			}
		})
		c.lab = lab
		c.probe.Transport = &http.Transport{DisableKeepAlives: true, DialContext: lab.DialContext}
		// Every node has its own address: the usual ports.
		addr = func(i, k int) string { return net.JoinHostPort(lab.IP(i), strconv.Itoa(8087+k)) }
	} else {
		ports, err := reservePorts(4 * opts.Nodes)
		if err != nil {
			t.Fatalf("reserving ports: %v", err)
		}
		addr = func(i, k int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[4*i+k])) }
	}
	for i := 0; i < opts.Nodes; i++ {
		n := &Node{
			Index:      i,
			Name:       fmt.Sprintf("n%d", i),
			ClientAddr: addr(i, 0),
			PeerAddr:   addr(i, 1),
			ProbeAddr:  addr(i, 2),
			RESPAddr:   addr(i, 3),
			LogPath:    filepath.Join(c.dir, fmt.Sprintf("n%d.log", i)),
		}
		c.Nodes = append(c.Nodes, n)
		c.peers = append(c.peers, n.PeerAddr)
		c.respPeers = append(c.respPeers, n.RESPAddr)
	}
	t.Cleanup(c.cleanup)
	// The status clients are made here, in the test goroutine: wait
	// conditions use them on goroutines of their own, where failing the
	// test is not allowed.
	c.statusClients = map[int]*client.Client{}
	for i := range c.Nodes {
		c.statusClients[i] = c.NodeClient(i, 2*time.Second)
	}
	return c
}

// Lab is the network of a cluster made with Options.Network, nil without.
func (c *Cluster) Lab() *netlab.Lab { return c.lab }

// LogDir is the directory of the nodes' log files.
func (c *Cluster) LogDir() string { return c.dir }

// reservePorts finds n consecutive free ports below the ephemeral range
// (ip_local_port_range starts at 32768 by default): a port the kernel never
// hands to an outgoing connection stays free while its node restarts.
func reservePorts(n int) ([]int, error) {
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if v, err := strconv.Atoi(f[0]); err == nil {
				low = v
			}
		}
	}
	const min = 10000
	if low-min < 10*n {
		low = 60000 // odd kernel settings: fall back to the top of the range
	}
	for attempt := 0; attempt < 50; attempt++ {
		base := min + rand.IntN(low-min-n)
		ports := make([]int, 0, n)
		var held []net.Listener
		for p := base; p < base+n; p++ {
			ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
			if err != nil {
				break
			}
			held = append(held, ln)
			ports = append(ports, p)
		}
		for _, ln := range held {
			_ = ln.Close()
		}
		if len(ports) == n {
			return ports, nil
		}
	}
	return nil, errors.New("no free range of loopback ports after 50 attempts")
}

// Options returns the cluster's options with defaults filled in.
func (c *Cluster) Options() Options { return c.opts }

func (c *Cluster) args(n *Node) []string {
	cert := func(f string) string { return filepath.Join(c.bin.CertDir, f) }
	args := []string{"serve",
		"--node-name", n.Name,
		"--listen", n.ClientAddr,
		"--peer-listen", n.PeerAddr,
		"--probe-listen", n.ProbeAddr,
		"--resp-listen", n.RESPAddr,
		"--advertise", n.PeerAddr,
		"--peers", strings.Join(c.peers, ","),
		"--resp-peers", strings.Join(c.respPeers, ","),
		"--tls-cert", cert("server.crt"),
		"--tls-key", cert("server.key"),
		"--tls-ca", cert("rootCA.crt"),
		"--users-dir", c.bin.UsersDir,
		"--quorum-loss-timeout", c.opts.QuorumLossTimeout.String(),
		"--raft-heartbeat-timeout", c.opts.HeartbeatTimeout.String(),
		"--raft-election-timeout", c.opts.ElectionTimeout.String(),
		"--shutdown-timeout", c.opts.ShutdownTimeout.String(),
		"--log-level", c.opts.LogLevel,
	}
	return append(args, c.opts.ExtraArgs...)
}

// Start starts node i's process. It fails the test if the process is
// already running or cannot be started; it does not wait for readiness.
func (c *Cluster) Start(i int) {
	c.t.Helper()
	n := c.Nodes[i]
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil && !isClosed(n.exited) {
		c.t.Fatalf("start %s: already running (pid %d)", n.Name, n.cmd.Process.Pid)
	}
	logf, err := os.OpenFile(n.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.t.Fatalf("start %s: %v", n.Name, err)
	}
	defer logf.Close() // the child has its own descriptor
	n.starts++
	fmt.Fprintf(logf, "=== faulttest: %s start #%d at %s ===\n", n.Name, n.starts, time.Now().Format(time.RFC3339Nano))
	var cmd *exec.Cmd
	if c.lab != nil {
		// ip netns exec enters the namespace and executes the server
		// in the same process: n.cmd's PID is the server's.
		cmd = c.lab.Command(i, c.bin.Path, c.args(n)...)
	} else {
		cmd = exec.Command(c.bin.Path, c.args(n)...)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = cleanEnv()
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("start %s: %v", n.Name, err)
	}
	exited := make(chan struct{})
	n.cmd, n.exited, n.exit, n.paused = cmd, exited, nil, false
	go func() {
		err := cmd.Wait()
		n.mu.Lock()
		n.exit = err
		n.mu.Unlock()
		close(exited)
	}()
}

func isClosed(ch chan struct{}) bool {
	if ch == nil {
		return true
	}
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// Running reports whether node i's process is alive (paused counts).
func (c *Cluster) Running(i int) bool {
	n := c.Nodes[i]
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cmd != nil && !isClosed(n.exited)
}

func (c *Cluster) signal(i int, sig syscall.Signal) (exited chan struct{}, ok bool) {
	c.t.Helper()
	n := c.Nodes[i]
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil || isClosed(n.exited) {
		return nil, false
	}
	if err := n.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		c.t.Fatalf("%s: signal %v to pid %d: %v", n.Name, sig, n.cmd.Process.Pid, err)
	}
	switch sig {
	case syscall.SIGSTOP:
		n.paused = true
	case syscall.SIGCONT, syscall.SIGKILL:
		n.paused = false
	}
	return n.exited, true
}

// Kill sends SIGKILL to node i and waits until the process is gone. A node
// that is not running is left alone.
func (c *Cluster) Kill(i int) {
	c.t.Helper()
	c.KillAll(i)
}

// KillAll sends SIGKILL to every listed node first, then waits for each:
// the processes die together, as in a zone outage.
func (c *Cluster) KillAll(idx ...int) {
	c.t.Helper()
	var waits []chan struct{}
	for _, i := range idx {
		if ch, ok := c.signal(i, syscall.SIGKILL); ok {
			waits = append(waits, ch)
		}
	}
	for k, ch := range waits {
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
			c.t.Fatalf("node %d did not die within 10s of SIGKILL", idx[k])
		}
	}
}

// Stop sends SIGTERM to node i (resuming it first if paused) and waits for
// a graceful exit, bounded by the shutdown timeout plus a margin; it fails
// the test if the process exits with an error or must be killed.
func (c *Cluster) Stop(i int) {
	c.t.Helper()
	n := c.Nodes[i]
	if c.isPaused(i) {
		c.Resume(i)
	}
	ch, ok := c.signal(i, syscall.SIGTERM)
	if !ok {
		return
	}
	bound := c.opts.ShutdownTimeout + 5*time.Second
	select {
	case <-ch:
		n.mu.Lock()
		err := n.exit
		n.mu.Unlock()
		if err != nil {
			c.t.Errorf("%s: graceful exit after SIGTERM failed: %v", n.Name, err)
		}
	case <-time.After(bound):
		c.Kill(i)
		c.t.Errorf("%s: still running %s after SIGTERM; killed", n.Name, bound)
	}
}

func (c *Cluster) isPaused(i int) bool {
	n := c.Nodes[i]
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.paused
}

// Pause freezes node i with SIGSTOP: its sockets stay open but nothing
// answers, like a node cut off by the network.
func (c *Cluster) Pause(i int) {
	c.t.Helper()
	if _, ok := c.signal(i, syscall.SIGSTOP); !ok {
		c.t.Fatalf("pause %s: not running", c.Nodes[i].Name)
	}
}

// Resume continues a paused node with SIGCONT.
func (c *Cluster) Resume(i int) {
	c.t.Helper()
	if _, ok := c.signal(i, syscall.SIGCONT); !ok {
		c.t.Fatalf("resume %s: not running", c.Nodes[i].Name)
	}
}

// Ready asks node i's /readyz once.
func (c *Cluster) Ready(i int) (bool, string) {
	resp, err := c.probe.Get("http://" + c.Nodes[i].ProbeAddr + "/readyz")
	if err != nil {
		return false, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode == http.StatusOK, strings.TrimSpace(string(body))
}

// WaitReady polls node i's /readyz until it answers 200, the process exits,
// or timeout passes; the last two fail the test.
func (c *Cluster) WaitReady(i int, timeout time.Duration) {
	c.t.Helper()
	if err := c.waitReady([]int{i}, timeout); err != nil {
		c.t.Fatal(err)
	}
}

// WaitAllReady waits until every node is ready.
func (c *Cluster) WaitAllReady(timeout time.Duration) {
	c.t.Helper()
	all := make([]int, len(c.Nodes))
	for i := range all {
		all[i] = i
	}
	if err := c.waitReady(all, timeout); err != nil {
		c.t.Fatal(err)
	}
}

// WaitReadyErr is WaitReady for several nodes, returning the failure
// instead of failing the test.
func (c *Cluster) WaitReadyErr(idx []int, timeout time.Duration) error {
	return c.waitReady(idx, timeout)
}

// waitReady polls with testify's EventuallyWithT until each node has
// answered ready once; a node whose process exits ends the wait at once.
// Failures are returned, not reported: the callers decide.
func (c *Cluster) waitReady(idx []int, timeout time.Duration) error {
	var (
		mu      sync.Mutex // the condition runs on its own goroutine
		pending = append([]int(nil), idx...)
		last    = map[int]string{}
		exited  error
	)
	assert.EventuallyWithT(discardT{}, func(ct *assert.CollectT) {
		mu.Lock()
		defer mu.Unlock()
		var still []int
		for _, i := range pending {
			if !c.Running(i) {
				n := c.Nodes[i]
				n.mu.Lock()
				err := n.exit
				n.mu.Unlock()
				if err == nil {
					err = errors.New("exit status 0")
				}
				exited = fmt.Errorf("%s exited while waiting for it to be ready: %w (log %s)", n.Name, err, n.LogPath)
				return // ends the wait
			}
			if ok, msg := c.Ready(i); !ok {
				still = append(still, i)
				last[i] = msg
			}
		}
		pending = still
		if len(still) > 0 {
			ct.Errorf("%d not ready", len(still))
		}
	}, timeout, 100*time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if exited != nil {
		return exited
	}
	if len(pending) == 0 {
		return nil
	}
	var parts []string
	for _, i := range pending {
		parts = append(parts, fmt.Sprintf("%s: %s", c.Nodes[i].Name, last[i]))
	}
	return fmt.Errorf("not ready within %s: %s", timeout, strings.Join(parts, "; "))
}

// discardT takes testify's failure reports and drops them, for waits
// whose caller reports the failure in its own words.
type discardT struct{}

func (discardT) Errorf(string, ...any) {}

// Endpoint is node i's client URL.
func (c *Cluster) Endpoint(i int) string { return "https://" + c.Nodes[i].ClientAddr }

// Client returns a client whose endpoints start at node first and continue
// round the ring, so it talks to node first while that node answers. Each
// call is bounded by timeout. The client is closed when the test ends.
func (c *Cluster) Client(first int, timeout time.Duration) *client.Client {
	c.t.Helper()
	var eps []string
	for k := range c.Nodes {
		eps = append(eps, c.Endpoint((first+k)%len(c.Nodes)))
	}
	return c.newClient(eps, timeout)
}

// NodeClient returns a client that talks to node i only.
func (c *Cluster) NodeClient(i int, timeout time.Duration) *client.Client {
	c.t.Helper()
	return c.newClient([]string{c.Endpoint(i)}, timeout)
}

func (c *Cluster) newClient(eps []string, timeout time.Duration) *client.Client {
	c.t.Helper()
	cert := func(f string) string { return filepath.Join(c.bin.CertDir, f) }
	tlsCfg, err := client.TLSConfigFromFiles(cert(User+".crt"), cert(User+".key"), cert("rootCA.crt"))
	if err != nil {
		c.t.Fatalf("client TLS: %v", err)
	}
	cfg := client.Config{Endpoints: eps, TLS: tlsCfg, Timeout: timeout}
	if c.lab != nil {
		// Connections come from the hub namespace. The server
		// certificate names localhost, not the lab's addresses.
		tlsCfg.ServerName = "localhost"
		cfg.HTTPClient = &http.Client{Transport: labTransport(c.lab, tlsCfg)}
	}
	cl, err := client.New(cfg)
	if err != nil {
		c.t.Fatalf("client: %v", err)
	}
	c.t.Cleanup(func() { _ = cl.Close() })
	return cl
}

// labTransport is the client package's own transport (HTTP/2, bounded
// connection set-up, pings that notice a dead peer) dialing from the hub.
func labTransport(lab *netlab.Lab, tlsCfg *tls.Config) *http.Transport {
	return &http.Transport{
		DialContext:           lab.DialContext,
		TLSClientConfig:       tlsCfg,
		TLSHandshakeTimeout:   10 * time.Second,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		HTTP2: &http.HTTP2Config{
			SendPingTimeout: 5 * time.Second,
			PingTimeout:     5 * time.Second,
		},
	}
}

// Leader asks every running node for /v1/cluster and returns the index of
// the node that says it leads, or -1 when none does right now.
func (c *Cluster) Leader(ctx context.Context) int {
	for i, n := range c.Nodes {
		if !c.Running(i) || c.isPaused(i) {
			continue
		}
		st, err := c.statusClient(i).Cluster(ctx)
		if err != nil {
			continue
		}
		if st.State == "Leader" && st.Self != "" && st.Self == st.Leader {
			return n.Index
		}
	}
	return -1
}

// statusClient is node i's single-node client for status queries, made
// by Prepare.
func (c *Cluster) statusClient(i int) *client.Client {
	return c.statusClients[i]
}

// Status asks node i for /v1/cluster.
func (c *Cluster) Status(ctx context.Context, i int) (*api.ClusterStatus, error) {
	return c.statusClient(i).Cluster(ctx)
}

// WaitLeader polls until some node says it leads and returns its index.
func (c *Cluster) WaitLeader(timeout time.Duration) int {
	c.t.Helper()
	var leader atomic.Int64
	require.EventuallyWithT(c.t, func(ct *assert.CollectT) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		l := c.Leader(ctx)
		leader.Store(int64(l))
		assert.GreaterOrEqual(ct, l, 0, "no node says it leads")
	}, timeout, 100*time.Millisecond, "a leader within %s", timeout)
	return int(leader.Load())
}

// Metric reads one counter or gauge without labels from node i's
// /metrics; ok is false when the node does not answer or lacks it.
func (c *Cluster) Metric(i int, name string) (float64, bool) {
	return scenario.ScrapeMetric(c.probe, c.Nodes[i].ProbeAddr, name)
}

// LogTail returns the last n lines of node i's log.
func (c *Cluster) LogTail(i, n int) string {
	b, err := os.ReadFile(c.Nodes[i].LogPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// cleanup kills every process by its pid; when the test failed it prints
// the tail of each log and keeps a copy of the logs.
func (c *Cluster) cleanup() {
	var idx []int
	for i := range c.Nodes {
		idx = append(idx, i)
	}
	c.KillAll(idx...)
	if !c.t.Failed() {
		return
	}
	keep, err := os.MkdirTemp("", "faulttest-logs-")
	for i, n := range c.Nodes {
		c.t.Logf("---- last lines of %s (%s) ----\n%s", n.Name, n.LogPath, c.LogTail(i, 40))
		if err == nil {
			if b, rerr := os.ReadFile(n.LogPath); rerr == nil {
				_ = os.WriteFile(filepath.Join(keep, filepath.Base(n.LogPath)), b, 0o644)
			}
		}
	}
	if err == nil {
		c.t.Logf("full node logs kept in %s", keep)
	}
}

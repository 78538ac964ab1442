// Package testcluster runs several store nodes in one test process over
// real TLS on loopback, as hashicorp/raft's MakeCluster and rqlite's system
// test helpers do. Ports are chosen once and kept across restarts, the way a
// pod keeps its DNS name.
package testcluster

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/ephemeral-store/ephemeral-store/store/client"
	"github.com/ephemeral-store/ephemeral-store/store/internal/config"
	"github.com/ephemeral-store/ephemeral-store/store/internal/pki"
	"github.com/ephemeral-store/ephemeral-store/store/internal/server"
)

// Users written to every test cluster's users directory.
const (
	// UserAll may read and write every key.
	UserAll = "myuser"
	// UserReader may only read keys under "pools/".
	UserReader = "reader"
	// UserUnknown has a valid certificate but no users entry.
	UserUnknown = "stranger"
)

// Cluster is a set of nodes sharing a CA, a users directory and a peer list.
type Cluster struct {
	t     testing.TB
	Dir   string
	Peers []string

	mu    sync.Mutex
	nodes []*Node
	// spare slots are in Peers (every node knows their addresses, as a
	// StatefulSet's pods know the DNS name of any ordinal) but beyond the
	// replica count: AddSlot takes the next one, RemoveSlot gives one back.
	spare  []*Node
	spares int
	// Tune adjusts each node's config before it starts.
	tune func(i int, c *config.Config)
}

// Node is one member slot: its ports stay, its server is replaced on restart.
type Node struct {
	Index  int
	Client string // host:port of the client API
	Probe  string
	Peer   string
	RESP   string // host:port of the Redis-protocol port
	Server *server.Server
	Config config.Config

	// bound holds listeners reserved at creation and handed to the first
	// start, so no other process can take the ports in between.
	bound *server.Listeners
}

// Option changes a cluster before its nodes start.
type Option func(*Cluster)

// WithConfig adjusts every node's configuration.
func WithConfig(f func(i int, c *config.Config)) Option { return func(c *Cluster) { c.tune = f } }

// WithSpareSlots reserves k more slots beyond the replica count, to scale
// up into (AddSlot).
func WithSpareSlots(k int) Option { return func(c *Cluster) { c.spares = k } }

// Logf-style output goes to the test log only on failure, through slog.
func testLogger(t testing.TB, node string) *slog.Logger {
	if os.Getenv("ES_TEST_LOG") == "" {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("node", node)
}

// New prepares n nodes (certificates, users, ports) and starts them all.
// They are stopped at the end of the test.
func New(t testing.TB, n int, opts ...Option) *Cluster {
	t.Helper()
	c := &Cluster{t: t, Dir: t.TempDir()}
	for _, o := range opts {
		o(c)
	}
	if _, err := pki.WriteBundle(c.Dir, pki.BundleOptions{
		Users: []string{UserAll, UserReader, UserUnknown}, Force: true,
	}); err != nil {
		t.Fatalf("certificates: %v", err)
	}
	users := filepath.Join(c.Dir, "users")
	if err := os.MkdirAll(users, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(users, "myuser.json"), `{ "name": "myuser", "auth_mode": "certificate" }`)
	writeFile(t, filepath.Join(users, "reader.json"),
		`{ "name": "reader", "auth_mode": "certificate", "permissions": [{"prefix": "pools/", "access": "read"}] }`)

	for i := 0; i < n; i++ {
		c.nodes = append(c.nodes, newSlot(t, i))
	}
	for i := 0; i < c.spares; i++ {
		c.spare = append(c.spare, newSlot(t, n+i))
	}
	for _, nd := range append(append([]*Node(nil), c.nodes...), c.spare...) {
		c.Peers = append(c.Peers, nd.Peer)
	}
	c.writeReplicas(n)
	t.Cleanup(c.Close)
	for i := range c.nodes {
		c.Start(i)
	}
	return c
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// newSlot binds three loopback ports for a node and keeps them bound until
// its first start.
func newSlot(t testing.TB, i int) *Node {
	t.Helper()
	bind := func() net.Listener {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		return ln
	}
	ls := &server.Listeners{Client: bind(), Peer: bind(), Probe: bind(), RESP: bind()}
	return &Node{Index: i, Client: ls.Client.Addr().String(), Probe: ls.Probe.Addr().String(), Peer: ls.Peer.Addr().String(),
		RESP: ls.RESP.Addr().String(), bound: ls}
}

// Config is the configuration node i starts with.
func (c *Cluster) config(i int) config.Config {
	nd := c.nodes[i]
	cfg := config.Default()
	cfg.NodeName = fmt.Sprintf("node-%d", i)
	cfg.Listen, cfg.PeerListen, cfg.ProbeListen, cfg.RESPListen = nd.Client, nd.Peer, nd.Probe, nd.RESP
	cfg.Advertise = nd.Peer
	if len(c.Peers) > 1 {
		cfg.Peers = append([]string(nil), c.Peers...)
		for _, nd := range append(append([]*Node(nil), c.nodes...), c.spare...) {
			cfg.RESPPeers = append(cfg.RESPPeers, nd.RESP)
		}
		// The replica count comes from a file the cluster rewrites when it
		// scales, as Kubernetes changes a StatefulSet's spec.replicas: the
		// running nodes see it without a restart.
		cfg.ReplicasFrom = "file:" + c.replicasFile()
	}
	cfg.TLSCert, cfg.TLSKey = filepath.Join(c.Dir, "server.crt"), filepath.Join(c.Dir, "server.key")
	cfg.TLSCA = filepath.Join(c.Dir, "rootCA.crt")
	cfg.UsersDir = filepath.Join(c.Dir, "users")
	cfg.ReloadInterval = 200 * time.Millisecond
	// Short timings keep tests fast; still long enough for -race on 2 cores.
	cfg.HeartbeatTimeout = 500 * time.Millisecond
	cfg.ElectionTimeout = 500 * time.Millisecond
	cfg.JoinRetry = 200 * time.Millisecond
	cfg.QuorumLossTimeout = 3 * time.Second
	cfg.ShutdownTimeout = 5 * time.Second
	cfg.DrainDelay = 0
	if c.tune != nil {
		c.tune(i, &cfg)
	}
	return cfg
}

// Start starts node i (again) as a new incarnation with an empty state.
func (c *Cluster) Start(i int) {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	nd := c.nodes[i]
	cfg := c.config(i)
	var (
		mu     sync.Mutex // the condition runs on its own goroutine
		newSrv *server.Server
		newErr error
	)
	ls := server.Listeners{}
	if nd.bound != nil {
		ls, nd.bound = *nd.bound, nil
	}
	// A port just released by a killed node can take a moment to be free:
	// only that error is retried; any other ends the wait and fails below.
	assert.EventuallyWithT(c.t, func(ct *assert.CollectT) {
		srv, err := server.New(cfg, ls, testLogger(c.t, cfg.NodeName))
		mu.Lock()
		newSrv, newErr = srv, err
		mu.Unlock()
		if err != nil && strings.Contains(err.Error(), "address already in use") {
			ct.Errorf("node %d: %v", i, err)
		}
	}, 5*time.Second, 50*time.Millisecond, "node %d: its ports free again", i)
	mu.Lock()
	srv, err := newSrv, newErr
	mu.Unlock()
	if srv == nil && err == nil {
		err = fmt.Errorf("server.New did not return within 5s")
	}
	if err != nil {
		c.t.Fatalf("node %d: %v", i, err)
	}
	if err := srv.Start(); err != nil {
		c.t.Fatalf("node %d start: %v", i, err)
	}
	nd.Server, nd.Config = srv, cfg
}

// Kill stops node i as a crash would: no leave, no leadership transfer.
func (c *Cluster) Kill(i int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.nodes[i].Server; s != nil {
		s.Kill()
		c.nodes[i].Server = nil
	}
}

// Stop stops node i gracefully (leadership transfer and leave).
func (c *Cluster) Stop(i int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.nodes[i].Server; s != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			c.t.Logf("node %d close: %v", i, err)
		}
		c.nodes[i].Server = nil
	}
}

// Close stops every node and releases ports never started.
func (c *Cluster) Close() {
	for i := range c.nodes {
		c.Kill(i)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, nd := range append(append([]*Node(nil), c.nodes...), c.spare...) {
		if b := nd.bound; b != nil {
			_ = b.Client.Close()
			_ = b.Peer.Close()
			_ = b.Probe.Close()
		}
	}
}

// Node returns slot i.
func (c *Cluster) Node(i int) *Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[i]
}

// Size is the number of slots.
func (c *Cluster) Size() int { return len(c.nodes) }

// replicasFile holds the replica count every node reads
// (--replicas-from=file:...).
func (c *Cluster) replicasFile() string { return filepath.Join(c.Dir, "replicas") }

// writeReplicas sets the replica count the nodes read, atomically (a
// rename), as the API server answers a StatefulSet's new spec.replicas.
func (c *Cluster) writeReplicas(n int) {
	tmp := c.replicasFile() + ".tmp"
	writeFile(c.t, tmp, fmt.Sprint(n))
	if err := os.Rename(tmp, c.replicasFile()); err != nil {
		c.t.Fatal(err)
	}
}

// AddSlot scales up by one, as a StatefulSet does: the replica count the
// running nodes read grows to include the next spare slot (WithSpareSlots),
// which the caller then starts.
func (c *Cluster) AddSlot() int {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.spare) == 0 {
		c.t.Fatal("testcluster: AddSlot needs a spare slot (WithSpareSlots): every node must be able to name the new replica")
	}
	nd := c.spare[0]
	c.spare = c.spare[1:]
	c.nodes = append(c.nodes, nd)
	c.writeReplicas(len(c.nodes))
	return nd.Index
}

// RemoveSlot scales down by one, as a StatefulSet does: the replica count
// shrinks first, then the highest slot stops gracefully (SIGTERM) and
// becomes a spare slot again.
func (c *Cluster) RemoveSlot() {
	c.ScaleTo(c.Size() - 1)
}

// ScaleTo changes the replica count to n as a StatefulSet with parallel
// pod management does: the count first, then every slot beyond it stops
// gracefully at once, or every new slot starts at once.
func (c *Cluster) ScaleTo(n int) {
	c.t.Helper()
	size := c.Size()
	if n > size {
		var added []int
		for len(added) < n-size {
			added = append(added, c.AddSlot())
		}
		var wg sync.WaitGroup
		for _, i := range added {
			wg.Add(1)
			go func() { defer wg.Done(); c.Start(i) }()
		}
		wg.Wait()
		return
	}
	c.mu.Lock()
	c.writeReplicas(n)
	c.mu.Unlock()
	var wg sync.WaitGroup
	for i := n; i < size; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); c.Stop(i) }()
	}
	wg.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.spare = append(append([]*Node(nil), c.nodes[n:]...), c.spare...)
	c.nodes = c.nodes[:n]
}

// WaitReady waits until the given nodes (all running ones when none given)
// are ready voting members with one agreed leader.
func (c *Cluster) WaitReady(timeout time.Duration, nodes ...int) {
	c.t.Helper()
	if len(nodes) == 0 {
		for i := range c.nodes {
			if c.Node(i).Server != nil {
				nodes = append(nodes, i)
			}
		}
	}
	if !assert.EventuallyWithT(c.t, func(ct *assert.CollectT) {
		leaders := map[string]bool{}
		for _, i := range nodes {
			s := c.Node(i).Server
			if !assert.True(ct, s != nil && s.Ready(), "node %d ready", i) {
				return
			}
			leaders[s.Node().Status().Leader] = true
		}
		assert.Len(ct, leaders, 1, "one leader agreed by nodes %v: %v", nodes, leaders)
	}, timeout, 50*time.Millisecond, "nodes %v ready within %s", nodes, timeout) {
		c.t.Fatalf("nodes %v not ready within %s: %s", nodes, timeout, c.describe())
	}
}

func (c *Cluster) describe() string {
	var b strings.Builder
	for i := range c.nodes {
		s := c.Node(i).Server
		if s == nil {
			fmt.Fprintf(&b, "\n  node %d: down", i)
			continue
		}
		st := s.Node().Status()
		fmt.Fprintf(&b, "\n  node %d: ready=%v state=%s leader=%q members=%d applied=%d", i, s.Ready(), st.State, st.Leader, len(st.Members), st.AppliedIndex)
	}
	return b.String()
}

// Leader returns the index of the leading node, or -1.
func (c *Cluster) Leader() int {
	for i := range c.nodes {
		if s := c.Node(i).Server; s != nil && s.Node().IsLeader() {
			return i
		}
	}
	return -1
}

// Follower returns the index of a running node that does not lead.
func (c *Cluster) Follower() int {
	for i := range c.nodes {
		if s := c.Node(i).Server; s != nil && !s.Node().IsLeader() {
			return i
		}
	}
	return -1
}

// CertPaths returns the certificate, key and CA file of a user.
func (c *Cluster) CertPaths(user string) (cert, key, ca string) {
	return filepath.Join(c.Dir, user+".crt"), filepath.Join(c.Dir, user+".key"), filepath.Join(c.Dir, "rootCA.crt")
}

// Client returns a client for user talking to the given nodes only (all
// when none given).
func (c *Cluster) Client(user string, nodes ...int) *client.Client {
	c.t.Helper()
	if len(nodes) == 0 {
		for i := range c.nodes {
			nodes = append(nodes, i)
		}
	}
	var eps []string
	for _, i := range nodes {
		eps = append(eps, "https://"+c.Node(i).Client)
	}
	cert, key, ca := c.CertPaths(user)
	cl, err := client.NewFromFiles(eps, cert, key, ca)
	if err != nil {
		c.t.Fatalf("client: %v", err)
	}
	return cl
}

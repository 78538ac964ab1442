// Package cluster replicates the state machine with hashicorp/raft and keeps
// membership right for pods that forget everything when they restart: each
// process start is a new Raft server (<name>/<incarnation>), joins through
// any peer as a non-voter, is promoted once caught up, and replaces its old
// incarnation. See DESIGN.md beside this file for bootstrap and quorum loss.
package cluster

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/ephemeral-store/ephemeral-store/store/internal/config"
	"github.com/ephemeral-store/ephemeral-store/store/internal/fsm"
	"github.com/ephemeral-store/ephemeral-store/store/internal/transport"
)

// Errors callers map to responses.
var (
	// ErrNoLeader: no leader is known within the wait; the cluster has no
	// quorum right now (or is electing). Retry later.
	ErrNoLeader = errors.New("no leader: the cluster has no quorum")
	// ErrShutdown: the node is stopping.
	ErrShutdown = errors.New("node is shutting down")
	// ErrOutcomeUnknown: a write left this node but its fate is unknown (the
	// leader lost leadership or the connection broke while it was in
	// flight). It may still commit; retrying it blindly could apply it twice.
	ErrOutcomeUnknown = errors.New("write outcome unknown: leadership changed or the leader became unreachable while it was in flight")
)

// Peer is a node discovery knows of.
type Peer struct {
	Ordinal int
	Address string
}

// Options configure a Node.
type Options struct {
	// Name identifies the pod across incarnations (the pod name).
	Name string
	// Address is this node's Raft address: advertised DNS name and peer port.
	Address string
	// Ordinal and Peers drive bootstrap: the lowest ordinal that answers
	// bootstraps when no cluster exists. Peers includes this node. With a
	// Topology and a ReplicaSource, Peers is only the default: the peers
	// are the first replicas() ordinals of the Topology (replicas.go).
	Ordinal int
	Peers   []Peer
	// Topology names the replica of any ordinal (nil functions: Peers by
	// position).
	Topology Topology
	// ReplicaSource reports the replica count the platform runs now; nil
	// means len(Peers), fixed. The leader replicates it (replicas.go).
	ReplicaSource ReplicaSource

	// QuorumLossTimeout is how long a member goes without a leader before
	// it asks the voters whether they are gone. It only starts the asking:
	// data is dropped on proof, never because time passed.
	QuorumLossTimeout time.Duration
	JoinRetry         time.Duration

	HeartbeatTimeout  time.Duration
	ElectionTimeout   time.Duration
	SnapshotThreshold uint64
	TrailingLogs      uint64
	// SnapshotBytes also triggers a snapshot once this many command bytes
	// were applied since the last one, so large values cannot grow the
	// in-memory log without bound between entry-count snapshots (default
	// config.DefaultSnapshotBytes).
	SnapshotBytes uint64
	// ApplyTimeout bounds one write (default 10s).
	ApplyTimeout time.Duration
	// Quota, when set, decides on the leader whether a write may be
	// proposed (quota.go).
	Quota Admitter

	Mux     *transport.Mux
	State   *fsm.State
	Logger  *slog.Logger
	Metrics *Metrics

	// Wall is this node's wall clock (default time.Now). It decides no
	// expiry: it is read only for a new cluster's base revision and for
	// the wall-clock expiry instant older replicas expect in a command.
	// Tests step it.
	Wall func() time.Time
}

// Node is one member (or would-be member) of the cluster. It outlives its
// incarnations: startRaft (incarnation.go) builds each one whole (a fresh
// Raft instance and everything that belongs to it) and restart (quorum.go)
// replaces one.
//
// Its methods, by file: node.go constructs and starts it; incarnation.go
// holds one incarnation; discovery.go and
// bootstrap.go find or form a cluster; membership.go and rpc.go hold the
// leader's configuration changes and the peer RPCs; quorum.go quorum loss,
// forks and restart; guard.go what Raft traffic it takes; apply.go writes;
// readindex.go linearizable reads; loops.go the background loops;
// status.go what it reports; shutdown.go how it stops.
//
// The fields are grouped by what guards them.
type Node struct {
	// Set once in New, read-only after (opts.State and opts.Metrics guard
	// themselves).
	opts    Options
	log     *slog.Logger
	peer    *peerClient
	fwd     *forwarder    // a follower's writes to the leader (forward.go)
	readSem chan struct{} // one read round in flight
	ctx     context.Context
	cancel  context.CancelFunc
	// Ages are durations since start on the monotonic clock (mono), never
	// wall-clock instants: a stepped clock must not age anything.
	start time.Time

	// Set once in Start; Close and Kill read it after Start has returned
	// (their caller orders them).
	rpc *http.Server
	// wg counts Start's goroutines and each incarnation's leadership
	// watcher. startRaft adds to it only before Close or Kill waits on it:
	// they set stopping, then wait out a restart in progress (restartMu),
	// and restart checks stopping under restartMu.
	wg sync.WaitGroup

	// cur is the current incarnation (incarnation.go): startRaft swaps
	// in a whole new one.
	cur atomic.Pointer[incarnation]

	// voted are the replicas (addresses) this node has seen stand for by
	// a voter in cluster votedCluster's configuration: a replica among them
	// that no voter stands for any more lost its placeholder
	// (restoreLostPlaceholders). Only the discovery loop touches them
	// (tendMembership and what it calls), so no lock guards them.
	voted        map[string]bool
	votedCluster string

	// readMu guards nextRead.
	readMu   sync.Mutex
	nextRead *readRound // the read round that has not started yet

	// waitLogMu guards waitLogAt (logWaiting).
	waitLogMu sync.Mutex
	waitLogAt map[string]time.Duration

	// These two guard no field: they make operations take turns.
	restartMu    sync.Mutex // one restart at a time; Close and Kill wait for it
	membershipMu sync.Mutex // the leader's configuration changes, one at a time

	// Atomics under no lock, kept across incarnations.
	lastForkProbe atomic.Int64 // mono() of the last fork probe
	answering     atomic.Int32
	stopping      atomic.Bool
	draining      atomic.Bool // shutting down soon: not ready, still serving
	// sourceReplicas is what the ReplicaSource last reported (0: never).
	sourceReplicas atomic.Int64
}

// New prepares a node; Start runs it.
func New(opts Options) (*Node, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(nil)
	}
	if opts.JoinRetry <= 0 {
		opts.JoinRetry = config.DefaultJoinRetry
	}
	if opts.QuorumLossTimeout <= 0 {
		opts.QuorumLossTimeout = config.DefaultQuorumLossTimeout
	}
	if opts.SnapshotBytes == 0 {
		opts.SnapshotBytes = config.DefaultSnapshotBytes
	}
	if opts.ApplyTimeout <= 0 {
		opts.ApplyTimeout = 10 * time.Second
	}
	if opts.Wall == nil {
		opts.Wall = time.Now
	}
	if opts.HeartbeatTimeout <= 0 {
		opts.HeartbeatTimeout = config.DefaultRaftTimeout
	}
	if opts.ElectionTimeout <= 0 {
		opts.ElectionTimeout = config.DefaultRaftTimeout
	}
	if len(opts.Peers) == 0 {
		opts.Peers = []Peer{{Ordinal: opts.Ordinal, Address: opts.Address}}
	}
	n := &Node{opts: opts, log: opts.Logger.With("node", opts.Name), start: time.Now(), waitLogAt: map[string]time.Duration{}}
	n.peer = newPeerClient(opts.Mux)
	n.readSem = make(chan struct{}, 1)
	if opts.ReplicaSource == nil {
		n.sourceReplicas.Store(int64(len(opts.Peers)))
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.fwd = newForwarder(n.ctx, n.peer, opts.ApplyTimeout, forwardSlots, opts.Metrics.ForwardBatchSize)
	return n, nil
}

// mono is the time since the node was created, on the monotonic clock.
func (n *Node) mono() time.Duration { return time.Since(n.start) }

// nameOf is the pod part of a server ID.
func nameOf(id raft.ServerID) string {
	s := string(id)
	if i := strings.LastIndex(s, "/"); i >= 0 {
		return s[:i]
	}
	return s
}

// Start serves peer RPCs and begins discovery: join an existing cluster or
// bootstrap one. It returns at once; Ready tells when the node serves.
func (n *Node) Start() error {
	if err := n.startRaft(); err != nil {
		return err
	}
	n.rpc = &http.Server{Handler: n.rpcHandler(), ReadHeaderTimeout: 10 * time.Second}
	if n.opts.ReplicaSource != nil {
		// Once before discovery, so that a source that answers at once
		// (a flag, a file) is known to the first round.
		n.readSource(n.ctx)
		n.wg.Add(1)
		go func() { defer n.wg.Done(); n.sourceLoop() }()
	}
	n.wg.Add(4)
	go func() { defer n.wg.Done(); _ = n.rpc.Serve(n.opts.Mux.RPCListener()) }()
	go func() { defer n.wg.Done(); n.discoveryLoop() }()
	go func() { defer n.wg.Done(); n.expiryLoop() }()
	go func() { defer n.wg.Done(); n.snapshotLoop() }()
	return nil
}

// Package cluster replicates the state machine with hashicorp/raft and keeps
// membership right for pods that forget everything when they restart: each
// process start is a new Raft server (<name>/<incarnation>), joins through
// any peer as a non-voter, is promoted once caught up, and replaces its old
// incarnation. See DESIGN.md beside this file for bootstrap and quorum loss.
package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/ephemeral-store/ephemeral-store/store/client/api"
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
// incarnations: startRaft begins each one (a fresh Raft instance and the
// per-incarnation state below) and restart (quorum.go) replaces one.
//
// Its methods, by file: node.go constructs and starts it; discovery.go and
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

	// mu guards the current incarnation: startRaft sets id through stopped
	// together under mu.Lock; readers copy them under mu.RLock (raft(),
	// ID(), self()) and use the copies unlocked. The fields after stopped
	// are read and written under mu too (join, tendMembership,
	// noteVotersLocked, restoreLostPlaceholders, replicationAllowed).
	mu      sync.RWMutex
	id      raft.ServerID
	r       *raft.Raft
	fsm     *raftFSM
	logs    *monotonicStore
	stream  raft.StreamLayer // closed to cut a shutdown short
	stopped chan struct{}    // closed when this incarnation's Raft stops
	// joinedVia are the servers the leader named when it added this node:
	// replication is taken from them until the log brings a configuration.
	joinedVia map[raft.ServerID]bool
	// joinTerm is the term of the leader that added this incarnation:
	// replication from an older term is refused.
	joinTerm  uint64
	catchUpTo uint64 // commit index at join: promotion once applied
	// seenSelfAt is the index of the newest configuration that listed
	// this incarnation (0: none yet).
	seenSelfAt uint64
	// voted are the replicas (addresses) this node has seen stand for by
	// a voter in cluster votedCluster's configuration: a replica among them
	// that no voter stands for any more lost its placeholder
	// (restoreLostPlaceholders).
	voted        map[string]bool
	votedCluster string

	// bootMu orders the bootstrap vote, commits, joins and candidacy of one
	// incarnation: it bootstraps or joins at most once. startRaft holds it
	// for the whole swap to a new incarnation. member, vote and clusterID
	// are written only under bootMu (startRaft, becomeMember's callers,
	// runCandidacy, handleVote) and read atomically anywhere.
	bootMu sync.Mutex
	member atomic.Bool            // part of a configuration (bootstrapped or added)
	vote   atomic.Pointer[ballot] // nil for a new incarnation
	// clusterID is a string: random, chosen at bootstrap.
	clusterID atomic.Value
	// needBase is set under bootMu when this node bootstraps and taken
	// (CompareAndSwap) by watchLeadership without it.
	needBase atomic.Bool // bootstrapped here: the first leader proposes fsm.OpBase
	// baseFloor is set with needBase: the lowest base revision the
	// bootstrap candidate found for the new cluster (revisions.go).
	baseFloor atomic.Int64

	// lead is this node's latest takeover as leader (clock.go), written by
	// the leadership watcher; a stale one names another Raft or term.
	lead atomic.Pointer[takeover]

	// readMu guards nextRead.
	readMu   sync.Mutex
	nextRead *readRound // the read round that has not started yet

	// waitLogMu guards waitLogAt (logWaiting).
	waitLogMu sync.Mutex
	waitLogAt map[string]time.Duration

	// These two guard no field: they make operations take turns.
	restartMu    sync.Mutex // one restart at a time; Close and Kill wait for it
	membershipMu sync.Mutex // the leader's configuration changes, one at a time

	// leaderReady and readyTerm are set true by a leadership watcher only
	// while holding mu (read) and seeing its own Raft as n.r (markReady),
	// and reset by startRaft under mu with the swap; cleared anywhere.
	leaderReady atomic.Bool // leader whose term's first entry is committed
	// readyTerm is the term leaderReady was proven in. A read index is
	// taken and verified in that term only: a watcher descheduled across a
	// step-down and a re-election must not vouch for the new term.
	readyTerm atomic.Uint64

	// Atomics under no lock. startRaft resets noLeaderSince, sawLeader,
	// peerTrusted, quorum and forks for each new incarnation (under
	// bootMu); the rest keep their values across incarnations.
	noLeaderSince atomic.Int64 // mono() when a leader was last known
	lastForkProbe atomic.Int64 // mono() of the last fork probe
	sawLeader     atomic.Bool  // this incarnation has known a leader
	answering     atomic.Int32
	peerTrusted   atomic.Pointer[map[raft.ServerID]bool] // servers same-cluster peers vouch for
	// newerVoters are the voters of a configuration newer than this
	// node's own that a member of its cluster reported: candidates this
	// node may vote for although its own configuration does not list them
	// (candidateVouched).
	newerVoters atomic.Pointer[map[raft.ServerID]bool]
	quorum      atomic.Pointer[api.QuorumReport]
	forks       atomic.Pointer[[]api.Fork]
	stopping    atomic.Bool
	draining    atomic.Bool // shutting down soon: not ready, still serving
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
	n.clusterID.Store("")
	if opts.ReplicaSource == nil {
		n.sourceReplicas.Store(int64(len(opts.Peers)))
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	return n, nil
}

// mono is the time since the node was created, on the monotonic clock.
func (n *Node) mono() time.Duration { return time.Since(n.start) }

// ID is this incarnation's Raft server ID.
func (n *Node) ID() raft.ServerID {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.id
}

func newIncarnation(name string) raft.ServerID {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return raft.ServerID(name + "/" + hex.EncodeToString(b[:]))
}

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

// startRaft creates a fresh Raft instance: new incarnation, empty in-memory
// stores. Nothing is ever read from or written to disk.
func (n *Node) startRaft() error {
	id := newIncarnation(n.opts.Name)
	cfg := raft.DefaultConfig()
	cfg.LocalID = id
	cfg.HeartbeatTimeout = n.opts.HeartbeatTimeout
	cfg.ElectionTimeout = n.opts.ElectionTimeout
	// The longest lease Raft allows: a leader that cannot reach a majority
	// for a heartbeat timeout steps down. A shorter one made busy leaders
	// step down under load; reads do not rely on the lease (readIndex).
	cfg.LeaderLeaseTimeout = n.opts.HeartbeatTimeout
	cfg.CommitTimeout = 20 * time.Millisecond
	// Writes queue for the leader loop instead of handing over one at a
	// time, so a busy leader appends and replicates them in larger groups.
	cfg.BatchApplyCh = true
	// Raft's per-follower timings only with the follower as a label, not
	// also in the metric's name (a new name for every pod restart).
	cfg.NoLegacyTelemetry = true
	cfg.CandidateVouched = n.candidateVouched
	if n.opts.SnapshotThreshold > 0 {
		cfg.SnapshotThreshold = n.opts.SnapshotThreshold
	}
	if n.opts.TrailingLogs > 0 {
		cfg.TrailingLogs = n.opts.TrailingLogs
	}
	cfg.SnapshotInterval = 10 * time.Second
	cfg.Logger = newHCLogAdapter(n.log)
	notify := make(chan bool, 16)
	cfg.NotifyCh = notify

	// A new incarnation is nobody's member yet and has given no vote. The
	// whole swap happens under bootMu, so discovery's join, a candidacy or
	// a vote sees either the old incarnation or the new one, complete: a
	// join between the reset and the swap would have asked the leader to
	// add the old ID while this node marked the new one a member (which
	// then never appears in the configuration and is never promoted).
	// Lock order: bootMu, then mu, as join takes them.
	n.bootMu.Lock()
	defer n.bootMu.Unlock()
	n.member.Store(false)
	n.vote.Store(nil)
	store := &monotonicStore{raft.NewInmemStore()}
	f := newRaftFSM(n.opts.State)
	snaps := newSnapshotStore()
	// Counting the restored state's size is a full encode: off the state
	// machine's goroutine, over the immutable capture.
	f.restored = func(index uint64, write func(io.Writer) error) { go snaps.shed(index, write) }
	stream := n.opts.Mux.StreamLayer()
	trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  stream,
		MaxPool: 3,
		// No pipelining: in hashicorp/raft v1.8.0 a follower that answers
		// an append with Success=false while a pipelined send is ready
		// deadlocks the leader's replication to it for good (both channels
		// of netPipeline are unbuffered at the default of 2; the follower
		// then gets heartbeats but never another entry, and the leader's
		// Shutdown hangs). The catch-up test hit it; Grafana Pyroscope
		// disabled pipelining for the same reason (their PR #5518;
		// hashicorp/raft issue #612). raft's own notes measure little
		// benefit from pipelining on a LAN.
		MaxRPCsInFlight: 1,
		Timeout:         10 * time.Second,
		Logger:          cfg.Logger,
	})
	guarded := newGuardedTransport(trans, n.selfIsVoter, n.replicationAllowed)
	r, err := raft.NewRaft(cfg, f, store, store, snaps, guarded)
	if err != nil {
		return fmt.Errorf("start raft %s: %w", id, err)
	}
	n.mu.Lock()
	stopped := make(chan struct{})
	n.id, n.r, n.fsm, n.logs, n.stream, n.stopped = id, r, f, store, stream, stopped
	// A new incarnation has joined nothing and been listed nowhere yet;
	// it learns these again from its own join or bootstrap.
	n.joinedVia, n.joinTerm, n.seenSelfAt, n.catchUpTo = nil, 0, 0, 0
	// Under mu with the swap: the previous incarnation's leadership
	// watcher stores readiness only while its Raft is still n.r.
	n.leaderReady.Store(false)
	n.readyTerm.Store(0)
	n.mu.Unlock()
	n.noLeaderSince.Store(int64(n.mono()))
	n.sawLeader.Store(false)
	n.clusterID.Store("")
	n.forks.Store(nil)
	n.peerTrusted.Store(nil)
	n.newerVoters.Store(nil)
	n.setQuorum(api.QuorumReport{State: api.QuorumElecting})
	// The gauges describe this incarnation, a member of nothing yet: the
	// previous one's values would count it as a voter (or the leader) in
	// the alerts until it joins again.
	n.opts.Metrics.observe(r, false)
	n.log.Info("raft started", "id", id, "address", n.opts.Address)
	n.wg.Add(1)
	go func() { defer n.wg.Done(); n.watchLeadership(r, notify, stopped) }()
	return nil
}

// self is this incarnation's entry in its own latest configuration, or nil.
func (n *Node) self() *raft.Server {
	n.mu.RLock()
	r, id := n.r, n.id
	n.mu.RUnlock()
	if r == nil {
		return nil
	}
	f := r.GetConfiguration() // an atomic read, not a round trip
	if f.Error() != nil {
		return nil
	}
	return serverIn(f.Configuration(), id)
}

// serverIn is server id of cfg, or nil.
func serverIn(cfg raft.Configuration, id raft.ServerID) *raft.Server {
	for _, s := range cfg.Servers {
		if s.ID == id {
			return &s
		}
	}
	return nil
}

func (n *Node) raft() *raft.Raft {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.r
}

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
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

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
	// bootstraps when no cluster exists. Peers includes this node.
	Ordinal int
	Peers   []Peer

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
	// 64 MiB).
	SnapshotBytes uint64
	// ApplyTimeout bounds one write (default 10s).
	ApplyTimeout time.Duration

	Mux     *transport.Mux
	State   *fsm.State
	Logger  *slog.Logger
	Metrics *Metrics
}

// Node is one member (or would-be member) of the cluster.
type Node struct {
	opts Options
	log  *slog.Logger
	peer *peerClient

	mu        sync.RWMutex
	id        raft.ServerID
	r         *raft.Raft
	fsm       *raftFSM
	logs      *monotonicStore
	stream    raft.StreamLayer // closed to cut a shutdown short
	stopped   chan struct{}    // closed when this incarnation's Raft stops
	member    atomic.Bool      // part of a configuration (bootstrapped or added)
	clusterID atomic.Value     // string: random, chosen at bootstrap

	catchUpTo uint64 // commit index at join: promotion once applied
	seenSelf  bool   // this incarnation has appeared in the configuration
	// voted are the replicas (addresses) this node has seen stand for by
	// a voter in cluster votedCluster's configuration: a replica among them
	// that no voter stands for any more lost its placeholder
	// (restoreLostPlaceholders).
	voted        map[string]bool
	votedCluster string
	// joinedVia are the servers the leader named when it added this node:
	// replication is taken from them until the log brings a configuration.
	joinedVia map[raft.ServerID]bool

	leaderReady atomic.Bool // leader whose term's first entry is committed
	// readyTerm is the term leaderReady was proven in. A read index is
	// taken and verified in that term only: a watcher descheduled across a
	// step-down and a re-election must not vouch for the new term.
	readyTerm atomic.Uint64

	readMu   sync.Mutex
	nextRead *readRound    // the read round that has not started yet
	readSem  chan struct{} // one read round in flight

	// Ages are durations since start on the monotonic clock (mono), never
	// wall-clock instants: a stepped clock must not age anything.
	start         time.Time
	noLeaderSince atomic.Int64 // mono() when a leader was last known
	lastForkProbe atomic.Int64 // mono() of the last fork probe
	sawLeader     atomic.Bool  // this incarnation has known a leader

	// bootMu orders the bootstrap vote, commits, joins and candidacy of one
	// incarnation: it bootstraps or joins at most once.
	bootMu sync.Mutex
	vote   atomic.Pointer[ballot] // written under bootMu; nil for a new incarnation

	restartMu    sync.Mutex // one restart at a time
	membershipMu sync.Mutex // the leader's configuration changes, one at a time
	answering    atomic.Int32
	peerTrusted  atomic.Pointer[map[raft.ServerID]bool] // servers same-cluster peers vouch for
	quorum       atomic.Pointer[QuorumReport]
	forks        atomic.Pointer[[]Fork]
	waitLogMu    sync.Mutex
	waitLogAt    map[string]time.Duration // guarded by waitLogMu

	stopping atomic.Bool
	draining atomic.Bool // shutting down soon: not ready, still serving
	needBase atomic.Bool // bootstrapped here: the first leader proposes fsm.OpBase
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	rpc      *http.Server
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
		opts.JoinRetry = time.Second
	}
	if opts.QuorumLossTimeout <= 0 {
		opts.QuorumLossTimeout = 30 * time.Second
	}
	if opts.SnapshotBytes == 0 {
		opts.SnapshotBytes = 64 << 20
	}
	if opts.ApplyTimeout <= 0 {
		opts.ApplyTimeout = 10 * time.Second
	}
	if opts.HeartbeatTimeout <= 0 {
		opts.HeartbeatTimeout = 300 * time.Millisecond // config.DefaultRaftTimeout
	}
	if opts.ElectionTimeout <= 0 {
		opts.ElectionTimeout = 300 * time.Millisecond
	}
	if len(opts.Peers) == 0 {
		opts.Peers = []Peer{{Ordinal: opts.Ordinal, Address: opts.Address}}
	}
	n := &Node{opts: opts, log: opts.Logger.With("node", opts.Name), start: time.Now(), waitLogAt: map[string]time.Duration{}}
	n.peer = newPeerClient(opts.Mux)
	n.readSem = make(chan struct{}, 1)
	n.clusterID.Store("")
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

	// A new incarnation is nobody's member yet and has given no vote; the
	// guard and the bootstrap handlers read these.
	n.bootMu.Lock()
	n.member.Store(false)
	n.vote.Store(nil)
	n.bootMu.Unlock()
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
	n.joinedVia = nil
	n.mu.Unlock()
	n.leaderReady.Store(false)
	n.readyTerm.Store(0)
	n.noLeaderSince.Store(int64(n.mono()))
	n.sawLeader.Store(false)
	n.clusterID.Store("")
	n.forks.Store(nil)
	n.peerTrusted.Store(nil)
	n.setQuorum(QuorumReport{State: QuorumElecting})
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
	for _, s := range f.Configuration().Servers {
		if s.ID == id {
			return &s
		}
	}
	return nil
}

// selfIsVoter: this incarnation is a member and a voter of its own latest
// configuration.
func (n *Node) selfIsVoter() bool {
	if !n.member.Load() {
		return false
	}
	s := n.self()
	return s != nil && s.Suffrage == raft.Voter
}

// replicationAllowed: this incarnation is a member, and sender is a server
// of its own cluster.
func (n *Node) replicationAllowed(sender raft.ServerID) bool {
	if !n.member.Load() {
		return false
	}
	n.mu.RLock()
	r, joined := n.r, n.joinedVia
	n.mu.RUnlock()
	var cfg raft.Configuration
	if r != nil {
		if f := r.GetConfiguration(); f.Error() == nil {
			cfg = f.Configuration()
		}
	}
	if senderKnown(cfg, joined, sender) {
		return true
	}
	if t := n.peerTrusted.Load(); t != nil {
		return (*t)[sender]
	}
	return false
}

func senderKnown(cfg raft.Configuration, joined map[raft.ServerID]bool, sender raft.ServerID) bool {
	if sender == "" {
		return false
	}
	if joined[sender] {
		return true
	}
	for _, s := range cfg.Servers {
		if s.ID == sender {
			return true
		}
	}
	return false
}

func (n *Node) raft() *raft.Raft {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.r
}

// watchLeadership makes a new leader usable for reads only once an entry of
// its own term has committed (the Barrier), as the read-index rule requires.
func (n *Node) watchLeadership(r *raft.Raft, notify <-chan bool, stopped <-chan struct{}) {
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-stopped:
			return // this incarnation is over; the next has its own watcher
		case leader, ok := <-notify:
			if !ok {
				return
			}
			n.leaderReady.Store(false)
			n.opts.Metrics.LeaderChanges.Inc()
			if !leader {
				continue
			}
			term := r.CurrentTerm()
			if err := r.Barrier(n.opts.ApplyTimeout).Error(); err != nil {
				n.log.Warn("barrier after election failed", "err", err)
				continue
			}
			if r.State() == raft.Leader && r.CurrentTerm() == term {
				n.readyTerm.Store(term)
				n.leaderReady.Store(true)
				n.log.Info("leading", "id", n.ID())
				// Every bootstrapper may lead first; only a leader that
				// finds the state untouched raises the base.
				if n.needBase.CompareAndSwap(true, false) && n.opts.State.Revision() == 0 {
					if _, err := n.applyLocal(r, fsm.NewBase(time.Now())); err != nil {
						n.log.Warn("base revision of the new cluster not set", "err", err)
					}
				}
			}
		}
	}
}

// Ready is true when this node is a voting member that knows a leader: a
// rolling update waits for it before taking the next pod down.
func (n *Node) Ready() bool {
	r := n.raft()
	if n.stopping.Load() || n.draining.Load() || !n.selfIsVoter() {
		return false
	}
	addr, _ := r.LeaderWithID()
	return addr != ""
}

// Drain makes the node report not ready while it keeps serving, so load
// balancers stop sending clients before the API closes.
func (n *Node) Drain() { n.draining.Store(true) }

// IsLeader reports whether this node leads.
func (n *Node) IsLeader() bool { return n.raft().State() == raft.Leader }

// Apply commits a command through the leader and returns its result. A
// follower forwards it over the peer channel; the leader fixes TTL expiry
// with its own clock.
func (n *Node) Apply(ctx context.Context, cmd fsm.Command) (fsm.Result, error) {
	if err := cmd.Validate(); err != nil {
		return fsm.Result{}, err
	}
	// A leader that is known but unreachable (this node is cut off) must
	// not keep a client waiting forever.
	ctx, cancel := context.WithTimeoutCause(ctx, n.opts.ApplyTimeout, ErrNoLeader)
	defer cancel()
	for {
		if n.stopping.Load() {
			return fsm.Result{}, ErrShutdown
		}
		// Retry only where the write provably never entered a log: the
		// node was not the leader, or the leader could not be dialled.
		r := n.raft()
		if r.State() == raft.Leader {
			res, err := n.applyLocal(r, cmd)
			if !errors.Is(err, raft.ErrNotLeader) {
				return res, err
			}
		} else if addr, _ := r.LeaderWithID(); addr != "" {
			res, err := n.peer.apply(ctx, string(addr), cmd)
			if !errors.Is(err, errNotLeader) && !errors.Is(err, errPeerUnreachable) {
				return res, err
			}
		}
		if err := n.waitForLeader(ctx); err != nil {
			return fsm.Result{}, err
		}
	}
}

func (n *Node) applyLocal(r *raft.Raft, cmd fsm.Command) (fsm.Result, error) {
	cmd.PrepareOnLeader(time.Now())
	b, err := cmd.Encode()
	if err != nil {
		return fsm.Result{}, err
	}
	f := r.Apply(b, n.opts.ApplyTimeout)
	if err := f.Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) {
			return fsm.Result{}, fmt.Errorf("raft apply: %w", err) // never appended: safe to retry
		}
		if errors.Is(err, raft.ErrLeadershipTransferInProgress) {
			// Refused before it was appended, like ErrNotLeader: the
			// callers retry it once the new leader is known.
			return fsm.Result{}, fmt.Errorf("raft apply: %w (%w)", raft.ErrNotLeader, err)
		}
		return fsm.Result{}, fmt.Errorf("raft apply: %w: %w", ErrOutcomeUnknown, err)
	}
	res, _ := f.Response().(fsm.Result)
	return res, res.Err
}

// waitForLeader pauses a retry until a leader is known, or fails with
// ErrNoLeader after an election's worth of time.
func (n *Node) waitForLeader(ctx context.Context) error {
	deadline := time.Now().Add(n.electionBound())
	for {
		if addr, _ := n.raft().LeaderWithID(); addr != "" && n.member.Load() {
			// A leader is known; give in-flight changes of leadership a
			// moment before the retry.
			select {
			case <-time.After(20 * time.Millisecond):
				return nil
			case <-ctx.Done():
				return context.Cause(ctx)
			}
		}
		if time.Now().After(deadline) {
			return ErrNoLeader
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// LinearizableRead returns once this node's state reflects every write
// acknowledged before the call: it learns the leader's commit index (the
// leader confirms it still leads) and waits until it has applied that much.
func (n *Node) LinearizableRead(ctx context.Context) error {
	ctx, cancel := context.WithTimeoutCause(ctx, n.opts.ApplyTimeout, ErrNoLeader)
	defer cancel()
	for {
		if n.stopping.Load() {
			return ErrShutdown
		}
		r := n.raft()
		var (
			idx uint64
			err error
		)
		if r.State() == raft.Leader {
			idx, err = n.readIndex(ctx)
		} else if addr, _ := r.LeaderWithID(); addr != "" {
			idx, err = n.sharedReadIndex(ctx, r, string(addr))
		} else {
			err = errNotLeader
		}
		if err == nil {
			return n.waitApplied(ctx, idx)
		}
		// A read index changes nothing: any failure may be retried.
		if !errors.Is(err, errNotLeader) && !errors.Is(err, errPeerUnreachable) && !errors.Is(err, ErrOutcomeUnknown) {
			return err
		}
		if err := n.waitForLeader(ctx); err != nil {
			return err
		}
	}
}

// readIndex is the leader's half of a linearizable read: an index that
// covers every write acknowledged before the call, proven to come from the
// current leader.
//
// It is Raft's read index: the commit index taken after the read arrived,
// then a round of heartbeats sent after that, answered by a majority of
// voters that still follow this leader (raft.VerifyLeader). Upstream
// hashicorp/raft counts an answer to a heartbeat sent before a verify for
// that verify, so a leader frozen (SIGSTOP, a long GC, a stalled VM) and
// deposed meanwhile would serve its old state; the patched copy in
// store/third_party/raft (PATCH.md, "verify freshness") counts only answers
// to requests sent after it. Reads that arrive while a round is in flight
// share the next one, so a burst of reads costs one round trip, not one
// each, and no log entry is written for a read.
func (n *Node) readIndex(ctx context.Context) (uint64, error) {
	return n.sharedReadIndex(ctx, n.raft(), "")
}

// sharedReadIndex joins the next read round: on the leader (leader "") a
// leadership check, on a follower one read-index request to the leader at
// that address. Reads that arrive while a round is in flight share the next
// one: a follower under load sends the leader one request per round trip,
// not one per read. A round started after a read arrived serves it, as the
// read index requires.
func (n *Node) sharedReadIndex(ctx context.Context, r *raft.Raft, leader string) (uint64, error) {
	n.readMu.Lock()
	round := n.nextRead
	if round == nil || round.r != r || round.leader != leader {
		round = &readRound{r: r, leader: leader, done: make(chan struct{})}
		n.nextRead = round
		go n.runReadRound(round)
	}
	n.readMu.Unlock()
	select {
	case <-round.done:
		return round.index, round.err
	case <-ctx.Done():
		return 0, fmt.Errorf("read index: %w", ErrOutcomeUnknown)
	}
}

// readRound is one read index shared by the reads that joined it before it
// started.
type readRound struct {
	r      *raft.Raft
	leader string // "" when this node leads; else the leader's address
	done   chan struct{}
	index  uint64
	err    error
}

// runReadRound runs one round. Each is bounded by an election's worth of
// time, so that a round stuck on a leader that died, or on a verify no
// voter will answer, does not hold up the rounds after it.
func (n *Node) runReadRound(round *readRound) {
	n.readSem <- struct{}{} // one round in flight; the next gathers meanwhile
	defer func() { <-n.readSem }()
	defer close(round.done)
	n.readMu.Lock()
	if n.nextRead == round {
		n.nextRead = nil // later reads must wait for a round started after them
	}
	n.readMu.Unlock()
	if round.leader == "" {
		round.index, round.err = n.verifiedCommitIndex(round.r)
		return
	}
	ctx, cancel := context.WithTimeout(n.ctx, min(n.opts.ApplyTimeout, n.electionBound()))
	defer cancel()
	round.index, round.err = n.peer.readIndex(ctx, round.leader)
}

// electionBound is how long a leader takes to be known again after it is
// lost: two election timeouts and a second of slack.
func (n *Node) electionBound() time.Duration { return 2*n.opts.ElectionTimeout + time.Second }

// verifiedCommitIndex is the leader's read index: its commit index, taken
// in a term whose first entry it committed, then confirmed by a majority of
// voters over fresh heartbeats, all in that same term.
//
// The check is bounded: a verify waits only for answers of the voters of
// the configuration it started in, and a voter removed meanwhile (a leave)
// never answers it, while an even-sized configuration can keep the leader's
// lease. Unbounded, that verify held every later read round of the node.
func (n *Node) verifiedCommitIndex(r *raft.Raft) (uint64, error) {
	term := r.CurrentTerm()
	if !n.leaderReady.Load() || n.readyTerm.Load() != term {
		return 0, errNotLeader
	}
	index := r.CommitIndex()
	verify := r.VerifyLeader()
	done := make(chan error, 1)
	go func() { done <- verify.Error() }()
	timer := time.NewTimer(n.electionBound())
	defer timer.Stop()
	select {
	case err := <-done:
		if err != nil || r.CurrentTerm() != term {
			return 0, errNotLeader
		}
		return index, nil
	case <-timer.C:
		return 0, errNotLeader
	}
}

// waitApplied blocks until every state machine entry up to idx is applied.
// Entries the FSM never sees (no-ops, barriers) do not count, so it looks
// at the log between what the FSM applied and idx.
func (n *Node) waitApplied(ctx context.Context, idx uint64) error {
	n.mu.RLock()
	f, r, logs := n.fsm, n.r, n.logs
	n.mu.RUnlock()
	for {
		ch := f.changed()
		applied := f.applied.Load()
		if applied >= idx {
			return nil
		}
		if r.AppliedIndex() >= idx && !fsmEntryBetween(logs, applied, idx) {
			return nil
		}
		select {
		case <-ch:
		case <-time.After(5 * time.Millisecond):
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// fsmEntryBetween reports whether a command or configuration entry lies in
// (from, to]. An entry gone from the log was compacted into a snapshot,
// which only happens after it was applied.
func fsmEntryBetween(logs *monotonicStore, from, to uint64) bool {
	for i := to; i > from; i-- {
		var l raft.Log
		if err := logs.GetLog(i, &l); err != nil {
			return false
		}
		if l.Type == raft.LogCommand || l.Type == raft.LogConfiguration {
			return true
		}
	}
	return false
}

// snapshotLoop takes a snapshot when the log holds SnapshotBytes of
// commands, on every node: each one compacts its own log.
func (n *Node) snapshotLoop() {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		n.mu.RLock()
		r, f := n.r, n.fsm
		n.mu.RUnlock()
		if f.logBytes.Load() < n.opts.SnapshotBytes {
			continue
		}
		if err := r.Snapshot().Error(); err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) {
			n.log.Warn("snapshot by log size failed", "err", err)
		}
	}
}

// expiryLoop: while leading, propose the expiry of keys whose TTL is over.
// Only the leader decides, so every replica agrees on when a key vanished.
func (n *Node) expiryLoop() {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		r := n.raft()
		if r.State() != raft.Leader || !n.leaderReady.Load() {
			continue
		}
		due := n.opts.State.Expired(time.Now(), 512)
		if len(due) == 0 {
			continue
		}
		if _, err := n.applyLocal(r, fsm.Command{Op: fsm.OpExpire, Expire: due}); err != nil {
			n.log.Warn("expiry proposal failed", "keys", len(due), "err", err)
		}
	}
}

// Close leaves gracefully: a leader hands leadership over first, then the
// node asks the leader to remove it, then Raft stops. Bounded by ctx.
func (n *Node) Close(ctx context.Context) error {
	if !n.stopping.CompareAndSwap(false, true) {
		return nil
	}
	// A restart in progress finishes first; none starts after this
	// (restart checks stopping under the same lock).
	n.restartMu.Lock()
	n.restartMu.Unlock() //nolint:staticcheck // an empty critical section: wait for a restart

	r := n.raft()
	id := n.ID()
	if n.member.Load() {
		cfg := r.GetConfiguration()
		others := 0
		if cfg.Error() == nil {
			for _, s := range cfg.Configuration().Servers {
				if s.ID != id && s.Suffrage == raft.Voter {
					others++
				}
			}
		}
		if others > 0 && r.State() == raft.Leader {
			if err := r.LeadershipTransfer().Error(); err != nil {
				n.log.Warn("leadership transfer failed", "err", err)
			}
		}
		// Leave: the leader retires this incarnation, keeping its place
		// with the replica's placeholder until the next incarnation is
		// promoted (membership.go).
		if others > 0 {
			n.leave(ctx, r, id)
		}
	}
	n.cancel()
	if n.rpc != nil {
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = n.rpc.Shutdown(sctx)
		cancel()
	}
	n.shutdownRaft()
	n.wg.Wait()
	n.log.Info("raft stopped", "id", id)
	return nil
}

// leave asks the leader to retire this incarnation, until it has or ctx
// ends. When this node knows no leader it asks every peer: a leader that
// already removed it (its answer was lost when that leader stepped down
// mid-retirement) no longer sends it anything, so it would never learn one;
// that leader answers at once, and only a leader acts on the request.
func (n *Node) leave(ctx context.Context, r *raft.Raft, id raft.ServerID) {
	for ctx.Err() == nil {
		if r.State() == raft.Leader {
			if err := n.retireByID(r, id, n.opts.Address); err == nil {
				n.log.Info("left the cluster", "id", id)
				return
			}
		} else if addr, _ := r.LeaderWithID(); addr != "" {
			if err := n.peer.leave(ctx, string(addr), id, n.opts.Address); err == nil {
				n.log.Info("left the cluster", "id", id)
				return
			}
		} else {
			for _, p := range n.opts.Peers {
				if p.Address == n.opts.Address {
					continue
				}
				// A paused or unreachable peer must not use up the deadline.
				pctx, cancel := context.WithTimeout(ctx, time.Second)
				err := n.peer.leave(pctx, p.Address, id, n.opts.Address)
				cancel()
				if err == nil {
					n.log.Info("left the cluster", "id", id, "via", p.Address)
					return
				}
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	n.log.Warn("could not leave the cluster before the deadline", "id", id)
}

// Member is one server of the configuration, as /v1/cluster shows it.
type Member struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Address  string `json:"address"`
	Suffrage string `json:"suffrage"`
	Leader   bool   `json:"leader"`
}

// Status describes the cluster as this node sees it.
type Status struct {
	Self         string `json:"self"`
	Leader       string `json:"leader"`
	State        string `json:"state"`
	ClusterID    string `json:"cluster_id"`
	Revision     int64  `json:"revision"`
	CommitIndex  uint64 `json:"commit_index"`
	AppliedIndex uint64 `json:"applied_index"`
	// SnapshotIndex is the last log index this node's latest snapshot covers.
	SnapshotIndex uint64   `json:"snapshot_index"`
	Members       []Member `json:"members"`
	// Quorum says why there is no leader, when there is none.
	Quorum QuorumReport `json:"quorum"`
	// Forks lists peers found in another cluster (it should stay empty).
	Forks []Fork `json:"forks,omitempty"`
}

// Status reports membership, leadership and progress.
func (n *Node) Status() Status {
	r := n.raft()
	_, lid := r.LeaderWithID()
	n.mu.RLock()
	applied := n.fsm.applied.Load()
	n.mu.RUnlock()
	st := Status{
		Self: string(n.ID()), Leader: string(lid), State: r.State().String(),
		ClusterID: n.clusterID.Load().(string), Revision: n.opts.State.Revision(),
		CommitIndex: r.CommitIndex(), AppliedIndex: applied, Members: []Member{},
	}
	st.SnapshotIndex, _ = strconv.ParseUint(r.Stats()["last_snapshot_index"], 10, 64)
	if q := n.quorum.Load(); q != nil {
		st.Quorum = *q
	}
	if lid != "" {
		st.Quorum = QuorumReport{State: QuorumOK}
	}
	if f := n.forks.Load(); f != nil {
		st.Forks = *f
	}
	if f := r.GetConfiguration(); f.Error() == nil {
		for _, s := range f.Configuration().Servers {
			suffrage := "voter"
			if s.Suffrage != raft.Voter {
				suffrage = "nonvoter"
			}
			st.Members = append(st.Members, Member{
				ID: string(s.ID), Name: nameOf(s.ID), Address: string(s.Address),
				Suffrage: suffrage, Leader: s.ID == lid,
			})
		}
	}
	return st
}

// Kill stops the node as a crash would: no leadership transfer, no leave.
// Tests use it to stand in for SIGKILL within one process.
func (n *Node) Kill() {
	if !n.stopping.CompareAndSwap(false, true) {
		return
	}
	n.restartMu.Lock()
	n.restartMu.Unlock() //nolint:staticcheck // an empty critical section: wait for a restart
	n.cancel()
	if n.rpc != nil {
		_ = n.rpc.Close()
	}
	n.shutdownRaft()
	n.wg.Wait()
}

// shutdownRaft stops the current Raft instance. Closing its stream layer
// first aborts the RPCs Raft's shutdown waits for: behind a partition, or
// in a pipeline to a dead follower, each would wait out its whole timeout.
func (n *Node) shutdownRaft() {
	n.mu.RLock()
	r, stream, stopped := n.r, n.stream, n.stopped
	n.mu.RUnlock()
	shutdown := r.Shutdown()
	_ = stream.Close()
	if err := shutdown.Error(); err != nil {
		n.log.Warn("raft shutdown", "err", err)
	}
	select {
	case <-stopped:
	default:
		close(stopped)
	}
}

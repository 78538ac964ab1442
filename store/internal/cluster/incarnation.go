package cluster

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/ephemeral-store/ephemeral-store/store/client/api"
)

// incarnation is everything that belongs to one Raft instance of this node:
// its server ID, Raft, stores and transport, how it joined, what it has
// learnt about its cluster, and its leadership. startRaft builds one whole
// and swaps it in with one store (Node.cur), as hashicorp/raft keeps its
// leaderState: nothing of an incarnation is reset by hand, and a caller
// that loaded one works on a consistent view of it to the end, even if a
// restart swaps in the next one meanwhile (its calls then fail on a Raft
// that is shut down, or change an incarnation nobody uses any more).
//
// What outlives incarnations (the state machine's contents, what the
// replica source reports, the node's name and address) stays on the Node.
type incarnation struct {
	// Set by startRaft before the incarnation is published, read-only
	// after. r is set last, after NewRaft, which already runs the guard
	// below: the guard reads r only once member is true, which join or
	// bootstrap sets on the published incarnation (after r).
	id      raft.ServerID
	r       *raft.Raft
	fsm     *raftFSM
	logs    *monotonicStore
	stream  raft.StreamLayer // closed to cut a shutdown short
	stopped chan struct{}    // closed when this Raft stops (stopOnce)
	// stopOnce closes stopped, once, whoever stops this incarnation first.
	stopOnce sync.Once

	// bootMu orders the bootstrap vote, commits, join and candidacy: an
	// incarnation bootstraps or joins at most once. member, vote,
	// clusterID, needBase and baseFloor are set only under it and read
	// atomically anywhere; the leadership watcher takes needBase without
	// it (CompareAndSwap).
	bootMu    sync.Mutex
	member    atomic.Bool            // part of a configuration (bootstrapped or added)
	vote      atomic.Pointer[ballot] // nil until it votes or stands
	clusterID atomic.Pointer[string] // nil until member; random, chosen at bootstrap
	// needBase: bootstrapped here, so its first leadership proposes
	// fsm.OpBase (taken by CompareAndSwap); baseFloor is the lowest base
	// revision the bootstrap candidate found for the new cluster
	// (revisions.go).
	needBase  atomic.Bool
	baseFloor atomic.Int64

	// joinMu guards what the leader that added this incarnation told it,
	// and how far its configuration has listed it (join, tendMembership,
	// replicationAllowed).
	joinMu sync.Mutex
	// joinedVia are the servers the leader named: replication is taken
	// from them until the log brings a configuration.
	joinedVia map[raft.ServerID]bool
	// joinTerm is that leader's term: replication from an older term is
	// refused.
	joinTerm  uint64
	catchUpTo uint64 // commit index at join: promotion once applied
	// seenSelfAt is the index of the newest configuration that listed
	// this incarnation (0: none yet).
	seenSelfAt uint64

	// lead is this Raft's latest takeover as leader (clock.go): set by its
	// leadership watcher once an entry of the term has committed, cleared
	// on every change of leadership. Reads and the cluster time trust it
	// only in the term it names.
	lead atomic.Pointer[takeover]

	// What discovery learnt (discovery.go, quorum.go).
	noLeaderSince atomic.Int64 // mono() when a leader was last known
	sawLeader     atomic.Bool  // a leader was known at least once
	// peerTrusted are servers that same-cluster peers vouch for (the
	// replication guard). newerVoters are the voters of a configuration
	// newer than this incarnation's own that a member of its cluster
	// reported: candidates it may vote for although its own configuration
	// does not list them (candidateVouched).
	peerTrusted atomic.Pointer[map[raft.ServerID]bool]
	newerVoters atomic.Pointer[map[raft.ServerID]bool]
	quorum      atomic.Pointer[api.QuorumReport]
	forks       atomic.Pointer[[]api.Fork]
}

// inc is the current incarnation. Load it once per operation: two loads
// may see two incarnations.
func (n *Node) inc() *incarnation { return n.cur.Load() }

// raft is the current incarnation's Raft, for callers that need nothing
// else of it.
func (n *Node) raft() *raft.Raft { return n.inc().r }

// ID is the current incarnation's Raft server ID.
func (n *Node) ID() raft.ServerID { return n.inc().id }

// cluster is the ID of the cluster this incarnation is a member of, "" for
// none yet.
func (inc *incarnation) cluster() string {
	if id := inc.clusterID.Load(); id != nil {
		return *id
	}
	return ""
}

// becomeMember records that this incarnation belongs to clusterID. bootMu
// is held.
func (inc *incarnation) becomeMember(clusterID string) {
	inc.clusterID.Store(&clusterID)
	inc.member.Store(true)
}

// ready reports whether this Raft leads in term with that term's first
// entry committed: the only leadership reads may be served by.
func (inc *incarnation) ready(term uint64) bool {
	t := inc.lead.Load()
	return t != nil && t.term == term
}

// self is this incarnation's entry in its own latest configuration, or nil.
func (inc *incarnation) self() *raft.Server {
	f := inc.r.GetConfiguration() // an atomic read, not a round trip
	if f.Error() != nil {
		return nil
	}
	return serverIn(f.Configuration(), inc.id)
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

func newIncarnation(name string) raft.ServerID {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return raft.ServerID(name + "/" + hex.EncodeToString(b[:]))
}

// startRaft starts a new incarnation: a new server ID, a fresh Raft
// instance with empty in-memory stores, nothing read from or written to
// disk. The previous one, if any, must be shut down already (restart).
func (n *Node) startRaft() error {
	inc := &incarnation{id: newIncarnation(n.opts.Name), stopped: make(chan struct{})}
	inc.noLeaderSince.Store(int64(n.mono()))

	cfg := raft.DefaultConfig()
	cfg.LocalID = inc.id
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
	cfg.CandidateVouched = inc.candidateVouched
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

	inc.logs = &monotonicStore{raft.NewInmemStore()}
	inc.fsm = newRaftFSM(n.opts.State)
	snaps := newSnapshotStore()
	// Counting the restored state's size is a full encode: off the state
	// machine's goroutine, over the immutable capture.
	inc.fsm.restored = func(index uint64, write func(io.Writer) error) { go snaps.shed(index, write) }
	inc.stream = n.opts.Mux.StreamLayer()
	trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  inc.stream,
		MaxPool: 3,
		// Pipelining at raft's default depth: up to 2 appends in flight per
		// follower, so the leader prepares and sends the next batch while
		// the previous one is answered (raft PR #541 measured 2 as the best
		// depth on a LAN with batching; deeper only splits batches).
		// v1.8.0 deadlocked a follower's replication when it refused a
		// pipelined append (hashicorp/raft#612: the follower got heartbeats
		// but never another entry, and the leader's Shutdown hung), so this
		// was 1 (no pipeline); patch 0006 of store/third_party/raft (see its
		// PATCH.md) closes the pipeline on a refusal and falls back to one
		// append at a time.
		MaxRPCsInFlight: raft.DefaultMaxRPCsInFlight,
		Timeout:         10 * time.Second,
		Logger:          cfg.Logger,
	})
	// The guard asks this incarnation, not whichever is current: a Raft
	// that is shutting down keeps judging by its own membership.
	guarded := newGuardedTransport(trans, inc.selfIsVoter, inc.replicationAllowed)
	r, err := raft.NewRaft(cfg, inc.fsm, inc.logs, inc.logs, snaps, guarded)
	if err != nil {
		return fmt.Errorf("start raft %s: %w", inc.id, err)
	}
	inc.r = r
	n.cur.Store(inc)
	// The gauges describe this incarnation, a member of nothing yet: the
	// previous one's values would count it as a voter (or the leader) in
	// the alerts until it joins again.
	n.setQuorum(inc, api.QuorumReport{State: api.QuorumElecting})
	n.opts.Metrics.observe(r, false)
	n.log.Info("raft started", "id", inc.id, "address", n.opts.Address)
	n.wg.Add(1)
	go func() { defer n.wg.Done(); n.watchLeadership(inc, notify) }()
	return nil
}

// shutdown stops this incarnation's Raft. Closing its stream layer first
// aborts the RPCs Raft's shutdown waits for: behind a partition, or in a
// pipeline to a dead follower, each would wait out its whole timeout.
func (inc *incarnation) shutdown() error {
	f := inc.r.Shutdown()
	_ = inc.stream.Close()
	err := f.Error()
	inc.stopOnce.Do(func() { close(inc.stopped) })
	return err
}

package cluster

import (
	"errors"
	"sync"

	"github.com/hashicorp/raft"
)

// errAmnesiac refuses Raft traffic that a fresh incarnation must not take.
var errAmnesiac = errors.New("this incarnation is not a member of that configuration")

// guardedTransport keeps a forgetful process out of elections and out of
// configurations it has not joined.
//
// hashicorp/raft lets a server with an empty log and no configuration grant
// its vote to any candidate, and accept entries from any leader that dials
// its address. A restarted pod is exactly such a server, at the address of
// its old incarnation: two restarted pods could hand a lagging candidate a
// majority and lose acknowledged writes, or an old leader could count the
// new process's acknowledgements as the old incarnation's. So:
//
//   - votes (RequestVote, RequestPreVote, TimeoutNow) are answered only by a
//     voter of its own latest configuration;
//   - replication (AppendEntries, heartbeats, InstallSnapshot) is accepted
//     only once this incarnation has bootstrapped or been added by a leader,
//     and only from a server of its own cluster: its configuration, or the
//     servers the leader named when it added this node. A leader of another
//     cluster that happens to list this address (a fork, a stale join) must
//     not write its log here. Nor may a leader of a term older than the
//     one that added this incarnation: a leader frozen (SIGSTOP, a paused
//     VM) and deposed meanwhile still lists this address, and before the
//     new leader's first append reaches this node it would take the old
//     leader's heartbeat as a follower, letting VerifyLeader pass through
//     it.
type guardedTransport struct {
	*raft.NetworkTransport
	canVote      func() bool
	canReplicate func(sender raft.ServerID, term uint64) bool

	out      chan raft.RPC
	done     chan struct{}
	doneOnce sync.Once
}

func newGuardedTransport(inner *raft.NetworkTransport, canVote func() bool, canReplicate func(raft.ServerID, uint64) bool) *guardedTransport {
	g := &guardedTransport{
		NetworkTransport: inner, canVote: canVote, canReplicate: canReplicate,
		out: make(chan raft.RPC), done: make(chan struct{}),
	}
	go g.filter()
	return g
}

func (g *guardedTransport) allowed(rpc raft.RPC) bool {
	switch c := rpc.Command.(type) {
	case *raft.RequestVoteRequest, *raft.RequestPreVoteRequest, *raft.TimeoutNowRequest:
		return g.canVote()
	case *raft.AppendEntriesRequest:
		return g.canReplicate(raft.ServerID(c.ID), c.Term)
	case *raft.InstallSnapshotRequest:
		return g.canReplicate(raft.ServerID(c.ID), c.Term)
	}
	return true
}

func (g *guardedTransport) filter() {
	in := g.NetworkTransport.Consumer()
	for {
		select {
		case <-g.done:
			return
		case rpc := <-in:
			if !g.allowed(rpc) {
				rpc.Respond(nil, errAmnesiac)
				continue
			}
			select {
			case g.out <- rpc:
			case <-g.done:
				rpc.Respond(nil, raft.ErrTransportShutdown)
				return
			}
		}
	}
}

// Consumer yields the RPCs that passed the guard.
func (g *guardedTransport) Consumer() <-chan raft.RPC { return g.out }

// SetHeartbeatHandler guards the fast path that heartbeats take around
// Consumer.
func (g *guardedTransport) SetHeartbeatHandler(cb func(rpc raft.RPC)) {
	if cb == nil {
		g.NetworkTransport.SetHeartbeatHandler(nil)
		return
	}
	g.NetworkTransport.SetHeartbeatHandler(func(rpc raft.RPC) {
		if !g.allowed(rpc) {
			rpc.Respond(nil, errAmnesiac)
			return
		}
		cb(rpc)
	})
}

// Close stops the filter and the transport.
func (g *guardedTransport) Close() error {
	g.doneOnce.Do(func() { close(g.done) })
	return g.NetworkTransport.Close()
}

// The incarnation's side of the guard: the predicates startRaft hands to
// newGuardedTransport.

// selfIsVoter: this incarnation is a member and a voter of its own latest
// configuration.
func (inc *incarnation) selfIsVoter() bool {
	if !inc.member.Load() {
		return false
	}
	s := inc.self()
	return s != nil && s.Suffrage == raft.Voter
}

// replicationAllowed: this incarnation is a member, sender is a server of
// its own cluster, and term is not older than the term of the leader that
// added this incarnation.
func (inc *incarnation) replicationAllowed(sender raft.ServerID, term uint64) bool {
	if !inc.member.Load() {
		return false
	}
	inc.joinMu.Lock()
	joined, joinTerm := inc.joinedVia, inc.joinTerm
	inc.joinMu.Unlock()
	if term < joinTerm {
		return false
	}
	var cfg raft.Configuration
	if f := inc.r.GetConfiguration(); f.Error() == nil {
		cfg = f.Configuration()
	}
	if senderKnown(cfg, joined, sender) {
		return true
	}
	if t := inc.peerTrusted.Load(); t != nil {
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

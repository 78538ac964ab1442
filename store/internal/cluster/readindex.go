package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// Linearizable reads by Raft's read index: the leader proves its commit
// index over a round of fresh heartbeats (shared by every read that arrived
// before the round started), a follower asks the leader for it (rpc.go,
// /peer/readindex), and both wait until they have applied that much. A
// leader vouches only for a term whose first entry it committed
// (incarnation.ready, set by watchLeadership in loops.go).

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
		inc := n.inc()
		var (
			idx uint64
			err error
		)
		if inc.r.State() == raft.Leader {
			idx, err = n.readIndex(ctx, inc)
		} else if addr := inc.r.Leader(); addr != "" {
			idx, err = n.sharedReadIndex(ctx, inc, string(addr))
		} else {
			err = errNotLeader
		}
		if err == nil {
			// Applied by the incarnation the index came from: a
			// successor may belong to another cluster, whose log
			// indexes say nothing about this one's. If it stops
			// first, the read starts over on its successor.
			if err = n.waitApplied(ctx, inc, idx); err == nil {
				return nil
			}
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
func (n *Node) readIndex(ctx context.Context, inc *incarnation) (uint64, error) {
	return n.sharedReadIndex(ctx, inc, "")
}

// sharedReadIndex joins the next read round: on the leader (leader "") a
// leadership check, on a follower one read-index request to the leader at
// that address. Reads that arrive while a round is in flight share the next
// one: a follower under load sends the leader one request per round trip,
// not one per read. A round started after a read arrived serves it, as the
// read index requires.
func (n *Node) sharedReadIndex(ctx context.Context, inc *incarnation, leader string) (uint64, error) {
	n.readMu.Lock()
	round := n.nextRead
	if round == nil || round.inc != inc || round.leader != leader {
		round = &readRound{inc: inc, leader: leader, done: make(chan struct{})}
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
	inc    *incarnation
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
		round.index, round.err = n.verifiedCommitIndex(round.inc)
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
func (n *Node) verifiedCommitIndex(inc *incarnation) (uint64, error) {
	r := inc.r
	term := r.CurrentTerm()
	if !inc.ready(term) {
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

// waitApplied blocks until inc has applied every state machine entry up to
// idx, or fails with errNotLeader when inc stops first. Entries the FSM
// never sees (no-ops, barriers) do not count, so it looks at the log
// between what the FSM applied and idx.
func (n *Node) waitApplied(ctx context.Context, inc *incarnation, idx uint64) error {
	f, r, logs := inc.fsm, inc.r, inc.logs
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
		case <-inc.stopped:
			return errNotLeader
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

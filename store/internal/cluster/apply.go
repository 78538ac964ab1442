package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"github.com/ephemeral-store/ephemeral-store/store/internal/fsm"
)

// Writes: Apply commits a command through the leader. On the leader it
// goes into the local Raft log (applyLocal); a follower forwards it over the
// peer channel, in a batch with the writes that arrived with it
// (forward.go). A write is retried only where it
// provably never entered a log.

// Apply commits a command through the leader and returns its result. A
// follower forwards it over the peer channel; the leader stamps it with its
// cluster time (clock.go).
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
		inc := n.inc()
		r := inc.r
		if r.State() == raft.Leader {
			res, err := n.applyLocal(inc, cmd)
			if !errors.Is(err, raft.ErrNotLeader) {
				return res, err
			}
		} else if addr, _ := r.LeaderWithID(); addr != "" {
			res, err := n.fwd.apply(ctx, string(addr), cmd)
			if !errors.Is(err, errNotLeader) && !errors.Is(err, errPeerUnreachable) {
				return res, err
			}
		}
		if err := n.waitForLeader(ctx); err != nil {
			return fsm.Result{}, err
		}
	}
}

// applyLocal proposes cmd to inc's Raft, which leads (or did a moment ago).
func (n *Node) applyLocal(inc *incarnation, cmd fsm.Command) (fsm.Result, error) {
	release, err := n.admit(cmd)
	if err != nil {
		return fsm.Result{}, err // never proposed
	}
	defer release()
	clock, _ := inc.clusterTime() // unstamped before the takeover
	cmd.PrepareOnLeader(clock, n.opts.Wall())
	b, err := cmd.Encode()
	if err != nil {
		return fsm.Result{}, err
	}
	f := inc.r.Apply(b, n.opts.ApplyTimeout)
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
		if inc := n.inc(); inc.member.Load() && inc.r.Leader() != "" {
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

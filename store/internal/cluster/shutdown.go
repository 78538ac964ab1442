package cluster

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// Stopping: Close is the graceful exit (leadership transfer, leave, then
// Raft stops); Kill stops as a crash would (tests use it for SIGKILL). Both
// stop the current incarnation (incarnation.shutdown), as restart does
// (quorum.go).

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

	inc := n.inc()
	r, id := inc.r, inc.id
	if inc.member.Load() {
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
		// promoted (membership.go). A pod scaled away (its ordinal beyond
		// the count its source reports now) asks to be removed instead:
		// no next incarnation will come (replicas.go).
		if others > 0 {
			remove := n.beyondCountNow(ctx)
			if remove {
				n.log.Info("leaving for good: this replica's ordinal is beyond the replica count", "ordinal", n.opts.Ordinal, "replicas", n.sourceReplicas.Load())
			}
			n.leave(ctx, inc, remove)
		}
	}
	n.cancel()
	if n.rpc != nil {
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = n.rpc.Shutdown(sctx)
		cancel()
	}
	n.shutdownRaft(inc)
	n.wg.Wait()
	n.log.Info("raft stopped", "id", id)
	return nil
}

// leave asks the leader to retire incarnation inc, until it has or ctx
// ends. When this node knows no leader it asks every peer: a leader that
// already removed it (its answer was lost when that leader stepped down
// mid-retirement) no longer sends it anything, so it would never learn one;
// that leader answers at once, and only a leader acts on the request.
func (n *Node) leave(ctx context.Context, inc *incarnation, remove bool) {
	r, id := inc.r, inc.id
	for ctx.Err() == nil {
		if r.State() == raft.Leader {
			if err := n.leaveByID(ctx, inc, id, n.opts.Address, remove); err == nil {
				n.log.Info("left the cluster", "id", id)
				return
			}
		} else if addr, _ := r.LeaderWithID(); addr != "" {
			if err := n.peer.leave(ctx, string(addr), id, n.opts.Address, remove); err == nil {
				n.log.Info("left the cluster", "id", id)
				return
			}
		} else {
			for _, addr := range n.otherPeers() {
				// A paused or unreachable peer must not use up the deadline.
				pctx, cancel := context.WithTimeout(ctx, time.Second)
				err := n.peer.leave(pctx, addr, id, n.opts.Address, remove)
				cancel()
				if err == nil {
					n.log.Info("left the cluster", "id", id, "via", addr)
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
	n.shutdownRaft(n.inc())
	n.wg.Wait()
}

// shutdownRaft stops incarnation inc (Close, Kill, restart).
func (n *Node) shutdownRaft(inc *incarnation) {
	if err := inc.shutdown(); err != nil {
		n.log.Warn("raft shutdown", "err", err)
	}
}

// TransferLeadershipTo hands this leader's leadership to the voter to (a
// server ID of the configuration), as a graceful exit does to any voter.
// Tests use it to put a chosen node in charge.
func (n *Node) TransferLeadershipTo(to raft.ServerID) error {
	r := n.raft()
	f := r.GetConfiguration()
	if err := f.Error(); err != nil {
		return fmt.Errorf("leadership transfer to %s: %w", to, err)
	}
	for _, s := range f.Configuration().Servers {
		if s.ID == to && s.Suffrage == raft.Voter {
			if err := r.LeadershipTransferToServer(s.ID, s.Address).Error(); err != nil {
				return fmt.Errorf("leadership transfer to %s: %w", to, err)
			}
			return nil
		}
	}
	return fmt.Errorf("leadership transfer to %s: not a voter of this node's configuration", to)
}

package cluster

import (
	"errors"
	"time"

	"github.com/hashicorp/raft"

	"github.com/ephemeral-store/ephemeral-store/store/internal/fsm"
)

// The node's background loops besides discovery (discovery.go): each
// incarnation's leadership watcher, and, for the node's whole life, TTL
// expiry proposals on the leader and snapshots by log size.

// watchLeadership follows inc's leadership until its Raft stops. A new
// leader is made usable for reads only once an entry of its own term has
// committed (the Barrier), as the read-index rule requires.
func (n *Node) watchLeadership(inc *incarnation, notify <-chan bool) {
	r := inc.r
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-inc.stopped:
			return // this incarnation is over; the next has its own watcher
		case leader, ok := <-notify:
			if !ok {
				return
			}
			inc.lead.Store(nil)
			n.opts.Metrics.LeaderChanges.Inc()
			if !leader {
				continue
			}
			term := r.CurrentTerm()
			if err := r.Barrier(n.opts.ApplyTimeout).Error(); err != nil {
				n.log.Warn("barrier after election failed", "err", err)
				continue
			}
			if r.State() != raft.Leader || r.CurrentTerm() != term {
				continue
			}
			n.takeOver(inc, term)
			n.log.Info("leading", "id", inc.id)
			// Every bootstrapper may lead first; only a leader that
			// finds the state untouched raises the base.
			if inc.needBase.CompareAndSwap(true, false) && n.opts.State.Revision() == 0 {
				if _, err := n.applyLocal(inc, n.newBase(inc)); err != nil {
					n.log.Warn("base revision of the new cluster not set", "err", err)
				}
			}
		}
	}
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
		inc := n.inc()
		if inc.fsm.logBytes.Load() < n.opts.SnapshotBytes {
			continue
		}
		if err := inc.r.Snapshot().Error(); err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) {
			n.log.Warn("snapshot by log size failed", "err", err)
		}
	}
}

// expiryLoop: while leading, propose the expiry of keys whose TTL is over
// on the leader's cluster time, and keep the replicated clock within a
// clockTick of it. Only the leader decides, so every replica agrees on when
// a key vanished.
func (n *Node) expiryLoop() {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		inc := n.inc()
		if inc.r.State() != raft.Leader {
			continue
		}
		now, ok := inc.clusterTime() // false unless it took over in this term

		if !ok {
			continue
		}
		due := n.opts.State.Expired(now, 512)
		if len(due) == 0 {
			// Unstamped TTLs start at the next stamp: give them one now.
			if now-n.opts.State.Clock() >= clockTick || n.opts.State.PendingTTLs() > 0 {
				if _, err := n.applyLocal(inc, fsm.Command{Op: fsm.OpClock}); err != nil {
					n.log.Debug("cluster time proposal failed", "err", err)
				}
			}
			continue
		}
		if _, err := n.applyLocal(inc, fsm.Command{Op: fsm.OpExpire, Expire: due}); err != nil {
			n.log.Warn("expiry proposal failed", "keys", len(due), "err", err)
		}
	}
}

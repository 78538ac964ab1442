package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// discoveryLoop brings the node into a cluster and keeps it there:
// join a cluster some peer belongs to, or bootstrap one when none exists
// and this node has the lowest ordinal that answers; once a member, watch
// for removal, promotion and quorum loss.
func (n *Node) discoveryLoop() {
	var lowerSilentSince time.Time
	for {
		if n.member.Load() {
			lowerSilentSince = time.Time{}
			n.tendMembership()
		} else {
			lowerSilentSince = n.seekCluster(lowerSilentSince)
		}
		select {
		case <-n.ctx.Done():
			return
		case <-time.After(n.opts.JoinRetry):
		}
	}
}

// probe asks every other peer for its status, in parallel; silent peers are
// left out.
func (n *Node) probe() map[Peer]statusResponse {
	ctx, cancel := context.WithTimeout(n.ctx, n.opts.JoinRetry+time.Second)
	defer cancel()
	var (
		mu  sync.Mutex
		wg  sync.WaitGroup
		out = make(map[Peer]statusResponse)
	)
	for _, p := range n.opts.Peers {
		if p.Address == n.opts.Address {
			continue
		}
		wg.Add(1)
		go func(p Peer) {
			defer wg.Done()
			st, err := n.peer.status(ctx, p.Address)
			if err != nil {
				return
			}
			mu.Lock()
			out[p] = st
			mu.Unlock()
		}(p)
	}
	wg.Wait()
	return out
}

// seekCluster is one discovery round of a node that is not a member.
func (n *Node) seekCluster(lowerSilentSince time.Time) time.Time {
	statuses := n.probe()
	anyMember := false
	for _, st := range statuses {
		if !st.Member {
			continue
		}
		anyMember = true
		if st.LeaderAddr == "" {
			continue
		}
		if err := n.join(st.LeaderAddr); err != nil {
			n.log.Info("join failed, will retry", "via", st.LeaderAddr, "err", err)
			continue
		}
		return time.Time{}
	}
	if anyMember {
		// A cluster exists but is electing or has lost quorum: its members
		// decide. Never bootstrap while any peer answers as a member.
		return time.Time{}
	}
	lowest := n.opts.Ordinal
	for p := range statuses {
		if p.Ordinal < lowest {
			lowest = p.Ordinal
		}
	}
	if lowest < n.opts.Ordinal {
		return time.Time{} // a lower ordinal answers: it bootstraps
	}
	// Bootstrap at once only when every peer answered that it is not a
	// member. A silent peer may be a member this node cannot reach yet (a
	// slow network, a lagging NetworkPolicy): ordinal 0 waits a short grace,
	// the others a long one, since a slow pod-0 is likelier than a dead one.
	if silent := len(n.opts.Peers) - 1 - len(statuses); silent > 0 {
		grace := n.opts.BootstrapGrace
		if n.opts.Ordinal == 0 {
			grace = min(grace, 5*n.opts.JoinRetry)
		}
		if lowerSilentSince.IsZero() {
			return time.Now()
		}
		if time.Since(lowerSilentSince) < grace {
			return lowerSilentSince
		}
	}
	n.bootstrap()
	return time.Time{}
}

func (n *Node) bootstrap() {
	r := n.raft()
	id := n.ID()
	err := r.BootstrapCluster(raft.Configuration{Servers: []raft.Server{{
		Suffrage: raft.Voter, ID: id, Address: raft.ServerAddress(n.opts.Address),
	}}}).Error()
	if err != nil {
		n.log.Error("bootstrap failed", "err", err)
		return
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	n.clusterID.Store(hex.EncodeToString(b[:]))
	n.member.Store(true)
	n.needBase.Store(true)
	n.log.Info("bootstrapped a new cluster", "id", id, "cluster", n.clusterID.Load())
}

func (n *Node) join(leaderAddr string) error {
	ctx, cancel := context.WithTimeout(n.ctx, 10*time.Second)
	defer cancel()
	var resp joinResponse
	req := joinRequest{ID: string(n.ID()), Address: n.opts.Address}
	if err := n.peer.call(ctx, "POST", leaderAddr, "/peer/join", req, &resp); err != nil {
		return err
	}
	n.clusterID.Store(resp.ClusterID)
	n.mu.Lock()
	n.catchUpTo = resp.CommitIndex
	n.seenSelf = false
	n.mu.Unlock()
	n.member.Store(true)
	n.log.Info("joined as non-voter", "id", n.ID(), "via", leaderAddr, "catch_up_to", resp.CommitIndex)
	return nil
}

// tendMembership is one round of a member: notice removal, ask for
// promotion once caught up, and detect a quorum lost for good.
func (n *Node) tendMembership() {
	if n.stopping.Load() {
		return
	}
	r := n.raft()
	id := n.ID()
	if addr, _ := r.LeaderWithID(); addr != "" {
		n.noLeaderSince.Store(time.Now().UnixNano())
	}
	self := n.self()
	cfg := r.GetConfiguration()
	n.mu.Lock()
	if self != nil {
		n.seenSelf = true
	}
	seen, target := n.seenSelf, n.catchUpTo
	n.mu.Unlock()
	n.opts.Metrics.observe(r, self != nil && self.Suffrage == raft.Voter)

	switch {
	case self == nil && seen:
		// Removed from the configuration (by an operator, or as a stale
		// incarnation): start over as a new incarnation and join again.
		n.log.Warn("removed from the cluster configuration; rejoining as a new incarnation", "id", id)
		n.restart("removed")
		return
	case self != nil && self.Suffrage != raft.Voter:
		if n.fsm.applied.Load() >= target {
			if addr, _ := r.LeaderWithID(); addr != "" {
				ctx, cancel := context.WithTimeout(n.ctx, 5*time.Second)
				err := n.peer.call(ctx, "POST", string(addr), "/peer/promote", joinRequest{ID: string(id), Address: n.opts.Address}, nil)
				cancel()
				if err != nil {
					n.log.Info("promotion not yet possible", "err", err)
				}
			}
		}
	}

	if without := time.Since(time.Unix(0, n.noLeaderSince.Load())); without > n.opts.QuorumLossTimeout && cfg.Error() == nil {
		n.checkQuorumLoss(cfg.Configuration(), without)
	}
}

// checkQuorumLoss re-forms the cluster when a majority of the voters'
// incarnations are confirmed gone: they answer with another incarnation or
// not at all. Those incarnations can never vote again (a restarted pod has
// forgotten its log), so waiting longer cannot help.
func (n *Node) checkQuorumLoss(cfg raft.Configuration, withoutLeader time.Duration) {
	// Silence alone is not proof: a partition or a node busy installing a
	// snapshot is silent too. A voter is gone when its address answers with
	// another incarnation; a silent one counts as gone only after three
	// quorum-loss timeouts without a leader.
	silentIsGone := withoutLeader > 3*n.opts.QuorumLossTimeout
	ctx, cancel := context.WithTimeout(n.ctx, n.opts.JoinRetry+2*time.Second)
	defer cancel()
	voters, alive := 0, 0
	for _, s := range cfg.Servers {
		if s.Suffrage != raft.Voter {
			continue
		}
		voters++
		if s.ID == n.ID() {
			alive++
			continue
		}
		st, err := n.peer.status(ctx, string(s.Address))
		switch {
		case err == nil && st.ID == string(s.ID):
			alive++
		case err != nil && !silentIsGone:
			alive++ // unknown yet: give it the benefit of the doubt
		}
	}
	if voters == 0 || alive > voters/2 {
		n.log.Warn("no leader, but a majority of the voters may still be alive; waiting",
			"voters", voters, "alive_or_silent", alive, "without_leader", withoutLeader.String())
		return
	}
	n.log.Error("QUORUM LOST FOR GOOD: the data of this cluster is gone; re-forming an empty cluster",
		"voters", voters, "alive", alive, "waited", n.opts.QuorumLossTimeout.String())
	n.opts.Metrics.DataLossEvents.Inc()
	n.restart("quorum lost")
}

// restart replaces the Raft instance with a new incarnation and empties the
// state machine: a new incarnation starts from nothing, and whatever the
// cluster holds comes back through the log or a snapshot when it joins
// (replaying a young log onto the old map would apply it twice).
func (n *Node) restart(reason string) {
	if n.stopping.Load() {
		return // Close or Kill owns the Raft instance now
	}
	if err := n.raft().Shutdown().Error(); err != nil {
		n.log.Warn("raft shutdown", "err", err)
	}
	n.opts.State.Reset()
	if err := n.startRaft(); err != nil {
		// Without Raft this node can do nothing useful; the probes fail and
		// Kubernetes restarts the pod.
		n.log.Error("cannot restart raft", "reason", reason, "err", err)
		n.cancel()
		return
	}
	n.clusterID.Store("")
	n.log.Info("raft restarted", "reason", reason, "id", n.ID())
}

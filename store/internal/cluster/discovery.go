package cluster

import (
	"context"
	"time"

	"github.com/hashicorp/raft"

	"github.com/ephemeral-store/ephemeral-store/store/client/api"
)

// discoveryLoop brings the node into a cluster and keeps it there: join a
// cluster some peer belongs to, or take part in the bootstrap vote when no
// peer is a member; once a member, watch for removal, promotion, forks and
// quorum loss.
func (n *Node) discoveryLoop() {
	for {
		if inc := n.inc(); inc.member.Load() {
			n.tendMembership(inc)
		} else {
			n.seekCluster()
		}
		select {
		case <-n.ctx.Done():
			return
		case <-time.After(n.opts.JoinRetry):
		}
	}
}

// probe asks every other configured peer for its status, in parallel;
// silent peers are left out.
func (n *Node) probe() map[Peer]statusResponse {
	ctx, cancel := context.WithTimeout(n.ctx, n.opts.JoinRetry+time.Second)
	defer cancel()
	targets := n.probeTargets()
	addrs := make([]string, len(targets))
	for i, p := range targets {
		addrs[i] = p.Address
	}
	answers := fanOut(addrs, func(addr string) (statusResponse, bool) {
		st, err := n.peer.status(ctx, addr)
		return st, err == nil && st.Address == addr
	})
	out := make(map[Peer]statusResponse, len(answers))
	for _, p := range targets {
		if st, ok := answers[p.Address]; ok {
			out[p] = st
		}
	}
	return out
}

// seekCluster is one discovery round of a node that is not a member: join
// through a member that knows its leader; with no member in sight, the
// lowest ordinal among the non-members that answer runs for bootstrap.
func (n *Node) seekCluster() {
	if n.replicas() == 0 {
		n.logWaiting("replicas", "the replica count is not known yet (its source has not answered); waiting")
		return
	}
	inc := n.inc() // a non-member: no restart replaces it meanwhile
	statuses := n.probe()
	members := 0
	for _, st := range statuses {
		if !st.Member {
			continue
		}
		members++
		if st.LeaderAddr == "" {
			continue
		}
		if err := n.join(inc, st.LeaderAddr); err != nil {
			n.log.Info("join failed, will retry", "via", st.LeaderAddr, "err", err)
			continue
		}
		return
	}
	if members > 0 {
		// A cluster exists but is electing or has lost its quorum: its
		// members decide. Never bootstrap while any peer answers as one.
		n.logWaiting("join", "members answer but know no leader; waiting to join", "members", members)
		return
	}
	if !n.configured(n.opts.Address) {
		// Scaled away (or not yet scaled up to): never a candidate.
		n.logWaiting("join", "this replica's ordinal is beyond the replica count; it may only join", "replicas", n.replicas())
		return
	}
	n.answering.Store(int32(1 + len(statuses)))
	for p, st := range statuses {
		// A lower ordinal that answers runs and this node votes, unless it
		// sees too few replicas to run (one side of a bridge partition).
		if p.Ordinal < n.opts.Ordinal && st.Answering >= n.majority() {
			return
		}
	}
	if answered := 1 + len(statuses); answered < n.majority() {
		n.logWaiting("bootstrap", "too few replicas answer to bootstrap a new cluster; waiting",
			"answering", answered, "needed", n.majority(), "replicas", n.replicas())
		return
	}
	n.runCandidacy(inc, statuses, false)
}

// join asks the leader at leaderAddr to add incarnation inc. It holds
// inc.bootMu throughout, so a bootstrap commit cannot make inc a member of
// another cluster while the leader adds it to its own.
func (n *Node) join(inc *incarnation, leaderAddr string) error {
	inc.bootMu.Lock()
	defer inc.bootMu.Unlock()
	if inc.member.Load() {
		return nil
	}
	ctx, cancel := context.WithTimeout(n.ctx, 10*time.Second)
	defer cancel()
	var resp joinResponse
	req := joinRequest{ID: string(inc.id), Address: n.opts.Address}
	if err := n.peer.call(ctx, "POST", leaderAddr, "/peer/join", req, &resp); err != nil {
		return err
	}
	joined := map[raft.ServerID]bool{}
	for _, id := range resp.Servers {
		joined[raft.ServerID(id)] = true
	}
	inc.joinMu.Lock()
	inc.catchUpTo = resp.CommitIndex
	inc.joinedVia = joined
	inc.joinTerm = resp.Term
	inc.joinMu.Unlock()
	inc.becomeMember(resp.ClusterID)
	n.log.Info("joined as non-voter", "id", inc.id, "via", leaderAddr, "cluster", resp.ClusterID, "catch_up_to", resp.CommitIndex)
	return nil
}

// tendMembership is one round of member inc: notice removal, ask for
// promotion once caught up, look out for forks, and decide about a quorum
// that may be lost.
func (n *Node) tendMembership(inc *incarnation) {
	if n.stopping.Load() {
		return
	}
	r, id := inc.r, inc.id
	leaderAddr, _ := r.LeaderWithID()
	if leaderAddr != "" {
		inc.noLeaderSince.Store(int64(n.mono()))
		inc.sawLeader.Store(true)
		n.setQuorum(inc, api.QuorumReport{State: api.QuorumOK})
	}
	cfg := r.GetConfiguration()
	var self *raft.Server
	if cfg.Error() == nil {
		self = serverIn(cfg.Configuration(), id)
	}
	inc.joinMu.Lock()
	if self != nil {
		inc.seenSelfAt = max(inc.seenSelfAt, cfg.Index())
	}
	seenAt, target := inc.seenSelfAt, inc.catchUpTo
	inc.joinMu.Unlock()
	if cfg.Error() == nil {
		n.noteVoters(inc.cluster(), cfg.Configuration(), n.replicas())
	}
	n.opts.Metrics.observe(r, self != nil && self.Suffrage == raft.Voter)

	switch {
	case cfg.Error() == nil && removedFromConfiguration(self != nil, seenAt, cfg.Index()):
		// Removed from the configuration (by an operator, or as a stale
		// incarnation): start over as a new incarnation and join again.
		// Only a configuration newer than the one that listed this
		// incarnation says so: a snapshot the leader still sent to the
		// old incarnation at this address (its replication stops only once
		// the retirement commits) carries an older configuration without
		// this one, and reverting to it is no removal. The partition tier
		// caught a node wiping itself on such a snapshot, which cost a
		// majority its data.
		n.log.Warn("removed from the cluster configuration; rejoining as a new incarnation", "id", id,
			"configuration_index", cfg.Index(), "last_listed_at", seenAt)
		n.restart("removed", inc)
		return
	case self != nil && r.State() == raft.Leader:
		n.tendReplicaCount(inc)
		n.restoreLostPlaceholders(r)
	case self != nil && self.Suffrage != raft.Voter && leaderAddr != "":
		if inc.fsm.applied.Load() >= target {
			ctx, cancel := context.WithTimeout(n.ctx, 5*time.Second)
			err := n.peer.call(ctx, "POST", string(leaderAddr), "/peer/promote", joinRequest{ID: string(id), Address: n.opts.Address}, nil)
			cancel()
			if err != nil {
				n.log.Info("promotion not yet possible", "err", err)
			}
		}
	}

	without := n.mono() - time.Duration(inc.noLeaderSince.Load())
	probeDue := n.mono()-time.Duration(n.lastForkProbe.Load()) >= forkProbeEvery
	if (leaderAddr == "" && without > n.opts.QuorumLossTimeout) || probeDue {
		n.lastForkProbe.Store(int64(n.mono()))
		statuses := n.probe()
		inc.trustPeersOfThisCluster(statuses)
		if n.resolveFork(inc, statuses) {
			return
		}
		if leaderAddr == "" && without > n.opts.QuorumLossTimeout && cfg.Error() == nil {
			n.checkQuorumLoss(inc, cfg.Configuration(), cfg.Index(), statuses, without)
		}
	}
}

// removedFromConfiguration: this incarnation is not listed in the
// configuration at index, and a configuration older than it (at seenAt)
// did list it. An older configuration without it (a snapshot meant for the
// previous incarnation at this address) proves nothing.
func removedFromConfiguration(listed bool, seenAt, index uint64) bool {
	return !listed && seenAt > 0 && index > seenAt
}

// forkProbeEvery is how often a healthy member asks its peers which
// cluster they belong to.
const forkProbeEvery = 5 * time.Second

// logWaiting logs why a node waits, at most once per quorum-loss timeout
// for each topic, so a long wait stays visible without flooding the log.
// Waiting to join or bootstrap is how every cluster forms, nodes starting
// one after another: the first record of those is info, and only a wait
// that outlasts a quorum-loss timeout is a warning. Waiting for quorum
// comes after a quorum-loss timeout without a leader already: a warning.
func (n *Node) logWaiting(topic, msg string, args ...any) {
	n.waitLogMu.Lock()
	last, ok := n.waitLogAt[topic]
	now := n.mono()
	if ok && now-last < n.opts.QuorumLossTimeout {
		n.waitLogMu.Unlock()
		return
	}
	n.waitLogAt[topic] = now
	n.waitLogMu.Unlock()
	if !ok && topic != "quorum" {
		n.log.Info(msg, args...)
		return
	}
	n.log.Warn(msg, args...)
}

// trustPeersOfThisCluster records the voters and leaders that members of
// this incarnation's cluster report, so the replication guard takes entries
// from a leader that joined while it was cut off.
func (inc *incarnation) trustPeersOfThisCluster(statuses map[Peer]statusResponse) {
	mine := inc.cluster()
	trusted := map[raft.ServerID]bool{}
	for _, st := range statuses {
		if !st.Member || st.ClusterID != mine || mine == "" {
			continue
		}
		if st.LeaderID != "" {
			trusted[raft.ServerID(st.LeaderID)] = true
		}
		for _, v := range st.Voters {
			trusted[raft.ServerID(v)] = true
		}
	}
	inc.peerTrusted.Store(&trusted)
	inc.noteNewerVoters(statuses)
}

// noteNewerVoters records the voters of the newest configuration that a
// member of this node's cluster reports, when it is newer than this node's
// own. A voter cut off while its cluster replaced incarnations holds a
// configuration that lacks them; Raft refuses a vote to a candidate its
// configuration does not list, so without this it refuses the only
// candidates that can win (the replacements hold the newest log) and the
// cluster never elects again (the composed partition-restarts schedule).
// Granting such a vote is safe: Raft's safety rests on a candidate's log
// being up to date and on one vote per term, both still checked; the
// membership test only keeps removed servers from disrupting elections,
// and these candidates are voters of the cluster's newest configuration.
func (inc *incarnation) noteNewerVoters(statuses map[Peer]statusResponse) {
	mine := inc.cluster()
	f := inc.r.GetConfiguration()
	if mine == "" || f.Error() != nil {
		inc.newerVoters.Store(nil)
		return
	}
	byAddr := map[string]statusResponse{}
	for p, st := range statuses {
		byAddr[p.Address] = st
	}
	cfg, by := newestConfiguration(f.Configuration(), f.Index(), mine, byAddr)
	if by == "self" {
		inc.newerVoters.Store(nil)
		return
	}
	voters := map[raft.ServerID]bool{}
	for _, s := range cfg.Servers {
		voters[s.ID] = true
	}
	inc.newerVoters.Store(&voters)
}

// candidateVouched is raft's Config.CandidateVouched (the vouched
// candidates patch): id is a voter of a newer configuration of this
// incarnation's cluster.
func (inc *incarnation) candidateVouched(id raft.ServerID) bool {
	v := inc.newerVoters.Load()
	return v != nil && (*v)[id] && !isPlaceholder(id)
}

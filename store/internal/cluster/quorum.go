package cluster

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/hashicorp/raft"

	"github.com/ephemeral-store/ephemeral-store/store/client/api"
)

// ErrReformRefused: a forced reform was asked of a node that must not do it
// (it knows a leader, it is not a member, or the confirmation is wrong).
var ErrReformRefused = errors.New("reform refused")

// setQuorum records inc's quorum report and sets the gauges from it, unless
// a restart replaced inc meanwhile: the gauges describe the current one.
func (n *Node) setQuorum(inc *incarnation, q api.QuorumReport) {
	inc.quorum.Store(&q)
	if n.inc() != inc {
		return
	}
	waiting := 0.0
	if q.State == api.QuorumWaiting {
		waiting = 1
	}
	n.opts.Metrics.WaitingForVoters.Set(waiting)
	n.opts.Metrics.SilentVoters.Set(float64(len(q.Silent)))
}

// checkQuorumLoss re-forms the cluster only on proof that a majority of
// its voters can never vote again. A voter is gone when its address answers
// with another incarnation ID as a non-member or as a member of another
// cluster; a placeholder never had a process. Silence proves nothing (a
// partition, a paused process and a frozen machine are all silent), so a
// silent voter counts as alive however long it stays silent, and no timer
// alone ever throws data away. The voters are those of the newest
// configuration that this node or any answering member of its cluster
// holds (cfgIndex is the log index of cfg): a node that was cut off judges
// by what its cluster decided meanwhile, not by its own stale copy.
func (n *Node) checkQuorumLoss(inc *incarnation, cfg raft.Configuration, cfgIndex uint64, statuses map[Peer]statusResponse, without time.Duration) {
	byAddr := map[string]statusResponse{}
	for p, st := range statuses {
		byAddr[p.Address] = st
	}
	me, myCluster := inc.id, inc.cluster()
	if st, ok := peerFollowingLeader(statuses, myCluster); ok {
		// The cluster lives; this node is cut off from its leader or
		// behind. Raft brings it back when the leader reaches it.
		n.logWaiting("quorum", "no leader reaches this node, but a peer follows one; waiting",
			"peer", st.ID, "leader", st.LeaderID, "without_leader", without.Round(time.Second).String())
		n.setQuorum(inc, api.QuorumReport{State: api.QuorumElecting, WithoutLeaderSeconds: without.Seconds()})
		return
	}
	cfg, newestBy := newestConfiguration(cfg, cfgIndex, myCluster, byAddr)
	voters, alive, silent, gone := classifyVoters(cfg, me, myCluster, byAddr)
	report := api.QuorumReport{State: api.QuorumWaiting, Silent: silent, Gone: gone, WithoutLeaderSeconds: without.Seconds()}
	if voters == 0 || alive > voters/2 {
		if len(silent) == 0 {
			report.State = api.QuorumElecting
		}
		n.setQuorum(inc, report)
		n.logWaiting("quorum", "no leader, but a majority of the voters may still be alive; waiting (silent voters may be partitioned or paused; an operator who knows they are dead can run `ephemeral-store cluster reform`)",
			"voters", voters, "alive_or_silent", alive, "silent", silent, "gone", gone,
			"configuration_from", newestBy, "without_leader", without.Round(time.Second).String())
		return
	}
	// The answers also show that a majority of the replicas agree: the gone
	// voters' replicas answered as other incarnations, and together with
	// this node they are a majority of the replica count.
	if answered := 1 + len(statuses); answered < n.majority() {
		n.setQuorum(inc, report)
		n.logWaiting("quorum", "a majority of the voters is gone, but too few replicas answer to agree; waiting",
			"answering", answered, "needed", n.majority())
		return
	}
	n.loseData(inc, "quorum lost", "QUORUM LOST FOR GOOD: the data of this cluster is gone; re-forming an empty cluster",
		"voters", voters, "alive_or_silent", alive, "gone", gone, "configuration_from", newestBy,
		"without_leader", without.Round(time.Second).String())
}

// newestConfiguration returns the newest configuration among cfg (this
// node's, written at log index cfgIndex) and those that answering members
// of myCluster report, and who reported it ("self" for this node's own).
// A member that was partitioned while its cluster replaced incarnations
// holds voters that are long gone; only the newest configuration says who
// votes now. Peers of an older version report no configuration and are
// not consulted.
func newestConfiguration(cfg raft.Configuration, cfgIndex uint64, myCluster string, byAddr map[string]statusResponse) (raft.Configuration, string) {
	by := "self"
	for _, st := range byAddr {
		if !st.Member || st.ClusterID != myCluster || myCluster == "" || len(st.Configuration) == 0 || st.ConfigIndex <= cfgIndex {
			continue
		}
		newer := raft.Configuration{}
		for _, s := range st.Configuration {
			newer.Servers = append(newer.Servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(s.ID), Address: raft.ServerAddress(s.Address)})
		}
		cfg, cfgIndex, by = newer, st.ConfigIndex, st.ID
	}
	return cfg, by
}

// classifyVoters sorts the voters of cfg by what the answers in byAddr
// (keyed by address) prove. alive counts this node, the voters whose
// address answers as a member of this cluster (under any incarnation: a
// member of the same cluster is never proof that a vote is lost, its
// configuration may simply be newer than cfg), and the silent ones:
// silence is never proof. gone lists voters proven unable to vote again:
// placeholders, and addresses that answer as a non-member or as a member
// of another cluster.
func classifyVoters(cfg raft.Configuration, me raft.ServerID, myCluster string, byAddr map[string]statusResponse) (voters, alive int, silent, gone []string) {
	for _, s := range cfg.Servers {
		if s.Suffrage != raft.Voter {
			continue
		}
		voters++
		if s.ID == me {
			alive++
			continue
		}
		if isPlaceholder(s.ID) {
			gone = append(gone, string(s.ID))
			continue
		}
		st, answered := byAddr[string(s.Address)]
		switch {
		case !answered:
			alive++
			silent = append(silent, string(s.ID))
		case st.Member && st.ClusterID == myCluster && myCluster != "":
			alive++
		default:
			gone = append(gone, string(s.ID))
		}
	}
	return voters, alive, silent, gone
}

// loseData empties this node and starts it over as a fresh incarnation in
// place of inc, counting a data-loss event when the cluster it leaves ever
// had a leader (inc saw one, or this node applied state a leader wrote: a
// new cluster's first leader always writes its base revision).
func (n *Node) loseData(inc *incarnation, reason, msg string, args ...any) {
	args = append(args, "id", inc.id, "cluster", inc.cluster())
	n.log.Error(msg, args...)
	hadData := inc.sawLeader.Load() || n.opts.State.Revision() > 0
	if n.restart(reason, inc) && hadData {
		n.opts.Metrics.DataLossEvents.Inc()
	}
}

// resolveFork looks for peers that are members of another cluster. It
// should never happen; if it does, the documented rule decides which side
// gives way (forkWinner); the loser empties itself and joins the other.
// It reports whether this node gave way (it is no longer a member).
func (n *Node) resolveFork(inc *incarnation, statuses map[Peer]statusResponse) bool {
	mine := inc.cluster()
	if mine == "" {
		return false
	}
	myVoters := 0
	if f := inc.r.GetConfiguration(); f.Error() == nil {
		for _, s := range f.Configuration().Servers {
			if s.Suffrage == raft.Voter {
				myVoters += realVoter(s.ID)
			}
		}
	}
	// "This side has no leader" must mean more than a moment of election or
	// this node being cut off from a leader the rest of its cluster follows.
	_, othersFollow := peerFollowingLeader(statuses, mine)
	lostLeader := n.leaderlessTooLong(inc) && !othersFollow
	forks, winner := forkWinner(mine, myVoters, lostLeader, statuses)
	inc.forks.Store(&forks)
	if len(forks) == 0 {
		return false
	}
	n.opts.Metrics.ForksDetected.Inc()
	n.log.Error("FORK DETECTED: peers are members of another cluster", "cluster", mine, "voters", myVoters, "forks", forks)
	if winner == nil {
		return false // the other side gives way
	}
	n.loseData(inc, "fork", "FORK: this cluster gives way to the larger one; emptying this node to join it",
		"winner", winner.ClusterID, "winner_voters", winner.Voters, "via", winner.Peer)
	return true
}

// forkWinner lists the peers that are members of another cluster than
// mine, and picks the one this side gives way to, if any: a side without
// a leader (lostLeader) gives way to one with a leader; otherwise the side
// with fewer real voters gives way, ties broken by the larger cluster ID
// winning. Placeholders are not counted: a fresh cluster of three voters
// and two placeholders is smaller than a healthy cluster of five, and must
// not tie with it and win by a random cluster ID.
func forkWinner(mine string, myVoters int, lostLeader bool, statuses map[Peer]statusResponse) ([]api.Fork, *api.Fork) {
	var forks []api.Fork
	var winner *api.Fork
	for p, st := range statuses {
		if !st.Member || st.ClusterID == "" || st.ClusterID == mine {
			continue
		}
		voters := 0
		for _, id := range st.Voters {
			voters += realVoter(raft.ServerID(id))
		}
		f := api.Fork{Peer: p.Address, ClusterID: st.ClusterID, Voters: voters}
		forks = append(forks, f)
		if st.LeaderID != "" && (lostLeader || f.Voters > myVoters || (f.Voters == myVoters && f.ClusterID > mine)) {
			winner = &f
		}
	}
	sort.Slice(forks, func(i, j int) bool { return forks[i].Peer < forks[j].Peer })
	return forks, winner
}

// realVoter is 1 for a voter a process holds, 0 for a placeholder.
func realVoter(id raft.ServerID) int {
	if isPlaceholder(id) {
		return 0
	}
	return 1
}

// leaderlessTooLong: member inc has known no leader for longer than the
// quorum-loss timeout (an election takes far less).
func (n *Node) leaderlessTooLong(inc *incarnation) bool {
	if inc.r.Leader() != "" {
		return false
	}
	return n.mono()-time.Duration(inc.noLeaderSince.Load()) > n.opts.QuorumLossTimeout
}

// ForceReform is the operator's way out when voters stay silent forever
// (their nodes are dead and their pods are never rescheduled): every member
// of this cluster that answers and knows no leader empties itself, and this
// node bootstraps a new cluster from the replicas that answer, without the
// majority rule. confirm must be this node's cluster ID. It loses data by
// design and may split the cluster if the silent voters are in fact alive.
func (n *Node) ForceReform(ctx context.Context, confirm, by string) error {
	inc := n.inc()
	mine := inc.cluster()
	switch {
	case !inc.member.Load():
		return fmt.Errorf("%w: this node is not a member of a cluster", ErrReformRefused)
	case confirm != mine:
		return fmt.Errorf("%w: confirmation %q does not match this node's cluster id %q", ErrReformRefused, confirm, mine)
	}
	if addr := inc.r.Leader(); addr != "" {
		return fmt.Errorf("%w: the cluster has a leader (%s); nothing to reform", ErrReformRefused, addr)
	}
	if !n.leaderlessTooLong(inc) {
		return fmt.Errorf("%w: this node has not been without a leader for the quorum-loss timeout (%s); an election may be under way", ErrReformRefused, n.opts.QuorumLossTimeout)
	}
	n.log.Error("FORCED REFORM requested by an operator: every member of this cluster that answers empties itself", "user", by, "cluster", mine)
	// Peers behind a partition would hold the operator's request for the
	// whole HTTP timeout: ask each for one discovery round at most.
	pctx, cancel := context.WithTimeout(ctx, n.opts.JoinRetry+2*time.Second)
	defer cancel()
	fanOut(n.otherPeers(), func(addr string) (struct{}, bool) {
		if err := n.peer.call(pctx, http.MethodPost, addr, "/peer/reform", reformRequest{ClusterID: mine, By: by}, nil); err != nil {
			n.log.Warn("reform not taken by peer", "peer", addr, "err", err)
		}
		return struct{}{}, true
	})
	n.loseData(inc, "forced reform", "FORCED REFORM: emptying this node and bootstrapping a new cluster from the replicas that answer", "user", by)
	// Bootstrap at once from whoever answers as a non-member.
	deadline := time.Now().Add(n.voteLease())
	for time.Now().Before(deadline) && ctx.Err() == nil {
		statuses := n.probe()
		voters := map[Peer]statusResponse{}
		for p, st := range statuses {
			if !st.Member {
				voters[p] = st
			}
		}
		next := n.inc()
		if n.runCandidacy(next, voters, true) {
			return nil
		}
		if next.member.Load() {
			return nil
		}
		select {
		case <-ctx.Done():
		case <-time.After(n.opts.JoinRetry):
		}
	}
	return fmt.Errorf("%w: emptied, but could not bootstrap a new cluster in time; discovery keeps trying", ErrReformRefused)
}

type reformRequest struct {
	ClusterID string `json:"cluster_id"`
	By        string `json:"by"`
}

func (n *Node) handleReform(w http.ResponseWriter, req *http.Request) {
	var rr reformRequest
	if err := decodeJSON(req, &rr); err != nil || rr.ClusterID == "" {
		writeRPCError(w, http.StatusBadRequest, "bad_request", fmt.Errorf("reform needs cluster_id"))
		return
	}
	inc := n.inc()
	if !inc.member.Load() || inc.cluster() != rr.ClusterID {
		writeRPCError(w, http.StatusConflict, "other_cluster", fmt.Errorf("not a member of cluster %s", rr.ClusterID))
		return
	}
	if addr := inc.r.Leader(); addr != "" {
		writeRPCError(w, http.StatusConflict, "has_leader", fmt.Errorf("this node follows leader %s", addr))
		return
	}
	if !n.leaderlessTooLong(inc) {
		writeRPCError(w, http.StatusConflict, "electing", fmt.Errorf("this node lost its leader less than %s ago", n.opts.QuorumLossTimeout))
		return
	}
	writeJSON(w, http.StatusOK, struct{}{})
	go n.loseData(inc, "forced reform", "FORCED REFORM: an operator declared the silent voters dead; emptying this node", "user", rr.By)
}

// restart replaces the Raft instance with a new incarnation and empties the
// state machine: a new incarnation starts from nothing, and whatever the
// cluster holds comes back through the log or a snapshot when it joins
// (replaying a young log onto the old map would apply it twice).
//
// It restarts only incarnation old: a second decision about one that
// another goroutine has already replaced must not wipe its successor.
func (n *Node) restart(reason string, old *incarnation) bool {
	n.restartMu.Lock()
	defer n.restartMu.Unlock()
	if n.stopping.Load() || n.inc() != old {
		return false // Close or Kill owns the Raft instance now, or it was restarted
	}
	n.shutdownRaft(old)
	n.opts.State.Reset()
	if err := n.startRaft(); err != nil {
		// Without Raft this node can do nothing useful; the probes fail and
		// Kubernetes restarts the pod.
		n.log.Error("cannot restart raft", "reason", reason, "err", err)
		n.cancel()
		return true
	}
	n.log.Info("raft restarted", "reason", reason, "id", n.ID())
	return true
}

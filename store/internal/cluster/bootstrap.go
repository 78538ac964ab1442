package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/hashicorp/raft"
)

// Bootstrapping a new cluster is a two-phase vote among the configured
// replicas; DESIGN.md ("At most one cluster") gives the argument. In short:
//
//  1. A node that is not a member, sees no member and has the lowest
//     ordinal among the non-members that answer becomes a candidate: it
//     votes for itself and asks the others for their bootstrap vote. A vote
//     is soft: it lapses after voteLease on the voter's own clock, so a
//     candidate that died cannot hold votes forever.
//  2. With votes from a majority of the replica count, the candidate
//     bootstraps a configuration holding EVERY replica as a voter: the
//     incarnations that voted, and a placeholder for each replica that did
//     not. Then it asks each voter to commit: a voter whose vote for that
//     candidate has not lapsed bootstraps the same configuration and is a
//     member from then on. Committing is final: a member never votes again.
//
// A configuration of R voters elects a leader only once R/2+1 of them have
// bootstrapped it, and an incarnation bootstraps at most once, so two
// configurations that both elect need more bootstraps than there are
// replicas: impossible unless a replica restarted in between (and a fresh
// incarnation only votes while no member answers it).

// ballot is the bootstrap vote of this incarnation.
type ballot struct {
	candidate raft.ServerID
	at        time.Duration // n.mono() when granted or renewed
}

// placeholderSuffix marks the server ID standing for a replica that has no
// voting incarnation (see membership.go). No process ever holds such an ID.
const placeholderSuffix = "/placeholder"

// voteLease is how long a bootstrap vote binds a voter that has not been
// asked to commit. Only liveness depends on it: a lapsed vote is also
// refused at commit time, by the same node, under the same lock.
func (n *Node) voteLease() time.Duration {
	return max(10*time.Second, 5*n.opts.JoinRetry)
}

type grantRequest struct {
	Candidate string `json:"candidate"`
	Address   string `json:"address"`
	// Replicas is the count the candidate bootstraps for: a voter that
	// counts otherwise refuses (0: a version that did not say).
	Replicas int `json:"replicas,omitempty"`
}

type grantResponse struct {
	ID      string `json:"id"`
	Address string `json:"address"`
}

type commitRequest struct {
	Candidate string        `json:"candidate"`
	ClusterID string        `json:"cluster_id"`
	Servers   []raft.Server `json:"servers"`
	// BaseFloor is the lowest base revision of the new cluster (revisions.go).
	BaseFloor int64 `json:"base_floor,omitempty"`
}

// runCandidacy is one bootstrap attempt by incarnation inc. voters are the
// peers that answered as non-members. force (an operator's reform)
// bootstraps with whoever votes, without the majority rule and without
// placeholders.
func (n *Node) runCandidacy(inc *incarnation, voters map[Peer]statusResponse, force bool) bool {
	me := inc.id
	inc.bootMu.Lock()
	if inc.member.Load() || n.stopping.Load() {
		inc.bootMu.Unlock()
		return false
	}
	if v := inc.vote.Load(); v != nil && v.candidate != me && n.mono()-v.at < n.voteLease() {
		inc.bootMu.Unlock()
		return false // bound to another candidate until its vote lapses
	}
	inc.vote.Store(&ballot{candidate: me, at: n.mono()})
	inc.bootMu.Unlock()

	grants := n.requestVotes(me, voters)
	if !force && 1+len(grants) < n.majority() {
		n.logWaiting("bootstrap", "not enough bootstrap votes for a new cluster yet",
			"votes", 1+len(grants), "needed", n.majority(), "replicas", n.replicas())
		return false
	}

	servers := []raft.Server{{Suffrage: raft.Voter, ID: me, Address: raft.ServerAddress(n.opts.Address)}}
	voted := map[string]bool{n.opts.Address: true}
	for addr, g := range grants {
		servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(g.ID), Address: raft.ServerAddress(addr)})
		voted[addr] = true
	}
	if !force {
		for _, p := range n.peers() {
			if !voted[p.Address] {
				servers = append(servers, placeholderFor(p.Address))
			}
		}
	}
	clusterID := newClusterID()
	floor := n.revisionFloor(voters)

	inc.bootMu.Lock()
	// A lower ordinal may have taken this node's vote while it gathered.
	if v := inc.vote.Load(); inc.member.Load() || v == nil || v.candidate != me {
		inc.bootMu.Unlock()
		return false
	}
	if err := inc.r.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
		inc.bootMu.Unlock()
		n.log.Error("bootstrap failed", "err", err)
		return false
	}
	inc.baseFloor.Store(floor)
	inc.needBase.Store(true)
	inc.becomeMember(clusterID)
	inc.bootMu.Unlock()

	committed := n.sendCommits(grants, commitRequest{Candidate: string(me), ClusterID: clusterID, Servers: servers, BaseFloor: floor})
	n.log.Info("bootstrapped a new cluster", "id", me, "cluster", clusterID, "voters", len(servers),
		"voted", 1+len(grants), "committed", 1+committed, "forced", force)
	return true
}

// requestVotes asks every listed peer for its bootstrap vote for candidate
// me, in parallel, and returns the grants by address.
func (n *Node) requestVotes(me raft.ServerID, voters map[Peer]statusResponse) map[string]grantResponse {
	ctx, cancel := context.WithTimeout(n.ctx, n.opts.JoinRetry+2*time.Second)
	defer cancel()
	var addrs []string
	for p := range voters {
		addrs = append(addrs, p.Address)
	}
	req := grantRequest{Candidate: string(me), Address: n.opts.Address, Replicas: n.replicas()}
	return fanOut(addrs, func(addr string) (grantResponse, bool) {
		var g grantResponse
		if err := n.peer.call(ctx, http.MethodPost, addr, "/peer/bootstrap/vote", req, &g); err != nil {
			n.log.Debug("bootstrap vote refused", "peer", addr, "err", err)
			return g, false
		}
		// An answer from elsewhere is not the replica at that address.
		return g, g.Address == addr && g.ID != ""
	})
}

// sendCommits asks every voter to commit to the bootstrapped
// configuration and returns how many did.
func (n *Node) sendCommits(grants map[string]grantResponse, req commitRequest) int {
	ctx, cancel := context.WithTimeout(n.ctx, n.opts.JoinRetry+2*time.Second)
	defer cancel()
	var addrs []string
	for addr := range grants {
		addrs = append(addrs, addr)
	}
	return len(fanOut(addrs, func(addr string) (struct{}, bool) {
		if err := n.peer.call(ctx, http.MethodPost, addr, "/peer/bootstrap/commit", req, nil); err != nil {
			n.log.Warn("bootstrap commit refused", "peer", addr, "err", err)
			return struct{}{}, false
		}
		return struct{}{}, true
	}))
}

// handleVote grants this incarnation's bootstrap vote: to anyone while it
// has none (or it lapsed), again to the same candidate, and to a lower
// ordinal than itself while it is a candidate. A member never votes.
func (n *Node) handleVote(w http.ResponseWriter, req *http.Request) {
	var g grantRequest
	if err := json.NewDecoder(req.Body).Decode(&g); err != nil || g.Candidate == "" || g.Address == "" {
		writeRPCError(w, http.StatusBadRequest, "bad_request", fmt.Errorf("vote needs candidate and address"))
		return
	}
	ordinal := n.ordinalOf(g.Address)
	if ordinal < 0 || !n.configured(g.Address) {
		writeRPCError(w, http.StatusForbidden, "unknown_peer", fmt.Errorf("%s is not a configured replica", g.Address))
		return
	}
	// Candidate and voters must count the same replicas, or two candidates
	// counting differently could each gather "a majority" (2 of 3 and 3 of
	// 5) while the count changes. The sources agree again within a poll.
	if mine := n.replicas(); g.Replicas != 0 && g.Replicas != mine {
		writeRPCError(w, http.StatusConflict, "replicas_differ", fmt.Errorf("candidate counts %d replicas, this node %d", g.Replicas, mine))
		return
	}
	if !n.configured(n.opts.Address) {
		writeRPCError(w, http.StatusConflict, "beyond_replica_count", fmt.Errorf("this replica is beyond the replica count %d", n.replicas()))
		return
	}
	inc := n.inc()
	me := inc.id
	inc.bootMu.Lock()
	defer inc.bootMu.Unlock()
	if inc.member.Load() || n.stopping.Load() {
		writeRPCError(w, http.StatusConflict, "member", fmt.Errorf("%s is a member of cluster %q", me, inc.cluster()))
		return
	}
	v := inc.vote.Load()
	switch {
	case v == nil, raft.ServerID(g.Candidate) == v.candidate:
	case v.candidate == me && ordinal < n.opts.Ordinal:
		n.log.Info("giving up bootstrap candidacy for a lower ordinal", "candidate", g.Candidate)
	case v.candidate != me && n.mono()-v.at >= n.voteLease():
	default:
		writeRPCError(w, http.StatusConflict, "voted", fmt.Errorf("%s voted for %s", me, v.candidate))
		return
	}
	inc.vote.Store(&ballot{candidate: raft.ServerID(g.Candidate), at: n.mono()})
	writeJSON(w, http.StatusOK, grantResponse{ID: string(me), Address: n.opts.Address})
}

// handleCommit bootstraps the configuration a candidate this node voted
// for has bootstrapped. A lapsed vote is refused: the voter may have voted
// for someone else since.
func (n *Node) handleCommit(w http.ResponseWriter, req *http.Request) {
	var c commitRequest
	if err := json.NewDecoder(req.Body).Decode(&c); err != nil || c.Candidate == "" || c.ClusterID == "" {
		writeRPCError(w, http.StatusBadRequest, "bad_request", fmt.Errorf("commit needs candidate, cluster_id and servers"))
		return
	}
	inc := n.inc()
	me := inc.id
	inc.bootMu.Lock()
	defer inc.bootMu.Unlock()
	if inc.member.Load() {
		if inc.cluster() == c.ClusterID {
			writeJSON(w, http.StatusOK, struct{}{})
			return
		}
		writeRPCError(w, http.StatusConflict, "member", fmt.Errorf("%s is a member of cluster %q", me, inc.cluster()))
		return
	}
	v := inc.vote.Load()
	if v == nil || v.candidate != raft.ServerID(c.Candidate) || n.mono()-v.at >= n.voteLease() {
		writeRPCError(w, http.StatusConflict, "vote_lapsed", fmt.Errorf("%s holds no live vote for %s", me, c.Candidate))
		return
	}
	listed := false
	for _, s := range c.Servers {
		if s.ID == me && string(s.Address) == n.opts.Address && s.Suffrage == raft.Voter {
			listed = true
		}
	}
	if !listed {
		writeRPCError(w, http.StatusBadRequest, "not_listed", fmt.Errorf("%s is not a voter of that configuration", me))
		return
	}
	if err := inc.r.BootstrapCluster(raft.Configuration{Servers: c.Servers}).Error(); err != nil {
		writeRPCError(w, http.StatusServiceUnavailable, "bootstrap_failed", err)
		return
	}
	inc.baseFloor.Store(c.BaseFloor)
	inc.needBase.Store(true)
	inc.becomeMember(c.ClusterID)
	n.log.Info("committed to a new cluster", "id", me, "cluster", c.ClusterID, "candidate", c.Candidate)
	writeJSON(w, http.StatusOK, struct{}{})
}

func newClusterID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

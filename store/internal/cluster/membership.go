package cluster

import (
	"fmt"
	"strings"

	"github.com/hashicorp/raft"
)

// Membership keeps one voter per replica, always.
//
// A voter whose process is gone (a restarted pod's old incarnation, a pod
// that left on SIGTERM) is not removed outright: it is replaced by a
// placeholder voter for its replica, a server ID no process holds at an
// address nobody is ever dialled at (".invalid", RFC 6761). The placeholder
// never votes or acknowledges, exactly like the dead voter it stands for,
// but it cannot be mistaken for the replica's next incarnation at the same
// address. When that incarnation has caught up and is promoted, it takes the
// placeholder's place. So the configuration keeps as many voters as there
// are replicas, and a quorum is always a majority of the replicas: two
// restarts at once can no longer shrink the configuration to three voters
// that commit with two.

// placeholderID stands for the replica at address while no live
// incarnation of it votes.
func placeholderID(address string) raft.ServerID {
	return raft.ServerID(address + placeholderSuffix)
}

// placeholderAddress is a unique address that is never dialled.
func placeholderAddress(address string) raft.ServerAddress {
	r := strings.NewReplacer(":", "-", ".", "-", "[", "", "]", "")
	return raft.ServerAddress("placeholder-" + r.Replace(address) + ".invalid:1")
}

func placeholderFor(address string) raft.Server {
	return raft.Server{Suffrage: raft.Voter, ID: placeholderID(address), Address: placeholderAddress(address)}
}

func isPlaceholder(id raft.ServerID) bool {
	return strings.HasSuffix(string(id), placeholderSuffix) && len(id) > len(placeholderSuffix)
}

// replicaOf is the replica address a server stands for.
func replicaOf(s raft.Server) string {
	if isPlaceholder(s.ID) {
		return strings.TrimSuffix(string(s.ID), placeholderSuffix)
	}
	return string(s.Address)
}

// retire takes server s out of the configuration. A voter is replaced by
// its replica's placeholder unless one is there already. The removal comes
// first: for a moment the configuration has one voter fewer, which still
// leaves a quorum of at least a majority of the replicas (n.membershipMu
// makes it one such moment at a time).
func (n *Node) retire(r *raft.Raft, s raft.Server) error {
	if err := r.RemoveServer(s.ID, 0, 0).Error(); err != nil {
		return fmt.Errorf("remove %s: %w", s.ID, err)
	}
	if s.Suffrage != raft.Voter || isPlaceholder(s.ID) {
		return nil
	}
	addr := replicaOf(s)
	f := r.GetConfiguration()
	if err := f.Error(); err != nil {
		return err
	}
	for _, o := range f.Configuration().Servers {
		if o.ID == placeholderID(addr) {
			return nil
		}
	}
	ph := placeholderFor(addr)
	if err := r.AddVoter(ph.ID, ph.Address, 0, 0).Error(); err != nil {
		return fmt.Errorf("add placeholder for %s: %w", addr, err)
	}
	return nil
}

// restorePlaceholder gives the replica at address its placeholder back
// when no voter stands for it (neither an incarnation nor a placeholder).
// retire removes a voter and adds the placeholder in two configuration
// changes; a leader that loses its lease between the two (seen on kind: the
// new leader of a rolling restart retiring the old one while the third pod
// was still starting) commits the removal but never the placeholder. The
// leaver, still asking to leave, tells the next leader its address, and that
// leader repairs the configuration here; if the leaver gave up first, the
// leader's tick does (restoreLostPlaceholders). A replica with no server at
// all is otherwise normal (a forced reform bootstraps with the replicas that
// answered, without placeholders). The caller holds n.membershipMu.
func (n *Node) restorePlaceholder(r *raft.Raft, address string) error {
	f := r.GetConfiguration()
	if err := f.Error(); err != nil {
		return err
	}
	if !n.configured(address) || hasVoterFor(f.Configuration(), address) {
		return nil
	}
	ph := placeholderFor(address)
	if err := r.AddVoter(ph.ID, ph.Address, 0, 0).Error(); err != nil {
		return fmt.Errorf("restore the placeholder of %s: %w", address, err)
	}
	n.log.Warn("restored the placeholder of a replica left without a voter (its retirement was cut short)", "placeholder", ph.ID)
	return nil
}

// noteVoters records the replicas a voter of cfg stands for, in cluster cid
// (this node's current one; a new cluster starts a new record), and forgets
// the replicas of ordinals at or beyond count (the replica count): a
// scale-down removed them for good. Remembered, they came back as
// placeholders on the next scale-up (restoreLostPlaceholders), and
// {a0, a1, a2, placeholder, placeholder} needed every live voter until the
// new pods caught up: one fault in that window lost every key. Only the
// discovery loop calls it.
func (n *Node) noteVoters(cid string, cfg raft.Configuration, count int) {
	if n.voted == nil || n.votedCluster != cid {
		n.voted, n.votedCluster = map[string]bool{}, cid
	}
	for _, s := range cfg.Servers {
		if s.Suffrage == raft.Voter {
			n.voted[replicaOf(s)] = true
		}
	}
	if count <= 0 {
		return // the count is not known yet
	}
	for addr := range n.voted {
		if o := n.ordinalOf(addr); o >= count {
			delete(n.voted, addr)
		}
	}
}

// restoreLostPlaceholders, on the leader, restores the placeholder of every
// configured replica that had a voter in this cluster and has none now: a
// retirement cut short whose leaver gave up before it reached a leader. A
// replica that never had a voter here is left alone (after a forced reform
// the replicas that did not answer have none, by design; a scale-up adds
// replicas through promotion).
func (n *Node) restoreLostPlaceholders(r *raft.Raft) {
	var lost []string
	for _, p := range n.peers() {
		if n.voted[p.Address] {
			lost = append(lost, p.Address)
		}
	}
	f := r.GetConfiguration()
	if f.Error() != nil {
		return
	}
	for _, addr := range lost {
		if hasVoterFor(f.Configuration(), addr) {
			continue
		}
		n.membershipMu.Lock()
		err := n.restorePlaceholder(r, addr)
		n.membershipMu.Unlock()
		if err != nil {
			n.log.Warn("could not restore a lost placeholder", "replica", addr, "err", err)
			return
		}
	}
}

// hasVoterFor reports whether a voter of cfg stands for the replica at
// address: a live incarnation there, or its placeholder.
func hasVoterFor(cfg raft.Configuration, address string) bool {
	for _, s := range cfg.Servers {
		if s.Suffrage == raft.Voter && replicaOf(s) == address {
			return true
		}
	}
	return false
}

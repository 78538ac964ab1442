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

// pruneForeignPlaceholders, on the leader, drops placeholders of replicas
// that are no longer configured (the StatefulSet was scaled down): nothing
// will ever take their place.
func (n *Node) pruneForeignPlaceholders(r *raft.Raft) {
	configured := map[string]bool{}
	for _, p := range n.opts.Peers {
		configured[p.Address] = true
	}
	f := r.GetConfiguration()
	if f.Error() != nil {
		return
	}
	for _, s := range f.Configuration().Servers {
		if !isPlaceholder(s.ID) || configured[replicaOf(s)] {
			continue
		}
		n.membershipMu.Lock()
		err := r.RemoveServer(s.ID, 0, 0).Error()
		n.membershipMu.Unlock()
		if err != nil {
			n.log.Warn("could not drop the placeholder of a replica no longer configured", "placeholder", s.ID, "err", err)
			return
		}
		n.log.Info("dropped the placeholder of a replica no longer configured", "placeholder", s.ID)
	}
}

// restorePlaceholders, on the leader, gives back its placeholder to every
// configured replica that has no voter. retire removes a voter and adds the
// placeholder in two configuration changes; a leader that loses its lease
// between the two (seen on kind: the new leader of a rolling restart
// retiring the old one while the third pod was still starting) commits the
// removal but never the placeholder, and the configuration is left with
// fewer voters than replicas. This repairs it on the next tick.
func (n *Node) restorePlaceholders(r *raft.Raft) {
	n.membershipMu.Lock()
	defer n.membershipMu.Unlock()
	f := r.GetConfiguration()
	if f.Error() != nil {
		return
	}
	for _, ph := range missingPlaceholders(f.Configuration(), n.opts.Peers) {
		if err := r.AddVoter(ph.ID, ph.Address, 0, 0).Error(); err != nil {
			n.log.Warn("could not restore the placeholder of a replica without a voter", "placeholder", ph.ID, "err", err)
			return
		}
		n.log.Warn("restored the placeholder of a replica that had no voter (a retirement was cut short)", "placeholder", ph.ID)
	}
}

// missingPlaceholders lists the placeholders of the configured replicas
// that no voter stands for (a live incarnation or a placeholder). It
// restores none while the configuration has as many voters as there are
// replicas: then every replica has its vote, whatever its address looks like.
func missingPlaceholders(cfg raft.Configuration, peers []Peer) []raft.Server {
	voters := map[string]bool{}
	n := 0
	for _, s := range cfg.Servers {
		if s.Suffrage == raft.Voter {
			voters[replicaOf(s)] = true
			n++
		}
	}
	if n >= len(peers) {
		return nil
	}
	var out []raft.Server
	for _, p := range peers {
		if !voters[p.Address] {
			out = append(out, placeholderFor(p.Address))
		}
	}
	return out
}

package cluster

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/hashicorp/raft"

	"github.com/ephemeral-store/ephemeral-store/store/internal/fsm"
)

// The replica count is a replicated fact. The platform says how many
// replicas run (ReplicaSource: the StatefulSet's spec.replicas, a file, or
// the --replicas flag); the leader proposes that number into the Raft log
// (fsm.OpReplicas) whenever it differs from the replicated one, and every
// member uses the replicated count, once its log holds one, for its peer
// list, for the majority the bootstrap and quorum-loss rules need, and for
// which servers belong in the configuration. A node that knows no
// replicated count yet (it has not joined) uses its source.
//
// Scaling down, the leader removes the servers of ordinals >= the count
// from the configuration outright, one change at a time: each change is
// committed by a majority of the configuration before it, so no
// acknowledged write is lost, and the configuration shrinks with the
// replicas instead of keeping placeholders that nothing will ever replace
// (the survivors of a 5 -> 3 scale-down then needed all three of their
// voters, and the next restart lost every key: issue 18). A leaving pod
// whose ordinal is beyond the count its source reports asks to be removed,
// not to leave its placeholder behind. Scaling up, the new ordinals join as
// non-voters and are promoted as any new incarnation is.

// ReplicaSource reports how many replicas the platform runs now.
type ReplicaSource interface {
	Replicas(ctx context.Context) (int, error)
}

// Topology names the replica of each ordinal and the ordinal of each
// address. Ordinals beyond what discovery can name (a static --peers list
// is finite) have no address.
type Topology struct {
	Address func(ordinal int) (string, bool)
	Ordinal func(address string) (int, bool)
}

// sourcePollEvery is how often the source is read in the background; the
// decisions that cannot wait (a leaver on SIGTERM, a leader about to
// propose) read it fresh.
const sourcePollEvery = time.Second

// sourceReadTimeout bounds one fresh read of the source.
const sourceReadTimeout = 3 * time.Second

// replicatedCount is the count the current incarnation's log holds, 0 when
// none yet.
func (n *Node) replicatedCount() int { return n.inc().replicatedCount() }

// replicatedCount is the count this incarnation's log holds, 0 when none
// yet.
func (inc *incarnation) replicatedCount() int { return int(inc.fsm.replicas.Load()) }

// replicas is the replica count this node acts on: the replicated one,
// else what its source last said; 0 while neither is known (a node whose
// source has not answered yet takes no part in bootstrap).
func (n *Node) replicas() int {
	if c := n.replicatedCount(); c > 0 {
		return c
	}
	return int(n.sourceReplicas.Load())
}

// majority of the replica count.
func (n *Node) majority() int { return n.replicas()/2 + 1 }

// addressOf names the replica of an ordinal.
func (n *Node) addressOf(ordinal int) (string, bool) {
	if n.opts.Topology.Address != nil {
		return n.opts.Topology.Address(ordinal)
	}
	for _, p := range n.opts.Peers {
		if p.Ordinal == ordinal {
			return p.Address, true
		}
	}
	return "", false
}

// ordinalOf is the ordinal of a replica address, or -1.
func (n *Node) ordinalOf(address string) int {
	if n.opts.Topology.Ordinal != nil {
		if o, ok := n.opts.Topology.Ordinal(address); ok {
			return o
		}
		return -1
	}
	for _, p := range n.opts.Peers {
		if p.Address == address {
			return p.Ordinal
		}
	}
	return -1
}

// peers are the configured replicas, ordinals 0 to replicas()-1, this node
// included when its ordinal is among them.
func (n *Node) peers() []Peer {
	count := n.replicas()
	out := make([]Peer, 0, count)
	for i := 0; i < count; i++ {
		if addr, ok := n.addressOf(i); ok {
			out = append(out, Peer{Ordinal: i, Address: addr})
		}
	}
	return out
}

// configured reports whether the replica at address is one of peers().
func (n *Node) configured(address string) bool {
	o := n.ordinalOf(address)
	return o >= 0 && o < n.replicas()
}

// probeTargets are the peers to ask for their status: the configured
// replicas and every other server of this node's configuration, so that a
// leaving ordinal is still heard while it is a member.
func (n *Node) probeTargets() []Peer {
	seen := map[string]bool{n.opts.Address: true}
	var out []Peer
	for _, p := range n.peers() {
		if !seen[p.Address] {
			seen[p.Address] = true
			out = append(out, p)
		}
	}
	if inc := n.inc(); inc.member.Load() {
		if f := inc.r.GetConfiguration(); f.Error() == nil {
			for _, s := range f.Configuration().Servers {
				addr := string(s.Address)
				if isPlaceholder(s.ID) || seen[addr] {
					continue
				}
				seen[addr] = true
				out = append(out, Peer{Ordinal: n.ordinalOf(addr), Address: addr})
			}
		}
	}
	return out
}

// readSource reads the source now and remembers what it said; 0 when it
// did not answer.
func (n *Node) readSource(ctx context.Context) int {
	if n.opts.ReplicaSource == nil {
		return int(n.sourceReplicas.Load())
	}
	ctx, cancel := context.WithTimeout(ctx, sourceReadTimeout)
	defer cancel()
	c, err := n.opts.ReplicaSource.Replicas(ctx)
	if err != nil || c < 1 {
		n.logWaiting("replicas", "cannot read the replica count; keeping the last one", "err", err, "last", n.sourceReplicas.Load())
		return 0
	}
	if old := n.sourceReplicas.Swap(int64(c)); old != int64(c) {
		n.log.Info("the replica source reports a new count", "replicas", c, "was", old)
	}
	return c
}

// sourceLoop keeps sourceReplicas current.
func (n *Node) sourceLoop() {
	for {
		n.readSource(n.ctx)
		select {
		case <-n.ctx.Done():
			return
		case <-time.After(sourcePollEvery):
		}
	}
}

// syncReplicaCount, on the leader, proposes the count its source reports
// when it differs from the replicated one. A different cached value is
// confirmed by a fresh read first, so that a source that lags a moment
// (a poll not yet run) cannot undo a newer count another leader proposed.
func (n *Node) syncReplicaCount(inc *incarnation) {
	if !inc.ready(inc.r.CurrentTerm()) || int(n.sourceReplicas.Load()) == inc.replicatedCount() {
		return
	}
	src := n.readSource(n.ctx)
	current := inc.replicatedCount()
	if src < 1 || src == current {
		return
	}
	if _, err := n.applyLocal(inc, fsm.Command{Op: fsm.OpReplicas, Replicas: src}); err != nil {
		n.log.Warn("could not propose the replica count", "replicas", src, "err", err)
		return
	}
	n.log.Info("replica count changed", "replicas", src, "was", current)
}

// tendReplicaCount, on the leader inc: bring the replicated count in line
// with the source, then the configuration in line with the count.
func (n *Node) tendReplicaCount(inc *incarnation) {
	n.syncReplicaCount(inc)
	r := inc.r
	count := inc.replicatedCount()
	if count == 0 {
		return
	}
	if o := n.opts.Ordinal; o >= count && n.ordinalOf(n.opts.Address) == o {
		n.handOverBeyondCount(inc, count)
		return
	}
	for _, s := range n.serversBeyond(r, count) {
		// A live voter that has not asked to leave goes only while the
		// voters left that answer still make a quorum of the smaller
		// configuration: removing it earlier would turn a cluster that
		// commits into one that cannot (its pod leaves soon anyway, and
		// leaving removes it whatever the quorum, since then it votes no
		// more either way). Asked before taking membershipMu: the probe
		// may wait for silent peers.
		if s.Suffrage == raft.Voter && !isPlaceholder(s.ID) {
			if err := n.removalKeepsQuorum(inc, s.ID); err != nil {
				n.logWaiting("scale-down", "scale-down: a voter beyond the replica count stays for now", "server", s.ID, "replicas", count, "reason", err)
				return
			}
		}
		n.membershipMu.Lock()
		err := n.removeBeyond(r, s.ID, count)
		n.membershipMu.Unlock()
		if err != nil {
			n.log.Warn("scale-down: could not remove a server beyond the replica count", "server", s.ID, "replicas", count, "err", err)
			return
		}
	}
}

// serversBeyond are the servers of the configuration whose replica's
// ordinal is >= count, in the order they are removed: placeholders (they
// only make a quorum harder), non-voters, then voters from the highest
// ordinal down, as a StatefulSet deletes pods.
func (n *Node) serversBeyond(r *raft.Raft, count int) []raft.Server {
	f := r.GetConfiguration()
	if f.Error() != nil {
		return nil
	}
	var out []raft.Server
	for _, s := range f.Configuration().Servers {
		if o := n.ordinalOf(replicaOf(s)); o >= count {
			out = append(out, s)
		}
	}
	rank := func(s raft.Server) int {
		switch {
		case isPlaceholder(s.ID):
			return 0
		case s.Suffrage != raft.Voter:
			return 1
		}
		return 2
	}
	sort.SliceStable(out, func(i, j int) bool {
		if rank(out[i]) != rank(out[j]) {
			return rank(out[i]) < rank(out[j])
		}
		return n.ordinalOf(replicaOf(out[i])) > n.ordinalOf(replicaOf(out[j]))
	})
	return out
}

// removeBeyond removes server id, whose ordinal is beyond the count, if it
// is still in the configuration. The caller holds n.membershipMu.
func (n *Node) removeBeyond(r *raft.Raft, id raft.ServerID, count int) error {
	f := r.GetConfiguration()
	if err := f.Error(); err != nil {
		return err
	}
	for _, s := range f.Configuration().Servers {
		if s.ID != id {
			continue
		}
		if err := r.RemoveServer(id, 0, 0).Error(); err != nil {
			return fmt.Errorf("remove %s: %w", id, err)
		}
		n.log.Info("scale-down: removed a server beyond the replica count", "server", id, "replicas", count)
		return nil
	}
	return nil // removed meanwhile
}

// removalKeepsQuorum checks that the voters of inc's configuration without
// id that are inc or answer as themselves make a majority of them.
func (n *Node) removalKeepsQuorum(inc *incarnation, id raft.ServerID) error {
	f := inc.r.GetConfiguration()
	if err := f.Error(); err != nil {
		return err
	}
	byAddr := map[string]statusResponse{}
	for p, st := range n.probe() {
		byAddr[p.Address] = st
	}
	me := inc.id
	voters, live := 0, 0
	for _, s := range f.Configuration().Servers {
		if s.Suffrage != raft.Voter || s.ID == id {
			continue
		}
		voters++
		if st, ok := byAddr[string(s.Address)]; s.ID == me || (ok && st.ID == string(s.ID)) {
			live++
		}
	}
	if live <= voters/2 {
		return fmt.Errorf("only %d of the %d voters left would answer: waiting for the pod to leave", live, voters)
	}
	return nil
}

// handOverBeyondCount: a leader whose own ordinal is beyond the count
// hands leadership to a live voter within it, which then removes this one.
func (n *Node) handOverBeyondCount(inc *incarnation, count int) {
	r := inc.r
	f := r.GetConfiguration()
	if f.Error() != nil {
		return
	}
	for _, s := range f.Configuration().Servers {
		if s.Suffrage == raft.Voter && !isPlaceholder(s.ID) && s.ID != inc.id {
			if o := n.ordinalOf(string(s.Address)); o >= 0 && o < count {
				if err := r.LeadershipTransferToServer(s.ID, s.Address).Error(); err != nil {
					n.log.Warn("scale-down: leadership transfer failed", "to", s.ID, "err", err)
				}
				return
			}
		}
	}
}

// beyondCountNow reads the source fresh and reports whether this node's
// ordinal is beyond the count it reports: a leaving pod that is being
// scaled away, not restarted.
func (n *Node) beyondCountNow(ctx context.Context) bool {
	if n.opts.ReplicaSource == nil {
		return false
	}
	c := n.readSource(ctx)
	return c > 0 && n.opts.Ordinal >= c
}

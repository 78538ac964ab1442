package cluster

import (
	"strconv"

	"github.com/hashicorp/raft"

	"github.com/ephemeral-store/ephemeral-store/store/client/api"
)

// What the node reports about itself to its callers: Ready for /readyz,
// IsLeader, and Status for /v1/cluster. (Peers see status(), in rpc.go.)

// Ready is true when this node is a voting member that knows a leader: a
// rolling update waits for it before taking the next pod down.
func (n *Node) Ready() bool {
	inc := n.inc()
	if n.stopping.Load() || n.draining.Load() || !inc.selfIsVoter() {
		return false
	}
	return inc.r.Leader() != ""
}

// Drain makes the node report not ready while it keeps serving, so load
// balancers stop sending clients before the API closes.
func (n *Node) Drain() { n.draining.Store(true) }

// IsLeader reports whether this node leads.
func (n *Node) IsLeader() bool { return n.raft().State() == raft.Leader }

// Status describes the cluster as this node sees it: membership,
// leadership and progress, as /v1/cluster sends it.
func (n *Node) Status() api.ClusterStatus {
	inc := n.inc()
	r := inc.r
	_, lid := r.LeaderWithID()
	st := api.ClusterStatus{
		Self: string(inc.id), Leader: string(lid), State: r.State().String(),
		ClusterID: inc.cluster(), Revision: n.opts.State.Revision(),
		CommitIndex: r.CommitIndex(), AppliedIndex: inc.fsm.applied.Load(), Members: []api.Member{},
		Replicas: n.replicas(),
	}
	st.SnapshotIndex, _ = strconv.ParseUint(r.Stats()["last_snapshot_index"], 10, 64)
	if q := inc.quorum.Load(); q != nil {
		st.Quorum = *q
	}
	if lid != "" {
		st.Quorum = api.QuorumReport{State: api.QuorumOK}
	}
	if f := inc.forks.Load(); f != nil {
		st.Forks = *f
	}
	if f := r.GetConfiguration(); f.Error() == nil {
		for _, s := range f.Configuration().Servers {
			suffrage := api.SuffrageVoter
			if s.Suffrage != raft.Voter {
				suffrage = api.SuffrageNonvoter
			}
			st.Members = append(st.Members, api.Member{
				ID: string(s.ID), Name: nameOf(s.ID), Address: string(s.Address),
				Suffrage: suffrage, Leader: s.ID == lid,
			})
		}
	}
	return st
}

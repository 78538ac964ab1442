package cluster

import (
	"strconv"

	"github.com/hashicorp/raft"
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

// Member is one server of the configuration, as /v1/cluster shows it.
type Member struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Address  string `json:"address"`
	Suffrage string `json:"suffrage"`
	Leader   bool   `json:"leader"`
}

// Status describes the cluster as this node sees it.
type Status struct {
	Self         string `json:"self"`
	Leader       string `json:"leader"`
	State        string `json:"state"`
	ClusterID    string `json:"cluster_id"`
	Revision     int64  `json:"revision"`
	CommitIndex  uint64 `json:"commit_index"`
	AppliedIndex uint64 `json:"applied_index"`
	// SnapshotIndex is the last log index this node's latest snapshot covers.
	SnapshotIndex uint64 `json:"snapshot_index"`
	// Replicas is the replica count this node acts on: the replicated one
	// (the leader proposes what the platform reports), else its source's.
	Replicas int      `json:"replicas"`
	Members  []Member `json:"members"`
	// Quorum says why there is no leader, when there is none.
	Quorum QuorumReport `json:"quorum"`
	// Forks lists peers found in another cluster (it should stay empty).
	Forks []Fork `json:"forks,omitempty"`
}

// Status reports membership, leadership and progress.
func (n *Node) Status() Status {
	inc := n.inc()
	r := inc.r
	_, lid := r.LeaderWithID()
	st := Status{
		Self: string(inc.id), Leader: string(lid), State: r.State().String(),
		ClusterID: inc.cluster(), Revision: n.opts.State.Revision(),
		CommitIndex: r.CommitIndex(), AppliedIndex: inc.fsm.applied.Load(), Members: []Member{},
		Replicas: n.replicas(),
	}
	st.SnapshotIndex, _ = strconv.ParseUint(r.Stats()["last_snapshot_index"], 10, 64)
	if q := inc.quorum.Load(); q != nil {
		st.Quorum = *q
	}
	if lid != "" {
		st.Quorum = QuorumReport{State: QuorumOK}
	}
	if f := inc.forks.Load(); f != nil {
		st.Forks = *f
	}
	if f := r.GetConfiguration(); f.Error() == nil {
		for _, s := range f.Configuration().Servers {
			suffrage := "voter"
			if s.Suffrage != raft.Voter {
				suffrage = "nonvoter"
			}
			st.Members = append(st.Members, Member{
				ID: string(s.ID), Name: nameOf(s.ID), Address: string(s.Address),
				Suffrage: suffrage, Leader: s.ID == lid,
			})
		}
	}
	return st
}

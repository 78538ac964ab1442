package cluster

import (
	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the cluster's Prometheus series.
type Metrics struct {
	DataLossEvents prometheus.Counter
	LeaderChanges  prometheus.Counter
	IsLeader       prometheus.Gauge
	IsVoter        prometheus.Gauge
	Members        prometheus.Gauge
	CommitIndex    prometheus.Gauge
}

// NewMetrics creates the series and registers them with reg (nil: not
// registered, for tests).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		DataLossEvents: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ephemeral_store_data_loss_events_total",
			Help: "Times this node re-formed the cluster empty after a quorum was lost for good.",
		}),
		LeaderChanges: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ephemeral_store_leader_changes_total",
			Help: "Leadership changes seen by this node.",
		}),
		IsLeader: prometheus.NewGauge(prometheus.GaugeOpts{Name: "ephemeral_store_is_leader", Help: "1 when this node leads."}),
		IsVoter:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "ephemeral_store_is_voter", Help: "1 when this node is a voting member."}),
		Members:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "ephemeral_store_members", Help: "Servers in the Raft configuration."}),
		CommitIndex: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ephemeral_store_raft_commit_index", Help: "Raft commit index on this node.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.DataLossEvents, m.LeaderChanges, m.IsLeader, m.IsVoter, m.Members, m.CommitIndex)
	}
	return m
}

func (m *Metrics) observe(r *raft.Raft, voter bool) {
	b2f := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	m.IsLeader.Set(b2f(r.State() == raft.Leader))
	m.IsVoter.Set(b2f(voter))
	m.CommitIndex.Set(float64(r.CommitIndex()))
	if f := r.GetConfiguration(); f.Error() == nil {
		m.Members.Set(float64(len(f.Configuration().Servers)))
	}
}

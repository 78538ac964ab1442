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
	// WaitingForVoters is 1 while a member without a leader waits for
	// silent voters (it never gives up on them by itself).
	WaitingForVoters prometheus.Gauge
	SilentVoters     prometheus.Gauge
	ForksDetected    prometheus.Counter
	// ForwardBatchSize counts the writes of each batch a follower sends
	// its leader (forward.go).
	ForwardBatchSize prometheus.Histogram
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
			Help: "Times this node gained or lost leadership (Raft tells a node only of its own).",
		}),
		IsLeader: prometheus.NewGauge(prometheus.GaugeOpts{Name: "ephemeral_store_is_leader", Help: "1 when this node leads."}),
		IsVoter:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "ephemeral_store_is_voter", Help: "1 when this node is a voting member."}),
		Members:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "ephemeral_store_members", Help: "Servers in the Raft configuration."}),
		CommitIndex: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ephemeral_store_raft_commit_index", Help: "Raft commit index on this node.",
		}),
		WaitingForVoters: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ephemeral_store_waiting_for_silent_voters",
			Help: "1 while this member has had no leader past the quorum-loss timeout and waits for voters that do not answer; an operator may force a reform if they are dead.",
		}),
		SilentVoters: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ephemeral_store_silent_voters",
			Help: "Voters of this member's configuration that did not answer the last quorum probe.",
		}),
		ForksDetected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ephemeral_store_cluster_forks_detected_total",
			Help: "Probes that found a peer in another cluster than this node's (should stay 0).",
		}),
		ForwardBatchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "ephemeral_store_forwarded_write_batch_size",
			Help:    "Writes in each batch this follower forwarded to its leader.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 9), // 1 to 256
		}),
	}
	if reg != nil {
		reg.MustRegister(m.DataLossEvents, m.LeaderChanges, m.IsLeader, m.IsVoter, m.Members, m.CommitIndex,
			m.WaitingForVoters, m.SilentVoters, m.ForksDetected, m.ForwardBatchSize)
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

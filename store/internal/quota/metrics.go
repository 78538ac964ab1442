package quota

import "github.com/prometheus/client_golang/prometheus"

// Register exports the quota and its use as gauges:
// ephemeral_store_quota_bytes (0: no quota) and
// ephemeral_store_quota_used_bytes, the estimate the quota compares
// (MemoryQuotaNearlyFull alerts on their ratio).
func (q *Quota) Register(reg prometheus.Registerer) {
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "ephemeral_store_quota_bytes",
			Help: "The data quota of this node in bytes (--quota-bytes, or --quota-ratio of the memory limit); 0: no quota.",
		}, func() float64 { return float64(q.Limit()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "ephemeral_store_quota_used_bytes",
			Help: "Estimated memory of the data held by this replica, as the quota counts it: key and value bytes plus a per-key overhead.",
		}, func() float64 { return float64(q.Used()) }),
	)
}

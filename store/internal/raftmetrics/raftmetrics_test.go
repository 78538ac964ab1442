package raftmetrics

import (
	"testing"
	"time"

	metrics "github.com/hashicorp/go-metrics"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRaftMetricsReachPrometheus installs the sink and reports the way
// Raft does (the global go-metrics functions), then reads the registry.
func TestRaftMetricsReachPrometheus(t *testing.T) {
	reg := prometheus.NewRegistry()
	require.NoError(t, Install(reg))

	families := gather(t, reg)
	for key := range declaredSummaries {
		f := families[Name(key)]
		require.NotNil(t, f, "%s declared but not exported before any sample", Name(key))
		assert.Equal(t, dto.MetricType_SUMMARY, f.GetType(), key)
		assert.NotEmpty(t, f.GetHelp(), key)
	}
	for key := range declaredCounters {
		f := families[Name(key)]
		require.NotNil(t, f, "%s declared but not exported before any sample", Name(key))
		assert.Equal(t, dto.MetricType_COUNTER, f.GetType(), key)
	}

	metrics.MeasureSince([]string{"raft", "commitTime"}, time.Now().Add(-5*time.Millisecond))
	metrics.IncrCounter([]string{"raft", "apply"}, 3)
	metrics.SetGauge([]string{"raft", "commitNumLogs"}, 7)
	metrics.MeasureSinceWithLabels([]string{"raft", "replication", "appendEntries", "rpc"}, time.Now(),
		[]metrics.Label{{Name: "peer_id", Value: "n2/abcd"}})

	families = gather(t, reg)
	commit := families["ephemeral_store_raft_commitTime"].GetMetric()[0].GetSummary()
	assert.Equal(t, uint64(1), commit.GetSampleCount())
	assert.GreaterOrEqual(t, commit.GetSampleSum(), 5.0, "milliseconds")
	assert.Equal(t, 3.0, families["ephemeral_store_raft_apply"].GetMetric()[0].GetCounter().GetValue())
	assert.Equal(t, 7.0, families["ephemeral_store_raft_commitNumLogs"].GetMetric()[0].GetGauge().GetValue())
	rpc := families["ephemeral_store_raft_replication_appendEntries_rpc"]
	require.NotNil(t, rpc)
	assert.Equal(t, "peer_id", rpc.GetMetric()[0].GetLabel()[0].GetName())
	for name := range families {
		assert.NotContains(t, name, "runtime", "Go runtime metrics come from the Go collector")
	}
}

func gather(t *testing.T, reg *prometheus.Registry) map[string]*dto.MetricFamily {
	t.Helper()
	fs, err := reg.Gather()
	require.NoError(t, err)
	out := map[string]*dto.MetricFamily{}
	for _, f := range fs {
		out[f.GetName()] = f
	}
	return out
}

package buildinfo

import (
	"runtime/debug"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestVCSCommit(t *testing.T) {
	settings := func(kv ...string) *debug.BuildInfo {
		info := &debug.BuildInfo{}
		for i := 0; i < len(kv); i += 2 {
			info.Settings = append(info.Settings, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return info
	}
	tests := []struct {
		name string
		info *debug.BuildInfo
		ok   bool
		want string
	}{
		{"no build info", nil, false, Unknown},
		{"built with -buildvcs=false", settings("GOOS", "linux"), true, Unknown},
		{"clean tree", settings("vcs.revision", "abc123", "vcs.modified", "false"), true, "abc123"},
		{"modified tree", settings("vcs.revision", "abc123", "vcs.modified", "true"), true, "abc123-dirty"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, vcsCommit(tc.info, tc.ok))
		})
	}
}

func TestLinkerCommitWins(t *testing.T) {
	old := commit
	t.Cleanup(func() { commit = old })
	commit = "0123abcd"
	assert.Equal(t, "0123abcd", Commit())
}

func TestBuildInfoMetric(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(NewCollector()))
	families, err := reg.Gather()
	require.NoError(t, err)
	require.Len(t, families, 1)
	labels := map[string]string{}
	for _, l := range families[0].GetMetric()[0].GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	assert.Equal(t, Version(), labels["version"])
	assert.Equal(t, Commit(), labels["commit"])
	assert.True(t, strings.HasPrefix(labels["goversion"], "go"), labels["goversion"])
	assert.Equal(t, 1.0, families[0].GetMetric()[0].GetGauge().GetValue())
}

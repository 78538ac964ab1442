package chart

// The metric names the chart's alert rules and Grafana dashboard use, and a
// static check of them against the series the server exports.
//
// chartMetricUses renders the chart with the rules and the dashboard on and
// returns every ephemeral_store_* name their PromQL uses, for these checks and
// for TestChartMetricsExistOnARunningServer.

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
)

type metricType string

const (
	counter   metricType = "counter"
	gauge     metricType = "gauge"
	histogram metricType = "histogram"
	summary   metricType = "summary"
)

// knownMetrics are the families the server exports (docs/interfaces.md and
// docs/operations.md), by the name of the family. Raft's own come
// through go-metrics' Prometheus sink: summaries in milliseconds with
// quantile 0.5/0.9/0.99 plus _sum and _count; raft_apply is a counter without
// _total. build_info is a gauge of 1 with version and commit labels.
var knownMetrics = map[string]metricType{
	"ephemeral_store_http_requests_total":           counter,
	"ephemeral_store_http_request_duration_seconds": histogram,
	"ephemeral_store_auth_failures_total":           counter,
	"ephemeral_store_resp_commands_total":           counter,
	"ephemeral_store_resp_command_duration_seconds": histogram,
	"ephemeral_store_resp_connections":              gauge,
	"ephemeral_store_keys":                          gauge,
	"ephemeral_store_bytes":                         gauge,
	"ephemeral_store_quota_bytes":                   gauge,
	"ephemeral_store_quota_used_bytes":              gauge,
	"ephemeral_store_watchers":                      gauge,
	"ephemeral_store_is_leader":                     gauge,
	"ephemeral_store_is_voter":                      gauge,
	"ephemeral_store_members":                       gauge,
	"ephemeral_store_leader_changes_total":          counter,
	"ephemeral_store_raft_commit_index":             gauge,
	"ephemeral_store_data_loss_events_total":        counter,
	"ephemeral_store_waiting_for_silent_voters":     gauge,
	"ephemeral_store_silent_voters":                 gauge,
	"ephemeral_store_cluster_forks_detected_total":  counter,
	"ephemeral_store_build_info":                    gauge,
	"ephemeral_store_raft_commitTime":               summary,
	"ephemeral_store_raft_fsm_applyBatch":           summary,
	"ephemeral_store_raft_fsm_applyBatchNum":        summary,
	"ephemeral_store_raft_leader_lastContact":       summary,
	"ephemeral_store_raft_apply":                    counter,
	"ephemeral_store_raft_state_leader":             counter,
	"ephemeral_store_raft_snapshot_create":          summary,
	"ephemeral_store_raft_snapshot_persist":         summary,

	// NotAfter of the certificates in use, by kind (server, peer, ca).
	"ephemeral_store_certificate_expiry_timestamp_seconds": gauge,
}

// chartMetricUse is one metric name in one PromQL expression of the chart.
type chartMetricUse struct {
	Raw   string // as written, e.g. ephemeral_store_http_request_duration_seconds_bucket
	Base  string // the family: Raw without a _bucket, _sum or _count suffix
	Where string // e.g. `alert EphemeralStoreNoLeader`, `dashboard panel "Keys"`
	Expr  string
}

var (
	metricName       = regexp.MustCompile(`\b(ephemeral_store_[A-Za-z0-9_]+)`)
	familySuffix     = regexp.MustCompile(`_(bucket|sum|count)$`)
	rangeFunctionArg = regexp.MustCompile(`\b(rate|irate|increase|delta|deriv)\(\s*(ephemeral_store_[A-Za-z0-9_]+)`)
)

// metricBase strips the _bucket, _sum or _count suffix of a histogram or summary series.
func metricBase(raw string) string {
	return familySuffix.ReplaceAllString(raw, "")
}

// chartMetricUses renders the chart with the alert rules and the dashboard
// on and returns every ephemeral_store_* name in their PromQL: the rules'
// expr, the dashboard panels' targets and its template variable queries.
func chartMetricUses(t *testing.T) []chartMetricUse {
	t.Helper()
	m := render(t, opts{set: monitoringOn})
	exprs := map[string][]string{} // where -> expressions

	rules := m.ofKind("PrometheusRule")
	require.Len(t, rules, 1)
	var p prometheusRule
	require.NoError(t, json.Unmarshal(mustJSON(t, rules[0].Raw), &p))
	for _, g := range p.Spec.Groups {
		for _, r := range g.Rules {
			name := "alert " + r.Alert
			if r.Record != "" {
				name = "record " + r.Record
			}
			exprs[name] = append(exprs[name], r.Expr)
		}
	}

	var cm corev1.ConfigMap
	m.get(t, "ConfigMap", "ephemeral-store-dashboard", &cm)
	require.Len(t, cm.Data, 1)
	for _, text := range cm.Data {
		var d dashboard
		require.NoError(t, json.Unmarshal([]byte(text), &d))
		for _, panel := range d.allPanels() {
			for _, tg := range panel.Targets {
				where := fmt.Sprintf("dashboard panel %q", panel.Title)
				exprs[where] = append(exprs[where], tg.Expr)
			}
		}
		for _, v := range d.Templating.List {
			if q, ok := v.Query.(string); ok && v.Type == "query" {
				where := fmt.Sprintf("dashboard variable %q", v.Name)
				exprs[where] = append(exprs[where], q)
			}
		}
	}

	var out []chartMetricUse
	for where, list := range exprs {
		for _, e := range list {
			for _, raw := range metricName.FindAllString(e, -1) {
				out = append(out, chartMetricUse{Raw: raw, Base: metricBase(raw), Where: where, Expr: e})
			}
		}
	}
	require.NotEmpty(t, out)
	sort.Slice(out, func(i, j int) bool {
		if out[i].Raw != out[j].Raw {
			return out[i].Raw < out[j].Raw
		}
		return out[i].Where < out[j].Where
	})
	return out
}

// TestChartUsesOnlyKnownMetrics: every name in the rules and the dashboard is
// a family the server exports, used the way its type allows (a _bucket only
// of a histogram, a quantile series only of a summary, rate and increase only
// of counters and the _sum/_count/_bucket series).
func TestChartUsesOnlyKnownMetrics(t *testing.T) {
	t.Parallel()
	for _, u := range chartMetricUses(t) {
		typ, ok := knownMetrics[u.Base]
		if !assert.True(t, ok, "%s uses %s, which is not a known metric family (knownMetrics)", u.Where, u.Raw) {
			continue
		}
		suffix := strings.TrimPrefix(u.Raw, u.Base)
		switch suffix {
		case "_bucket":
			assert.Equal(t, histogram, typ, "%s: %s is a %s, it has no buckets", u.Where, u.Base, typ)
		case "_sum", "_count":
			assert.Contains(t, []metricType{histogram, summary}, typ, "%s: %s is a %s, it has no %s", u.Where, u.Base, typ, suffix)
		default:
			assert.NotEqual(t, histogram, typ, "%s: %s is a histogram, use _bucket, _sum or _count", u.Where, u.Raw)
		}
	}
	for _, u := range chartMetricUses(t) {
		for _, m := range rangeFunctionArg.FindAllStringSubmatch(u.Expr, -1) {
			fn, raw := m[1], m[2]
			typ := knownMetrics[metricBase(raw)]
			if raw == metricBase(raw) && typ != counter {
				t.Errorf("%s: %s(%s): %s is a %s; %s wants a counter", u.Where, fn, raw, raw, typ, fn)
			}
		}
	}
}

// TestTheDashboardShowsEveryKnownMetric: the dashboard is the one place an
// operator sees every series; a metric the server gains needs a panel.
func TestTheDashboardShowsEveryKnownMetric(t *testing.T) {
	t.Parallel()
	used := map[string]bool{}
	for _, u := range chartMetricUses(t) {
		if strings.HasPrefix(u.Where, "dashboard panel") {
			used[u.Base] = true
		}
	}
	for name := range knownMetrics {
		assert.True(t, used[name], "no dashboard panel shows %s", name)
	}
}

func TestMetricBaseStripsOnlyFamilySuffixes(t *testing.T) {
	t.Parallel()
	assert.Equal(t, "ephemeral_store_raft_snapshot_create", metricBase("ephemeral_store_raft_snapshot_create_count"))
	assert.Equal(t, "ephemeral_store_http_requests_total", metricBase("ephemeral_store_http_requests_total"))
}

// TestChartMetricsExistOnARunningServer checks the chart's alerts and
// dashboard, and the knownMetrics list the static checks rely on, against
// the /metrics of a real `serve` process: a metric renamed in the server
// fails here, not silently in an operator's Grafana.
func TestChartMetricsExistOnARunningServer(t *testing.T) {
	families := runningServerMetrics(t)
	series := seriesNames(families)
	for _, use := range chartMetricUses(t) {
		assert.True(t, series[use.Raw], "%s uses %s, which a running server does not export (%s)", use.Where, use.Raw, use.Expr)
	}
	types := map[metricType]dto.MetricType{
		counter: dto.MetricType_COUNTER, gauge: dto.MetricType_GAUGE,
		histogram: dto.MetricType_HISTOGRAM, summary: dto.MetricType_SUMMARY,
	}
	for name, typ := range knownMetrics {
		f, ok := families[name]
		if assert.True(t, ok, "knownMetrics lists %s, which a running server does not export", name) {
			assert.Equal(t, types[typ], f.GetType(), "type of %s", name)
		}
	}
}

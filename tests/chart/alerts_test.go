package chart

// The PrometheusRule (metrics.prometheusRule) and the Grafana dashboard
// ConfigMap (metrics.grafanaDashboard).

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// monitoringOn are the values every alert and dashboard render needs.
var monitoringOn = map[string]string{
	"metrics.enabled":                  "true",
	"metrics.serviceMonitor.enabled":   "true",
	"metrics.prometheusRule.enabled":   "true",
	"metrics.grafanaDashboard.enabled": "true",
}

// withMonitoring returns monitoringOn plus extra --set values.
func withMonitoring(extra map[string]string) map[string]string {
	out := maps.Clone(monitoringOn)
	maps.Copy(out, extra)
	return out
}

type rule struct {
	Alert       string            `json:"alert"`
	Record      string            `json:"record"`
	Expr        string            `json:"expr"`
	For         string            `json:"for"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

type prometheusRule struct {
	APIVersion string `json:"apiVersion"`
	Metadata   struct {
		Name      string            `json:"name"`
		Namespace string            `json:"namespace"`
		Labels    map[string]string `json:"labels"`
	} `json:"metadata"`
	Spec struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []rule `json:"rules"`
		} `json:"groups"`
	} `json:"spec"`
}

// rules returns the rules of the single group of the release's PrometheusRule.
func (p prometheusRule) rules(t *testing.T) []rule {
	t.Helper()
	require.Len(t, p.Spec.Groups, 1, "one rule group")
	return p.Spec.Groups[0].Rules
}

func (p prometheusRule) alert(t *testing.T, name string) rule {
	t.Helper()
	for _, r := range p.rules(t) {
		if r.Alert == name {
			return r
		}
	}
	require.Failf(t, "alert missing", "no alert %s", name)
	return rule{}
}

func renderRule(t *testing.T, o opts) prometheusRule {
	t.Helper()
	all := render(t, o).ofKind("PrometheusRule")
	require.Len(t, all, 1, "exactly one PrometheusRule")
	var p prometheusRule
	require.NoError(t, json.Unmarshal(mustJSON(t, all[0].Raw), &p))
	return p
}

// mustJSON converts one YAML document to JSON.
func mustJSON(t *testing.T, y []byte) []byte {
	t.Helper()
	out, err := yaml.YAMLToJSON(y)
	require.NoError(t, err)
	return out
}

const releaseSelector = `namespace="store-ns", service="ephemeral-store-metrics"`

func TestPrometheusRuleIsOffByDefault(t *testing.T) {
	t.Parallel()
	for name, set := range map[string]map[string]string{
		"defaults":                     nil,
		"ServiceMonitor without rules": {"metrics.enabled": "true", "metrics.serviceMonitor.enabled": "true"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			m := render(t, opts{set: set})
			assert.Empty(t, m.ofKind("PrometheusRule"))
			assert.Nil(t, m.find("ConfigMap", "ephemeral-store-dashboard"))
		})
	}
}

func TestPrometheusRuleDefaultAlerts(t *testing.T) {
	t.Parallel()
	p := renderRule(t, opts{set: monitoringOn})
	assert.Equal(t, "monitoring.coreos.com/v1", p.APIVersion)
	assert.Equal(t, "ephemeral-store", p.Metadata.Name)
	assert.Equal(t, namespace, p.Metadata.Namespace)
	assert.Equal(t, "metrics", p.Metadata.Labels["app.kubernetes.io/component"])

	s := releaseSelector
	cases := []struct {
		alert, expr, forDuration, severity string
		description                        []string // what the operator is told to do
	}{
		{
			alert:    "EphemeralStoreDataLoss",
			expr:     `sum by (namespace, service) (increase(ephemeral_store_data_loss_events_total{` + s + `}[30m])) > 0`,
			severity: "critical",
			description: []string{"Every key written before is gone", "QUORUM LOST FOR GOOD", "kubectl -n store-ns get events",
				"podAntiAffinityPreset", "PodDisruptionBudget"},
		},
		{
			alert:       "EphemeralStoreClusterFork",
			expr:        `sum by (namespace, service) (increase(ephemeral_store_cluster_forks_detected_total{` + s + `}[30m])) > 0`,
			severity:    "critical",
			description: []string{"FORK DETECTED", "forks", "cluster_id", "ephemeral-store cluster reform"},
		},
		{
			alert: "EphemeralStoreNoLeader",
			expr: `(max by (namespace, service) (ephemeral_store_is_leader{` + s + `}) == 0)` + "\nor\n" +
				`absent(ephemeral_store_is_leader{` + s + `})`,
			forDuration: "2m", severity: "critical",
			description: []string{"503 no_quorum", "GET /v1/cluster", "quorum.state", "EphemeralStoreWaitingForSilentVoters", "ServiceMonitor ephemeral-store"},
		},
		{
			alert:       "EphemeralStoreQuorumLost",
			expr:        `sum by (namespace, service) (ephemeral_store_is_voter{` + s + `}) < 3`,
			forDuration: "2m", severity: "critical",
			description: []string{"majority of 3 out of 5", "Bring the missing pods back", "re-form an empty cluster by themselves"},
		},
		{
			alert:       "EphemeralStoreVoterMissing",
			expr:        `sum by (namespace, service) (ephemeral_store_is_voter{` + s + `}) < 5`,
			forDuration: "15m", severity: "warning",
			description: []string{"of 5 pods", "kubectl -n store-ns get pods -l app.kubernetes.io/instance=ephemeral-store,app.kubernetes.io/component=store", "rolling update"},
		},
		{
			alert: "EphemeralStoreConfigurationMismatch",
			expr: `max by (namespace, service) (ephemeral_store_members{` + s + `} and on (pod) (ephemeral_store_is_leader{` + s +
				`} == 1)) != 5`,
			forDuration: "15m", severity: "warning",
			description: []string{"one voter per replica (5)", "non-voter", "promoted", "GET /v1/cluster"},
		},
		{
			alert:       "EphemeralStoreFrequentLeaderChanges",
			expr:        `sum by (namespace, service) (increase(ephemeral_store_raft_state_leader{` + s + `}[1h])) > 5`,
			severity:    "warning",
			description: []string{"within 1h (more than 5)", "over all pods", "CPU throttling", "rolling update"},
		},
		{
			alert:       "EphemeralStoreAuthFailures",
			expr:        `sum by (namespace, service, reason) (rate(ephemeral_store_auth_failures_total{` + s + `}[5m])) > 0.1`,
			forDuration: "10m", severity: "warning",
			description: []string{"{{ $labels.reason }}", "unknown_user", "forbidden", "users ConfigMap (ephemeral-store-users)"},
		},
		{
			alert:       "EphemeralStoreWaitingForSilentVoters",
			expr:        `max by (namespace, service) (ephemeral_store_waiting_for_silent_voters{` + s + `}) == 1`,
			forDuration: "5m", severity: "critical",
			description: []string{
				"quorum-loss timeout (30s)", "silence is never proof", "quorum.silent", "dead for good",
				"ephemeral-store cluster reform --confirm <cluster_id>", "loses every key", "read and write every key",
				"docs/operations.md, Silent voters are waited for",
			},
		},
		{
			alert: "EphemeralStoreMemoryQuotaNearlyFull",
			expr: `max by (namespace, service) (ephemeral_store_quota_used_bytes{` + s + `} / (ephemeral_store_quota_bytes{` + s +
				`} > 0)) > 0.8`,
			forDuration: "5m", severity: "warning",
			description: []string{"more than 0.8", "507 quota_exceeded", "reads and deletes go on", "OOM-killed at once",
				"Delete keys", "resources.limits.memory", "store.quotaBytes"},
		},
		{
			alert:       "EphemeralStoreCertificateExpiresSoon",
			expr:        `min by (namespace, service, pod, kind) (ephemeral_store_certificate_expiry_timestamp_seconds{` + s + `} - time()) / 86400 < 14`,
			forDuration: "15m", severity: "warning",
			description: []string{"less than 14", "NotAfter", "refuse the handshake", "helm upgrade", "tls.renewBeforeDays (30 days",
				"Rotating the root CA", "user Secrets (tls.mode generate)"},
		},
	}
	var names []string
	for _, r := range p.rules(t) {
		names = append(names, r.Alert)
	}
	var want []string
	for _, tc := range cases {
		want = append(want, tc.alert)
	}
	assert.Equal(t, want, names)

	for _, tc := range cases {
		t.Run(tc.alert, func(t *testing.T) {
			r := p.alert(t, tc.alert)
			assert.Equal(t, tc.expr, r.Expr)
			assert.Equal(t, tc.forDuration, r.For)
			assert.Equal(t, map[string]string{"severity": tc.severity}, r.Labels)
			assert.NotEmpty(t, r.Annotations["summary"])
			assert.Contains(t, r.Annotations["summary"], "store-ns/ephemeral-store", "the summary names the release")
			for _, d := range tc.description {
				assert.Contains(t, r.Annotations["description"], d)
			}
			assert.Len(t, r.Annotations, 2, "summary and description")
		})
	}
}

var metricRef = regexp.MustCompile(`\b(ephemeral_store_[A-Za-z0-9_]+)(\{[^}]*\})?`)

// TestAlertsSelectOnlyTheReleasesSeries: every metric in every rule carries
// the namespace and service matchers, and they name what the chart's
// ServiceMonitor scrapes (Prometheus Operator labels each target with the
// namespace and the name of its Service).
func TestAlertsSelectOnlyTheReleasesSeries(t *testing.T) {
	t.Parallel()
	for _, release := range []string{oldRelease, "cache"} {
		t.Run(release, func(t *testing.T) {
			t.Parallel()
			m := render(t, opts{release: release, set: monitoringOn})
			var sm struct {
				Spec struct {
					NamespaceSelector struct {
						MatchNames []string `json:"matchNames"`
					} `json:"namespaceSelector"`
					Selector struct {
						MatchLabels map[string]string `json:"matchLabels"`
					} `json:"selector"`
				} `json:"spec"`
			}
			m.get(t, "ServiceMonitor", m.ofKind("ServiceMonitor")[0].Name, &sm)
			var scraped []corev1.Service
			for _, o := range m.ofKind("Service") {
				var svc corev1.Service
				m.get(t, "Service", o.Name, &svc)
				matches := true
				for k, v := range sm.Spec.Selector.MatchLabels {
					matches = matches && svc.Labels[k] == v
				}
				if matches {
					scraped = append(scraped, svc)
				}
			}
			require.Len(t, scraped, 1, "the ServiceMonitor selects one Service")
			require.Equal(t, []string{namespace}, sm.Spec.NamespaceSelector.MatchNames)
			want := []string{`namespace="` + namespace + `"`, `service="` + scraped[0].Name + `"`}

			var p prometheusRule
			require.NoError(t, json.Unmarshal(mustJSON(t, m.ofKind("PrometheusRule")[0].Raw), &p))
			for _, r := range p.rules(t) {
				refs := metricRef.FindAllStringSubmatch(r.Expr, -1)
				require.NotEmpty(t, refs, r.Alert)
				for _, ref := range refs {
					require.NotEmpty(t, ref[2], "%s: %s has no label selector", r.Alert, ref[1])
					for _, w := range want {
						assert.Contains(t, ref[2], w, "%s: %s", r.Alert, ref[0])
					}
				}
				assertBalanced(t, r.Expr)
				for _, junk := range []string{"%!", "<no value>", "map["} {
					assert.NotContains(t, r.Expr, junk, r.Alert)
					assert.NotContains(t, r.Annotations["description"], junk, r.Alert)
				}
			}
		})
	}
}

// assertBalanced checks brackets and quotes of a PromQL expression (no PromQL
// parser is among the module's dependencies).
func assertBalanced(t *testing.T, expr string) {
	t.Helper()
	var stack []rune
	pairs := map[rune]rune{')': '(', '}': '{', ']': '['}
	inString := false
	for _, c := range expr {
		switch {
		case c == '"':
			inString = !inString
		case inString:
		case c == '(' || c == '{' || c == '[':
			stack = append(stack, c)
		case pairs[c] != 0:
			if assert.NotEmpty(t, stack, "unbalanced %q in %s", c, expr) {
				assert.Equal(t, string(pairs[c]), string(stack[len(stack)-1]), "mismatched %q in %s", c, expr)
				stack = stack[:len(stack)-1]
			}
		}
	}
	assert.False(t, inString, "unterminated string in %s", expr)
	assert.Empty(t, stack, "unclosed brackets in %s", expr)
}

func TestPrometheusRuleIsConfigurable(t *testing.T) {
	t.Parallel()
	t.Run("thresholds, windows, durations and severities", func(t *testing.T) {
		t.Parallel()
		p := renderRule(t, opts{set: withMonitoring(map[string]string{
			"metrics.prometheusRule.rules.dataLoss.window":                  "2h",
			"metrics.prometheusRule.rules.dataLoss.for":                     "1m",
			"metrics.prometheusRule.rules.noLeader.for":                     "30s",
			"metrics.prometheusRule.rules.noLeader.severity":                "page",
			"metrics.prometheusRule.rules.leaderChanges.window":             "30m",
			"metrics.prometheusRule.rules.leaderChanges.threshold":          "12",
			"metrics.prometheusRule.rules.authFailures.threshold":           "2.5",
			"metrics.prometheusRule.rules.authFailures.window":              "10m",
			"metrics.prometheusRule.rules.authFailures.for":                 "",
			"metrics.prometheusRule.rules.waitingForSilentVoters.for":       "1h",
			"metrics.prometheusRule.rules.voterMissing.severity":            "info",
			"metrics.prometheusRule.rules.configurationMismatch.for":        "30m",
			"metrics.prometheusRule.rules.clusterFork.window":               "1d",
			"metrics.prometheusRule.rules.quorumLost.for":                   "5m",
			"metrics.prometheusRule.rules.memoryQuotaNearlyFull.threshold":  "0.95",
			"metrics.prometheusRule.rules.certificateExpiresSoon.threshold": "30",
			"store.quorumLossTimeout":                                       "45s",
		})})
		ce := p.alert(t, "EphemeralStoreCertificateExpiresSoon")
		assert.True(t, strings.HasSuffix(ce.Expr, " / 86400 < 30"), ce.Expr)
		assert.Contains(t, ce.Annotations["description"], "less than 30")
		mq := p.alert(t, "EphemeralStoreMemoryQuotaNearlyFull")
		assert.True(t, strings.HasSuffix(mq.Expr, " > 0)) > 0.95"), mq.Expr)
		assert.Contains(t, mq.Annotations["description"], "more than 0.95")
		dl := p.alert(t, "EphemeralStoreDataLoss")
		assert.Contains(t, dl.Expr, "[2h])) > 0")
		assert.Equal(t, "1m", dl.For)
		nl := p.alert(t, "EphemeralStoreNoLeader")
		assert.Equal(t, "30s", nl.For)
		assert.Equal(t, "page", nl.Labels["severity"])
		lc := p.alert(t, "EphemeralStoreFrequentLeaderChanges")
		assert.True(t, strings.HasSuffix(lc.Expr, "[30m])) > 12"), lc.Expr)
		af := p.alert(t, "EphemeralStoreAuthFailures")
		assert.True(t, strings.HasSuffix(af.Expr, "[10m])) > 2.5"), af.Expr)
		assert.Empty(t, af.For)
		sv := p.alert(t, "EphemeralStoreWaitingForSilentVoters")
		assert.Equal(t, "1h", sv.For)
		assert.Contains(t, sv.Annotations["description"], "quorum-loss timeout (45s)")
		assert.Equal(t, "info", p.alert(t, "EphemeralStoreVoterMissing").Labels["severity"])
		assert.Equal(t, "30m", p.alert(t, "EphemeralStoreConfigurationMismatch").For)
		assert.Contains(t, p.alert(t, "EphemeralStoreClusterFork").Expr, "[1d])) > 0")
		assert.Equal(t, "5m", p.alert(t, "EphemeralStoreQuorumLost").For)
	})
	t.Run("majority and replicas follow replicaCount", func(t *testing.T) {
		t.Parallel()
		for replicas, want := range map[string][2]string{"3": {"< 2", "< 3"}, "7": {"< 4", "< 7"}} {
			p := renderRule(t, opts{set: withMonitoring(map[string]string{"replicaCount": replicas})})
			assert.True(t, strings.HasSuffix(p.alert(t, "EphemeralStoreQuorumLost").Expr, want[0]), replicas)
			assert.True(t, strings.HasSuffix(p.alert(t, "EphemeralStoreVoterMissing").Expr, want[1]), replicas)
			assert.True(t, strings.HasSuffix(p.alert(t, "EphemeralStoreConfigurationMismatch").Expr, "!= "+replicas), replicas)
		}
	})
	t.Run("a disabled rule is left out", func(t *testing.T) {
		t.Parallel()
		p := renderRule(t, opts{set: withMonitoring(map[string]string{
			"metrics.prometheusRule.rules.leaderChanges.enabled": "false",
			"metrics.prometheusRule.rules.authFailures.enabled":  "false",
		})})
		require.Len(t, p.rules(t), 9)
		for _, r := range p.rules(t) {
			assert.NotContains(t, []string{"EphemeralStoreFrequentLeaderChanges", "EphemeralStoreAuthFailures"}, r.Alert)
		}
	})
	t.Run("every rule disabled leaves an empty group", func(t *testing.T) {
		t.Parallel()
		set := withMonitoring(nil)
		for _, name := range []string{"dataLoss", "clusterFork", "noLeader", "quorumLost", "voterMissing", "configurationMismatch", "leaderChanges", "authFailures", "waitingForSilentVoters", "memoryQuotaNearlyFull", "certificateExpiresSoon"} {
			set["metrics.prometheusRule.rules."+name+".enabled"] = "false"
		}
		m := render(t, opts{set: set})
		o := m.ofKind("PrometheusRule")
		require.Len(t, o, 1)
		assert.Contains(t, string(o[0].Raw), "rules: []")
	})
	t.Run("additional rules are appended", func(t *testing.T) {
		t.Parallel()
		p := renderRule(t, opts{set: monitoringOn, setJSON: map[string]string{"metrics.prometheusRule.additionalRules": `[
			{"record":"ephemeral_store:http_requests:rate5m","expr":"sum(rate(ephemeral_store_http_requests_total[5m]))"},
			{"alert":"EphemeralStoreSlowWrites","expr":"histogram_quantile(0.99, sum by (le) (rate(ephemeral_store_http_request_duration_seconds_bucket{route=\"/v1/kv/\"}[5m]))) > 0.5","for":"10m","labels":{"severity":"warning","team":"kv"}}]`}})
		rules := p.rules(t)
		require.Len(t, rules, 13)
		assert.Equal(t, "ephemeral_store:http_requests:rate5m", rules[11].Record)
		assert.Equal(t, "EphemeralStoreSlowWrites", rules[12].Alert)
		assert.Equal(t, "kv", rules[12].Labels["team"])
		assert.Equal(t, "10m", rules[12].For)
	})
	t.Run("namespace and labels", func(t *testing.T) {
		t.Parallel()
		p := renderRule(t, opts{set: withMonitoring(map[string]string{
			"metrics.prometheusRule.namespace":      "monitoring",
			"metrics.prometheusRule.labels.release": "kube-prometheus-stack",
		})})
		assert.Equal(t, "monitoring", p.Metadata.Namespace)
		assert.Equal(t, "kube-prometheus-stack", p.Metadata.Labels["release"])
		// The rules still select the release's namespace, not the rule's.
		assert.Contains(t, p.alert(t, "EphemeralStoreNoLeader").Expr, `namespace="store-ns"`)
	})
}

func TestMonitoringValuesRejectNonsense(t *testing.T) {
	t.Parallel()
	cases := []valuesCase{
		{name: "rules without the ServiceMonitor", set: map[string]string{"metrics.enabled": "true", "metrics.prometheusRule.enabled": "true"},
			want: []string{"metrics.prometheusRule.enabled:", `service="ephemeral-store-metrics"`, "Fix: set metrics.enabled=true and metrics.serviceMonitor.enabled=true"}},
		{name: "rules without metrics", set: map[string]string{"metrics.prometheusRule.enabled": "true"}, want: []string{"metrics.prometheusRule.enabled:"}},
		{name: "window not a duration", set: withMonitoring(map[string]string{"metrics.prometheusRule.rules.dataLoss.window": "30 minutes"}), want: []string{"/metrics/prometheusRule/rules/dataLoss/window"}},
		{name: "empty window", set: withMonitoring(map[string]string{"metrics.prometheusRule.rules.leaderChanges.window": ""}), want: []string{"/metrics/prometheusRule/rules/leaderChanges/window"}},
		{name: "for not a duration", set: withMonitoring(map[string]string{"metrics.prometheusRule.rules.noLeader.for": "2 min"}), want: []string{"/metrics/prometheusRule/rules/noLeader/for"}},
		{name: "negative threshold", set: withMonitoring(map[string]string{"metrics.prometheusRule.rules.authFailures.threshold": "-1"}), want: []string{"/metrics/prometheusRule/rules/authFailures/threshold"}},
		{name: "threshold not a number", set: withMonitoring(map[string]string{"metrics.prometheusRule.rules.leaderChanges.threshold": "many"}), want: []string{"/metrics/prometheusRule/rules/leaderChanges/threshold"}},
		{name: "threshold on a rule without one", set: withMonitoring(map[string]string{"metrics.prometheusRule.rules.noLeader.threshold": "1"}), want: []string{"'threshold' not allowed"}},
		{name: "unknown rule", set: withMonitoring(map[string]string{"metrics.prometheusRule.rules.diskFull.enabled": "true"}), want: []string{"'diskFull' not allowed"}},
		{name: "additional rule without expr", set: monitoringOn, setJSON: map[string]string{"metrics.prometheusRule.additionalRules": `[{"alert":"X"}]`}, want: []string{"/metrics/prometheusRule/additionalRules/0", "expr"}},
		{name: "dashboard label not a string", set: monitoringOn, setJSON: map[string]string{"metrics.grafanaDashboard.labels": `{"grafana_dashboard":1}`}, want: []string{"/metrics/grafanaDashboard/labels/grafana_dashboard"}},
	}
	requireRefused(t, cases)
	t.Run("twin: the dashboard needs neither the ServiceMonitor nor the rules", func(t *testing.T) {
		t.Parallel()
		_, err := renderE(t, opts{set: map[string]string{"metrics.grafanaDashboard.enabled": "true"}})
		assert.NoError(t, err)
	})
}

// dashboard is the part of the Grafana dashboard model the tests read.
type dashboard struct {
	UID           string           `json:"uid"`
	Title         string           `json:"title"`
	SchemaVersion int              `json:"schemaVersion"`
	Panels        []dashboardPanel `json:"panels"`
	Templating    struct {
		List []struct {
			Name       string         `json:"name"`
			Type       string         `json:"type"`
			Query      any            `json:"query"`
			Datasource map[string]any `json:"datasource"`
			Current    map[string]any `json:"current"`
		} `json:"list"`
	} `json:"templating"`
}

type dashboardPanel struct {
	ID         int                      `json:"id"`
	Type       string                   `json:"type"`
	Title      string                   `json:"title"`
	Datasource map[string]any           `json:"datasource"`
	GridPos    struct{ H, W, X, Y int } `json:"gridPos"`
	Targets    []struct {
		Expr       string         `json:"expr"`
		Datasource map[string]any `json:"datasource"`
	} `json:"targets"`
	Panels []dashboardPanel `json:"panels"` // inside a collapsed row
}

// allPanels flattens rows.
func (d dashboard) allPanels() []dashboardPanel {
	var out []dashboardPanel
	var walk func([]dashboardPanel)
	walk = func(ps []dashboardPanel) {
		for _, p := range ps {
			out = append(out, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

// renderDashboard renders the dashboard ConfigMap and decodes its single JSON entry.
func renderDashboard(t *testing.T, o opts) (corev1.ConfigMap, dashboard) {
	t.Helper()
	m := render(t, o)
	all := []object{}
	for _, c := range m.ofKind("ConfigMap") {
		if strings.HasSuffix(c.Name, "-dashboard") {
			all = append(all, c)
		}
	}
	require.Len(t, all, 1, "one dashboard ConfigMap")
	var cm corev1.ConfigMap
	m.get(t, "ConfigMap", all[0].Name, &cm)
	require.Len(t, cm.Data, 1, "one dashboard per ConfigMap")
	var d dashboard
	for _, text := range cm.Data {
		require.True(t, json.Valid([]byte(text)), "the dashboard is valid JSON")
		require.NoError(t, json.Unmarshal([]byte(text), &d))
	}
	return cm, d
}

func TestGrafanaDashboardConfigMap(t *testing.T) {
	t.Parallel()
	cm, d := renderDashboard(t, opts{set: map[string]string{"metrics.grafanaDashboard.enabled": "true"}})
	assert.Equal(t, "ephemeral-store-dashboard", cm.Name)
	assert.Equal(t, namespace, cm.Namespace)
	assert.Equal(t, "1", cm.Labels["grafana_dashboard"], "the sidecar's default label")
	assert.Equal(t, "metrics", cm.Labels["app.kubernetes.io/component"])
	assert.Contains(t, cm.Data, "store-ns-ephemeral-store.json", "a file name unique per release for the sidecar")

	assert.Equal(t, 39, d.SchemaVersion)
	assert.Equal(t, "ephemeral-store store-ns/ephemeral-store", d.Title)
	assert.Regexp(t, `^es-[0-9a-f]{20}$`, d.UID, "Grafana uids have at most 40 characters")

	vars := map[string]int{}
	for i, v := range d.Templating.List {
		vars[v.Name] = i
	}
	for _, name := range []string{"datasource", "namespace", "service", "pod"} {
		require.Contains(t, vars, name, "template variable %s", name)
	}
	assert.Equal(t, "datasource", d.Templating.List[vars["datasource"]].Type)
	assert.Equal(t, "prometheus", d.Templating.List[vars["datasource"]].Query)
	assert.Equal(t, namespace, d.Templating.List[vars["namespace"]].Current["value"], "opens on the release's namespace")
	assert.Equal(t, "ephemeral-store-metrics", d.Templating.List[vars["service"]].Current["value"], "opens on the release")
	for _, name := range []string{"namespace", "service", "pod"} {
		assert.Equal(t, "${datasource}", d.Templating.List[vars[name]].Datasource["uid"], name)
	}

	t.Run("namespace, labels and annotations", func(t *testing.T) {
		t.Parallel()
		cm, _ := renderDashboard(t, opts{
			set: map[string]string{
				"metrics.grafanaDashboard.enabled":                    "true",
				"metrics.grafanaDashboard.namespace":                  "monitoring",
				"metrics.grafanaDashboard.annotations.grafana_folder": "Databases",
				"commonAnnotations.team":                              "kv",
			},
			setJSON: map[string]string{"metrics.grafanaDashboard.labels": `{"dashboards":"kv","grafana_dashboard":null}`},
		})
		assert.Equal(t, "monitoring", cm.Namespace)
		assert.Equal(t, "kv", cm.Labels["dashboards"])
		assert.NotContains(t, cm.Labels, "grafana_dashboard", "null removes the default label")
		assert.Equal(t, "Databases", cm.Annotations["grafana_folder"])
		assert.Equal(t, "kv", cm.Annotations["team"])
	})
	t.Run("uid and title differ per release", func(t *testing.T) {
		t.Parallel()
		cm2, d2 := renderDashboard(t, opts{release: "cache", set: map[string]string{"metrics.grafanaDashboard.enabled": "true"}})
		assert.NotEqual(t, d.UID, d2.UID)
		assert.NotEqual(t, d.Title, d2.Title)
		assert.Contains(t, cm2.Data, "store-ns-cache-ephemeral-store.json")
	})
}

func TestGrafanaDashboardPanels(t *testing.T) {
	t.Parallel()
	_, d := renderDashboard(t, opts{set: map[string]string{"metrics.grafanaDashboard.enabled": "true"}})
	panels := d.allPanels()

	titles := map[string]dashboardPanel{}
	ids := map[int]string{}
	for _, p := range panels {
		titles[p.Title] = p
		if other, dup := ids[p.ID]; dup {
			t.Errorf("panels %q and %q share id %d", other, p.Title, p.ID)
		}
		ids[p.ID] = p.Title
	}
	for _, want := range []string{
		"Leader", "Voting pods", "Build", "Leader per pod", "Suffrage per pod", "Raft configuration size",
		"Leader changes", "Silent voters", "Data-loss events", "Requests by route and code", "Latency by route",
		"Authentication failures by reason", "Keys", "Bytes and quota", "Watchers", "Commit index", "Commit time (leader)",
		"FSM apply batch time", "FSM apply batch size", "Leader last contact (followers)", "Entries applied", "Snapshots",
		"Days until certificates expire",
	} {
		assert.Contains(t, titles, want, "panel %q", want)
	}

	for _, p := range panels {
		if p.Type == "row" {
			continue
		}
		assert.Equal(t, "${datasource}", p.Datasource["uid"], "panel %q uses the datasource variable", p.Title)
		require.NotEmpty(t, p.Targets, "panel %q has queries", p.Title)
		for _, tg := range p.Targets {
			assert.Equal(t, "${datasource}", tg.Datasource["uid"], "panel %q", p.Title)
			assertBalanced(t, tg.Expr)
			refs := metricRef.FindAllStringSubmatch(tg.Expr, -1)
			require.NotEmpty(t, refs, "panel %q: %s", p.Title, tg.Expr)
			for _, ref := range refs {
				assert.Contains(t, ref[2], `namespace="$namespace"`, "panel %q: %s", p.Title, ref[0])
				assert.Contains(t, ref[2], `service="$service"`, "panel %q: %s", p.Title, ref[0])
			}
		}
	}

	// Panels must not overlap on the 24-column grid.
	for i, a := range panels {
		assert.LessOrEqual(t, a.GridPos.X+a.GridPos.W, 24, "panel %q is wider than the grid", a.Title)
		for _, b := range panels[i+1:] {
			overlap := a.GridPos.X < b.GridPos.X+b.GridPos.W && b.GridPos.X < a.GridPos.X+a.GridPos.W &&
				a.GridPos.Y < b.GridPos.Y+b.GridPos.H && b.GridPos.Y < a.GridPos.Y+a.GridPos.H
			assert.False(t, overlap, "panels %q and %q overlap", a.Title, b.Title)
		}
	}
}

// TestGrafanaDashboardFileIsValidJSON reads the chart's file itself, so that a
// broken file is reported as such rather than as a render failure.
func TestGrafanaDashboardFileIsValidJSON(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(filepath.Join(chartDir, "files", "dashboards", "ephemeral-store.json"))
	require.NoError(t, err)
	assert.True(t, json.Valid(data), "files/dashboards/ephemeral-store.json is not valid JSON")
}

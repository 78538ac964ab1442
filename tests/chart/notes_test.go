package chart

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
)

// notesChart copies the chart to a temporary directory and adds a template
// that renders the NOTES.txt text ("ephemeral-store.notes") into a ConfigMap:
// `helm template` does not print NOTES.txt, and `helm install --dry-run`
// needs a cluster.
func notesChart(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ephemeral-store")
	require.NoError(t, os.CopyFS(dir, os.DirFS(chartDir)))
	notes := `apiVersion: v1
kind: ConfigMap
metadata:
  name: rendered-notes
data:
  NOTES.txt: {{ include "ephemeral-store.notes" . | toJson }}
`
	require.NoError(t, os.WriteFile(filepath.Join(dir, "templates", "zz-rendered-notes.yaml"), []byte(notes), 0o644))
	return dir
}

func renderNotes(t *testing.T, chart string, o opts) string {
	t.Helper()
	o.chart = chart
	var cm corev1.ConfigMap
	render(t, o).get(t, "ConfigMap", "rendered-notes", &cm)
	return cm.Data["NOTES.txt"]
}

func TestNotesShowHowToReachTheStore(t *testing.T) {
	t.Parallel()
	chart := notesChart(t)
	notes := renderNotes(t, chart, opts{})
	for _, want := range []string{
		"kubectl -n store-ns get secret ephemeral-store-user-myuser -o jsonpath='{.data.tls\\.crt}'",
		"kubectl -n store-ns port-forward svc/ephemeral-store 8087:8087",
		"curl --cacert ca.crt --cert myuser.crt --key myuser.key",
		"ephemeral-store put --endpoints https://localhost:8087 --cert myuser.crt --key myuser.key --cacert ca.crt",
		"ephemeral-store get --endpoints https://localhost:8087 --cert myuser.crt --key myuser.key --cacert ca.crt",
		"https://ephemeral-store.store-ns.svc.cluster.local:8087",
		"ephemeral-store-secret", "ephemeral-store-ca", "ephemeral-store-client: \"true\"",
		"helm test ephemeral-store -n store-ns --logs",
	} {
		assert.Contains(t, notes, want)
	}
	assert.NotContains(t, notes, "networkPolicy.enabled=false")
}

func TestNotesWarnAboutUnsafeValues(t *testing.T) {
	t.Parallel()
	chart := notesChart(t)
	cases := []struct {
		name string
		set  map[string]string
		want string
	}{
		{name: "soft anti-affinity", set: map[string]string{"podAntiAffinityPreset": "soft"}, want: "two store pods may share a node"},
		{name: "no anti-affinity", set: map[string]string{"podAntiAffinityPreset": ""}, want: "No anti-affinity"},
		{name: "pods hold the CA key", set: map[string]string{"tls.mode": "caSecret"}, want: "every store pod holds the root CA key"},
		{name: "no network policy", set: map[string]string{"networkPolicy.enabled": "false"}, want: "networkPolicy.enabled=false"},
		{name: "client port open", set: map[string]string{"networkPolicy.allowExternal": "true"}, want: "networkPolicy.allowExternal=true"},
		{name: "exposed Service", set: map[string]string{"service.type": "LoadBalancer"}, want: "service.type=LoadBalancer exposes the store"},
		{name: "no PDB", set: map[string]string{"pdb.create": "false"}, want: "pdb.create=false"},
		{name: "PDB without margin", set: map[string]string{"pdb.maxUnavailable": "2"}, want: "pdb.maxUnavailable=2: a drain may take 2 pods at once"},
		{name: "no quota", set: map[string]string{"store.quotaBytes": "-1"}, want: "store.quotaBytes=-1: no data quota"},
		{name: "unrestricted user", want: `user "myuser" has no permissions list`},
		{name: "no memory limit", set: map[string]string{"resources.limits": "null"}, want: "resources.limits is empty"},
		{name: "CA Secret not readable", set: map[string]string{"tls.mode": "caSecret", "tls.ca.create": "false"}, want: "No user certificate Secrets were created"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			notes := renderNotes(t, chart, opts{set: tc.set})
			assert.Contains(t, notes, "WARNINGS")
			assert.Contains(t, notes, tc.want)
		})
	}
	t.Run("prod values warn about none of these", func(t *testing.T) {
		t.Parallel()
		notes := renderNotes(t, chart, opts{valuesFiles: []string{"values-prod.yaml"}})
		assert.NotContains(t, notes, "WARNINGS")
	})
}

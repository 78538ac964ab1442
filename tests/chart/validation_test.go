package chart

import (
	"strings"
	"testing"
)

// TestBadValuesAreRejectedWithAMessage renders values that must not install and
// checks that helm fails with a message naming the key (and, from the chart's
// own validation, a fix).
func TestBadValuesAreRejectedWithAMessage(t *testing.T) {
	t.Parallel()
	cases := []valuesCase{
		// values.schema.json: types, ranges, unknown keys.
		{name: "replicaCount too small", set: map[string]string{"replicaCount": "1"}, want: []string{"/replicaCount", "minimum"}},
		{name: "replicaCount not a number", set: map[string]string{"replicaCount": "five"}, want: []string{"/replicaCount", "want integer"}},
		{name: "replicaCount a string", setJSON: map[string]string{"replicaCount": `"5"`}, want: []string{"/replicaCount", "want integer"}},
		{name: "unknown top-level key", set: map[string]string{"replicas": "5"}, want: []string{"additional properties 'replicas' not allowed"}},
		{name: "unknown nested key", set: map[string]string{"tls.modee": "generate"}, want: []string{"/tls", "'modee' not allowed"}},
		{name: "unknown tls mode", set: map[string]string{"tls.mode": "selfsigned"}, want: []string{"/tls/mode", "generate"}},
		{name: "users not a list", setJSON: map[string]string{"users": `{"name":"myuser"}`}, want: []string{"/users", "want array"}},
		{name: "user without a name", setJSON: map[string]string{"users": `[{"auth_mode":"certificate"}]`}, set: map[string]string{"tests.enabled": "false"}, want: []string{"/users/0", "name"}},
		{name: "user name with a slash", setJSON: map[string]string{"users": `[{"name":"a/b"}]`}, set: map[string]string{"tests.enabled": "false"}, want: []string{"/users/0/name", "does not match pattern"}},
		{name: "user name starting with a dot", setJSON: map[string]string{"users": `[{"name":".hidden"}]`}, set: map[string]string{"tests.enabled": "false"}, want: []string{"/users/0/name"}},
		{name: "unknown auth_mode", setJSON: map[string]string{"users": `[{"name":"u","auth_mode":"password"}]`}, set: map[string]string{"tests.enabled": "false"}, want: []string{"/users/0/auth_mode"}},
		{name: "unknown access", setJSON: map[string]string{"users": `[{"name":"u","permissions":[{"prefix":"a/","access":"write"}]}]`}, set: map[string]string{"tests.enabled": "false"}, want: []string{"/users/0/permissions/0/access"}},
		{name: "port out of range", set: map[string]string{"service.port": "70000"}, want: []string{"/service/port", "maximum"}},
		{name: "bad duration", set: map[string]string{"store.quorumLossTimeout": "30 seconds"}, want: []string{"/store/quorumLossTimeout"}},
		{name: "bad anti-affinity preset", set: map[string]string{"podAntiAffinityPreset": "strict"}, want: []string{"/podAntiAffinityPreset"}},
		{name: "key limit above the server's", set: map[string]string{"store.maxKeyBytes": "70000"}, want: []string{"/store/maxKeyBytes", "maximum"}},
		{name: "grace period shorter than a graceful exit", set: map[string]string{"terminationGracePeriodSeconds": "5"}, want: []string{"/terminationGracePeriodSeconds", "minimum"}},
		{name: "fullnameOverride too long", set: map[string]string{"fullnameOverride": strings.Repeat("a", 53)}, want: []string{"/fullnameOverride", "maxLength"}},

		// The chart's own validation (ephemeral-store.validateValues).
		{name: "replicaCount even", set: map[string]string{"replicaCount": "4"}, want: []string{"replicaCount: 4 is even", "Fix: set an odd replicaCount, 3 or 5"}},
		{name: "replicaCount even and large", set: map[string]string{"replicaCount": "6"}, want: []string{"replicaCount: 6 is even", "5 or 7"}},
		{name: "release name too long", set: map[string]string{"nameOverride": strings.Repeat("n", 50)}, want: []string{"fullnameOverride:", "at most 52"}},
		{name: "duplicate user", setJSON: map[string]string{"users": `[{"name":"a"},{"name":"a"}]`}, set: map[string]string{"tests.enabled": "false"}, want: []string{`users[1].name: "a" is listed twice`, "Fix:"}},
		{name: "user secret name invalid", setJSON: map[string]string{"users": `[{"name":"My_User","createSecret":true}]`}, set: map[string]string{"tests.enabled": "false"}, want: []string{"users[0].secretName:", "Fix: set users[0].secretName"}},
		{name: "podLabels touching the selector", set: map[string]string{"podLabels.app\\.kubernetes\\.io/component": "x"}, want: []string{`podLabels: "app.kubernetes.io/component"`, "Fix:"}},
		{name: "createSecret in existing mode", set: map[string]string{"tls.mode": "existing", "tls.existing.serverSecret": "srv"}, want: []string{"users[0].createSecret: tls.mode=existing", "Fix:"}},
		{name: "existing mode without server Secret", set: map[string]string{"tls.mode": "existing", "users[0].name": "myuser", "users[0].createSecret": "false", "tests.existingSecret": "c"}, want: []string{"tls.existing.serverSecret: required", "Fix:"}},
		{name: "existing mode without any CA", set: map[string]string{"tls.mode": "existing", "tls.existing.serverSecret": "srv", "tls.existing.caKey": "", "users[0].name": "myuser", "users[0].createSecret": "false", "tests.existingSecret": "c"}, want: []string{"tls.existing.caKey:", "Fix:"}},
		{name: "generated user certificate with a separate client CA", set: map[string]string{"tls.clientCA.existingSecret": "user-ca"}, want: []string{"users[0].createSecret:", "tls.clientCA.existingSecret", "Fix:"}},
		{name: "generate mode without a readable CA", set: map[string]string{"tls.ca.create": "false"}, want: []string{"tls.ca.create: false", "kubectl create secret generic ephemeral-store-secret", "Fix:"}},
		{name: "ServiceMonitor without metrics", set: map[string]string{"metrics.serviceMonitor.enabled": "true"}, want: []string{"metrics.serviceMonitor.enabled:", "Fix: set metrics.enabled=true"}},
		{name: "test user missing", set: map[string]string{"tests.user": "ghost"}, want: []string{`tests.user: "ghost" is not in users`, "Fix:"}},
		{name: "test user without a Secret", setJSON: map[string]string{"users": `[{"name":"myuser"}]`}, want: []string{`tests.user: "myuser" has no createSecret`, "Fix:"}},
		{name: "test user that cannot write", setJSON: map[string]string{"users": `[{"name":"myuser","createSecret":true,"permissions":[{"prefix":"","access":"read"}]}]`}, want: []string{`tests.user: "myuser" has no readwrite permission on "helm-test/"`, "Fix:"}},
		{name: "PDB that allows a majority down", set: map[string]string{"replicaCount": "5", "pdb.maxUnavailable": "3"}, want: []string{"pdb.maxUnavailable: 3 of 5 pods", "Fix:"}},
		{name: "PDB that allows a majority down with 3 replicas", set: map[string]string{"replicaCount": "3", "pdb.maxUnavailable": "2"}, want: []string{"pdb.maxUnavailable: 2 of 3 pods", "Fix:"}},
		{name: "PDB that allows none down", set: map[string]string{"pdb.maxUnavailable": "0"}, want: []string{"/pdb/maxUnavailable", "minimum"}},
		{name: "several problems at once", set: map[string]string{"replicaCount": "4", "tests.user": "ghost"}, want: []string{"replicaCount: 4 is even", `tests.user: "ghost"`}},
	}
	requireRefused(t, cases)
}

// The twins of the rejections: values next to the refused ones render.
func TestValidValuesNextToTheRejectedOnesRender(t *testing.T) {
	t.Parallel()
	cases := []valuesCase{
		{name: "three replicas", set: map[string]string{"replicaCount": "3"}},
		{name: "seven replicas", set: map[string]string{"replicaCount": "7"}},
		{name: "52-character name", set: map[string]string{"fullnameOverride": strings.Repeat("a", 52)}},
		{name: "test user with readwrite on the test prefix", setJSON: map[string]string{"users": `[{"name":"myuser","createSecret":true,"permissions":[{"prefix":"helm-","access":"readwrite"}]}]`}},
		{name: "separate client CA without generated users", set: map[string]string{"tls.clientCA.existingSecret": "user-ca", "users[0].name": "myuser", "users[0].createSecret": "false", "tests.existingSecret": "c"}},
		{name: "upper-case user with a secretName", setJSON: map[string]string{"users": `[{"name":"My_User","createSecret":true,"secretName":"my-user"}]`}, set: map[string]string{"tests.user": "My_User"}},
	}
	requireRendered(t, cases)
}

package chart

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

func TestUsersRenderIntoTheConfigMapInTheOldFormat(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		users   string
		data    map[string]string // key -> JSON
		secrets []string
	}{
		{
			name:    "default user",
			users:   `[{"name":"myuser","auth_mode":"certificate","createSecret":true}]`,
			data:    map[string]string{"myuser.json": `{"name":"myuser","auth_mode":"certificate"}`},
			secrets: []string{"ephemeral-store-user-myuser"},
		},
		{
			name:  "auth_mode defaults to certificate",
			users: `[{"name":"svc"}]`,
			data:  map[string]string{"svc.json": `{"name":"svc","auth_mode":"certificate"}`},
		},
		{
			name: "permissions kept, chart-only keys dropped",
			users: `[{"name":"pool-reader","auth_mode":"certificate","createSecret":true,"secretName":"reader-cert","namespace":"kube-system",
			          "permissions":[{"prefix":"pools/","access":"read"},{"prefix":"tmp/","access":"readwrite"}]},
			         {"name":"nobody","auth_mode":"certificate","permissions":[]},
			         {"name":"All_Keys.v2","auth_mode":"certificate"}]`,
			data: map[string]string{
				"pool-reader.json": `{"name":"pool-reader","auth_mode":"certificate","permissions":[{"prefix":"pools/","access":"read"},{"prefix":"tmp/","access":"readwrite"}]}`,
				"nobody.json":      `{"name":"nobody","auth_mode":"certificate","permissions":[]}`,
				"All_Keys.v2.json": `{"name":"All_Keys.v2","auth_mode":"certificate"}`,
			},
			secrets: []string{"reader-cert"},
		},
		{
			name:  "no users",
			users: `[]`,
			data:  map[string]string{},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := render(t, opts{setJSON: map[string]string{"users": tc.users}, set: map[string]string{"tests.enabled": "false"}})
			var cm corev1.ConfigMap
			m.get(t, "ConfigMap", "ephemeral-store-users", &cm)
			require.Len(t, cm.Data, len(tc.data))
			for k, want := range tc.data {
				require.Contains(t, cm.Data, k)
				assert.JSONEq(t, want, cm.Data[k], k)
				var obj map[string]any
				require.NoError(t, json.Unmarshal([]byte(cm.Data[k]), &obj))
				assert.NotContains(t, obj, "createSecret")
				assert.NotContains(t, obj, "secretName")
				assert.NotContains(t, obj, "namespace")
			}
			var userSecrets []string
			for _, s := range m.ofKind("Secret") {
				if s.Meta.Labels["app.kubernetes.io/component"] == "client-certificate" {
					userSecrets = append(userSecrets, s.Name)
				}
			}
			assert.ElementsMatch(t, tc.secrets, userSecrets, "only users with createSecret get a Secret")
		})
	}
}

func TestExistingUsersConfigMapIsMountedInstead(t *testing.T) {
	t.Parallel()
	m := render(t, opts{set: map[string]string{"existingUsersConfigMap": "my-users"}})
	assert.Empty(t, m.ofKind("ConfigMap"))
	sts := m.statefulSet(t)
	users := volume(sts.Spec.Template.Spec, "users")
	require.NotNil(t, users)
	assert.Equal(t, "my-users", users.ConfigMap.Name)
	assert.Equal(t, "users", mounts(storeContainer(t, sts))["/etc/ephemeral-store/users"])
	assert.NotNil(t, m.find("Secret", "ephemeral-store-user-myuser"), "users still drive client certificates")
}

// podTemplate renders the chart and returns the StatefulSet's pod template as YAML.
func podTemplate(t *testing.T, o opts) string {
	t.Helper()
	sts := render(t, o).statefulSet(t)
	out, err := yaml.Marshal(sts.Spec.Template)
	require.NoError(t, err)
	return string(out)
}

// A change of users must roll nothing (the store reloads them live), while a
// change of server configuration must roll the pods. The second half is the
// twin that proves the first can fail.
func TestUsersChangeRollsNothingButServerConfigDoes(t *testing.T) {
	t.Parallel()
	base := podTemplate(t, opts{})

	t.Run("users changed", func(t *testing.T) {
		t.Parallel()
		changed := podTemplate(t, opts{setJSON: map[string]string{"users": `[
			{"name":"myuser","auth_mode":"certificate","createSecret":true},
			{"name":"reader","auth_mode":"certificate","permissions":[{"prefix":"pools/","access":"read"}]}]`}})
		assert.Equal(t, base, changed, "the pod template must not change when only users change")
	})
	baseChecksum := render(t, opts{}).statefulSet(t).Spec.Template.Annotations["checksum/config"]
	require.NotEmpty(t, baseChecksum)
	for key, value := range map[string]string{
		"store.logLevel":          "debug",
		"store.maxValueBytes":     "2048",
		"store.quorumLossTimeout": "1m",
		"tls.peerCommonName":      "peer",
	} {
		t.Run(key+" changed", func(t *testing.T) {
			t.Parallel()
			sts := render(t, opts{set: map[string]string{key: value}}).statefulSet(t)
			assert.NotEqual(t, baseChecksum, sts.Spec.Template.Annotations["checksum/config"], "%s=%s must roll the pods", key, value)
		})
	}
}

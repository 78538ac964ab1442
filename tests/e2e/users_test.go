//go:build e2e

package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gruntwork-io/terratest/modules/k8s"
	"github.com/gruntwork-io/terratest/modules/random"
	"github.com/gruntwork-io/terratest/modules/retry"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ephemeral-store/ephemeral-store/store/client"
)

// usersValues is values-kind.yaml's users plus extra ones, as a values file.
const usersValues = `users:
  - name: myuser
    auth_mode: certificate
    createSecret: true
  - name: reader
    auth_mode: certificate
    createSecret: true
    permissions:
      - prefix: pools/
        access: read
%s`

// TestE2EUsersLive: users change while the pods keep running. A user added
// through `helm upgrade` (the users list, its certificate Secret made by the
// chart) and one added through `kubectl apply` of the users ConfigMap (its
// certificate signed here by the release's CA) get in without any pod
// restarting; removed, they are refused; a user limited to a prefix is
// refused outside it.
func TestE2EUsersLive(t *testing.T) {
	c := suite(t, "users live")
	usersFile := filepath.Join(t.TempDir(), "users.yaml")
	writeUsers := func(extra string) {
		require.NoError(t, os.WriteFile(usersFile, []byte(fmt.Sprintf(usersValues, extra)), 0o600))
	}
	writeUsers("")
	r := install(t, c, installOptions{Label: "users", ValuesFiles: []string{usersFile}})
	run := strings.ToLower(random.UniqueID())
	admin, _ := r.tunnel(t, k8s.ResourceTypeService, r.fullname, nil)
	_, err := admin.Put(t.Context(), "pools/"+run, []byte("healthy"))
	require.NoError(t, err)
	_, err = admin.Put(t.Context(), "private/"+run, []byte("secret"))
	require.NoError(t, err)
	pods := r.identities(t)
	t.Logf("store pods before any user change: %v", pods)

	// A user limited to a prefix: reads under it, nothing else.
	reader, _ := r.tunnel(t, k8s.ResourceTypeService, r.fullname, r.userTLS(t, "reader"))
	kv, err := reader.Get(t.Context(), "pools/"+run)
	require.NoError(t, err, "reader reads under pools/")
	require.Equal(t, "healthy", string(kv.Value))
	_, err = reader.Get(t.Context(), "private/"+run)
	requireForbidden(t, err, "reader gets private/"+run)
	_, err = reader.Put(t.Context(), "pools/"+run, []byte("down"))
	requireForbidden(t, err, "reader (read only) puts pools/"+run)
	t.Logf("reader (pools/ read only): reads pools/, refused a write there and a read outside it (403 forbidden)")

	// Added through helm upgrade: alice, every key; the chart makes her Secret.
	writeUsers("  - name: alice\n    auth_mode: certificate\n    createSecret: true\n")
	r.upgrade(t, nil)
	aliceTLS := r.userTLS(t, "alice")
	alice, _ := r.tunnel(t, k8s.ResourceTypeService, r.fullname, aliceTLS)
	waitAllowed(t, "alice (added by helm upgrade) writes", func() error {
		_, err := alice.Put(t.Context(), "alice/"+run, []byte("from alice"))
		return err
	})
	requireSamePods(t, r, pods)

	// Added through kubectl apply of the ConfigMap: bob, readwrite under bob/ only.
	cmName := r.fullname + "-users"
	cm, err := k8s.GetConfigMapContextE(t, t.Context(), r.kubectl, cmName)
	require.NoError(t, err)
	bobJSON, err := json.Marshal(map[string]any{"name": "bob", "auth_mode": "certificate",
		"permissions": []map[string]string{{"prefix": "bob/", "access": "readwrite"}}})
	require.NoError(t, err)
	applyUsers(t, r, cm, map[string]string{"bob.json": string(bobJSON)}, nil)
	bobCert, bobKey := r.releaseCA(t).ValidClientCert(t, "bob")
	bob, _ := r.tunnel(t, k8s.ResourceTypeService, r.fullname, r.tlsConfig(t, bobCert, bobKey, r.releaseCA(t).CertPEM))
	waitAllowed(t, "bob (added by kubectl apply) writes under bob/", func() error {
		_, err := bob.Put(t.Context(), "bob/"+run, []byte("from bob"))
		return err
	})
	_, err = bob.Get(t.Context(), "alice/"+run)
	requireForbidden(t, err, "bob gets alice/"+run)
	t.Logf("bob (bob/ readwrite): writes under bob/, refused alice/ (403 forbidden)")
	requireSamePods(t, r, pods)

	// Removed through kubectl apply: bob is refused.
	cm, err = k8s.GetConfigMapContextE(t, t.Context(), r.kubectl, cmName)
	require.NoError(t, err)
	applyUsers(t, r, cm, nil, []string{"bob.json"})
	waitRefused(t, "bob, removed from the ConfigMap", func() error {
		_, err := bob.Get(t.Context(), "bob/"+run)
		return err
	})

	// Removed through helm upgrade: alice is refused, with the certificate she had.
	writeUsers("")
	r.upgrade(t, nil)
	alice2, _ := r.tunnel(t, k8s.ResourceTypeService, r.fullname, aliceTLS)
	waitRefused(t, "alice, removed from the users list", func() error {
		_, err := alice2.Get(t.Context(), "alice/"+run)
		return err
	})
	_, err = admin.Get(t.Context(), "pools/"+run)
	require.NoError(t, err, "myuser still gets in")
	requireSamePods(t, r, pods)
}

// applyUsers applies the users ConfigMap cm with entries added and removed,
// the way an operator edits it with kubectl.
func applyUsers(t *testing.T, r *release, cm *corev1.ConfigMap, add map[string]string, remove []string) {
	t.Helper()
	data := map[string]string{}
	for k, v := range cm.Data {
		data[k] = v
	}
	for k, v := range add {
		data[k] = v
	}
	for _, k := range remove {
		delete(data, k)
	}
	out := corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Name: cm.Name, Namespace: cm.Namespace, Labels: cm.Labels, Annotations: cm.Annotations},
		Data:       data,
	}
	doc, err := json.Marshal(out)
	require.NoError(t, err)
	require.NoError(t, k8s.KubectlApplyFromStringContextE(t, t.Context(), r.kubectl, string(doc)), "kubectl apply ConfigMap %s", cm.Name)
	t.Logf("kubectl apply ConfigMap %s: added %v, removed %v", cm.Name, sortedKeys(add), remove)
}

// The kubelet brings a ConfigMap change into the pods within its sync
// period (about a minute), and the store then reloads it: waits allow 5 minutes.

func waitAllowed(t *testing.T, what string, op func() error) {
	t.Helper()
	_, err := retry.DoWithRetryContextE(t, t.Context(), what, pollTries, pollEvery, func() (string, error) {
		return "", op()
	})
	require.NoError(t, err, what)
	t.Logf("%s: allowed", what)
}

func waitRefused(t *testing.T, what string, op func() error) {
	t.Helper()
	_, err := retry.DoWithRetryContextE(t, t.Context(), what+" is refused", pollTries, pollEvery, func() (string, error) {
		err := op()
		if errors.Is(err, client.ErrUnauthenticated) {
			return err.Error(), nil
		}
		return "", fmt.Errorf("want 401 unauthenticated, got %w", err)
	})
	require.NoError(t, err, what)
	t.Logf("%s: refused (401 unauthenticated)", what)
}

func requireForbidden(t *testing.T, err error, what string) {
	t.Helper()
	require.Truef(t, errors.Is(err, client.ErrForbidden), "%s: want 403 forbidden, got %v", what, err)
}

// requireSamePods fails unless every store pod is the one of before, with
// no container restarted.
func requireSamePods(t *testing.T, r *release, before map[string]string) {
	t.Helper()
	require.Equal(t, before, r.identities(t), "a store pod was replaced or restarted by a users change")
	t.Logf("no store pod restarted or replaced (same UIDs and restart counts)")
}

package replicas

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		spec string
		want Source
		bad  bool
	}{
		{spec: "", want: Fixed(5)},
		{spec: "file:/run/count", want: File("/run/count")},
		{spec: "file:", bad: true},
		{spec: "configmap", bad: true},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			got, err := Parse(tc.spec, 5, "store-2")
			if tc.bad {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
	t.Run("statefulset outside a pod", func(t *testing.T) {
		t.Setenv("KUBERNETES_SERVICE_HOST", "")
		_, err := Parse("statefulset", 5, "store-2")
		require.Error(t, err)
	})
}

func TestFileSource(t *testing.T) {
	path := filepath.Join(t.TempDir(), "replicas")
	f := File(path)
	_, err := f.Replicas(context.Background())
	require.Error(t, err, "a missing file is no count")
	for content, want := range map[string]int{"3\n": 3, " 7 ": 7, "0": 0, "-1": 0, "five": 0} {
		require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
		got, err := f.Replicas(context.Background())
		if want == 0 {
			require.Error(t, err, "%q", content)
			continue
		}
		require.NoError(t, err, "%q", content)
		assert.Equal(t, want, got)
	}
}

// TestStatefulSetSource reads spec.replicas with the service account's
// token, re-read for every request (projected tokens rotate).
func TestStatefulSetSource(t *testing.T) {
	var replicas = `5`
	var gotAuth []string
	api := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth = append(gotAuth, r.Header.Get("Authorization"))
		switch r.URL.Path {
		case "/apis/apps/v1/namespaces/kv/statefulsets/store":
			_, _ = w.Write([]byte(`{"kind":"StatefulSet","spec":{"replicas":` + replicas + `,"serviceName":"x"},"status":{"replicas":9}}`))
		default:
			http.Error(w, `{"reason":"Forbidden"}`, http.StatusForbidden)
		}
	}))
	defer api.Close()
	token := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(token, []byte("first\n"), 0o600))
	s := &StatefulSet{URL: api.URL + "/apis/apps/v1/namespaces/kv/statefulsets/store", TokenFile: token, Client: api.Client()}

	n, err := s.Replicas(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 5, n, "spec.replicas, not status")

	replicas = `3`
	require.NoError(t, os.WriteFile(token, []byte("second"), 0o600))
	n, err = s.Replicas(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 3, n)
	assert.Equal(t, []string{"Bearer first", "Bearer second"}, gotAuth)

	replicas = `0`
	_, err = s.Replicas(context.Background())
	require.Error(t, err, "zero replicas is no count to act on")

	other := &StatefulSet{URL: api.URL + "/apis/apps/v1/namespaces/kv/statefulsets/other", Client: api.Client()}
	_, err = other.Replicas(context.Background())
	require.ErrorContains(t, err, "403")
}

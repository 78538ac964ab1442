package chart

// Clients in another namespace than the store (the old deployment: the
// Application Services Proxy DaemonSet in kube-system): their certificate
// Secrets and the old docs' CA-only Secret are rendered where they run, in
// every TLS mode, and the NetworkPolicy admits exactly them.

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	networkingv1 "k8s.io/api/networking/v1"

	"github.com/ephemeral-store/ephemeral-store/tests/internal/testca"
)

// aspUsers: myuser stays in the release namespace (the helm test's), asp
// goes to kube-system, edge to edge.
const aspUsers = `[{"name":"myuser","createSecret":true},
	{"name":"asp","createSecret":true,"namespace":"kube-system"},
	{"name":"edge","createSecret":true,"namespace":"edge"}]`

// secretsByNamespace maps "namespace/name" of every rendered Secret to its object.
func secretsByNamespace(m *manifests) map[string]object {
	out := map[string]object{}
	for _, o := range m.ofKind("Secret") {
		out[o.Meta.Namespace+"/"+o.Name] = o
	}
	return out
}

func TestUserSecretsAndTheCAOnlySecretGoToTheClientNamespaces(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		release  string
		set      map[string]string
		setJSON  map[string]string
		want     []string // namespace/name of Secrets that must be rendered
		notWant  []string
		caSecret string // the root CA Secret the certificates chain to
	}{
		{
			name:    "generate: users' Secrets in their namespaces, the old docs' CA-only Secret in each",
			setJSON: map[string]string{"users": aspUsers},
			want: []string{
				"store-ns/ephemeral-store-user-myuser", "kube-system/ephemeral-store-user-asp", "edge/ephemeral-store-user-edge",
				"kube-system/ephemeral-store-user-rootca-cert", "edge/ephemeral-store-user-rootca-cert", "store-ns/ephemeral-store-ca",
			},
			notWant:  []string{"store-ns/ephemeral-store-user-asp", "store-ns/ephemeral-store-user-rootca-cert", "kube-system/ephemeral-store-ca"},
			caSecret: "ephemeral-store-secret",
		},
		{
			name:    "caSecret mode with the chart's CA: the same",
			set:     map[string]string{"tls.mode": "caSecret"},
			setJSON: map[string]string{"users": aspUsers},
			want: []string{
				"kube-system/ephemeral-store-user-asp", "edge/ephemeral-store-user-edge",
				"kube-system/ephemeral-store-user-rootca-cert", "edge/ephemeral-store-user-rootca-cert",
			},
			caSecret: "ephemeral-store-secret",
		},
		{
			name: "clientNamespaces: a user without a namespace gets a Secret in each; one with its own, only there",
			set:  map[string]string{"tests.existingSecret": "client"},
			setJSON: map[string]string{
				"clientNamespaces": `["edge","kube-system"]`,
				"users":            `[{"name":"myuser","createSecret":true},{"name":"asp","createSecret":true,"namespace":"kube-system"},{"name":"nocert"}]`,
			},
			want: []string{
				"edge/ephemeral-store-user-myuser", "kube-system/ephemeral-store-user-myuser", "kube-system/ephemeral-store-user-asp",
				"edge/ephemeral-store-user-rootca-cert", "kube-system/ephemeral-store-user-rootca-cert",
			},
			notWant: []string{
				"store-ns/ephemeral-store-user-myuser", "edge/ephemeral-store-user-asp", "store-ns/ephemeral-store-user-asp",
				"edge/ephemeral-store-user-nocert", "kube-system/ephemeral-store-user-nocert", "store-ns/ephemeral-store-user-rootca-cert",
			},
			caSecret: "ephemeral-store-secret",
		},
		{
			name:    "clientNamespaces with the release namespace: the helm test user's Secret stays there too, no CA-only Secret there",
			setJSON: map[string]string{"clientNamespaces": `["kube-system","store-ns"]`},
			want: []string{
				"store-ns/ephemeral-store-user-myuser", "kube-system/ephemeral-store-user-myuser",
				"kube-system/ephemeral-store-user-rootca-cert", "store-ns/ephemeral-store-ca",
			},
			notWant:  []string{"store-ns/ephemeral-store-user-rootca-cert"},
			caSecret: "ephemeral-store-secret",
		},
		{
			name:     "clientNamespaces in caSecret mode: the same",
			set:      map[string]string{"tls.mode": "caSecret"},
			setJSON:  map[string]string{"clientNamespaces": `["kube-system","store-ns","edge"]`},
			want:     []string{"store-ns/ephemeral-store-user-myuser", "kube-system/ephemeral-store-user-myuser", "edge/ephemeral-store-user-myuser"},
			caSecret: "ephemeral-store-secret",
		},
		{
			name:     "another release: the CA-only Secret is named after it, so two releases never fight over one object",
			release:  "cache",
			setJSON:  map[string]string{"users": aspUsers},
			want:     []string{"kube-system/cache-ephemeral-store-user-asp", "kube-system/cache-ephemeral-store-user-rootca-cert"},
			notWant:  []string{"kube-system/ephemeral-store-user-rootca-cert"},
			caSecret: "cache-ephemeral-store-secret",
		},
		{
			name:     "another release keeps the old docs' name when asked",
			release:  "cache",
			set:      map[string]string{"clientCA.secretName": "ephemeral-store-user-rootca-cert"},
			setJSON:  map[string]string{"users": aspUsers},
			want:     []string{"kube-system/ephemeral-store-user-rootca-cert", "edge/ephemeral-store-user-rootca-cert"},
			caSecret: "cache-ephemeral-store-secret",
		},
		{
			name:     "clientCA.namespaces: clients with certificates of their own get the CA only",
			setJSON:  map[string]string{"clientCA.namespaces": `["ingress"]`},
			want:     []string{"ingress/ephemeral-store-user-rootca-cert"},
			notWant:  []string{"ingress/ephemeral-store-user-myuser"},
			caSecret: "ephemeral-store-secret",
		},
		{
			name:    "clientCA.create=false: no CA-only Secret anywhere",
			set:     map[string]string{"clientCA.create": "false"},
			setJSON: map[string]string{"users": aspUsers},
			want:    []string{"kube-system/ephemeral-store-user-asp"},
			notWant: []string{"kube-system/ephemeral-store-user-rootca-cert", "edge/ephemeral-store-user-rootca-cert"},
		},
		{
			name:    "no client namespace: nothing outside the release namespace (as before)",
			want:    []string{"store-ns/ephemeral-store-user-myuser", "store-ns/ephemeral-store-ca"},
			notWant: []string{"store-ns/ephemeral-store-user-rootca-cert"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := render(t, opts{release: tc.release, set: tc.set, setJSON: tc.setJSON})
			secrets := secretsByNamespace(m)
			names := keys(secrets)
			for _, w := range tc.want {
				assert.Contains(t, names, w)
			}
			for _, w := range tc.notWant {
				assert.NotContains(t, names, w)
			}
			assert.Len(t, m.ofKind("Secret"), len(secrets), "each Secret once per namespace")
			for _, o := range m.ofKind("Secret") {
				if o.Meta.Namespace != namespace {
					assert.Contains(t, []string{"client-certificate", "client-ca"}, o.Meta.Labels["app.kubernetes.io/component"],
						"only client Secrets leave the release namespace: %s/%s", o.Meta.Namespace, o.Name)
				}
			}
			if tc.caSecret == "" {
				return
			}
			ca := m.secret(t, tc.caSecret)
			roots := x509.NewCertPool()
			roots.AddCert(parseCert(t, ca.Data["rootCA.crt"]))
			for _, key := range tc.want {
				o := secrets[key]
				var s struct {
					Data map[string][]byte `json:"data"`
				}
				require.NoError(t, json.Unmarshal(mustJSON(t, o.Raw), &s))
				switch o.Meta.Labels["app.kubernetes.io/component"] {
				case "client-ca":
					assert.Equal(t, []string{"rootCA.crt"}, keys(s.Data), "%s: the CA certificate only, never its key", key)
					assert.Equal(t, string(ca.Data["rootCA.crt"]), string(s.Data["rootCA.crt"]), "%s: the root CA", key)
				case "client-certificate":
					cert := parseCert(t, s.Data["tls.crt"])
					assert.Equal(t, o.Meta.Annotations["ephemeral-store.io/user"], cert.Subject.CommonName, "%s: CN is the user", key)
					_, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
					assert.NoError(t, err, "%s chains to the chart's CA", key)
					assert.Equal(t, string(ca.Data["rootCA.crt"]), string(s.Data["ca.crt"]), "%s: ca.crt", key)
				}
			}
		})
	}
}

// TestClientNamespaceUserCertificatesAreKeptAndRenewed: `helm upgrade` reads a
// client-namespace user Secret back from that namespace and keeps it while it
// is valid beyond tls.renewBeforeDays, and re-issues it (same CA) when it
// expires within them. The twin: the same Secret in the release namespace is
// not the user's, and a new certificate is issued.
func TestClientNamespaceUserCertificatesAreKeptAndRenewed(t *testing.T) {
	t.Parallel()
	users := map[string]string{"users": aspUsers}
	first := render(t, opts{setJSON: users})
	ca := first.secret(t, "ephemeral-store-secret")
	asp := first.secret(t, "ephemeral-store-user-asp")
	require.Equal(t, "kube-system", asp.Namespace)
	inCluster := fakeSecret{Type: "kubernetes.io/tls", Annotations: asp.Annotations, Data: asp.Data}
	cluster := func(where string) map[string]fakeSecret {
		return map[string]fakeSecret{"ephemeral-store-secret": {Data: ca.Data}, where: inCluster}
	}
	upgrade := func(t *testing.T, set map[string]string, secrets map[string]fakeSecret) []byte {
		t.Helper()
		out, err := renderWithSecrets(t, opts{set: set, setJSON: users}, secrets)
		require.NoError(t, err)
		s := decode(t, out).secret(t, "ephemeral-store-user-asp")
		roots := x509.NewCertPool()
		roots.AddCert(parseCert(t, ca.Data["rootCA.crt"]))
		_, err = parseCert(t, s.Data["tls.crt"]).Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
		require.NoError(t, err, "signed by the same CA")
		return s.Data["tls.crt"]
	}

	t.Run("kept while valid", func(t *testing.T) {
		t.Parallel()
		got := upgrade(t, nil, cluster("kube-system/ephemeral-store-user-asp"))
		assert.Equal(t, string(asp.Data["tls.crt"]), string(got), "helm upgrade must keep the certificate it finds in kube-system")
	})
	t.Run("renewed within renewBeforeDays", func(t *testing.T) {
		t.Parallel()
		got := upgrade(t, map[string]string{"tls.renewBeforeDays": "900"}, cluster("kube-system/ephemeral-store-user-asp"))
		assert.NotEqual(t, string(asp.Data["tls.crt"]), string(got), "a certificate expiring within renewBeforeDays (900 > 825) is re-issued")
	})
	t.Run("looked up in the client namespace, not the release's", func(t *testing.T) {
		t.Parallel()
		got := upgrade(t, nil, cluster("ephemeral-store-user-asp"))
		assert.NotEqual(t, string(asp.Data["tls.crt"]), string(got), "a Secret of that name in the release namespace is not the user's")
	})
}

// TestEachClientNamespaceCopyIsKeptAndRenewedOnItsOwn: a user without a
// namespace gets one certificate per namespace of clientNamespaces, each with
// a key of its own, and `helm upgrade` reads each copy back from its own
// namespace: the one expiring within tls.renewBeforeDays is re-issued (same
// CA), the other kept byte for byte; a copy deleted in one namespace is
// issued anew there alone.
func TestEachClientNamespaceCopyIsKeptAndRenewedOnItsOwn(t *testing.T) {
	t.Parallel()
	o := opts{
		set:     map[string]string{"tests.existingSecret": "client"},
		setJSON: map[string]string{"clientNamespaces": `["edge","kube-system"]`},
	}
	type secretData struct {
		Data map[string][]byte `json:"data"`
	}
	copies := func(t *testing.T, m *manifests) map[string]fakeSecret {
		t.Helper()
		out := map[string]fakeSecret{}
		for _, o := range m.ofKind("Secret") {
			if o.Name != "ephemeral-store-user-myuser" {
				continue
			}
			var s secretData
			require.NoError(t, json.Unmarshal(mustJSON(t, o.Raw), &s))
			out[o.Meta.Namespace] = fakeSecret{Type: "kubernetes.io/tls", Annotations: o.Meta.Annotations, Data: s.Data}
		}
		return out
	}
	first := render(t, o)
	ca := first.secret(t, "ephemeral-store-secret")
	roots := x509.NewCertPool()
	roots.AddCert(parseCert(t, ca.Data["rootCA.crt"]))
	installed := copies(t, first)
	require.ElementsMatch(t, []string{"edge", "kube-system"}, keys(installed), "one copy per client namespace, none in the release's")
	assert.NotEqual(t, string(installed["edge"].Data["tls.key"]), string(installed["kube-system"].Data["tls.key"]), "each copy has a key of its own")

	// soon: the copy's annotation says it ends in 10 days, within the default 30.
	soon := func(s fakeSecret) fakeSecret {
		a := map[string]string{}
		for k, v := range s.Annotations {
			a[k] = v
		}
		a["ephemeral-store.io/not-after"] = strconv.FormatInt(time.Now().Add(10*24*time.Hour).Unix(), 10)
		return fakeSecret{Type: s.Type, Annotations: a, Data: s.Data}
	}
	cases := []struct {
		name    string
		cluster map[string]fakeSecret // namespace -> the copy found there
		kept    []string              // namespaces whose copy must come back byte for byte
		renewed []string              // namespaces whose copy must be a new certificate
	}{
		{name: "both valid: both kept", cluster: map[string]fakeSecret{"edge": installed["edge"], "kube-system": installed["kube-system"]}, kept: []string{"edge", "kube-system"}},
		{name: "kube-system's expires soon: it alone is renewed", cluster: map[string]fakeSecret{"edge": installed["edge"], "kube-system": soon(installed["kube-system"])}, kept: []string{"edge"}, renewed: []string{"kube-system"}},
		{name: "edge's expires soon: it alone is renewed", cluster: map[string]fakeSecret{"edge": soon(installed["edge"]), "kube-system": installed["kube-system"]}, kept: []string{"kube-system"}, renewed: []string{"edge"}},
		{name: "edge's was deleted: it alone is issued", cluster: map[string]fakeSecret{"kube-system": installed["kube-system"]}, kept: []string{"kube-system"}, renewed: []string{"edge"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			secrets := map[string]fakeSecret{"ephemeral-store-secret": {Data: ca.Data}}
			for ns, s := range tc.cluster {
				secrets[ns+"/ephemeral-store-user-myuser"] = s
			}
			out, err := renderWithSecrets(t, o, secrets)
			require.NoError(t, err)
			got := copies(t, decode(t, out))
			require.ElementsMatch(t, []string{"edge", "kube-system"}, keys(got))
			for _, ns := range tc.kept {
				assert.Equal(t, string(installed[ns].Data["tls.crt"]), string(got[ns].Data["tls.crt"]), "%s: kept", ns)
				assert.Equal(t, string(installed[ns].Data["tls.key"]), string(got[ns].Data["tls.key"]), "%s: kept", ns)
			}
			for _, ns := range tc.renewed {
				assert.NotEqual(t, string(installed[ns].Data["tls.crt"]), string(got[ns].Data["tls.crt"]), "%s: renewed", ns)
				assert.NotEqual(t, string(installed[ns].Data["tls.key"]), string(got[ns].Data["tls.key"]), "%s: a new key", ns)
				cert := parseCert(t, got[ns].Data["tls.crt"])
				assert.Equal(t, "myuser", cert.Subject.CommonName)
				_, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
				assert.NoError(t, err, "%s: signed by the same CA", ns)
				assert.True(t, cert.NotAfter.After(time.Now().Add(800*24*time.Hour)), "%s: a full validity, not %s", ns, cert.NotAfter)
			}
		})
	}
}

// TestExistingModeCopiesTheCACertificateToClientNamespaces: tls.mode=existing
// signs nothing (createSecret is refused), but the CA-only Secret is copied
// from your CA Secret, certificate only, when the chart can read it.
func TestExistingModeCopiesTheCACertificateToClientNamespaces(t *testing.T) {
	t.Parallel()
	ca := testca.New(t, "rootCA")
	existing := map[string]string{
		"tls.mode": "existing", "tls.existing.serverSecret": "srv", "tests.existingSecret": "client",
	}
	users := map[string]string{"users": `[{"name":"myuser"},{"name":"asp","namespace":"kube-system"}]`}

	t.Run("from tls.existing.caSecret (kubectl create secret tls)", func(t *testing.T) {
		t.Parallel()
		set := map[string]string{"tls.existing.caSecret": "ephemeral-store-secret"}
		for k, v := range existing {
			set[k] = v
		}
		out, err := renderWithSecrets(t, opts{set: set, setJSON: users}, map[string]fakeSecret{"ephemeral-store-secret": legacySecret(ca)})
		require.NoError(t, err)
		got := secretsByNamespace(decode(t, out))
		o, ok := got["kube-system/ephemeral-store-user-rootca-cert"]
		require.True(t, ok, "have %v", keys(got))
		var s struct {
			Data map[string][]byte `json:"data"`
		}
		require.NoError(t, json.Unmarshal(mustJSON(t, o.Raw), &s))
		assert.Equal(t, map[string][]byte{"rootCA.crt": ca.CertPEM}, s.Data, "the certificate, never the key")
	})
	t.Run("from the server Secret's ca.crt", func(t *testing.T) {
		t.Parallel()
		out, err := renderWithSecrets(t, opts{set: existing, setJSON: users},
			map[string]fakeSecret{"srv": {Data: map[string][]byte{"tls.crt": []byte("x"), "tls.key": []byte("y"), "ca.crt": ca.CertPEM}}})
		require.NoError(t, err)
		o, ok := secretsByNamespace(decode(t, out))["kube-system/ephemeral-store-user-rootca-cert"]
		require.True(t, ok)
		assert.Contains(t, string(o.Raw), base64.StdEncoding.EncodeToString(ca.CertPEM))
		assert.NotContains(t, string(o.Raw), base64.StdEncoding.EncodeToString([]byte("y")))
	})
	t.Run("unreadable (helm template): nothing rendered there", func(t *testing.T) {
		t.Parallel()
		got := secretsByNamespace(render(t, opts{set: existing, setJSON: users}))
		assert.NotContains(t, keys(got), "kube-system/ephemeral-store-user-rootca-cert")
	})
	t.Run("a user certificate in a client namespace is refused as in the release's", func(t *testing.T) {
		t.Parallel()
		_, err := renderE(t, opts{set: existing, setJSON: map[string]string{"users": `[{"name":"asp","createSecret":true,"namespace":"kube-system"}]`}})
		require.Error(t, err)
		assert.Contains(t, err.Error(), "users[0].createSecret: tls.mode=existing")
	})
}

func TestCertManagerIssuesClientCertificatesInTheClientNamespace(t *testing.T) {
	t.Parallel()
	clusterIssuer := map[string]string{
		"tls.mode": "certManager", "tls.certManager.issuerRef.name": "corp-ca", "tls.certManager.issuerRef.kind": "ClusterIssuer",
	}
	sources := `[{"secret":{"name":"corp-ca","key":"ca.crt"}}]`

	t.Run("a ClusterIssuer signs in the client namespace; a Bundle keeps the CA-only Secret current", func(t *testing.T) {
		t.Parallel()
		m := render(t, opts{set: clusterIssuer, setJSON: map[string]string{"users": aspUsers, "clientCA.trustManager.sources": sources}})
		type certificate struct {
			Metadata struct{ Namespace string } `json:"metadata"`
			Spec     struct {
				SecretName string `json:"secretName"`
				CommonName string `json:"commonName"`
				IssuerRef  struct{ Name, Kind string }
			} `json:"spec"`
		}
		for user, ns := range map[string]string{"myuser": namespace, "asp": "kube-system", "edge": "edge"} {
			var c certificate
			m.get(t, "Certificate", "ephemeral-store-user-"+user, &c)
			assert.Equal(t, ns, c.Metadata.Namespace, user)
			assert.Equal(t, user, c.Spec.CommonName)
			assert.Equal(t, "ephemeral-store-user-"+user, c.Spec.SecretName)
			assert.Equal(t, "ClusterIssuer", c.Spec.IssuerRef.Kind)
			assert.Equal(t, "corp-ca", c.Spec.IssuerRef.Name)
		}
		assert.Empty(t, secretsByNamespace(m), "cert-manager writes every Secret in this mode")
		var bundle struct {
			Metadata struct{ Name, Namespace string } `json:"metadata"`
			Spec     struct {
				Sources []map[string]map[string]string `json:"sources"`
				Target  struct {
					Secret            struct{ Key string } `json:"secret"`
					NamespaceSelector struct {
						MatchExpressions []struct {
							Key, Operator string
							Values        []string
						} `json:"matchExpressions"`
					} `json:"namespaceSelector"`
				} `json:"target"`
			} `json:"spec"`
		}
		m.get(t, "Bundle", "ephemeral-store-user-rootca-cert", &bundle)
		assert.Empty(t, bundle.Metadata.Namespace, "a Bundle is cluster-scoped")
		assert.Equal(t, "rootCA.crt", bundle.Spec.Target.Secret.Key)
		assert.Equal(t, map[string]string{"name": "corp-ca", "key": "ca.crt"}, bundle.Spec.Sources[0]["secret"])
		require.Len(t, bundle.Spec.Target.NamespaceSelector.MatchExpressions, 1)
		e := bundle.Spec.Target.NamespaceSelector.MatchExpressions[0]
		assert.Equal(t, "kubernetes.io/metadata.name", e.Key)
		assert.Equal(t, "In", e.Operator)
		assert.Equal(t, []string{"edge", "kube-system"}, e.Values, "the client namespaces, not the release's")
	})
	t.Run("clientNamespaces: a Certificate in each for a user without a namespace", func(t *testing.T) {
		t.Parallel()
		m := render(t, opts{set: clusterIssuer, setJSON: map[string]string{
			"clientNamespaces": `["store-ns","kube-system","edge"]`, "clientCA.trustManager.sources": sources,
			"users": `[{"name":"myuser","createSecret":true},{"name":"asp","createSecret":true,"namespace":"kube-system"}]`,
		}})
		where := map[string][]string{}
		for _, o := range m.ofKind("Certificate") {
			where[o.Name] = append(where[o.Name], o.Meta.Namespace)
		}
		assert.ElementsMatch(t, []string{"store-ns", "kube-system", "edge"}, where["ephemeral-store-user-myuser"])
		assert.Equal(t, []string{"kube-system"}, where["ephemeral-store-user-asp"], "its own namespace only")
		var bundle struct {
			Spec struct {
				Target struct {
					NamespaceSelector struct {
						MatchExpressions []struct{ Values []string } `json:"matchExpressions"`
					} `json:"namespaceSelector"`
				} `json:"target"`
			} `json:"spec"`
		}
		m.get(t, "Bundle", "ephemeral-store-user-rootca-cert", &bundle)
		assert.Equal(t, []string{"edge", "kube-system"}, bundle.Spec.Target.NamespaceSelector.MatchExpressions[0].Values)
	})
	t.Run("no client namespace, no Bundle", func(t *testing.T) {
		t.Parallel()
		m := render(t, opts{set: clusterIssuer, setJSON: map[string]string{"clientCA.trustManager.sources": sources}})
		assert.Empty(t, m.ofKind("Bundle"))
	})
	t.Run("clientCA.create=false: no Bundle, no sources needed", func(t *testing.T) {
		t.Parallel()
		set := map[string]string{"clientCA.create": "false"}
		for k, v := range clusterIssuer {
			set[k] = v
		}
		m := render(t, opts{set: set, setJSON: map[string]string{"users": aspUsers}})
		assert.Empty(t, m.ofKind("Bundle"))
		var c struct {
			Metadata struct{ Namespace string } `json:"metadata"`
		}
		m.get(t, "Certificate", "ephemeral-store-user-asp", &c)
		assert.Equal(t, "kube-system", c.Metadata.Namespace)
	})
}

func TestClientNamespaceValuesAreRefusedWithAFix(t *testing.T) {
	t.Parallel()
	asp := `[{"name":"myuser","createSecret":true},{"name":"asp","createSecret":true,"namespace":"kube-system"}]`
	requireRefused(t, []valuesCase{
		{
			name: "certManager with the chart's own (namespaced) CA Issuer", set: map[string]string{"tls.mode": "certManager", "clientCA.create": "false"},
			setJSON: map[string]string{"users": asp},
			want:    []string{`users[1].namespace: "asp"'s Certificate is issued in namespace "kube-system"`, "the chart's own CA is a namespaced Issuer", "Fix:", "ClusterIssuer"},
		},
		{
			name: "certManager with a namespaced Issuer of yours", set: map[string]string{"tls.mode": "certManager", "clientCA.create": "false", "tls.certManager.issuerRef.name": "vault"},
			setJSON: map[string]string{"users": asp},
			want:    []string{`tls.certManager.issuerRef is the Issuer "vault"`, "Fix:"},
		},
		{
			name:    "certManager CA-only Secret without a trust-manager source",
			set:     map[string]string{"tls.mode": "certManager", "tls.certManager.issuerRef.name": "corp", "tls.certManager.issuerRef.kind": "ClusterIssuer"},
			setJSON: map[string]string{"users": asp},
			want:    []string{"clientCA.create: tls.mode=certManager writes no CA-only Secret", "clientCA.trustManager.sources", "ephemeral-store-user-rootca-cert current in kube-system", "Fix:"},
		},
		{
			name: "certManager, clientNamespaces and a namespaced Issuer", set: map[string]string{"tls.mode": "certManager", "clientCA.create": "false", "tests.existingSecret": "client"},
			setJSON: map[string]string{"clientNamespaces": `["kube-system","edge"]`},
			want:    []string{`clientNamespaces: "myuser"'s Certificate is issued in namespaces "kube-system", "edge"`, "Fix:", "ClusterIssuer"},
		},
		{
			name: "the helm test user moved to another namespace", setJSON: map[string]string{"clientNamespaces": `["kube-system"]`},
			want: []string{`tests.user: "myuser"'s certificate Secret is only in namespace kube-system (clientNamespaces)`, `Fix: add "store-ns" to clientNamespaces`, "clientNamespaces: [store-ns, kube-system]"},
		},
		{
			name: "the helm test user with a namespace of its own", setJSON: map[string]string{"users": `[{"name":"myuser","createSecret":true,"namespace":"kube-system"}]`, "clientNamespaces": `["store-ns"]`},
			want: []string{`tests.user: "myuser"'s certificate Secret is only in namespace kube-system (its users[].namespace)`, `set that user's namespace to "store-ns"`},
		},
		{name: "clientNamespaces is a list, not a string", set: map[string]string{"clientNamespaces": "kube-system"}, want: []string{"/clientNamespaces", "want array"}},
		{name: "a clientNamespaces entry that is no name", setJSON: map[string]string{"clientNamespaces": `["kube-system","Kube_System"]`}, want: []string{"/clientNamespaces/1", "does not match pattern"}},
		{name: "a clientNamespaces entry with a dot", setJSON: map[string]string{"clientNamespaces": `["a.b"]`}, want: []string{"/clientNamespaces/0"}},
		{name: "a clientNamespaces entry too long", setJSON: map[string]string{"clientNamespaces": `["` + strings.Repeat("a", 64) + `"]`}, want: []string{"/clientNamespaces/0"}},
		{name: "a clientNamespaces entry twice", setJSON: map[string]string{"clientNamespaces": `["edge","edge"]`}, want: []string{"/clientNamespaces", "equal"}},
		{name: "the singular clientNamespace is gone", set: map[string]string{"clientNamespace": "kube-system"}, want: []string{"additional properties 'clientNamespace' not allowed"}},
		{name: "a namespace that is no name", setJSON: map[string]string{"users": `[{"name":"myuser","createSecret":true},{"name":"asp","namespace":"Kube_System"}]`}, want: []string{"/users/1/namespace"}},
		{name: "a clientCA namespace that is no name", setJSON: map[string]string{"clientCA.namespaces": `["a.b"]`}, want: []string{"/clientCA/namespaces/0"}},
		{name: "a client entry without a pod selector", setJSON: map[string]string{"networkPolicy.clients": `[{"namespaceSelector":{}}]`}, want: []string{"/networkPolicy/clients/0", "podSelector"}},
		{name: "a client entry with a typo", setJSON: map[string]string{"networkPolicy.clients": `[{"namespaceSelector":{},"podSelector":{},"ports":[]}]`}, want: []string{"/networkPolicy/clients/0", "'ports' not allowed"}},
	})
	requireRendered(t, []valuesCase{
		{name: "certManager with a ClusterIssuer and no CA-only Secret", set: map[string]string{"tls.mode": "certManager", "clientCA.create": "false", "tls.certManager.issuerRef.name": "corp", "tls.certManager.issuerRef.kind": "ClusterIssuer"}, setJSON: map[string]string{"users": asp}},
		{name: "clientNamespaces with a test Secret of one's own", set: map[string]string{"tests.existingSecret": "client"}, setJSON: map[string]string{"clientNamespaces": `["kube-system"]`}},
		{name: "clientNamespaces holding the release namespace", setJSON: map[string]string{"clientNamespaces": `["kube-system","store-ns"]`}},
		{name: "the helm test user with the release namespace as its own", setJSON: map[string]string{"clientNamespaces": `["kube-system"]`, "users": `[{"name":"myuser","createSecret":true,"namespace":"store-ns"}]`}},
		{name: "clientNamespaces empty", setJSON: map[string]string{"clientNamespaces": `[]`}},
		{name: "certManager with the chart's CA and no client namespace", set: map[string]string{"tls.mode": "certManager"}},
	})
}

// TestNetworkPolicyAdmitsExactlyTheClients: each networkPolicy.clients entry
// is ONE peer with both selectors (pods matching podSelector in namespaces
// matching namespaceSelector: the ASP pods of kube-system, nothing else
// there), and a namespace holding a user's Secret admits its pods labelled
// <fullname>-client; the older selectors keep working beside them.
func TestNetworkPolicyAdmitsExactlyTheClients(t *testing.T) {
	t.Parallel()
	clientRule := func(t *testing.T, o opts) []networkingv1.NetworkPolicyPeer {
		t.Helper()
		var np networkingv1.NetworkPolicy
		render(t, o).get(t, "NetworkPolicy", oldRelease, &np)
		for _, r := range np.Spec.Ingress {
			for _, p := range r.Ports {
				if p.Port != nil && p.Port.String() == "client" {
					return r.From
				}
			}
		}
		require.Fail(t, "no client port rule")
		return nil
	}
	kubeSystem := map[string]string{"kubernetes.io/metadata.name": "kube-system"}

	t.Run("clients entries: namespace AND pod selector in one peer", func(t *testing.T) {
		t.Parallel()
		from := clientRule(t, opts{setJSON: map[string]string{
			"networkPolicy.clients": `[{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"kube-system"}},"podSelector":{"matchLabels":{"app":"asp"}}},
			                           {"namespaceSelector":{"matchLabels":{"team":"edge"}},"podSelector":{"matchExpressions":[{"key":"role","operator":"In","values":["proxy"]}]}}]`,
			"networkPolicy.clientPodSelector": `{"matchLabels":{"app":"legacy"}}`,
		}})
		require.Len(t, from, 5, "label, store pods, two clients, the older pod selector")
		asp := from[2]
		require.NotNil(t, asp.NamespaceSelector, "one peer holds both selectors")
		require.NotNil(t, asp.PodSelector)
		assert.Equal(t, kubeSystem, asp.NamespaceSelector.MatchLabels)
		assert.Equal(t, map[string]string{"app": "asp"}, asp.PodSelector.MatchLabels)
		assert.Equal(t, map[string]string{"team": "edge"}, from[3].NamespaceSelector.MatchLabels)
		assert.Equal(t, "role", from[3].PodSelector.MatchExpressions[0].Key)
		assert.Nil(t, from[4].NamespaceSelector, "clientPodSelector still means the release namespace")
		assert.Equal(t, map[string]string{"app": "legacy"}, from[4].PodSelector.MatchLabels)
	})
	t.Run("a user's namespace admits its labelled pods only", func(t *testing.T) {
		t.Parallel()
		from := clientRule(t, opts{setJSON: map[string]string{"users": aspUsers}})
		require.Len(t, from, 4, "label, store pods, edge, kube-system")
		requireLabelledClientPeers(t, from[2:], "edge", "kube-system")
	})
	t.Run("each of clientNamespaces admits its labelled pods, the release's is not repeated", func(t *testing.T) {
		t.Parallel()
		from := clientRule(t, opts{setJSON: map[string]string{
			"clientNamespaces": `["kube-system","store-ns","edge"]`,
			"users":            `[{"name":"myuser","createSecret":true},{"name":"asp","namespace":"asp-ns"}]`,
		}})
		require.Len(t, from, 5, "label, store pods, asp-ns, edge, kube-system")
		requireLabelledClientPeers(t, from[2:], "asp-ns", "edge", "kube-system")
	})
	t.Run("clientCA.namespaces alone admit nobody", func(t *testing.T) {
		t.Parallel()
		from := clientRule(t, opts{setJSON: map[string]string{"clientCA.namespaces": `["ingress"]`}})
		assert.Len(t, from, 2)
	})
}

func TestNotesNameTheClientNamespaces(t *testing.T) {
	t.Parallel()
	chart := notesChart(t)
	notes := renderNotes(t, chart, opts{setJSON: map[string]string{"users": aspUsers}})
	assert.Contains(t, notes, `ephemeral-store-user-asp  client certificate of user "asp" (tls.crt, tls.key, ca.crt) in namespace kube-system`)
	assert.Contains(t, notes, "ephemeral-store-user-rootca-cert  rootCA.crt only (the root CA certificate), in namespaces edge, kube-system")
	assert.NotContains(t, renderNotes(t, chart, opts{}), "rootca-cert", "no client namespace, no word of it")

	notes = renderNotes(t, chart, opts{set: map[string]string{"tests.existingSecret": "client"}, setJSON: map[string]string{"clientNamespaces": `["kube-system","edge"]`}})
	assert.Contains(t, notes, `ephemeral-store-user-myuser  client certificate of user "myuser" (tls.crt, tls.key, ca.crt) in namespaces kube-system, edge`)
	assert.Contains(t, notes, "kubectl -n kube-system get secret ephemeral-store-user-myuser", "the example reads the Secret where it is")
	assert.NotContains(t, notes, "kubectl -n store-ns get secret")

	notes = renderNotes(t, chart, opts{setJSON: map[string]string{"clientNamespaces": `["kube-system","store-ns"]`}})
	assert.Contains(t, notes, `(tls.crt, tls.key, ca.crt) in namespaces kube-system, store-ns`)
	assert.Contains(t, notes, "kubectl -n store-ns get secret ephemeral-store-user-myuser", "the release namespace's copy when there is one")
}

// requireLabelledClientPeers: peers are, in order, the client-labelled pods
// of each namespace of nss, never a whole namespace.
func requireLabelledClientPeers(t *testing.T, peers []networkingv1.NetworkPolicyPeer, nss ...string) {
	t.Helper()
	for i, ns := range nss {
		p := peers[i]
		require.NotNil(t, p.NamespaceSelector)
		require.NotNil(t, p.PodSelector, "never a whole namespace")
		assert.Equal(t, map[string]string{"kubernetes.io/metadata.name": ns}, p.NamespaceSelector.MatchLabels)
		assert.Equal(t, map[string]string{"ephemeral-store-client": "true"}, p.PodSelector.MatchLabels)
	}
}

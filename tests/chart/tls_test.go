package chart

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"

	"github.com/ephemeral-store/ephemeral-store/tests/internal/testca"
)

// TestTLSModesMapToServerFlagsAndMounts checks, for every TLS mode, the serve
// flags, the Secret volumes (and the keys mapped to the fixed file names of
// docs/interfaces.md) and the mount paths.
func TestTLSModesMapToServerFlagsAndMounts(t *testing.T) {
	t.Parallel()
	sans := []string{
		"ephemeral-store", "ephemeral-store.store-ns", "ephemeral-store.store-ns.svc", "ephemeral-store.store-ns.svc.cluster.local",
		"ephemeral-store-info", "ephemeral-store-info.store-ns", "ephemeral-store-info.store-ns.svc", "ephemeral-store-info.store-ns.svc.cluster.local",
		"localhost",
	}
	serverFiles := map[string]string{"tls.crt": "tls.crt", "tls.key": "tls.key", "ca.crt": "ca.crt"}
	cases := []struct {
		name    string
		set     map[string]string
		flags   map[string][]string // exact values of these flags
		absent  []string            // flags that must not be set
		volumes map[string]string   // volume name -> Secret name
		items   map[string]map[string]string
		mounts  map[string]string // mount path -> volume name
		objects []string          // rendered, besides the usual
		missing []string          // not rendered
	}{
		{
			name: "generate",
			flags: map[string][]string{
				"tls-cert": {"/etc/ephemeral-store/tls/tls.crt"},
				"tls-key":  {"/etc/ephemeral-store/tls/tls.key"},
				"tls-ca":   {"/etc/ephemeral-store/tls/ca.crt"},
				"peer-cn":  {"ephemeral-store-peer"},
			},
			absent:  []string{"tls-ca-key", "san", "client-ca"},
			volumes: map[string]string{"tls": "ephemeral-store-tls"},
			items:   map[string]map[string]string{"tls": serverFiles},
			mounts:  map[string]string{"/etc/ephemeral-store/tls": "tls"},
			objects: []string{"Secret/ephemeral-store-secret", "Secret/ephemeral-store-tls", "Secret/ephemeral-store-user-myuser", "Secret/ephemeral-store-ca"},
		},
		{
			name: "caSecret: pods mint from the old docs' CA Secret",
			set:  map[string]string{"tls.mode": "caSecret"},
			flags: map[string][]string{
				"tls-ca":     {"/etc/ephemeral-store/ca/rootCA.crt"},
				"tls-ca-key": {"/etc/ephemeral-store/ca/rootCA.key"},
				"san":        sans,
			},
			absent:  []string{"tls-cert", "tls-key", "client-ca"},
			volumes: map[string]string{"ca": "ephemeral-store-secret"},
			items:   map[string]map[string]string{"ca": {"rootCA.crt": "rootCA.crt", "rootCA.key": "rootCA.key"}},
			mounts:  map[string]string{"/etc/ephemeral-store/ca": "ca"},
			objects: []string{"Secret/ephemeral-store-secret", "Secret/ephemeral-store-user-myuser", "Secret/ephemeral-store-ca"},
			missing: []string{"Secret/ephemeral-store-tls"},
		},
		{
			name: "caSecret: an existing CA Secret the chart cannot read",
			set: map[string]string{
				"tls.mode": "caSecret", "tls.ca.create": "false", "tls.ca.secretName": "old-ca",
				"tls.ca.certKey": "ca.pem", "tls.ca.keyKey": "ca-key.pem", "tls.extraDnsNames[0]": "store.example.com",
			},
			flags: map[string][]string{
				"tls-ca":     {"/etc/ephemeral-store/ca/rootCA.crt"},
				"tls-ca-key": {"/etc/ephemeral-store/ca/rootCA.key"},
				"san":        append(append([]string{}, sans...), "store.example.com"),
			},
			volumes: map[string]string{"ca": "old-ca"},
			items:   map[string]map[string]string{"ca": {"ca.pem": "rootCA.crt", "ca-key.pem": "rootCA.key"}},
			mounts:  map[string]string{"/etc/ephemeral-store/ca": "ca"},
			missing: []string{"Secret/old-ca", "Secret/ephemeral-store-user-myuser", "Secret/ephemeral-store-ca", "Secret/ephemeral-store-tls"},
		},
		{
			name: "existing: server Secret with its CA",
			set: map[string]string{
				"tls.mode": "existing", "tls.existing.serverSecret": "srv", "tls.existing.certKey": "server.crt",
				"tls.existing.keyKey": "server.key", "tls.existing.caKey": "rootCA.crt",
				"users[0].name": "myuser", "users[0].createSecret": "false", "tests.existingSecret": "client",
			},
			flags: map[string][]string{
				"tls-cert": {"/etc/ephemeral-store/tls/tls.crt"},
				"tls-key":  {"/etc/ephemeral-store/tls/tls.key"},
				"tls-ca":   {"/etc/ephemeral-store/tls/ca.crt"},
			},
			absent:  []string{"tls-ca-key", "san"},
			volumes: map[string]string{"tls": "srv"},
			items:   map[string]map[string]string{"tls": {"server.crt": "tls.crt", "server.key": "tls.key", "rootCA.crt": "ca.crt"}},
			mounts:  map[string]string{"/etc/ephemeral-store/tls": "tls"},
			missing: []string{"Secret/ephemeral-store-secret", "Secret/ephemeral-store-tls", "Secret/ephemeral-store-ca", "Secret/ephemeral-store-user-myuser"},
		},
		{
			name: "existing: root CA, server and user root CA Secrets of the old docs",
			set: map[string]string{
				"tls.mode": "existing", "tls.existing.serverSecret": "ephemeral-store-server",
				"tls.existing.caSecret": "ephemeral-store-secret", "tls.clientCA.existingSecret": "ephemeral-store-user-ca",
				"tls.clientCA.key": "rootCA.crt", "users[0].name": "myuser", "users[0].createSecret": "false", "tests.existingSecret": "client",
			},
			flags: map[string][]string{
				"tls-cert":  {"/etc/ephemeral-store/tls/tls.crt"},
				"tls-key":   {"/etc/ephemeral-store/tls/tls.key"},
				"tls-ca":    {"/etc/ephemeral-store/ca/rootCA.crt"},
				"client-ca": {"/etc/ephemeral-store/client-ca/ca.crt"},
			},
			absent:  []string{"tls-ca-key"},
			volumes: map[string]string{"tls": "ephemeral-store-server", "ca": "ephemeral-store-secret", "client-ca": "ephemeral-store-user-ca"},
			items: map[string]map[string]string{
				"tls":       {"tls.crt": "tls.crt", "tls.key": "tls.key"},
				"ca":        {"rootCA.crt": "rootCA.crt"}, // never the CA key
				"client-ca": {"rootCA.crt": "ca.crt"},
			},
			mounts: map[string]string{
				"/etc/ephemeral-store/tls": "tls", "/etc/ephemeral-store/ca": "ca", "/etc/ephemeral-store/client-ca": "client-ca",
			},
			missing: []string{"Secret/ephemeral-store-secret", "Secret/ephemeral-store-tls"},
		},
		{
			name: "certManager with the chart's own CA issuer",
			set:  map[string]string{"tls.mode": "certManager"},
			flags: map[string][]string{
				"tls-cert": {"/etc/ephemeral-store/tls/tls.crt"},
				"tls-key":  {"/etc/ephemeral-store/tls/tls.key"},
				"tls-ca":   {"/etc/ephemeral-store/tls/ca.crt"},
			},
			absent:  []string{"tls-ca-key", "san", "client-ca"},
			volumes: map[string]string{"tls": "ephemeral-store-tls"},
			items:   map[string]map[string]string{"tls": serverFiles},
			mounts:  map[string]string{"/etc/ephemeral-store/tls": "tls"},
			objects: []string{
				"Issuer/ephemeral-store-selfsigned", "Certificate/ephemeral-store-ca-keypair", "Issuer/ephemeral-store-issuer",
				"Certificate/ephemeral-store-server", "Certificate/ephemeral-store-user-myuser",
			},
			missing: []string{"Secret/ephemeral-store-secret", "Secret/ephemeral-store-tls", "Secret/ephemeral-store-user-myuser", "Secret/ephemeral-store-ca"},
		},
		{
			name:    "certManager with a ClusterIssuer",
			set:     map[string]string{"tls.mode": "certManager", "tls.certManager.issuerRef.name": "corp-ca", "tls.certManager.issuerRef.kind": "ClusterIssuer"},
			flags:   map[string][]string{"tls-cert": {"/etc/ephemeral-store/tls/tls.crt"}},
			volumes: map[string]string{"tls": "ephemeral-store-tls"},
			objects: []string{"Certificate/ephemeral-store-server", "Certificate/ephemeral-store-user-myuser"},
			missing: []string{"Issuer/ephemeral-store-selfsigned", "Issuer/ephemeral-store-issuer", "Certificate/ephemeral-store-ca-keypair"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := render(t, opts{set: tc.set})
			sts := m.statefulSet(t)
			c := storeContainer(t, sts)
			f := flags(c.Args)
			for name, want := range tc.flags {
				assert.Equal(t, want, f[name], "--%s", name)
			}
			for _, name := range tc.absent {
				assert.NotContains(t, f, name)
			}

			secretVolumes := map[string]string{}
			for _, v := range sts.Spec.Template.Spec.Volumes {
				if v.Secret != nil {
					secretVolumes[v.Name] = v.Secret.SecretName
					require.NotNil(t, v.Secret.DefaultMode)
					assert.Equal(t, int32(0o440), *v.Secret.DefaultMode, "volume %s mode", v.Name)
				}
			}
			assert.Equal(t, tc.volumes, secretVolumes)
			for name, want := range tc.items {
				assert.Equal(t, want, itemPaths(volume(sts.Spec.Template.Spec, name)), "items of volume %s", name)
			}
			got := mounts(c)
			delete(got, "/etc/ephemeral-store/users")
			if tc.mounts != nil {
				assert.Equal(t, tc.mounts, got)
			}
			for _, n := range tc.objects {
				assert.Contains(t, m.names(), n)
			}
			for _, n := range tc.missing {
				assert.NotContains(t, m.names(), n)
			}
		})
	}
}

func parseCert(t *testing.T, pemBytes []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(pemBytes)
	require.NotNil(t, block, "PEM")
	cert, err := x509.ParseCertificate(block.Bytes)
	require.NoError(t, err)
	return cert
}

func TestGeneratedCertificates(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		release  string
		replicas int
		base     string
	}{
		{release: oldRelease, replicas: 5, base: "ephemeral-store"},
		{release: "cache", replicas: 3, base: "cache-ephemeral-store"},
	} {
		t.Run(tc.release, func(t *testing.T) {
			t.Parallel()
			m := render(t, opts{release: tc.release, set: map[string]string{"replicaCount": fmt.Sprint(tc.replicas)}})

			caSecret := m.secret(t, tc.base+"-secret")
			assert.ElementsMatch(t, []string{"rootCA.crt", "rootCA.key"}, keys(caSecret.Data))
			ca := parseCert(t, caSecret.Data["rootCA.crt"])
			assert.True(t, ca.IsCA)
			assert.Equal(t, "ephemeral-store-ca", ca.Subject.CommonName)
			roots := x509.NewCertPool()
			roots.AddCert(ca)

			server := m.secret(t, tc.base+"-tls")
			assert.Equal(t, corev1.SecretTypeTLS, server.Type)
			assert.Equal(t, caSecret.Data["rootCA.crt"], server.Data["ca.crt"])
			cert := parseCert(t, server.Data["tls.crt"])
			assert.Equal(t, "ephemeral-store-peer", cert.Subject.CommonName, "doubles as the peer certificate")
			assert.ElementsMatch(t, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, cert.ExtKeyUsage)
			_, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
			require.NoError(t, err)

			headless := tc.base + "-info"
			want := []string{"localhost"}
			for _, base := range []string{tc.base, headless, "*." + headless} {
				want = append(want, dnsForms(base)...)
			}
			for i := 0; i < tc.replicas; i++ {
				want = append(want, dnsForms(fmt.Sprintf("%s-%d.%s", tc.base, i, headless))...)
			}
			assert.ElementsMatch(t, want, cert.DNSNames)
			require.Len(t, cert.IPAddresses, 1)
			assert.True(t, cert.IPAddresses[0].Equal(net.ParseIP("127.0.0.1")))
			for _, host := range []string{tc.base, fmt.Sprintf("%s-%d.%s.%s.svc", tc.base, tc.replicas-1, headless, namespace), "localhost"} {
				assert.NoError(t, cert.VerifyHostname(host), host)
			}

			user := m.secret(t, tc.base+"-user-myuser")
			assert.Equal(t, corev1.SecretTypeTLS, user.Type)
			assert.ElementsMatch(t, []string{"tls.crt", "tls.key", "ca.crt"}, keys(user.Data))
			userCert := parseCert(t, user.Data["tls.crt"])
			assert.Equal(t, "myuser", userCert.Subject.CommonName, "the CN is the user")
			_, err = userCert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
			require.NoError(t, err)

			caOnly := m.secret(t, tc.base+"-ca")
			assert.Equal(t, []string{"ca.crt"}, keys(caOnly.Data), "the CA-only Secret holds no key")
			assert.Equal(t, caSecret.Data["rootCA.crt"], caOnly.Data["ca.crt"])
		})
	}
}

func dnsForms(name string) []string {
	return []string{
		name,
		name + "." + namespace,
		name + "." + namespace + ".svc",
		name + "." + namespace + ".svc.cluster.local",
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestCertManagerCertificates(t *testing.T) {
	t.Parallel()
	m := render(t, opts{set: map[string]string{"tls.mode": "certManager", "replicaCount": "3"}})
	type certificate struct {
		Spec struct {
			SecretName  string   `json:"secretName"`
			CommonName  string   `json:"commonName"`
			IsCA        bool     `json:"isCA"`
			DNSNames    []string `json:"dnsNames"`
			IPAddresses []string `json:"ipAddresses"`
			Usages      []string `json:"usages"`
			IssuerRef   struct {
				Name, Kind, Group string
			} `json:"issuerRef"`
		} `json:"spec"`
	}
	var server certificate
	m.get(t, "Certificate", "ephemeral-store-server", &server)
	assert.Equal(t, "ephemeral-store-tls", server.Spec.SecretName)
	assert.Equal(t, "ephemeral-store-peer", server.Spec.CommonName)
	assert.Contains(t, server.Spec.DNSNames, "ephemeral-store.store-ns.svc.cluster.local")
	assert.Contains(t, server.Spec.DNSNames, "ephemeral-store-2.ephemeral-store-info.store-ns.svc")
	assert.Contains(t, server.Spec.DNSNames, "*.ephemeral-store-info.store-ns.svc.cluster.local")
	assert.NotContains(t, server.Spec.DNSNames, "ephemeral-store-3.ephemeral-store-info")
	assert.Equal(t, []string{"127.0.0.1"}, server.Spec.IPAddresses)
	assert.Subset(t, server.Spec.Usages, []string{"server auth", "client auth"})
	assert.Equal(t, "ephemeral-store-issuer", server.Spec.IssuerRef.Name)
	assert.Equal(t, "Issuer", server.Spec.IssuerRef.Kind)

	var user certificate
	m.get(t, "Certificate", "ephemeral-store-user-myuser", &user)
	assert.Equal(t, "myuser", user.Spec.CommonName)
	assert.Equal(t, "ephemeral-store-user-myuser", user.Spec.SecretName)
	assert.Contains(t, user.Spec.Usages, "client auth")
	assert.Equal(t, server.Spec.IssuerRef, user.Spec.IssuerRef)

	var root certificate
	m.get(t, "Certificate", "ephemeral-store-ca-keypair", &root)
	assert.True(t, root.Spec.IsCA)
	assert.Equal(t, "ephemeral-store-selfsigned", root.Spec.IssuerRef.Name)
}

// fakeSecret is a Secret that the chart's lookup finds: in the release
// namespace under its name, in another namespace under "<namespace>/<name>".
type fakeSecret struct {
	Type        string            `json:"type,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Data        map[string][]byte `json:"data"` // base64 in JSON, as the API server returns it
}

// renderWithSecrets renders the chart as `helm install` would against a
// namespace holding secrets. `helm template` cannot read a cluster, so the
// chart is copied and its one lookup of Secrets (ephemeral-store.lookupSecret
// in _tls.tpl) is redefined by a template that Helm parses after _tls.tpl
// (same directory, sorted first by name: the later definition wins).
// TestTLSLookupIsOneTemplate keeps that seam the only lookup of TLS Secrets.
func renderWithSecrets(t *testing.T, o opts, secrets map[string]fakeSecret) (string, error) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ephemeral-store")
	require.NoError(t, os.CopyFS(dir, os.DirFS(chartDir)))
	objects := map[string]any{}
	for key, s := range secrets {
		ns, name, found := strings.Cut(key, "/")
		if !found {
			ns, name = namespace, key
		}
		meta := map[string]any{"name": name, "namespace": ns}
		if s.Annotations != nil {
			meta["annotations"] = s.Annotations
		}
		obj := map[string]any{"apiVersion": "v1", "kind": "Secret", "metadata": meta, "data": s.Data}
		if s.Type != "" {
			obj["type"] = s.Type
		}
		objects[ns+"/"+name] = obj
	}
	js, err := json.Marshal(objects)
	require.NoError(t, err)
	require.NotContains(t, string(js), "`")
	fake := "{{- define \"ephemeral-store.lookupSecret\" -}}\n" +
		// A real lookup with an empty name lists every Secret: never ask for one.
		"{{- if not .name }}{{ fail \"lookupSecret without a name: lookup would list every Secret of the namespace\" }}{{ end }}\n" +
		"{{- $secrets := `" + string(js) + "` | fromJson }}\n" +
		"{{- if eq .root.Release.Namespace \"" + namespace + "\" }}{{ get $secrets (printf \"%s/%s\" (default .root.Release.Namespace .namespace) .name) | default (dict) | toJson }}{{ else }}{}{{ end }}\n" +
		"{{- end }}\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "templates", "_0-test-lookup.tpl"), []byte(fake), 0o644))
	o.chart = dir
	return renderE(t, o)
}

// legacySecret is the Secret of the old docs' `kubectl create secret tls
// ephemeral-store-secret --cert=rootCA.crt --key=rootCA.key`.
func legacySecret(ca *testca.CA) fakeSecret {
	return fakeSecret{Type: "kubernetes.io/tls", Data: map[string][]byte{"tls.crt": ca.CertPEM, "tls.key": ca.KeyPEM}}
}

// genericSecret is the Secret of `kubectl create secret generic ... --from-file=rootCA.crt --from-file=rootCA.key`.
func genericSecret(ca *testca.CA) fakeSecret {
	return fakeSecret{Type: "Opaque", Data: map[string][]byte{"rootCA.crt": ca.CertPEM, "rootCA.key": ca.KeyPEM}}
}

// TestRootCASecretKeysFallBackToKubectlTLSSecret checks which keys of an
// existing root CA Secret the chart reads (tls.mode caSecret and generate,
// and tls.existing.caSecret): the configured ones; with the defaults, also
// tls.crt/tls.key as `kubectl create secret tls` writes them (the old docs'
// command), in the pod's Secret volume and wherever the chart signs with
// the CA; explicit keys stay strict; a Secret with neither fails the render
// with the Secret's name and the keys looked for.
func TestRootCASecretKeysFallBackToKubectlTLSSecret(t *testing.T) {
	t.Parallel()
	ca := testca.New(t, "rootCA")
	other := testca.New(t, "other")
	both := fakeSecret{Data: map[string][]byte{
		"rootCA.crt": ca.CertPEM, "rootCA.key": ca.KeyPEM, "tls.crt": other.CertPEM, "tls.key": other.KeyPEM,
	}}
	caSecretMode := map[string]string{"tls.mode": "caSecret", "tls.ca.create": "false"}
	with := func(base map[string]string, kv ...string) map[string]string {
		out := map[string]string{}
		for k, v := range base {
			out[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			out[kv[i]] = kv[i+1]
		}
		return out
	}
	existingMode := map[string]string{
		"tls.mode": "existing", "tls.existing.serverSecret": "srv", "tls.existing.caSecret": "ephemeral-store-secret",
		"users[0].name": "myuser", "users[0].createSecret": "false", "tests.existingSecret": "client",
	}

	cases := []struct {
		name    string
		set     map[string]string
		secrets map[string]fakeSecret
		volume  string            // Secret volume to check
		items   map[string]string // its items: key -> path
		signer  *testca.CA        // the CA the chart signs with (server and user Secrets); nil: signs nothing
		caOut   map[string]string // rendered root CA Secret: key -> certificate PEM of
		errs    []string          // the render fails with all of these
	}{
		{
			name:    "caSecret: kubectl create secret tls (tls.crt, tls.key), default keys",
			set:     caSecretMode,
			secrets: map[string]fakeSecret{"ephemeral-store-secret": legacySecret(ca)},
			volume:  "ca", items: map[string]string{"tls.crt": "rootCA.crt", "tls.key": "rootCA.key"},
			signer: ca,
		},
		{
			name:    "caSecret: kubectl create secret generic (rootCA.crt, rootCA.key)",
			set:     caSecretMode,
			secrets: map[string]fakeSecret{"ephemeral-store-secret": genericSecret(ca)},
			volume:  "ca", items: map[string]string{"rootCA.crt": "rootCA.crt", "rootCA.key": "rootCA.key"},
			signer: ca,
		},
		{
			name:    "caSecret: both pairs present, the configured keys win",
			set:     caSecretMode,
			secrets: map[string]fakeSecret{"ephemeral-store-secret": both},
			volume:  "ca", items: map[string]string{"rootCA.crt": "rootCA.crt", "rootCA.key": "rootCA.key"},
			signer: ca,
		},
		{
			name:    "caSecret: explicit keys that match the kubectl tls Secret",
			set:     with(caSecretMode, "tls.ca.certKey", "tls.crt", "tls.ca.keyKey", "tls.key"),
			secrets: map[string]fakeSecret{"ephemeral-store-secret": legacySecret(ca)},
			volume:  "ca", items: map[string]string{"tls.crt": "rootCA.crt", "tls.key": "rootCA.key"},
			signer: ca,
		},
		{
			name:    "caSecret: explicit keys stay strict",
			set:     with(caSecretMode, "tls.ca.certKey", "ca.pem", "tls.ca.keyKey", "ca-key.pem"),
			secrets: map[string]fakeSecret{"ephemeral-store-secret": legacySecret(ca)},
			errs: []string{
				"tls.ca.certKey, tls.ca.keyKey", `"ephemeral-store-secret"`, `namespace "store-ns"`,
				"looked up for the keys ca.pem, ca-key.pem", "lacks ca.pem, ca-key.pem", "it has tls.crt, tls.key",
			},
		},
		{
			name:    "caSecret: one explicit key is not the defaults: no fallback",
			set:     with(caSecretMode, "tls.ca.certKey", "ca.pem"),
			secrets: map[string]fakeSecret{"ephemeral-store-secret": legacySecret(ca)},
			errs:    []string{`"ephemeral-store-secret"`, "looked up for the keys ca.pem, rootCA.key", "lacks ca.pem, rootCA.key"},
		},
		{
			name:    "caSecret: a Secret with neither pair",
			set:     caSecretMode,
			secrets: map[string]fakeSecret{"ephemeral-store-secret": {Data: map[string][]byte{"ca.pem": ca.CertPEM, "rootCA.crt": ca.CertPEM}}},
			errs: []string{
				`the CA Secret "ephemeral-store-secret" in namespace "store-ns"`,
				"neither the keys rootCA.crt, rootCA.key", "nor tls.crt, tls.key", "it has ca.pem, rootCA.crt",
				"kubectl create secret tls ephemeral-store-secret --cert=rootCA.crt --key=rootCA.key",
			},
		},
		{
			name:    "caSecret: an empty Secret",
			set:     with(caSecretMode, "tls.ca.secretName", "old-ca"),
			secrets: map[string]fakeSecret{"old-ca": {Data: map[string][]byte{}}},
			errs:    []string{`the CA Secret "old-ca"`, "it has no keys at all"},
		},
		{
			name:    "caSecret: another release's Secret name is not looked at",
			set:     with(caSecretMode, "tls.ca.secretName", "old-ca"),
			secrets: map[string]fakeSecret{"ephemeral-store-secret": {Data: map[string][]byte{"junk": nil}}},
			volume:  "ca", items: map[string]string{"rootCA.crt": "rootCA.crt", "rootCA.key": "rootCA.key"},
		},
		{
			name:    "generate, tls.ca.create=false: the server and user certificates are signed by the kubectl tls Secret's CA",
			set:     map[string]string{"tls.ca.create": "false"},
			secrets: map[string]fakeSecret{"ephemeral-store-secret": legacySecret(ca)},
			volume:  "tls", items: map[string]string{"tls.crt": "tls.crt", "tls.key": "tls.key", "ca.crt": "ca.crt"},
			signer: ca,
		},
		{
			name: "generate, tls.ca.create=false, no Secret: the error names both forms",
			set:  map[string]string{"tls.ca.create": "false"},
			errs: []string{
				`root CA Secret "ephemeral-store-secret"`, "rootCA.crt/rootCA.key",
				"or tls.crt/tls.key (kubectl create secret tls ephemeral-store-secret --cert=rootCA.crt --key=rootCA.key)",
			},
		},
		{
			name:    "generate, tls.ca.create=true: the CA read back from tls.crt/tls.key keeps its keys",
			secrets: map[string]fakeSecret{"ephemeral-store-secret": legacySecret(ca)},
			volume:  "tls", items: map[string]string{"tls.crt": "tls.crt", "tls.key": "tls.key", "ca.crt": "ca.crt"},
			signer: ca,
			caOut:  map[string]string{"tls.crt": string(ca.CertPEM), "tls.key": string(ca.KeyPEM)},
		},
		{
			name:    "generate, tls.ca.create=true, a Secret with neither pair is not silently replaced",
			secrets: map[string]fakeSecret{"ephemeral-store-secret": {Data: map[string][]byte{"ca.crt": ca.CertPEM}}},
			errs:    []string{`"ephemeral-store-secret"`, "neither the keys rootCA.crt, rootCA.key", "it has ca.crt"},
		},
		{
			name:    "existing: tls.existing.caSecret made by kubectl create secret tls",
			set:     existingMode,
			secrets: map[string]fakeSecret{"ephemeral-store-secret": legacySecret(ca)},
			volume:  "ca", items: map[string]string{"tls.crt": "rootCA.crt"},
		},
		{
			name:    "existing: tls.existing.caSecret with rootCA.crt",
			set:     existingMode,
			secrets: map[string]fakeSecret{"ephemeral-store-secret": genericSecret(ca)},
			volume:  "ca", items: map[string]string{"rootCA.crt": "rootCA.crt"},
		},
		{
			name:    "existing: an explicit tls.existing.caSecretKey stays strict",
			set:     with(existingMode, "tls.existing.caSecretKey", "ca.pem"),
			secrets: map[string]fakeSecret{"ephemeral-store-secret": legacySecret(ca)},
			errs:    []string{"tls.existing.caSecretKey", `"ephemeral-store-secret"`, "lacks ca.pem", "it has tls.crt, tls.key"},
		},
		{
			name:    "existing: tls.existing.caSecret with neither",
			set:     existingMode,
			secrets: map[string]fakeSecret{"ephemeral-store-secret": {Data: map[string][]byte{"ca.crt": ca.CertPEM}}},
			errs:    []string{"tls.existing.caSecretKey", `"ephemeral-store-secret"`, "neither the keys rootCA.crt", "nor tls.crt", "it has ca.crt"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out, err := renderWithSecrets(t, opts{set: tc.set}, tc.secrets)
			if tc.errs != nil {
				require.Error(t, err, "the render must fail")
				for _, want := range tc.errs {
					assert.Contains(t, err.Error(), want)
				}
				t.Logf("refused as expected: %s", longestLine(err.Error()))
				return
			}
			require.NoError(t, err, "helm template")
			m := decode(t, out)
			sts := m.statefulSet(t)
			if tc.volume != "" {
				assert.Equal(t, tc.items, itemPaths(volume(sts.Spec.Template.Spec, tc.volume)), "items of volume %s", tc.volume)
			}
			if tc.caOut != nil {
				got := m.secret(t, "ephemeral-store-secret")
				have := map[string]string{}
				for k, v := range got.Data {
					have[k] = string(v)
				}
				assert.Equal(t, tc.caOut, have, "the rendered root CA Secret")
			}
			if tc.signer == nil {
				return
			}
			roots := x509.NewCertPool()
			roots.AddCert(tc.signer.Cert)
			user := m.secret(t, "ephemeral-store-user-myuser")
			assert.Equal(t, string(tc.signer.CertPEM), string(user.Data["ca.crt"]), "user Secret ca.crt")
			_, err = parseCert(t, user.Data["tls.crt"]).Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
			assert.NoError(t, err, "the user certificate chains to the Secret's CA")
			if server := m.find("Secret", "ephemeral-store-tls"); server != nil {
				s := m.secret(t, "ephemeral-store-tls")
				assert.Equal(t, string(tc.signer.CertPEM), string(s.Data["ca.crt"]), "server Secret ca.crt")
				_, err = parseCert(t, s.Data["tls.crt"]).Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
				assert.NoError(t, err, "the server certificate chains to the Secret's CA")
			}
			if caOnly := m.find("Secret", "ephemeral-store-ca"); caOnly != nil {
				assert.Equal(t, string(tc.signer.CertPEM), string(m.secret(t, "ephemeral-store-ca").Data["ca.crt"]), "CA-only Secret")
			}
		})
	}
}

// longestLine returns the longest line of a helm error: the chart's message.
func longestLine(s string) string {
	longest := ""
	for _, l := range strings.Split(s, "\n") {
		if len(l) > len(longest) {
			longest = l
		}
	}
	return longest
}

// TestTLSLookupIsOneTemplate keeps the seam of renderWithSecrets honest: the
// TLS templates read Secrets only through ephemeral-store.lookupSecret, and
// the fake really replaces it (a render with a fake Secret differs from one
// without).
func TestTLSLookupIsOneTemplate(t *testing.T) {
	t.Parallel()
	for _, f := range []string{"_tls.tpl", "tls-secrets.yaml"} {
		b, err := os.ReadFile(filepath.Join(chartDir, "templates", f))
		require.NoError(t, err)
		assert.Equal(t, map[string]int{"_tls.tpl": 1, "tls-secrets.yaml": 0}[f], strings.Count(string(b), "lookup \"v1\" \"Secret\""),
			"%s: lookups of Secrets outside ephemeral-store.lookupSecret escape the chart tests", f)
	}
	ca := testca.New(t, "rootCA")
	set := map[string]string{"tls.mode": "caSecret", "tls.ca.create": "false"}
	without := render(t, opts{set: set})
	assert.Nil(t, without.find("Secret", "ephemeral-store-user-myuser"), "no CA readable: no user Secret")
	out, err := renderWithSecrets(t, opts{set: set}, map[string]fakeSecret{"ephemeral-store-secret": genericSecret(ca)})
	require.NoError(t, err)
	assert.NotNil(t, decode(t, out).find("Secret", "ephemeral-store-user-myuser"), "the fake lookup is in force")
}

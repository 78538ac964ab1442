package chart

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
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

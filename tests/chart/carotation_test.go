package chart

import (
	"crypto/x509"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ephemeral-store/ephemeral-store/tests/internal/testca"
)

// The chart README's CA rotation (caSecret mode) puts two CAs in rootCA.crt:
// the one that signs first, with its key in rootCA.key, and the other
// still trusted. `helm upgrade` at each step signs the chart's user
// certificates with the first, and the user and CA-only Secrets carry the
// whole bundle, so that clients trust both CAs during the rotation.
func TestCASecretBundleSignsWithTheFirstAndCarriesBoth(t *testing.T) {
	t.Parallel()
	oldCA, newCA := testca.New(t, "ca-old"), testca.NewECDSA(t, "ca-new")
	for _, step := range []struct {
		name           string
		signer, second *testca.CA
	}{
		{"trust first: old + new, the old key", oldCA, newCA},
		{"then switch: new + old, the new key", newCA, oldCA},
	} {
		t.Run(step.name, func(t *testing.T) {
			t.Parallel()
			bundle := append(append([]byte{}, step.signer.CertPEM...), step.second.CertPEM...)
			out, err := renderWithSecrets(t, opts{set: map[string]string{"tls.mode": "caSecret", "tls.ca.create": "false"}},
				map[string]fakeSecret{"ephemeral-store-secret": {Data: map[string][]byte{"rootCA.crt": bundle, "rootCA.key": step.signer.KeyPEM}}})
			require.NoError(t, err, "helm template")
			m := decode(t, out)
			user := m.secret(t, "ephemeral-store-user-myuser")
			assert.Equal(t, string(bundle), string(user.Data["ca.crt"]), "the user Secret's ca.crt is the whole bundle")
			roots := x509.NewCertPool()
			roots.AddCert(step.signer.Cert)
			_, err = parseCert(t, user.Data["tls.crt"]).Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
			assert.NoError(t, err, "the user certificate is signed by the bundle's first CA")
			if caOnly := m.find("Secret", "ephemeral-store-ca"); caOnly != nil {
				assert.Equal(t, string(bundle), string(m.secret(t, "ephemeral-store-ca").Data["ca.crt"]), "the CA-only Secret is the whole bundle")
			}
		})
	}
}

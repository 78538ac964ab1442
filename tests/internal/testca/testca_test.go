package testca

import (
	"crypto/x509"
	"encoding/pem"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestClientCertVerifiesOnlyAgainstItsCA: a client certificate of New (or
// NewECDSA) chains to its CA for client auth, and to its CA read back with
// Parse; not to another CA of the same name, nor when it has expired.
func TestClientCertVerifiesOnlyAgainstItsCA(t *testing.T) {
	for name, newCA := range map[string]func(testing.TB, string) *CA{"RSA": New, "ECDSA": NewECDSA} {
		t.Run(name, func(t *testing.T) {
			ca := newCA(t, "test CA")
			other := newCA(t, "test CA")
			verify := func(roots *CA, certPEM []byte) error {
				block, _ := pem.Decode(certPEM)
				require.NotNil(t, block)
				cert, err := x509.ParseCertificate(block.Bytes)
				require.NoError(t, err)
				pool := x509.NewCertPool()
				pool.AddCert(roots.Cert)
				_, err = cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
				return err
			}
			certPEM, _ := ca.ValidClientCert(t, "myuser")
			require.NoError(t, verify(ca, certPEM))
			require.NoError(t, verify(Parse(t, ca.CertPEM, ca.KeyPEM), certPEM))
			require.Error(t, verify(other, certPEM), "another CA with the same name")

			expired, _ := ca.ClientCert(t, "myuser", time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour))
			require.Error(t, verify(ca, expired), "expired")

			// A CA read back signs certificates its original verifies.
			again, _ := Parse(t, ca.CertPEM, ca.KeyPEM).ValidClientCert(t, "bob")
			require.NoError(t, verify(ca, again))
		})
	}
}

//go:build e2e

package e2e

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"testing"
	"time"

	"github.com/gruntwork-io/terratest/modules/k8s"
	"github.com/stretchr/testify/require"
)

// caPair is a CA that can sign client certificates in a test.
type caPair struct {
	cert    *x509.Certificate
	certPEM []byte
	key     crypto.Signer
}

// releaseCA reads the root CA the chart generated (generate mode: Secret
// <fullname>-secret, keys rootCA.crt and rootCA.key).
func (r *release) releaseCA(t *testing.T) *caPair {
	t.Helper()
	name := r.caSecretName()
	secret, err := k8s.GetSecretContextE(t, t.Context(), r.kubectl, name)
	require.NoError(t, err, "root CA Secret %s", name)
	return parseCA(t, secret.Data["rootCA.crt"], secret.Data["rootCA.key"])
}

func parseCA(t *testing.T, certPEM, keyPEM []byte) *caPair {
	t.Helper()
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	require.NoError(t, err, "CA key pair")
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	require.NoError(t, err)
	signer, ok := pair.PrivateKey.(crypto.Signer)
	require.True(t, ok, "CA key is not a signer")
	return &caPair{cert: cert, certPEM: certPEM, key: signer}
}

// newCA makes a self-signed CA unrelated to any release.
func newCA(t *testing.T, cn string) *caPair {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return &caPair{cert: cert, certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), key: key}
}

// clientCert signs a client certificate for cn valid in [notBefore, notAfter];
// it returns the certificate and key as PEM.
func (ca *caPair) clientCert(t *testing.T, cn string, notBefore, notAfter time.Time) (certPEM, keyPEM []byte) {
	t.Helper()
	return ca.sign(t, &x509.Certificate{
		SerialNumber: serial(t),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
}

// sign issues tmpl for a new P-256 key; it returns the certificate and the
// key (PKCS #8) as PEM.
func (ca *caPair) sign(t *testing.T, tmpl *x509.Certificate) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	require.NoError(t, err, "sign a certificate for %s", tmpl.Subject.CommonName)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
}

// validClientCert is clientCert valid from an hour ago for a day.
func (ca *caPair) validClientCert(t *testing.T, cn string) (certPEM, keyPEM []byte) {
	t.Helper()
	return ca.clientCert(t, cn, time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour))
}

func serial(t *testing.T) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	require.NoError(t, err)
	return n
}

// String names the CA in logs.
func (ca *caPair) String() string { return fmt.Sprintf("CA %q", ca.cert.Subject.CommonName) }

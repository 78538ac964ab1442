// Package testca makes the certificate authorities and certificates the
// test harness signs with: a root CA as the old documentation's openssl 3
// commands make it (RSA 2048, the key as PKCS #8), or one read from a
// release's Secret, and client or server certificates it signs. The chart
// template tests and the kind end-to-end suites share it. The store's own
// tests use store/internal/pki, which this module cannot import.
package testca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// CA is a certificate authority that can sign in a test.
type CA struct {
	Cert    *x509.Certificate
	CertPEM []byte
	// KeyPEM is the key in PEM: PKCS #8 for a CA of New, as read for one of
	// Parse.
	KeyPEM []byte
	Key    crypto.Signer
}

// New makes a self-signed root CA named cn, valid from an hour ago for a
// day: RSA 2048, the key in PKCS #8 ("BEGIN PRIVATE KEY"), as `openssl req
// -x509` of openssl 3 makes the old documentation's rootCA.
func New(t testing.TB, cn string) *CA {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	return selfSigned(t, cn, key)
}

// NewECDSA is New with an ECDSA P-256 key, as cert-manager issues by
// default: the chart must sign with either kind of CA key.
func NewECDSA(t testing.TB, cn string) *CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	return selfSigned(t, cn, key)
}

func selfSigned(t testing.TB, cn string, key crypto.Signer) *CA {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber:          Serial(t),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	return &CA{
		Cert:    cert,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}),
		Key:     key,
	}
}

// Parse reads a CA from its certificate and key in PEM (a release's root
// CA Secret, say).
func Parse(t testing.TB, certPEM, keyPEM []byte) *CA {
	t.Helper()
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	require.NoError(t, err, "CA key pair")
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	require.NoError(t, err)
	signer, ok := pair.PrivateKey.(crypto.Signer)
	require.True(t, ok, "CA key is not a signer")
	return &CA{Cert: cert, CertPEM: certPEM, KeyPEM: keyPEM, Key: signer}
}

// Sign issues tmpl for a new ECDSA P-256 key (a SerialNumber of nil gets a
// random one); it returns the certificate and the key (PKCS #8) as PEM.
func (ca *CA) Sign(t testing.TB, tmpl *x509.Certificate) (certPEM, keyPEM []byte) {
	t.Helper()
	if tmpl.SerialNumber == nil {
		tmpl.SerialNumber = Serial(t)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	require.NoError(t, err, "sign a certificate for %s", tmpl.Subject.CommonName)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
}

// ClientCert signs a client certificate for cn valid in [notBefore,
// notAfter]; it returns the certificate and key as PEM.
func (ca *CA) ClientCert(t testing.TB, cn string, notBefore, notAfter time.Time) (certPEM, keyPEM []byte) {
	t.Helper()
	return ca.Sign(t, &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn},
		NotBefore:   notBefore,
		NotAfter:    notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
}

// ValidClientCert is ClientCert valid from an hour ago for a day.
func (ca *CA) ValidClientCert(t testing.TB, cn string) (certPEM, keyPEM []byte) {
	t.Helper()
	return ca.ClientCert(t, cn, time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour))
}

// Serial is a random 120-bit serial number.
func Serial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	require.NoError(t, err)
	return n
}

// String names the CA in logs.
func (ca *CA) String() string { return fmt.Sprintf("CA %q", ca.Cert.Subject.CommonName) }

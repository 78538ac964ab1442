package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func parseCertPEM(t *testing.T, data []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(data)
	require.NotNil(t, block, "no PEM block")
	require.Equal(t, "CERTIFICATE", block.Type)
	c, err := x509.ParseCertificate(block.Bytes)
	require.NoError(t, err)
	return c
}

func poolOf(cas ...*CA) *x509.CertPool {
	p := x509.NewCertPool()
	for _, ca := range cas {
		p.AddCert(ca.Cert)
	}
	return p
}

func TestNewCAIsSelfSignedV3CA(t *testing.T) {
	ca, err := NewCA("test-ca", time.Hour)
	require.NoError(t, err)

	c := ca.Cert
	assert.Equal(t, 3, c.Version)
	assert.True(t, c.BasicConstraintsValid)
	assert.True(t, c.IsCA)
	assert.NotZero(t, c.KeyUsage&x509.KeyUsageCertSign)
	assert.Equal(t, "test-ca", c.Subject.CommonName)
	assert.Equal(t, x509.ECDSA, c.PublicKeyAlgorithm)
	assert.NoError(t, c.CheckSignatureFrom(c))
	assert.WithinDuration(t, time.Now().Add(time.Hour), c.NotAfter, time.Minute)
	assert.Equal(t, c.Raw, parseCertPEM(t, ca.CertPEM).Raw)

	_, err = NewCA("", time.Hour)
	assert.Error(t, err)
	_, err = NewCA("x", 0)
	assert.Error(t, err)
}

func TestIssuedCertificatesVerify(t *testing.T) {
	ca, err := NewCA("test-ca", 24*time.Hour)
	require.NoError(t, err)
	other, err := NewCA("test-ca", 24*time.Hour) // same name, different key
	require.NoError(t, err)

	tests := []struct {
		name    string
		req     IssueRequest
		roots   *x509.CertPool
		usage   x509.ExtKeyUsage
		dnsName string
		wantErr bool
	}{
		{name: "server cert as server by DNS", req: IssueRequest{CommonName: PeerCommonName, DNSNames: []string{"localhost"}, ServerAuth: true, ClientAuth: true},
			roots: poolOf(ca), usage: x509.ExtKeyUsageServerAuth, dnsName: "localhost"},
		{name: "server cert as server by IP", req: IssueRequest{CommonName: PeerCommonName, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ServerAuth: true},
			roots: poolOf(ca), usage: x509.ExtKeyUsageServerAuth, dnsName: "127.0.0.1"},
		{name: "server cert as client", req: IssueRequest{CommonName: PeerCommonName, ServerAuth: true, ClientAuth: true},
			roots: poolOf(ca), usage: x509.ExtKeyUsageClientAuth},
		{name: "user cert as client", req: IssueRequest{CommonName: "myuser", ClientAuth: true},
			roots: poolOf(ca), usage: x509.ExtKeyUsageClientAuth},
		{name: "user cert refused as server", req: IssueRequest{CommonName: "myuser", ClientAuth: true},
			roots: poolOf(ca), usage: x509.ExtKeyUsageServerAuth, wantErr: true},
		{name: "server-only cert refused as client", req: IssueRequest{CommonName: "srv", ServerAuth: true},
			roots: poolOf(ca), usage: x509.ExtKeyUsageClientAuth, wantErr: true},
		{name: "wrong hostname refused", req: IssueRequest{CommonName: "srv", DNSNames: []string{"a.example"}, ServerAuth: true},
			roots: poolOf(ca), usage: x509.ExtKeyUsageServerAuth, dnsName: "b.example", wantErr: true},
		{name: "other CA with same name refused", req: IssueRequest{CommonName: "myuser", ClientAuth: true},
			roots: poolOf(other), usage: x509.ExtKeyUsageClientAuth, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			certPEM, keyPEM, err := ca.Issue(tt.req)
			require.NoError(t, err)
			_, err = tls.X509KeyPair(certPEM, keyPEM)
			require.NoError(t, err, "certificate and key must pair")

			c := parseCertPEM(t, certPEM)
			assert.Equal(t, 3, c.Version)
			assert.False(t, c.IsCA)
			assert.Equal(t, tt.req.CommonName, c.Subject.CommonName)
			_, err = c.Verify(x509.VerifyOptions{Roots: tt.roots, KeyUsages: []x509.ExtKeyUsage{tt.usage}, DNSName: tt.dnsName})
			if tt.wantErr {
				assert.Error(t, err)
			} else {
				assert.NoError(t, err)
			}
		})
	}
}

func TestIssueCapsValidityAtCA(t *testing.T) {
	ca, err := NewCA("short-ca", time.Hour)
	require.NoError(t, err)
	certPEM, _, err := ca.Issue(IssueRequest{CommonName: "u", ClientAuth: true, Validity: 48 * time.Hour})
	require.NoError(t, err)
	assert.False(t, parseCertPEM(t, certPEM).NotAfter.After(ca.Cert.NotAfter))
}

func TestIssueRejectsBadRequests(t *testing.T) {
	ca, err := NewCA("test-ca", time.Hour)
	require.NoError(t, err)
	for name, req := range map[string]IssueRequest{
		"empty common name": {ClientAuth: true},
		"no key usage":      {CommonName: "u"},
		"negative validity": {CommonName: "u", ClientAuth: true, Validity: -time.Hour},
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := ca.Issue(req)
			assert.Error(t, err)
		})
	}
}

// selfSignedCA makes a CA certificate for key the way `openssl req -x509`
// does, or a non-CA certificate when isCA is false.
func selfSignedCA(t *testing.T, key crypto.Signer, isCA bool) []byte {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(42),
		Subject:               pkix.Name{CommonName: "loaded-ca"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		BasicConstraintsValid: true,
		IsCA:                  isCA,
	}
	if isCA {
		tmpl.KeyUsage = x509.KeyUsageCertSign
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func writeFiles(t *testing.T, certPEM, keyPEM []byte) (string, string) {
	t.Helper()
	dir := t.TempDir()
	cf, kf := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	require.NoError(t, os.WriteFile(cf, certPEM, 0o644))
	require.NoError(t, os.WriteFile(kf, keyPEM, 0o600))
	return cf, kf
}

func TestLoadCAKeyFormats(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	ecKey, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(t, err)
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)

	pkcs8 := func(k crypto.Signer) []byte {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		require.NoError(t, err)
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
	sec1, err := x509.MarshalECPrivateKey(ecKey)
	require.NoError(t, err)
	ecParams := "-----BEGIN EC PARAMETERS-----\nBgUrgQQAIg==\n-----END EC PARAMETERS-----\n"

	tests := []struct {
		name   string
		key    crypto.Signer
		keyPEM []byte
	}{
		{"RSA PKCS#1 (openssl 1.x genrsa)", rsaKey, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)})},
		{"RSA PKCS#8 (openssl 3 genrsa)", rsaKey, pkcs8(rsaKey)},
		{"EC SEC1 after EC PARAMETERS (openssl ecparam -genkey)", ecKey, append([]byte(ecParams), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1})...)},
		{"EC PKCS#8", ecKey, pkcs8(ecKey)},
		{"Ed25519 PKCS#8", edKey, pkcs8(edKey)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			caPEM := selfSignedCA(t, tt.key, true)
			ca, err := LoadCA(writeFiles(t, caPEM, tt.keyPEM))
			require.NoError(t, err)

			certPEM, _, err := ca.Issue(IssueRequest{CommonName: "myuser", ClientAuth: true})
			require.NoError(t, err)
			_, err = parseCertPEM(t, certPEM).Verify(x509.VerifyOptions{Roots: poolOf(ca), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
			require.NoError(t, err)
		})
	}
}

// TestLoadCAFromOpenSSL loads the CA that scripts/gen-openssl-testdata.sh
// made with the old documentation's openssl commands.
func TestLoadCAFromOpenSSL(t *testing.T) {
	dir := filepath.Join("..", "mtls", "testdata", "openssl")
	ca, err := LoadCA(filepath.Join(dir, "rootCA.crt"), filepath.Join(dir, "rootCA.key"))
	require.NoError(t, err)
	assert.Equal(t, "ephemeral-store-ca", ca.Cert.Subject.CommonName)
	assert.Equal(t, x509.RSA, ca.Cert.PublicKeyAlgorithm)

	certPEM, _, err := ca.Issue(IssueRequest{CommonName: PeerCommonName, DNSNames: []string{"localhost"}, ServerAuth: true, ClientAuth: true})
	require.NoError(t, err)
	_, err = parseCertPEM(t, certPEM).Verify(x509.VerifyOptions{Roots: poolOf(ca), DNSName: "localhost"})
	require.NoError(t, err)

	_, err = LoadCA(filepath.Join(dir, "rootCA.crt"), filepath.Join(dir, "otherCA.key"))
	assert.ErrorContains(t, err, "does not belong")
}

func TestLoadCARejects(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	otherKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	der, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	otherDER, err := x509.MarshalPKCS8PrivateKey(otherKey)
	require.NoError(t, err)
	otherPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: otherDER})

	tests := []struct {
		name          string
		certPEM, keyP []byte
		want          string
	}{
		{"key of another certificate", selfSignedCA(t, key, true), otherPEM, "does not belong"},
		{"not a CA", selfSignedCA(t, key, false), keyPEM, "not a CA"},
		{"encrypted PKCS#8 key", selfSignedCA(t, key, true), pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1}}), "encrypted"},
		{"encrypted legacy key", selfSignedCA(t, key, true), pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED"}, Bytes: []byte{1}}), "encrypted"},
		{"no key", selfSignedCA(t, key, true), []byte("garbage"), "no private key"},
		{"no certificate", keyPEM, keyPEM, "no CERTIFICATE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadCA(writeFiles(t, tt.certPEM, tt.keyP))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}

	_, err = LoadCA(filepath.Join(t.TempDir(), "missing.crt"), "missing.key")
	assert.ErrorIs(t, err, os.ErrNotExist)
}

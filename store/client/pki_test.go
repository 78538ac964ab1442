package client

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// testPKI is a throw-away CA with a server certificate for 127.0.0.1 and
// client certificates, written to a temporary directory. The tests and
// the examples (NewExampleClient, which has no *testing.T) share it.
type testPKI struct {
	t      *testing.T  // nil for the examples
	fail   func(error) // t.Fatal, or a panic for the examples
	dir    string      // "" for the examples: nothing is written
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	pool   *x509.CertPool
	server tls.Certificate
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	p := newPKI(func(err error) { t.Helper(); t.Fatal(err) })
	p.t, p.dir = t, t.TempDir()
	writePEM(t, p.caFile(), "CERTIFICATE", p.ca.Raw)
	return p
}

// newPKI makes the CA and the server certificate, in memory; fail reports
// an error and must not return.
func newPKI(fail func(error)) *testPKI {
	p := &testPKI{fail: fail}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		fail(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		fail(err)
	}
	p.ca, _ = x509.ParseCertificate(der)
	p.caKey = key
	p.pool = x509.NewCertPool()
	p.pool.AddCert(p.ca)
	p.server = p.issue("ephemeral-store-peer", true)
	return p
}

func (p *testPKI) caFile() string { return filepath.Join(p.dir, "ca.crt") }

var serial atomic.Int64

// issue signs a certificate for cn (a server certificate for 127.0.0.1
// and localhost when server is true).
func (p *testPKI) issue(cn string, server bool) tls.Certificate {
	if server {
		return p.sign(cn, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
			[]string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)})
	}
	return p.sign(cn, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, nil, nil)
}

// issueNamed signs a server certificate for exactly these names.
func (p *testPKI) issueNamed(dns []string, ips []net.IP) tls.Certificate {
	return p.sign("ephemeral-store-peer", []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, dns, ips)
}

// sign issues a certificate for cn with these extended key usages and
// names, valid from an hour ago for two hours, for a new P-256 key.
func (p *testPKI) sign(cn string, usages []x509.ExtKeyUsage, dns []string, ips []net.IP) tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		p.fail(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial.Add(1) + 10),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  usages,
		DNSNames:     dns,
		IPAddresses:  ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		p.fail(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		p.fail(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// userFiles writes a client certificate for user and returns its files.
func (p *testPKI) userFiles(user string) (certFile, keyFile string) {
	p.t.Helper()
	certFile, keyFile = filepath.Join(p.dir, user+".crt"), filepath.Join(p.dir, user+".key")
	p.writeKeyPair(p.issue(user, false), certFile, keyFile)
	return certFile, keyFile
}

func (p *testPKI) writeKeyPair(c tls.Certificate, certFile, keyFile string) {
	p.t.Helper()
	keyDER, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		p.t.Fatal(err)
	}
	writePEM(p.t, certFile, "CERTIFICATE", c.Certificate[0])
	writePEM(p.t, keyFile, "PRIVATE KEY", keyDER)
}

func writePEM(t *testing.T, name, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(name, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// startTLS serves h over TLS (HTTP/2 enabled) requiring a client
// certificate from the test CA, as the store does, until the test ends.
func (p *testPKI) startTLS(h http.Handler) *httptest.Server {
	p.t.Helper()
	srv := p.serveTLS(h)
	p.t.Cleanup(srv.Close)
	return srv
}

// serveTLS is startTLS without the cleanup: the caller closes it.
func (p *testPKI) serveTLS(h http.Handler) *httptest.Server {
	srv := httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = true
	srv.TLS = &tls.Config{
		MinVersion:   tls.VersionTLS12,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    p.pool,
		Certificates: []tls.Certificate{p.server},
	}
	srv.StartTLS()
	return srv
}

// client returns a client for user "myuser" on the given endpoints.
func (p *testPKI) client(endpoints ...string) *Client {
	p.t.Helper()
	cert, key := p.userFiles("myuser")
	c, err := NewFromFiles(endpoints, cert, key, p.caFile())
	if err != nil {
		p.t.Fatal(err)
	}
	p.t.Cleanup(func() { c.Close() })
	return c
}

// deadEndpoint is the URL of a port nothing listens on.
func deadEndpoint(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "https://" + addr
}

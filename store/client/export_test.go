package client

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/http/httptest"
	"time"
)

// NewExampleClient starts the package's fake store (fake_test.go) behind
// mutual TLS, with a throw-away CA, and returns a Client of it and a
// function that stops it: the examples run against it (they have no
// *testing.T for the tests' PKI).
func NewExampleClient() (*Client, func()) {
	must := func(err error) {
		if err != nil {
			panic(err)
		}
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "example CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	must(err)
	ca, err := x509.ParseCertificate(caDER)
	must(err)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	issue := func(cn string, usage x509.ExtKeyUsage) tls.Certificate {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		must(err)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial.Add(1) + 10), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		must(err)
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	}
	f := newFakeStore()
	srv := httptest.NewUnstartedServer(f)
	srv.EnableHTTP2 = true
	srv.TLS = &tls.Config{
		MinVersion: tls.VersionTLS12, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool,
		Certificates: []tls.Certificate{issue("ephemeral-store", x509.ExtKeyUsageServerAuth)},
	}
	srv.StartTLS()
	c, err := New(Config{Endpoints: []string{srv.URL}, TLS: &tls.Config{
		RootCAs: pool, Certificates: []tls.Certificate{issue("myuser", x509.ExtKeyUsageClientAuth)},
	}})
	must(err)
	return c, func() {
		c.Close()
		close(f.stop) // ends the watch handlers, which srv.Close waits for
		srv.Close()
	}
}

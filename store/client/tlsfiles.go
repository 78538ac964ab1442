package client

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
)

// The files of TLSConfigFromFiles are read again when their content
// changes (cert-manager rotates tls.crt, tls.key and ca.crt in one Secret),
// checked at each TLS handshake: the client certificate when the server
// asks for it, the CA bundle when the server's certificate is verified.
// Nothing watches in the background: TLSConfigFromFiles returns a bare
// tls.Config, which has no Close to stop a goroutine. A handshake reads
// the few small files and compares their hash; connections are long-lived,
// so that is rare. Content that does not load (a rotation half written)
// leaves the previous certificate or CA in use.

// fileKeyPair is a client certificate and key read from files.
type fileKeyPair = fileValue[tls.Certificate]

func loadKeyPair(certFile, keyFile string) (*fileKeyPair, error) {
	r, err := loadFiles(func(c [][]byte) (*tls.Certificate, error) {
		kp, err := tls.X509KeyPair(c[0], c[1])
		return &kp, err
	}, certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("client: certificate %s, key %s: %w", certFile, keyFile, err)
	}
	return r, nil
}

// getClientCertificate is tls.Config.GetClientCertificate for kp.
func getClientCertificate(kp *fileKeyPair) func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		kp.check()
		return kp.value(), nil
	}
}

// fileRoots is a CA bundle read from a file.
type fileRoots = fileValue[x509.CertPool]

var errNoCertificate = errors.New("no PEM certificate in it")

func loadRoots(caFile string) (*fileRoots, error) {
	r, err := loadFiles(func(c [][]byte) (*x509.CertPool, error) {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(c[0]) {
			return nil, errNoCertificate
		}
		return pool, nil
	}, caFile)
	if err != nil {
		return nil, fmt.Errorf("client: CA file %s: %w", caFile, err)
	}
	return r, nil
}

// errNoServerName refuses a handshake whose ConnectionState names no
// server: the certificate cannot be checked against the name dialled.
var errNoServerName = errors.New("client: no server name to verify the server certificate against " +
	"(TLS sends none for an IP address: use a DNS name of the certificate as the endpoint, or set tls.Config.ServerName to one; " +
	"a Client supplies the address itself unless it goes through an HTTPS proxy)")

// verifyServer is tls.Config.VerifyConnection for a CA bundle read from a
// file. It does what crypto/tls does when InsecureSkipVerify is false (the
// chain to the roots, the server-auth usage, the name in
// ConnectionState.ServerName), with the roots of the file as it is now:
// tls.Config.RootCAs is fixed once a transport has cloned the config.
func verifyServer(roots *fileRoots) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		fail := func(err error) error {
			return &tls.CertificateVerificationError{UnverifiedCertificates: cs.PeerCertificates, Err: err}
		}
		if len(cs.PeerCertificates) == 0 {
			return fail(errors.New("client: the server sent no certificate"))
		}
		if cs.ServerName == "" {
			return fail(errNoServerName)
		}
		roots.check()
		opts := x509.VerifyOptions{
			Roots:         roots.value(),
			DNSName:       cs.ServerName,
			Intermediates: x509.NewCertPool(),
		}
		for _, c := range cs.PeerCertificates[1:] {
			opts.Intermediates.AddCert(c)
		}
		if _, err := cs.PeerCertificates[0].Verify(opts); err != nil {
			return fail(err)
		}
		return nil
	}
}

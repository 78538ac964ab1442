package systems

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// ErrNotFound is a read of a key that does not exist.
var ErrNotFound = errors.New("key not found")

// tlsConfig is the benchmark user's client configuration: bench.crt/key,
// trusting rootCA.crt, the PKI the store's `certs` command wrote.
func tlsConfig(certDir string) (*tls.Config, error) {
	kp, err := tls.LoadX509KeyPair(filepath.Join(certDir, benchUser+".crt"), filepath.Join(certDir, benchUser+".key"))
	if err != nil {
		return nil, fmt.Errorf("client key pair: %w", err)
	}
	pem, err := os.ReadFile(filepath.Join(certDir, "rootCA.crt"))
	if err != nil {
		return nil, fmt.Errorf("CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, errors.New("CA: no certificate in rootCA.crt")
	}
	return &tls.Config{Certificates: []tls.Certificate{kp}, RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// Package mtls builds the store's TLS configurations and keeps their
// certificates current.
//
// Every listener of the store is mutual TLS, TLS 1.2 or newer, and always
// requires a client certificate that chains to the configured CA: never
// "optional" or "request" (etcd CVE-2018-16886 and Redis issue 14638 show
// where optional certificate authentication leads). On the client port the
// user is the Common Name of the verified chain's leaf (UserFromState); on
// the peer port only certificates with the peer Common Name are accepted
// (PeerServerConfig, PeerClientConfig), so a user's certificate, signed by
// the same CA, cannot join the cluster.
//
// Certificates and CA bundles come from a CertSource and a PoolSource,
// consulted on every handshake, so that rotated files (KeyPairReloader,
// PoolReloader) take effect without a restart; a minted certificate
// (NewMintedKeyPair) is issued again when its CA files change, and a CA
// that leaves a bundle stays trusted for a grace period (WithGrace). Session tickets are off on
// the servers, so that every connection is verified against the current CA
// pool rather than resumed from an earlier verification.
package mtls

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"github.com/ephemeral-store/ephemeral-store/store/internal/pki"
)

var (
	// ErrNoClientCertificate means the connection has no verified client
	// certificate chain: no TLS, no certificate, or a certificate that was
	// not verified (PeerCertificates alone never name a user).
	ErrNoClientCertificate = errors.New("no verified client certificate")
	// ErrEmptyCommonName means the verified client certificate has no
	// Common Name, so it names no user.
	ErrEmptyCommonName = errors.New("client certificate has an empty common name")
	// ErrNotPeer means a verified certificate on the peer channel does not
	// carry the peer Common Name: it is not a store node's (typically it is
	// a user's, signed by the same CA).
	ErrNotPeer = errors.New("certificate is not a store peer's")
)

// serverNextProtos are offered by ServerConfig's listeners.
var serverNextProtos = []string{"h2", "http/1.1"}

// ServerConfig is the configuration of the client port: it serves cert,
// requires and verifies a client certificate against the pool clientCAs
// holds at the time of each handshake (tls.RequireAndVerifyClientCert,
// always), accepts TLS 1.2 and newer, and offers h2 and http/1.1.
//
// Certificates of the old documentation (X.509 v1, no extensions) are
// accepted as client certificates: a certificate without extended key usage
// may be used for any purpose.
func ServerConfig(cert CertSource, clientCAs PoolSource) *tls.Config {
	return serverConfig(cert, clientCAs, serverNextProtos, nil)
}

// PeerServerConfig is the configuration of the peer port: as ServerConfig
// (without ALPN), and additionally it refuses a verified client certificate
// whose Common Name is not peerCN (empty: pki.PeerCommonName) with an error
// wrapping ErrNotPeer. The certificate presented must carry both server and
// client auth, as pki issues them.
func PeerServerConfig(cert CertSource, peerCAs PoolSource, peerCN string) *tls.Config {
	if peerCN == "" {
		peerCN = pki.PeerCommonName
	}
	return serverConfig(cert, peerCAs, nil, func(cs tls.ConnectionState) error {
		if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
			return ErrNoClientCertificate
		}
		return checkPeerCN(cs.VerifiedChains[0][0], peerCN)
	})
}

func serverConfig(cert CertSource, cas PoolSource, nextProtos []string, verify func(tls.ConnectionState) error) *tls.Config {
	base := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		ClientAuth:     tls.RequireAndVerifyClientCert,
		GetCertificate: cert.GetCertificate,
		NextProtos:     nextProtos,
		// Resuming would skip verification against the current pool; the
		// clients keep their connections open, so full handshakes are rare.
		SessionTicketsDisabled: true,
		VerifyConnection:       verify,
	}
	outer := base.Clone()
	outer.ClientCAs = cas.Pool()
	// The configuration each handshake really uses, built from the current
	// pool so that a rotated CA bundle applies to the next connection.
	outer.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		c := base.Clone()
		c.ClientCAs = cas.Pool()
		return c, nil
	}
	return outer
}

// PeerClientConfig is the configuration for dialing a peer: it presents
// cert, accepts TLS 1.2 and newer, and accepts the peer only when its
// certificate chains to peerCAs (the pool current at the handshake), may be
// used for server auth, and has Common Name peerCN (empty:
// pki.PeerCommonName); otherwise the handshake fails (ErrNotPeer for a
// wrong name).
//
// The host name is deliberately not checked: peers are dialled by whatever
// address discovery produced (a pod DNS name, a static host:port, an IP in
// tests) and the certificate's SANs need not list it; the peer identity is
// the CA plus the Common Name. Go can only skip the host name check by
// skipping all verification (InsecureSkipVerify), so the chain is verified
// here in VerifyConnection instead, which runs for every handshake.
func PeerClientConfig(cert CertSource, peerCAs PoolSource, peerCN string) *tls.Config {
	if peerCN == "" {
		peerCN = pki.PeerCommonName
	}
	return &tls.Config{
		MinVersion:           tls.VersionTLS12,
		GetClientCertificate: cert.GetClientCertificate,
		InsecureSkipVerify:   true, // #nosec G402 -- chain and name verified in VerifyConnection
		VerifyConnection: func(cs tls.ConnectionState) error {
			return verifyPeerServer(cs, peerCAs.Pool(), peerCN)
		},
	}
}

func verifyPeerServer(cs tls.ConnectionState, roots *x509.CertPool, peerCN string) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("peer presented no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	leaf := cs.PeerCertificates[0]
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}); err != nil {
		return fmt.Errorf("peer certificate %q: %w", leaf.Subject.CommonName, err)
	}
	return checkPeerCN(leaf, peerCN)
}

func checkPeerCN(leaf *x509.Certificate, peerCN string) error {
	if cn := leaf.Subject.CommonName; cn != peerCN {
		return fmt.Errorf("%w: its common name is %q, a peer's is %q", ErrNotPeer, cn, peerCN)
	}
	return nil
}

// UserFromState returns the user a connection authenticated as: the Common
// Name of the leaf of the first verified chain. It never looks at
// PeerCertificates alone, which are whatever the client sent. Errors:
// ErrNoClientCertificate, ErrEmptyCommonName.
func UserFromState(cs *tls.ConnectionState) (string, error) {
	if cs == nil || len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return "", ErrNoClientCertificate
	}
	cn := cs.VerifiedChains[0][0].Subject.CommonName
	if cn == "" {
		return "", ErrEmptyCommonName
	}
	return cn, nil
}

// ClientConfig is the configuration of a store client (the Go client, the
// CLI): it presents certFile/keyFile and trusts the CAs in caFile, with the
// usual host name verification, TLS 1.2 and newer. Without caFile the
// system roots are trusted; without certFile and keyFile (both or neither)
// no certificate is presented, which the store refuses.
func ClientConfig(certFile, keyFile, caFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if (certFile == "") != (keyFile == "") {
		return nil, fmt.Errorf("client TLS: certificate %q and key %q go together", certFile, keyFile)
	}
	if certFile != "" {
		kp, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("client TLS: load key pair %s, %s: %w", certFile, keyFile, err)
		}
		cfg.Certificates = []tls.Certificate{kp}
	}
	if caFile != "" {
		data, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("client TLS: %w", err)
		}
		if cfg.RootCAs, err = ParsePool(data); err != nil {
			return nil, fmt.Errorf("client TLS: CA bundle %s: %w", caFile, err)
		}
	}
	return cfg, nil
}

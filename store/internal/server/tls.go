package server

import (
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/ephemeral-store/ephemeral-store/store/internal/config"
	"github.com/ephemeral-store/ephemeral-store/store/internal/mtls"
	"github.com/ephemeral-store/ephemeral-store/store/internal/pki"
)

// mintedValidity is the lifetime of a certificate minted at start. It lives
// only in memory and is replaced at every process start.
const mintedValidity = 365 * 24 * time.Hour

// loadTLS builds the certificate sources: files that reload when they
// change, or (mint mode) a serving certificate issued in memory from the CA.
func loadTLS(cfg *config.Config, log *slog.Logger) (_ *tlsMaterial, err error) {
	m := &tlsMaterial{}
	defer func() {
		if err != nil {
			m.close()
		}
	}()
	rlog := log.With("component", "tls")
	if cfg.TLSCert == "" {
		ca, err := pki.LoadCA(cfg.TLSCA, cfg.TLSCAKey)
		if err != nil {
			return nil, fmt.Errorf("mint mode: %w", err)
		}
		certPEM, keyPEM, err := ca.Issue(pki.IssueRequest{
			CommonName: cfg.PeerCN, DNSNames: mintedNames(cfg),
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
			ServerAuth:  true, ClientAuth: true, Validity: mintedValidity,
		})
		if err != nil {
			return nil, fmt.Errorf("mint serving certificate: %w", err)
		}
		kp, err := mtls.NewStaticKeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("minted certificate: %w", err)
		}
		m.serving = kp
		log.Info("minted serving and peer certificate from the CA", "names", mintedNames(cfg))
	} else {
		kp, err := mtls.NewKeyPairReloader(cfg.TLSCert, cfg.TLSKey, cfg.ReloadInterval, rlog)
		if err != nil {
			return nil, fmt.Errorf("serving certificate: %w", err)
		}
		m.serving = kp
		m.closers = append(m.closers, func() { _ = kp.Close() })
	}
	m.peerCert = m.serving
	if cfg.PeerCert != "" {
		kp, err := mtls.NewKeyPairReloader(cfg.PeerCert, cfg.PeerKey, cfg.ReloadInterval, rlog)
		if err != nil {
			return nil, fmt.Errorf("peer certificate: %w", err)
		}
		m.peerCert = kp
		m.closers = append(m.closers, func() { _ = kp.Close() })
	}
	clientCAs, err := mtls.NewPoolReloader(cfg.ClientCA, cfg.ReloadInterval, rlog)
	if err != nil {
		return nil, fmt.Errorf("client CA: %w", err)
	}
	m.clientCAs = clientCAs
	m.closers = append(m.closers, func() { _ = clientCAs.Close() })
	peerCAs, err := mtls.NewPoolReloader(cfg.PeerCA, cfg.ReloadInterval, rlog)
	if err != nil {
		return nil, fmt.Errorf("peer CA: %w", err)
	}
	m.peerCAs = peerCAs
	m.closers = append(m.closers, func() { _ = peerCAs.Close() })
	return m, nil
}

// mintedNames are the DNS names a minted certificate covers: the node and
// pod names under every suffix of the headless Service domain
// (pod.svc, pod.svc.ns, ... pod.svc.ns.svc.cluster.local), the extra SANs
// (client Service names) and localhost.
func mintedNames(cfg *config.Config) []string {
	names := []string{cfg.NodeName, "localhost"}
	if host, _, err := net.SplitHostPort(cfg.Advertise); err == nil {
		names = append(names, host)
	} else {
		names = append(names, cfg.Advertise)
	}
	if cfg.PeersDNS != "" {
		parts := strings.Split(cfg.PeersDNS, ".")
		for k := 1; k <= len(parts); k++ {
			names = append(names, cfg.NodeName+"."+strings.Join(parts[:k], "."))
		}
	}
	names = append(names, cfg.SANs...)
	seen := map[string]bool{}
	out := names[:0]
	for _, n := range names {
		if n != "" && net.ParseIP(n) == nil && !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}

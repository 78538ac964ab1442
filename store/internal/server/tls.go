package server

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/ephemeral-store/ephemeral-store/store/certnames"
	"github.com/ephemeral-store/ephemeral-store/store/internal/config"
	"github.com/ephemeral-store/ephemeral-store/store/internal/filewatch"
	"github.com/ephemeral-store/ephemeral-store/store/internal/mtls"
	"github.com/ephemeral-store/ephemeral-store/store/internal/pki"
)

// mintedValidity is the lifetime of a minted certificate. It lives only in
// memory and is replaced at every process start and CA change.
const mintedValidity = 365 * 24 * time.Hour

// loadTLS builds the certificate sources: files that reload when they
// change, or (mint mode) a serving certificate issued in memory from the CA
// and issued again when the CA files change. The CA pools keep a CA that
// left their bundle for --ca-rotation-grace.
//
// The peer certificate (--peer-cert, by default the serving one) must carry
// --peer-cn and chain to --peer-ca, or every peer refuses it with a bare
// "tls: bad certificate". A node with discovery (--peers or --peers-dns)
// therefore refuses to start with such a certificate, and refuses (logs and
// keeps the old one) a rotated one with another CN. A node without
// discovery never uses its peer certificate, so it only warns.
func loadTLS(cfg *config.Config, log *slog.Logger) (_ *tlsMaterial, err error) {
	m := &tlsMaterial{}
	defer func() {
		if err != nil {
			m.close()
		}
	}()
	rlog := log.With("component", "tls")
	watch := filewatch.Config{Interval: cfg.ReloadInterval}
	grace := mtls.WithGrace(cfg.CARotationGrace)
	clientCAs, err := mtls.NewPoolReloader(cfg.ClientCA, watch, rlog, grace)
	if err != nil {
		return nil, fmt.Errorf("client CA: %w", err)
	}
	m.clientCAs = clientCAs
	m.closers = append(m.closers, func() { _ = clientCAs.Close() })
	peerCAs, err := mtls.NewPoolReloader(cfg.PeerCA, watch, rlog, grace)
	if err != nil {
		return nil, fmt.Errorf("peer CA: %w", err)
	}
	m.peerCAs = peerCAs
	m.closers = append(m.closers, func() { _ = peerCAs.Close() })

	clustered := cfg.PeersDNS != "" || len(cfg.Peers) > 0
	peerSource := describePeerCert(cfg)
	// Only the name is checked on reload: the peer CA bundle reloads on its
	// own, in no set order with the certificate, so a chain check there
	// could refuse a correct rotation that the CA file has not caught up with.
	var servingOpts, peerOpts []mtls.Option
	if clustered {
		check := mtls.WithCertificateCheck(func(c *tls.Certificate) error { return checkPeerCN(c, cfg.PeerCN, peerSource) })
		if cfg.PeerCert == "" {
			servingOpts = append(servingOpts, check)
		} else {
			peerOpts = append(peerOpts, check)
		}
	}

	if cfg.TLSCert == "" {
		// Minted again from the new CA whenever the CA files change, so a
		// rotated CA Secret strands no pod (see mtls.NewMintedKeyPair).
		names := mintedNames(cfg)
		issue := func(ca *pki.CA) ([]byte, []byte, error) {
			return ca.Issue(pki.IssueRequest{
				CommonName: cfg.PeerCN, DNSNames: names,
				IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
				ServerAuth:  true, ClientAuth: true, Validity: mintedValidity,
			})
		}
		kp, err := mtls.NewMintedKeyPair(cfg.TLSCA, cfg.TLSCAKey, issue, watch, rlog, append(servingOpts, grace)...)
		if err != nil {
			return nil, fmt.Errorf("mint mode: %w", wrapLoad("serving certificate", err))
		}
		m.serving = kp
		m.closers = append(m.closers, func() { _ = kp.Close() })
		log.Info("minted serving and peer certificate from the CA; minted again when the CA files change", "names", names)
	} else {
		kp, err := mtls.NewKeyPairReloader(cfg.TLSCert, cfg.TLSKey, watch, rlog, servingOpts...)
		if err != nil {
			return nil, wrapLoad("serving certificate", err)
		}
		m.serving = kp
		m.closers = append(m.closers, func() { _ = kp.Close() })
	}
	m.peerCert = m.serving
	if cfg.PeerCert != "" {
		kp, err := mtls.NewKeyPairReloader(cfg.PeerCert, cfg.PeerKey, watch, rlog, peerOpts...)
		if err != nil {
			return nil, wrapLoad("peer certificate", err)
		}
		m.peerCert = kp
		m.closers = append(m.closers, func() { _ = kp.Close() })
	}

	cert, err := m.peerCert.GetCertificate(nil)
	if err == nil {
		err = checkPeerCN(cert, cfg.PeerCN, peerSource)
	}
	if err == nil {
		err = checkPeerChain(cert, peerCAs.Pool(), cfg.PeerCA, peerSource)
	}
	if err != nil {
		if clustered {
			return nil, err
		}
		log.Warn("the peer certificate would not work with peers; harmless for a node without --peers or --peers-dns", "err", err)
	}
	return m, nil
}

// peerCertError is a refusal by checkPeerCN or checkPeerChain: its message
// names the file, the flags and the fix.
type peerCertError struct{ msg string }

func (e *peerCertError) Error() string { return e.msg }

// wrapLoad prefixes a key pair load error with what was being loaded,
// except for a peerCertError, which says so itself.
func wrapLoad(what string, err error) error {
	if pe := (*peerCertError)(nil); errors.As(err, &pe) {
		return pe
	}
	return fmt.Errorf("%s: %w", what, err)
}

// describePeerCert names the peer certificate for error messages: its file
// and the flag it came from.
func describePeerCert(cfg *config.Config) string {
	switch {
	case cfg.PeerCert != "":
		return fmt.Sprintf("%s (--peer-cert)", cfg.PeerCert)
	case cfg.TLSCert != "":
		return fmt.Sprintf("%s (--tls-cert, the peer certificate since --peer-cert is not set)", cfg.TLSCert)
	default:
		return fmt.Sprintf("minted from %s (--tls-ca, --tls-ca-key)", cfg.TLSCA)
	}
}

// checkPeerCN refuses a peer certificate whose Common Name is not peerCN:
// every peer would refuse it in the handshake.
func checkPeerCN(c *tls.Certificate, peerCN, source string) error {
	if c == nil || c.Leaf == nil {
		return &peerCertError{fmt.Sprintf("peer certificate %s: not loaded", source)}
	}
	if cn := c.Leaf.Subject.CommonName; cn != peerCN {
		return &peerCertError{fmt.Sprintf("peer certificate %s has CN %q, but --peer-cn is %q: every peer would refuse it (tls: bad certificate). "+
			"Give this node a peer certificate with CN=%s, signed by the peer CA, with --peer-cert and --peer-key "+
			"(`ephemeral-store certs` writes one: peer.crt, peer.key)", source, cn, peerCN, peerCN)}
	}
	return nil
}

// checkPeerChain refuses a peer certificate that does not verify against
// the peer CA pool for both server and client authentication, as peers
// verify it when it dials them and when they dial it.
func checkPeerChain(c *tls.Certificate, roots *x509.CertPool, caFile, source string) error {
	inter := x509.NewCertPool()
	for _, der := range c.Certificate[1:] {
		if ic, err := x509.ParseCertificate(der); err == nil {
			inter.AddCert(ic)
		}
	}
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := c.Leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			return &peerCertError{fmt.Sprintf("peer certificate %s, CN %q, does not verify against the peer CA %s (--peer-ca, default --tls-ca) "+
				"for server and client authentication: %v. Every peer would refuse it: use a peer certificate signed by that CA "+
				"with both usages (`ephemeral-store certs` writes one), or point --peer-ca at the CA that signed it",
				source, c.Leaf.Subject.CommonName, caFile, err)}
		}
	}
	return nil
}

// mintedNames are the DNS names a minted certificate covers: the node
// name, localhost, the --advertise host, with --peers-dns this pod's names
// under the headless Service (certnames.Release.PodDNSNames: pod.headless,
// .ns, .ns.svc, .ns.svc.<domain>), and the extra SANs (the chart passes
// the Services' names, certnames.Release.ServiceDNSNames).
func mintedNames(cfg *config.Config) []string {
	names := []string{cfg.NodeName, "localhost"}
	if host, _, err := net.SplitHostPort(cfg.Advertise); err == nil {
		names = append(names, host)
	} else {
		names = append(names, cfg.Advertise)
	}
	if cfg.PeersDNS != "" {
		// Validate made sure the node name ends in -<ordinal>.
		if i := strings.LastIndex(cfg.NodeName, "-"); i > 0 {
			if ordinal, err := cfg.Ordinal(); err == nil {
				rel := certnames.FromHeadlessDomain(cfg.PeersDNS)
				rel.StatefulSet = cfg.NodeName[:i]
				names = append(names, rel.PodDNSNames(ordinal)...)
			}
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

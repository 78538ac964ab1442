package mtls

import (
	"crypto/tls"
	"crypto/x509"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ephemeral-store/ephemeral-store/store/internal/filewatch/filewatchtest"
	"github.com/ephemeral-store/ephemeral-store/store/internal/pki"
)

// fakeClock is the grace period's clock in tests.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func withClock(c *fakeClock) Option { return func(o *options) { o.now = c.Now } }

func newTestCA(t *testing.T, cn string) *pki.CA {
	t.Helper()
	ca, err := pki.NewCA(cn, time.Hour)
	require.NoError(t, err)
	return ca
}

func bundle(cas ...*pki.CA) []byte {
	var out []byte
	for _, ca := range cas {
		out = append(out, ca.CertPEM...)
	}
	return out
}

// A CA that leaves the bundle stays trusted for the grace period and no
// longer; the CAs of the file are trusted throughout. Several reloads in
// the grace period retire each CA they remove; a CA that comes back is
// trusted by the file again, with a new grace period when it leaves again.
func TestPoolKeepsARemovedCAForTheGracePeriod(t *testing.T) {
	ca1, ca2, ca3 := newTestCA(t, "ca1"), newTestCA(t, "ca2"), newTestCA(t, "ca3")
	leafOf := func(ca *pki.CA) *x509.Certificate {
		c, err := x509.ParseCertificate(issuePair(t, ca, pki.IssueRequest{CommonName: "u", ClientAuth: true}).Certificate[0])
		require.NoError(t, err)
		return c
	}
	leaves := map[string]*x509.Certificate{"ca1": leafOf(ca1), "ca2": leafOf(ca2), "ca3": leafOf(ca3)}
	const grace = time.Hour
	type step struct {
		write   []*pki.CA     // new bundle content, nil: none
		advance time.Duration // then the clock moves
		trusted []string      // then exactly these CAs are trusted
	}
	tests := []struct {
		name  string
		grace time.Duration
		steps []step
	}{
		{"replaced: the old CA for the grace period", grace, []step{
			{nil, 0, []string{"ca1"}},
			{[]*pki.CA{ca2}, 0, []string{"ca1", "ca2"}},
			{nil, grace - time.Second, []string{"ca1", "ca2"}},
			{nil, time.Second, []string{"ca2"}},
		}},
		{"no grace: the old CA at once", 0, []step{
			{[]*pki.CA{ca2}, 0, []string{"ca2"}},
		}},
		{"two rotations: each removed CA its own period", grace, []step{
			{[]*pki.CA{ca2}, grace / 2, []string{"ca1", "ca2"}},
			{[]*pki.CA{ca3}, grace / 2, []string{"ca2", "ca3"}},
			{nil, grace / 2, []string{"ca3"}},
		}},
		{"a CA that comes back and leaves again: a new period", grace, []step{
			{[]*pki.CA{ca2}, grace / 2, []string{"ca1", "ca2"}},
			{[]*pki.CA{ca1, ca2}, grace, []string{"ca1", "ca2"}},
			{[]*pki.CA{ca2}, grace - time.Second, []string{"ca1", "ca2"}},
			{nil, time.Second, []string{"ca2"}},
		}},
		{"the bundle way: old and new together, then the old removed", grace, []step{
			{[]*pki.CA{ca2, ca1}, 2 * grace, []string{"ca1", "ca2"}},
			{[]*pki.CA{ca2}, 0, []string{"ca1", "ca2"}},
			{nil, grace, []string{"ca2"}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := &fakeClock{now: time.Unix(1e9, 0)}
			a := filewatchtest.NewAtomicDir(t, t.TempDir(), map[string][]byte{"ca.crt": bundle(ca1)})
			log, logs := newLog()
			p, err := NewPoolReloader(filepath.Join(a.Dir, "ca.crt"), polling, log, WithGrace(tt.grace), withClock(clock))
			require.NoError(t, err)
			t.Cleanup(func() { _ = p.Close() })
			for i, s := range tt.steps {
				if s.write != nil {
					reloads := p.Reloads()
					a.Update(map[string][]byte{"ca.crt": bundle(s.write...)})
					require.Eventually(t, func() bool { return p.Reloads() > reloads }, waitFor, tick, "step %d: reload; log:\n%s", i, logs)
				}
				clock.advance(s.advance)
				var trusted []string
				for name, leaf := range leaves {
					if _, err := leaf.Verify(x509.VerifyOptions{Roots: p.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err == nil {
						trusted = append(trusted, name)
					}
				}
				assert.ElementsMatch(t, s.trusted, trusted, "step %d: trusted CAs; log:\n%s", i, logs)
			}
		})
	}
}

// A minted certificate is issued again from the new CA when the CA files
// change; a CA pair that does not load (the certificate without its key)
// keeps the previous certificate.
func TestMintedKeyPairFollowsTheCA(t *testing.T) {
	ca1, ca2 := newTestCA(t, "ca1"), newTestCA(t, "ca2")
	files := func(ca *pki.CA) map[string][]byte {
		key, err := ca.KeyPEM()
		require.NoError(t, err)
		return map[string][]byte{"rootCA.crt": ca.CertPEM, "rootCA.key": key}
	}
	issue := func(ca *pki.CA) ([]byte, []byte, error) { return ca.Issue(serverReq(pki.PeerCommonName)) }
	for _, v := range variants() {
		t.Run(v.name, func(t *testing.T) {
			dir := t.TempDir()
			w := v.newW(t, dir, files(ca1))
			log, logs := newLog()
			k, err := NewMintedKeyPair(filepath.Join(dir, "rootCA.crt"), filepath.Join(dir, "rootCA.key"), issue, v.watch, log)
			require.NoError(t, err)
			t.Cleanup(func() { _ = k.Close() })
			issuer := func() string { return k.Certificate().Leaf.Issuer.CommonName }
			require.Equal(t, "ca1", issuer())
			first := serial(k)

			// The new CA's certificate with the old key: refused, kept.
			mismatched := files(ca2)
			mismatched["rootCA.key"] = files(ca1)["rootCA.key"]
			w.write(mismatched)
			require.Eventually(t, func() bool { return logs.Count("keeping the previous one") > 0 }, waitFor, tick, "log:\n%s", logs)
			require.Equal(t, first, serial(k), "a CA pair that does not load keeps the minted certificate")

			w.write(files(ca2))
			require.EventuallyWithT(t, func(c *assert.CollectT) {
				assert.Equal(c, "ca2", issuer())
			}, waitFor, tick, "log:\n%s", logs)
			leaf := k.Certificate().Leaf
			_, err = leaf.Verify(x509.VerifyOptions{Roots: poolOf(ca2.Cert), DNSName: "localhost"})
			require.NoError(t, err, "the re-minted certificate chains to the new CA")
			cert, err := k.GetClientCertificate(&tls.CertificateRequestInfo{})
			require.NoError(t, err)
			require.Equal(t, leaf.SerialNumber, cert.Leaf.SerialNumber, "the peer certificate is the re-minted one")
		})
	}
}

// After a rotation, a minted peer presents the certificate it replaced to
// a peer that still asks only for the old CA (its files not updated yet),
// for the grace period, and the new one to a peer that accepts the new CA.
func TestMintedPeerPresentsItsPreviousCertificateToAPeerOnTheOldCA(t *testing.T) {
	ca1, ca2 := newTestCA(t, "ca1"), newTestCA(t, "ca2")
	files := func(ca *pki.CA) map[string][]byte {
		key, err := ca.KeyPEM()
		require.NoError(t, err)
		return map[string][]byte{"rootCA.crt": ca.CertPEM, "rootCA.key": key}
	}
	clock := &fakeClock{now: time.Unix(1e9, 0)}
	a := filewatchtest.NewAtomicDir(t, t.TempDir(), files(ca1))
	log, logs := newLog()
	issue := func(ca *pki.CA) ([]byte, []byte, error) { return ca.Issue(serverReq(pki.PeerCommonName)) }
	const grace = time.Hour
	k, err := NewMintedKeyPair(filepath.Join(a.Dir, "rootCA.crt"), filepath.Join(a.Dir, "rootCA.key"), issue, polling, log, WithGrace(grace), withClock(clock))
	require.NoError(t, err)
	t.Cleanup(func() { _ = k.Close() })
	a.Update(files(ca2))
	require.Eventually(t, func() bool { return k.Certificate().Leaf.Issuer.CommonName == "ca2" }, waitFor, tick, "log:\n%s", logs)

	client := PeerClientConfig(k, mustStaticPool(t, bundle(ca1, ca2)), "")
	peerOn := func(ca *pki.CA) *tls.Config {
		return PeerServerConfig(staticCert(t, ca, serverReq(pki.PeerCommonName)), mustStaticPool(t, ca.CertPEM), "")
	}
	accepted := func(r result) bool { return r.clientErr == nil && r.serverErr == nil && r.user == pki.PeerCommonName }

	r := handshake(t, peerOn(ca1), client)
	assert.True(t, accepted(r), "a peer on the old CA, in the grace period: %+v", r)
	r = handshake(t, peerOn(ca2), client)
	assert.True(t, accepted(r), "a peer on the new CA: %+v", r)

	clock.advance(grace)
	r = handshake(t, peerOn(ca1), client)
	assert.False(t, accepted(r), "a peer on the old CA after the grace period: %+v", r)
	r = handshake(t, peerOn(ca2), client)
	assert.True(t, accepted(r), "a peer on the new CA after the grace period: %+v", r)
}

func mustStaticPool(t *testing.T, pemData []byte) *PoolReloader {
	t.Helper()
	p, err := NewStaticPool(pemData)
	require.NoError(t, err)
	return p
}

package mtls

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ephemeral-store/ephemeral-store/store/internal/filewatch"
	"github.com/ephemeral-store/ephemeral-store/store/internal/filewatch/filewatchtest"
	"github.com/ephemeral-store/ephemeral-store/store/internal/pki"
)

const (
	// waitFor bounds every wait: generous, because the test machine can
	// freeze for minutes; a passing test never waits that long.
	waitFor = 2 * time.Minute
	tick    = 5 * time.Millisecond
)

// polling is how the tests watch files unless they say otherwise.
var polling = filewatch.Config{Interval: 20 * time.Millisecond}

// writer puts files into a directory, either in place (os.WriteFile, as an
// operator or cert-manager's csi driver might) or the way kubelet updates a
// Secret volume (a ..data symlink swap).
type writer interface {
	write(files map[string][]byte)
}

type inPlace struct {
	t   *testing.T
	dir string
}

func (w inPlace) write(files map[string][]byte) {
	for name, data := range files {
		require.NoError(w.t, os.WriteFile(filepath.Join(w.dir, name), data, 0o600))
	}
}

type kubelet struct{ a *filewatchtest.AtomicDir }

func (w kubelet) write(files map[string][]byte) { w.a.Update(files) }

// variants are the ways files change crossed with the ways of noticing.
type variant struct {
	name  string
	newW  func(t *testing.T, dir string, files map[string][]byte) writer
	watch filewatch.Config
}

func variants() []variant {
	inPlaceW := func(t *testing.T, dir string, files map[string][]byte) writer {
		w := inPlace{t, dir}
		w.write(files)
		return w
	}
	kubeletW := func(t *testing.T, dir string, files map[string][]byte) writer {
		return kubelet{filewatchtest.NewAtomicDir(t, dir, files)}
	}
	return []variant{
		{"in place, polling only", inPlaceW, filewatch.Config{Interval: polling.Interval, NoEvents: true}},
		{"in place, events only", inPlaceW, filewatch.Config{Interval: -1}},
		{"kubernetes symlink swap, polling only", kubeletW, filewatch.Config{Interval: polling.Interval, NoEvents: true}},
		{"kubernetes symlink swap, events only", kubeletW, filewatch.Config{Interval: -1}},
		{"kubernetes symlink swap, both", kubeletW, polling},
	}
}

func serial(k *KeyPairReloader) *big.Int { return k.Certificate().Leaf.SerialNumber }

func leafSerial(t *testing.T, certPEM []byte) *big.Int {
	t.Helper()
	block, _ := pem.Decode(certPEM)
	require.NotNil(t, block)
	c, err := x509.ParseCertificate(block.Bytes)
	require.NoError(t, err)
	return c.SerialNumber
}

func issueServer(t *testing.T, ca *pki.CA, cn string) ([]byte, []byte) {
	t.Helper()
	return issuePEM(t, ca, serverReq(cn))
}

func TestKeyPairReloaderFollowsChanges(t *testing.T) {
	ca, err := pki.NewCA("ca", time.Hour)
	require.NoError(t, err)
	for _, v := range variants() {
		t.Run(v.name, func(t *testing.T) {
			dir := t.TempDir()
			certA, keyA := issueServer(t, ca, "a")
			w := v.newW(t, dir, map[string][]byte{"tls.crt": certA, "tls.key": keyA})

			var hooked atomic.Int64
			log, logs := newLog()
			k, err := NewKeyPairReloader(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"), v.watch, log,
				WithOnReload(func() { hooked.Add(1) }))
			require.NoError(t, err)
			t.Cleanup(func() { k.Close() })
			assert.Equal(t, leafSerial(t, certA), serial(k))

			certB, keyB := issueServer(t, ca, "b")
			w.write(map[string][]byte{"tls.key": keyB, "tls.crt": certB})
			// The new certificate is served before the reload is counted and
			// the hook runs, so wait for those too rather than race them.
			require.EventuallyWithT(t, func(c *assert.CollectT) {
				assert.Equal(c, leafSerial(t, certB).String(), serial(k).String(), "certificate b not loaded")
				assert.EqualValues(c, 1, k.Reloads())
				assert.EqualValues(c, 1, hooked.Load(), "hook calls")
			}, waitFor, tick, "log:\n%s", logs)

			got, err := k.GetCertificate(nil)
			require.NoError(t, err)
			assert.Equal(t, "b", got.Leaf.Subject.CommonName)
			got, err = k.GetClientCertificate(nil)
			require.NoError(t, err)
			assert.Equal(t, "b", got.Leaf.Subject.CommonName)
		})
	}
}

func TestPoolReloaderFollowsChanges(t *testing.T) {
	ca1, err := pki.NewCA("ca1", time.Hour)
	require.NoError(t, err)
	ca2, err := pki.NewCA("ca2", time.Hour)
	require.NoError(t, err)
	leaf2, err := x509.ParseCertificate(issuePair(t, ca2, pki.IssueRequest{CommonName: "u", ClientAuth: true}).Certificate[0])
	require.NoError(t, err)
	trusts := func(p *PoolReloader) bool {
		_, err := leaf2.Verify(x509.VerifyOptions{Roots: p.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
		return err == nil
	}
	for _, v := range variants() {
		t.Run(v.name, func(t *testing.T) {
			dir := t.TempDir()
			w := v.newW(t, dir, map[string][]byte{"ca.crt": ca1.CertPEM})
			log, logs := newLog()
			p, err := NewPoolReloader(filepath.Join(dir, "ca.crt"), v.watch, log)
			require.NoError(t, err)
			t.Cleanup(func() { p.Close() })
			require.False(t, trusts(p))

			w.write(map[string][]byte{"ca.crt": append(append([]byte{}, ca1.CertPEM...), ca2.CertPEM...)})
			require.EventuallyWithT(t, func(c *assert.CollectT) {
				assert.True(c, trusts(p), "bundle not reloaded")
				assert.EqualValues(c, 1, p.Reloads())
			}, waitFor, tick, "log:\n%s", logs)
		})
	}
}

// TestFailedReloadKeepsThePreviousMaterial writes broken content: the
// reloader logs once per broken content, keeps serving the last good pair,
// and takes the next good one.
func TestFailedReloadKeepsThePreviousMaterial(t *testing.T) {
	ca, err := pki.NewCA("ca", time.Hour)
	require.NoError(t, err)
	dir := t.TempDir()
	certA, keyA := issueServer(t, ca, "a")
	certB, keyB := issueServer(t, ca, "b")
	a := filewatchtest.NewAtomicDir(t, dir, map[string][]byte{"tls.crt": certA, "tls.key": keyA})

	log, logs := newLog()
	k, err := NewKeyPairReloader(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"), polling, log)
	require.NoError(t, err)
	defer k.Close()

	broken := []map[string][]byte{
		{"tls.crt": certB, "tls.key": keyA},                // key of another certificate
		{"tls.crt": []byte("not PEM"), "tls.key": keyA},    // garbage
		{"tls.key": keyA},                                  // certificate missing
		{"tls.crt": certA[:len(certA)/2], "tls.key": keyA}, // truncated
	}
	for i, files := range broken {
		a.Update(files)
		require.EventuallyWithT(t, func(c *assert.CollectT) {
			assert.Equal(c, i+1, logs.Count("reloading certificate failed"))
		}, waitFor, tick, "log:\n%s", logs)
		assert.Equal(t, "a", k.Certificate().Leaf.Subject.CommonName)
	}
	a.Update(map[string][]byte{"tls.crt": certB, "tls.key": keyB})
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Equal(c, "b", k.Certificate().Leaf.Subject.CommonName)
		assert.EqualValues(c, 1, k.Reloads())
	}, waitFor, tick, "log:\n%s", logs)
	assert.Equal(t, len(broken), logs.Count("reloading certificate failed"), "each broken content is logged once:\n%s", logs)
}

// TestServerUsesRotatedMaterial rotates the serving certificate and the
// client CA bundle under a running listener, the Kubernetes way.
func TestServerUsesRotatedMaterial(t *testing.T) {
	ca1, err := pki.NewCA("ca1", time.Hour)
	require.NoError(t, err)
	ca2, err := pki.NewCA("ca2", time.Hour)
	require.NoError(t, err)

	tlsDir, caDir := t.TempDir(), t.TempDir()
	certA, keyA := issueServer(t, ca1, "a")
	certs := filewatchtest.NewAtomicDir(t, tlsDir, map[string][]byte{"tls.crt": certA, "tls.key": keyA})
	cas := filewatchtest.NewAtomicDir(t, caDir, map[string][]byte{"ca.crt": ca1.CertPEM})

	log, logs := newLog()
	serving, err := NewKeyPairReloader(filepath.Join(tlsDir, "tls.crt"), filepath.Join(tlsDir, "tls.key"), polling, log)
	require.NoError(t, err)
	defer serving.Close()
	clientCAs, err := NewPoolReloader(filepath.Join(caDir, "ca.crt"), polling, log)
	require.NoError(t, err)
	defer clientCAs.Close()
	addr, _ := serve(t, ServerConfig(serving, clientCAs))

	// connect returns the server's CN, or an error when refused.
	connect := func(client tls.Certificate) (string, error) {
		var serverCN string
		cfg := &tls.Config{
			RootCAs: poolOf(ca1.Cert, ca2.Cert), ServerName: "localhost",
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &client, nil },
			VerifyConnection: func(cs tls.ConnectionState) error {
				serverCN = cs.PeerCertificates[0].Subject.CommonName
				return nil
			},
		}
		_, _, err := dial(addr, cfg)
		return serverCN, err
	}
	user1 := issuePair(t, ca1, pki.IssueRequest{CommonName: "u1", ClientAuth: true})
	user2 := issuePair(t, ca2, pki.IssueRequest{CommonName: "u2", ClientAuth: true})

	cn, err := connect(user1)
	require.NoError(t, err)
	assert.Equal(t, "a", cn)
	_, err = connect(user2)
	require.Error(t, err, "ca2 is not trusted yet")

	// New serving certificate, from the other CA.
	certB, keyB := issueServer(t, ca2, "b")
	certs.Update(map[string][]byte{"tls.crt": certB, "tls.key": keyB})
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		cn, err := connect(user1)
		assert.NoError(c, err)
		assert.Equal(c, "b", cn)
	}, waitFor, tick, "log:\n%s", logs)

	// CA rotation, step 1: trust both.
	cas.Update(map[string][]byte{"ca.crt": append(append([]byte{}, ca1.CertPEM...), ca2.CertPEM...)})
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		_, err := connect(user2)
		assert.NoError(c, err)
	}, waitFor, tick, "log:\n%s", logs)
	_, err = connect(user1)
	require.NoError(t, err)

	// Step 2: drop the old CA; its users are refused without a restart.
	cas.Update(map[string][]byte{"ca.crt": ca2.CertPEM})
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		_, err := connect(user1)
		assert.Error(c, err, "ca1 still trusted")
	}, waitFor, tick, "log:\n%s", logs)
	_, err = connect(user2)
	require.NoError(t, err)
}

func TestReloaderConstructorsRefuseBadMaterial(t *testing.T) {
	ca, err := pki.NewCA("ca", time.Hour)
	require.NoError(t, err)
	certA, keyA := issueServer(t, ca, "a")
	_, keyB := issueServer(t, ca, "b")
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, data, 0o600))
		return p
	}
	goodCert, goodKey, otherKey := write("a.crt", certA), write("a.key", keyA), write("b.key", keyB)
	garbage := write("garbage", []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	keyOnly := write("key-only", keyA)

	t.Run("key pair", func(t *testing.T) {
		for name, files := range map[string][2]string{
			"missing certificate":     {filepath.Join(dir, "nope.crt"), goodKey},
			"missing key":             {goodCert, filepath.Join(dir, "nope.key")},
			"key of another":          {goodCert, otherKey},
			"certificate not parsing": {garbage, goodKey},
		} {
			t.Run(name, func(t *testing.T) {
				_, err := NewKeyPairReloader(files[0], files[1], polling, nil)
				assert.Error(t, err)
			})
		}
		_, err := NewStaticKeyPair(certA, keyB)
		assert.Error(t, err)
	})
	t.Run("pool", func(t *testing.T) {
		for name, file := range map[string]string{
			"missing":             filepath.Join(dir, "nope.crt"),
			"no certificate":      keyOnly,
			"certificate garbage": garbage,
		} {
			t.Run(name, func(t *testing.T) {
				_, err := NewPoolReloader(file, polling, nil)
				assert.Error(t, err)
			})
		}
		_, err := NewStaticPool([]byte("nothing"))
		assert.Error(t, err)
	})
	t.Run("static material", func(t *testing.T) {
		k, err := NewStaticKeyPair(certA, keyA)
		require.NoError(t, err)
		assert.Equal(t, "a", k.Certificate().Leaf.Subject.CommonName)
		assert.NoError(t, k.Close())
		p, err := NewStaticPool(ca.CertPEM)
		require.NoError(t, err)
		assert.NotNil(t, p.Pool())
		assert.NoError(t, p.Close())
		assert.Zero(t, k.Reloads()+p.Reloads())
	})
}

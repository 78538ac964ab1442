package server_test

import (
	"bufio"
	"crypto/x509"
	"encoding/pem"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ephemeral-store/ephemeral-store/store/internal/config"
	"github.com/ephemeral-store/ephemeral-store/store/internal/filewatch/filewatchtest"
	"github.com/ephemeral-store/ephemeral-store/store/internal/pki"
	"github.com/ephemeral-store/ephemeral-store/store/internal/testcluster"
)

const expiryMetric = "ephemeral_store_certificate_expiry_timestamp_seconds"

// certificateExpiry scrapes node i's /metrics for the expiry series, by
// kind.
func certificateExpiry(t require.TestingT, c *testcluster.Cluster, i int) map[string]int64 {
	resp, err := http.Get("http://" + c.Node(i).Probe + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	out := map[string]int64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), expiryMetric+`{kind="`)
		if !ok {
			continue
		}
		kind, value, ok := strings.Cut(rest, `"} `)
		require.True(t, ok, "unexpected series line %q", sc.Text())
		v, err := strconv.ParseFloat(value, 64)
		require.NoError(t, err, sc.Text())
		out[kind] = int64(v)
	}
	require.NoError(t, sc.Err())
	return out
}

// notAfter is the NotAfter, in Unix seconds, of the first certificate of
// a PEM file.
func notAfter(t *testing.T, pemBytes []byte) int64 {
	t.Helper()
	block, _ := pem.Decode(pemBytes)
	require.NotNil(t, block, "no PEM block")
	cert, err := x509.ParseCertificate(block.Bytes)
	require.NoError(t, err)
	return cert.NotAfter.Unix()
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return b
}

// replaceFile writes data next to path and renames it over path, so the
// reloader never reads half a file.
func replaceFile(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".new"
	require.NoError(t, os.WriteFile(tmp, data, 0o600))
	require.NoError(t, os.Rename(tmp, path))
}

// TestCertificateExpiryMetricFollowsAReloadedCertificate: the gauge is the
// NotAfter of the certificate files in use, and follows a serving
// certificate replaced on disk (as cert-manager renews a Secret).
func TestCertificateExpiryMetricFollowsAReloadedCertificate(t *testing.T) {
	c, _ := single(t)
	dir := c.Dir
	serverPEM := readFile(t, filepath.Join(dir, pki.ServerCertFile))
	caPEM := readFile(t, filepath.Join(dir, pki.CACertFile))

	got := certificateExpiry(t, c, 0)
	require.Equal(t, map[string]int64{
		"server": notAfter(t, serverPEM),
		"peer":   notAfter(t, serverPEM), // no --peer-cert: the serving certificate is the peer's
		"ca":     notAfter(t, caPEM),
	}, got)

	// Renew: a certificate of the same CA that expires in two hours.
	ca, err := pki.LoadCA(filepath.Join(dir, pki.CACertFile), filepath.Join(dir, pki.CAKeyFile))
	require.NoError(t, err)
	certPEM, keyPEM, err := ca.Issue(pki.IssueRequest{
		CommonName: c.Node(0).Config.PeerCN, DNSNames: []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ServerAuth: true, ClientAuth: true, Validity: 2 * time.Hour,
	})
	require.NoError(t, err)
	renewed := notAfter(t, certPEM)
	require.NotEqual(t, got["server"], renewed, "the renewed certificate must expire at another second")
	replaceFile(t, filepath.Join(dir, pki.ServerKeyFile), keyPEM)
	replaceFile(t, filepath.Join(dir, pki.ServerCertFile), certPEM)

	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		got := certificateExpiry(ct, c, 0)
		assert.Equal(ct, renewed, got["server"], "server")
		assert.Equal(ct, renewed, got["peer"], "peer")
		assert.Equal(ct, notAfter(t, caPEM), got["ca"], "ca")
	}, readyTimeout, 50*time.Millisecond, "the gauge follows the reloaded certificate")
}

// TestCertificateExpiryMetricFollowsAReMint: in mint mode the serving
// certificate is minted again from a new CA when the CA files change; the
// gauge follows both. A minted certificate never outlives its CA, so both
// series are the CA's NotAfter here.
func TestCertificateExpiryMetricFollowsAReMint(t *testing.T) {
	ca1, err := pki.NewCA("expiry-ca-1", 24*time.Hour)
	require.NoError(t, err)
	ca2, err := pki.NewCA("expiry-ca-2", 48*time.Hour)
	require.NoError(t, err)
	mount := filewatchtest.NewAtomicDir(t, t.TempDir(), caMount(t, ca1))
	c := testcluster.New(t, 1, testcluster.WithConfig(func(_ int, cfg *config.Config) {
		cfg.TLSCert, cfg.TLSKey = "", ""
		cfg.TLSCA = filepath.Join(mount.Dir, pki.CACertFile)
		cfg.TLSCAKey = filepath.Join(mount.Dir, pki.CAKeyFile)
	}))
	c.WaitReady(readyTimeout)

	first := ca1.Cert.NotAfter.Unix()
	require.Equal(t, map[string]int64{"server": first, "peer": first, "ca": first}, certificateExpiry(t, c, 0))

	mount.Update(caMount(t, ca2))
	second := ca2.Cert.NotAfter.Unix()
	require.NotEqual(t, first, second)
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.Equal(ct, map[string]int64{"server": second, "peer": second, "ca": second}, certificateExpiry(ct, c, 0))
	}, readyTimeout, 50*time.Millisecond, "the gauge follows the re-minted certificate and the new CA")
}

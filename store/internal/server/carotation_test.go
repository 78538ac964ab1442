package server_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ephemeral-store/ephemeral-store/store/client"
	"github.com/ephemeral-store/ephemeral-store/store/internal/config"
	"github.com/ephemeral-store/ephemeral-store/store/internal/filewatch/filewatchtest"
	"github.com/ephemeral-store/ephemeral-store/store/internal/pki"
	"github.com/ephemeral-store/ephemeral-store/store/internal/testcluster"
)

// caMount is the content of a caSecret-mode CA volume holding ca.
func caMount(t *testing.T, ca *pki.CA) map[string][]byte {
	t.Helper()
	keyPEM, err := ca.KeyPEM()
	require.NoError(t, err)
	return map[string][]byte{pki.CACertFile: ca.CertPEM, pki.CAKeyFile: keyPEM}
}

// userCert is a client certificate of user signed by ca.
func userCert(t *testing.T, ca *pki.CA, user string) tls.Certificate {
	t.Helper()
	certPEM, keyPEM, err := ca.Issue(pki.IssueRequest{CommonName: user, ClientAuth: true, Validity: time.Hour})
	require.NoError(t, err)
	kp, err := tls.X509KeyPair(certPEM, keyPEM)
	require.NoError(t, err)
	return kp
}

// rotationClient is a client of the given nodes that trusts every CA in
// roots and holds certs: Go presents the first one whose issuer the
// server names among its acceptable CAs, so a client holding a
// certificate of the old CA and one of the new talks to nodes on either
// side of a rotation.
func rotationClient(t *testing.T, c *testcluster.Cluster, roots []*pki.CA, certs []tls.Certificate, nodes ...int) *client.Client {
	t.Helper()
	pool := x509.NewCertPool()
	for _, ca := range roots {
		pool.AddCert(ca.Cert)
	}
	var eps []string
	for _, i := range nodes {
		eps = append(eps, "https://"+c.Node(i).Client)
	}
	cl, err := client.New(client.Config{Endpoints: eps, TLS: &tls.Config{RootCAs: pool, Certificates: certs}, Timeout: 10 * time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { _ = cl.Close() })
	return cl
}

// servedIssuer is the Common Name of the issuer of the certificate node i
// serves on its client port.
func servedIssuer(c *testcluster.Cluster, i int) (string, error) {
	conn, err := tls.DialWithDialer(&netDialer, "tcp", c.Node(i).Client, &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // #nosec G402 -- the test only reads the presented certificate
	})
	if err != nil {
		return "", err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].Issuer.CommonName, nil
}

// CA rotation in mint mode (the chart's caSecret mode), the way Kubernetes
// does it: the CA Secret is replaced, a pod restarted at once mounts the
// new CA while the others still see the old files (kubelet updates a
// mounted Secret up to a minute or so later), then their files change, then
// every pod is rolled. Every node becomes ready at each step: the nodes
// that see the new files re-mint their certificates from the new CA
// (before the fix they kept serving the old CA's certificate while
// trusting only the new one, so the restarted node, which trusts only the
// new CA, never joined: x509: certificate signed by unknown authority).
// A node that saw the rotation keeps trusting the old CA for the grace
// period (a client holding only an old certificate still works there); a
// node started after the rotation never knew the old CA and refuses it.
func TestCARotationInMintModeStrandsNoNode(t *testing.T) {
	ca1, err := pki.NewCA("rotation-ca-1", 24*time.Hour)
	require.NoError(t, err)
	ca2, err := pki.NewCA("rotation-ca-2", 24*time.Hour)
	require.NoError(t, err)
	const n = 3
	mounts := make([]*filewatchtest.AtomicDir, n)
	for i := range mounts {
		mounts[i] = filewatchtest.NewAtomicDir(t, t.TempDir(), caMount(t, ca1))
	}
	c := testcluster.New(t, n, testcluster.WithConfig(func(i int, cfg *config.Config) {
		cfg.TLSCert, cfg.TLSKey = "", ""
		cfg.TLSCA = filepath.Join(mounts[i].Dir, pki.CACertFile)
		cfg.TLSCAKey = filepath.Join(mounts[i].Dir, pki.CAKeyFile)
	}))
	c.WaitReady(readyTimeout)

	old, renewed := userCert(t, ca1, testcluster.UserAll), userCert(t, ca2, testcluster.UserAll)
	both := []*pki.CA{ca1, ca2}
	all := []int{0, 1, 2}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, err = rotationClient(t, c, both, []tls.Certificate{old}, all...).Put(ctx, "before", []byte("the rotation"))
	require.NoError(t, err)

	// The Secret changes; node 0 restarts at once and mounts the new CA,
	// nodes 1 and 2 still see the old one.
	mounts[0].Update(caMount(t, ca2))
	c.Stop(0)
	c.Start(0)
	// Then kubelet catches up on nodes 1 and 2.
	mounts[1].Update(caMount(t, ca2))
	mounts[2].Update(caMount(t, ca2))
	c.WaitReady(readyTimeout)
	for i := range n {
		require.EventuallyWithT(t, func(ct *assert.CollectT) {
			issuer, err := servedIssuer(c, i)
			if assert.NoError(ct, err) {
				assert.Equal(ct, "rotation-ca-2", issuer, "node %d serves a certificate of the old CA after its CA files changed", i)
			}
		}, readyTimeout, 50*time.Millisecond, "node %d re-mints from the new CA", i)
	}

	// Grace: node 1 saw the rotation and still accepts the old CA's users.
	kv, err := rotationClient(t, c, both, []tls.Certificate{old}, 1).Get(ctx, "before")
	require.NoError(t, err, "a client with only a certificate of the old CA, on a node that saw the rotation (grace period)")
	require.Equal(t, "the rotation", string(kv.Value))

	// Roll every node; writes and reads through a client holding both
	// certificates keep working at each step.
	cl := rotationClient(t, c, both, []tls.Certificate{renewed, old}, all...)
	for _, i := range []int{1, 2} {
		c.Stop(i)
		c.Start(i)
		c.WaitReady(readyTimeout)
		_, err := cl.Put(ctx, fmt.Sprintf("after-roll-%d", i), []byte("rolled"))
		require.NoError(t, err, "write after rolling node %d", i)
	}
	for i := range n {
		kv, err := rotationClient(t, c, both, []tls.Certificate{renewed}, i).Get(ctx, "before")
		require.NoError(t, err, "read through node %d with the new CA's certificate", i)
		require.Equal(t, "the rotation", string(kv.Value))
	}

	// Node 2 started after the rotation: it never trusted the old CA.
	_, err = rotationClient(t, c, both, []tls.Certificate{old}, 2).Get(ctx, "before")
	require.Error(t, err, "a node started after the rotation must refuse a certificate of the old CA")
}

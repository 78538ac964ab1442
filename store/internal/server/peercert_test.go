package server_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ephemeral-store/ephemeral-store/store/internal/config"
	"github.com/ephemeral-store/ephemeral-store/store/internal/pki"
	"github.com/ephemeral-store/ephemeral-store/store/internal/server"
	"github.com/ephemeral-store/ephemeral-store/store/internal/testcluster"
)

// issueFiles issues a certificate from ca and writes it as dir/name.crt and
// dir/name.key (atomically, key first), returning both paths.
func issueFiles(t *testing.T, ca *pki.CA, dir, name string, req pki.IssueRequest) (string, string) {
	t.Helper()
	certPEM, keyPEM, err := ca.Issue(req)
	require.NoError(t, err)
	certFile, keyFile := filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	for _, f := range []struct {
		path string
		data []byte
	}{{keyFile, keyPEM}, {certFile, certPEM}} {
		require.NoError(t, os.WriteFile(f.path+".tmp", f.data, 0o600))
		require.NoError(t, os.Rename(f.path+".tmp", f.path))
	}
	return certFile, keyFile
}

// servingReq is a serving certificate as an operator might bring one (from
// cert-manager, say): CN the service name, usable as server and client.
func servingReq(cn string) pki.IssueRequest {
	return pki.IssueRequest{
		CommonName: cn, DNSNames: []string{"localhost", cn}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ServerAuth: true, ClientAuth: true, Validity: time.Hour,
	}
}

func loadCA(t *testing.T, dir string) *pki.CA {
	t.Helper()
	ca, err := pki.LoadCA(filepath.Join(dir, pki.CACertFile), filepath.Join(dir, pki.CAKeyFile))
	require.NoError(t, err)
	return ca
}

// A node with peers whose peer certificate cannot work refuses to start,
// naming the certificate's CN, the expected one, the file and the fix.
func TestNewRefusesAPeerCertificatePeersWouldRefuse(t *testing.T) {
	dir := t.TempDir()
	_, err := pki.WriteBundle(dir, pki.BundleOptions{Users: []string{"myuser"}})
	require.NoError(t, err)
	ca := loadCA(t, dir)
	file := func(name string) string { return filepath.Join(dir, name) }
	wrongCert, wrongKey := issueFiles(t, ca, dir, "store", servingReq("store.example.com"))
	serverOnlyCert, serverOnlyKey := issueFiles(t, ca, dir, "serveronly", pki.IssueRequest{
		CommonName: pki.PeerCommonName, ServerAuth: true, Validity: time.Hour,
	})
	otherCA, err := pki.NewCA("other-ca", time.Hour)
	require.NoError(t, err)
	foreignCert, foreignKey := issueFiles(t, otherCA, dir, "foreign", servingReq(pki.PeerCommonName))
	require.NoError(t, os.WriteFile(file("other-ca.crt"), otherCA.CertPEM, 0o600))

	base := func() config.Config {
		cfg := config.Default()
		cfg.NodeName = "store-0"
		cfg.Listen, cfg.PeerListen, cfg.ProbeListen = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
		cfg.Advertise = "store-0.info:8088"
		cfg.Peers = []string{"store-0.info:8088", "store-1.info:8088", "store-2.info:8088"}
		cfg.TLSCert, cfg.TLSKey, cfg.TLSCA = file("server.crt"), file("server.key"), file("rootCA.crt")
		cfg.UsersDir = t.TempDir()
		return cfg
	}
	tests := []struct {
		name   string
		change func(*config.Config)
		want   []string
	}{
		{"one serving certificate given to every node as peer certificate", func(c *config.Config) {
			c.TLSCert, c.TLSKey = wrongCert, wrongKey
		}, []string{
			"peer certificate " + wrongCert + " (--tls-cert, the peer certificate since --peer-cert is not set)",
			`has CN "store.example.com", but --peer-cn is "ephemeral-store-peer"`,
			"tls: bad certificate", "CN=ephemeral-store-peer", "--peer-cert and --peer-key", "ephemeral-store certs",
		}},
		{"the same with --peers-dns", func(c *config.Config) {
			c.Peers, c.Advertise, c.PeersDNS, c.Replicas = nil, "", "info.ns.svc", 3
			c.PeerListen = "127.0.0.1:8088" // never bound: New fails first
			c.TLSCert, c.TLSKey = wrongCert, wrongKey
		}, []string{wrongCert, `"store.example.com"`, `"ephemeral-store-peer"`}},
		{"a user's certificate as --peer-cert", func(c *config.Config) {
			c.PeerCert, c.PeerKey = file("myuser.crt"), file("myuser.key")
		}, []string{"peer certificate " + file("myuser.crt") + " (--peer-cert)", `has CN "myuser"`, `"ephemeral-store-peer"`}},
		{"another --peer-cn than the certificate's", func(c *config.Config) {
			c.PeerCN = "store-peer"
		}, []string{file("server.crt"), `has CN "ephemeral-store-peer", but --peer-cn is "store-peer"`, "CN=store-peer"}},
		{"a peer certificate from another CA", func(c *config.Config) {
			c.PeerCert, c.PeerKey = foreignCert, foreignKey
		}, []string{foreignCert + " (--peer-cert)", "does not verify against the peer CA " + file("rootCA.crt") + " (--peer-ca", "unknown authority"}},
		{"a peer certificate without client auth", func(c *config.Config) {
			c.PeerCert, c.PeerKey = serverOnlyCert, serverOnlyKey
		}, []string{serverOnlyCert, "for server and client authentication"}},
		{"mint mode with a --peer-ca that did not sign the minted certificate", func(c *config.Config) {
			c.TLSCert, c.TLSKey, c.TLSCAKey = "", "", file("rootCA.key")
			c.PeerCA = file("other-ca.crt")
		}, []string{"minted from " + file("rootCA.crt"), "does not verify against the peer CA " + file("other-ca.crt")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base()
			tt.change(&cfg)
			srv, err := server.New(cfg, server.Listeners{}, slog.New(slog.DiscardHandler))
			if err == nil {
				srv.Kill()
				t.Fatal("server.New accepted a peer certificate that every peer refuses")
			}
			t.Log(err)
			require.True(t, strings.HasPrefix(err.Error(), "peer certificate "), "the message leads with what is wrong: %v", err)
			for _, w := range tt.want {
				require.Contains(t, err.Error(), w)
			}
		})
	}
}

// A node without discovery never dials a peer: its serving certificate may
// have any CN (a warning is logged).
func TestSingleNodeStartsWithAnyServingCertificate(t *testing.T) {
	c := testcluster.New(t, 1, testcluster.WithConfig(func(_ int, cfg *config.Config) {
		ca := loadCA(t, filepath.Dir(cfg.TLSCA))
		cfg.TLSCert, cfg.TLSKey = issueFiles(t, ca, t.TempDir(), "store", servingReq("store.example.com"))
	}))
	c.WaitReady(readyTimeout)
}

// Mint mode issues a certificate with the peer CN: a cluster of minted
// nodes forms.
func TestMintModeClusterForms(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.WithConfig(func(_ int, cfg *config.Config) {
		cfg.TLSCert, cfg.TLSKey = "", ""
		cfg.TLSCAKey = filepath.Join(filepath.Dir(cfg.TLSCA), pki.CAKeyFile)
	}))
	c.WaitReady(readyTimeout)
}

// servedPeerSerial is the serial of the certificate the peer port presents.
func servedPeerSerial(t *testing.T, addr, certFile, keyFile string) *big.Int {
	t.Helper()
	serial, err := peerSerial(addr, certFile, keyFile)
	require.NoError(t, err)
	return serial
}

// peerSerial is servedPeerSerial for wait conditions, which must not fail
// the test themselves.
func peerSerial(addr, certFile, keyFile string) (*big.Int, error) {
	kp, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	conn, err := tls.DialWithDialer(&netDialer, "tcp", addr, &tls.Config{
		Certificates: []tls.Certificate{kp}, MinVersion: tls.VersionTLS12,
		InsecureSkipVerify: true, // #nosec G402 -- the test only reads the presented certificate
	})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber, nil
}

// A rotated peer certificate with another CN is refused (logged) and the
// previous one stays in use; a rotated one with the peer CN is taken.
func TestRotatedPeerCertificateWithAnotherCNIsRefused(t *testing.T) {
	peerDir := t.TempDir()
	var ca *pki.CA
	var firstSerial *big.Int
	c := testcluster.New(t, 1, testcluster.WithConfig(func(_ int, cfg *config.Config) {
		cfg.Peers = []string{cfg.Advertise} // a (one-node) cluster with discovery: the peer certificate is checked
		ca = loadCA(t, filepath.Dir(cfg.TLSCA))
		req := servingReq(pki.PeerCommonName)
		cfg.PeerCert, cfg.PeerKey = issueFiles(t, ca, peerDir, "peer", req)
		firstSerial = leafSerialOf(t, cfg.PeerCert)
	}))
	addr := c.Node(0).Peer
	clientCert, clientKey := filepath.Join(c.Dir, pki.ServerCertFile), filepath.Join(c.Dir, pki.ServerKeyFile)
	require.Equal(t, firstSerial, servedPeerSerial(t, addr, clientCert, clientKey))

	issueFiles(t, ca, peerDir, "peer", servingReq("store.example.com"))
	// Five reload intervals: the refused certificate would have been taken by then.
	require.Never(t, func() bool {
		serial, err := peerSerial(addr, clientCert, clientKey)
		return err == nil && serial.Cmp(firstSerial) != 0
	}, 5*c.Node(0).Config.ReloadInterval, 50*time.Millisecond, "a rotated peer certificate with another CN must not be used")
	require.Equal(t, firstSerial, servedPeerSerial(t, addr, clientCert, clientKey),
		"a rotated peer certificate with another CN must not be used")

	certFile, _ := issueFiles(t, ca, peerDir, "peer", servingReq(pki.PeerCommonName))
	want := leafSerialOf(t, certFile)
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		serial, err := peerSerial(addr, clientCert, clientKey)
		if assert.NoError(ct, err) {
			assert.Zero(ct, serial.Cmp(want), "served serial %x, want %x", serial, want)
		}
	}, 15*time.Second, 100*time.Millisecond, "a rotated peer certificate with the peer CN must be used")
}

func leafSerialOf(t *testing.T, certFile string) *big.Int {
	t.Helper()
	b, err := os.ReadFile(certFile)
	require.NoError(t, err)
	block, _ := pem.Decode(b)
	require.NotNil(t, block)
	c, err := x509.ParseCertificate(block.Bytes)
	require.NoError(t, err)
	return c.SerialNumber
}

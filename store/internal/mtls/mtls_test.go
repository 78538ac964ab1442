package mtls

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ephemeral-store/ephemeral-store/store/internal/pki"
)

// TestClientPortHandshakes runs real handshakes against ServerConfig with
// the old documentation's CA (rootCA.crt) as client CA and a serving
// certificate minted from it, as the server does in mint mode.
func TestClientPortHandshakes(t *testing.T) {
	ca := opensslCA(t)
	foreign, err := pki.NewCA("ephemeral-store-ca", time.Hour) // same name, other key
	require.NoError(t, err)

	serving := staticCert(t, ca, serverReq(pki.PeerCommonName))
	serverCfg := ServerConfig(serving, opensslPool(t, "rootCA"))

	// The client always sends its certificate, as an attacker would: with
	// Certificates, a Go client sends nothing when the issuer is not among
	// the CAs the server names, and the server would never judge it.
	client := func(certs ...tls.Certificate) *tls.Config {
		c := &tls.Config{RootCAs: poolOf(ca.Cert), ServerName: "localhost", NextProtos: []string{"h2", "http/1.1"}}
		if len(certs) > 0 {
			c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &certs[0], nil }
		}
		return c
	}
	tests := []struct {
		name     string
		client   *tls.Config
		wantUser string // empty: refused
	}{
		{"issued user certificate", client(issuePair(t, ca, pki.IssueRequest{CommonName: "myuser", ClientAuth: true})), "myuser"},
		{"old docs openssl v1 certificate", client(opensslPair(t, "myuser")), "myuser"},
		{"old docs openssl v1 certificate of another user", client(opensslPair(t, "otheruser")), "otheruser"},
		{"peer certificate is a client too", client(issuePair(t, ca, serverReq(pki.PeerCommonName))), pki.PeerCommonName},
		{"no client certificate", client(), ""},
		{"certificate of another CA with the same name (openssl)", client(opensslPair(t, "intruder")), ""},
		{"certificate of another CA with the same name", client(issuePair(t, foreign, pki.IssueRequest{CommonName: "myuser", ClientAuth: true})), ""},
		{"server-auth-only certificate", client(issuePair(t, ca, pki.IssueRequest{CommonName: "myuser", ServerAuth: true})), ""},
		{"expired certificate", client(issuePair(t, ca, pki.IssueRequest{CommonName: "myuser", ClientAuth: true, Validity: time.Nanosecond})), ""},
		{"TLS 1.1", func() *tls.Config {
			c := client(opensslPair(t, "myuser"))
			c.MinVersion, c.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
			return c
		}(), ""},
		{"TLS 1.2", func() *tls.Config {
			c := client(opensslPair(t, "myuser"))
			c.MaxVersion = tls.VersionTLS12
			return c
		}(), "myuser"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := handshake(t, serverCfg, tt.client)
			if tt.wantUser == "" {
				t.Logf("server: %v; client: %v", r.serverErr, r.clientErr)
				assert.Error(t, r.clientErr, "client must be refused")
				assert.Error(t, r.serverErr, "server must refuse")
				return
			}
			require.NoError(t, r.clientErr)
			require.NoError(t, r.serverErr)
			assert.Equal(t, tt.wantUser, r.user)
			assert.Equal(t, "h2", r.proto)
		})
	}
}

// errAny in a test table means: refused, for whatever reason.
var errAny = errors.New("any error")

// TestPeerPortHandshakes checks both ends of the peer channel: the server
// refuses user certificates, the client refuses servers that are not peers.
func TestPeerPortHandshakes(t *testing.T) {
	ca := opensslCA(t)
	foreign, err := pki.NewCA("ephemeral-store-ca", time.Hour)
	require.NoError(t, err)
	cas := opensslPool(t, "rootCA")
	const peerCN = pki.PeerCommonName

	peer := staticCert(t, ca, serverReq(peerCN))
	// A peer certificate naming only a pod, which the tests dial by IP.
	podOnly := staticCert(t, ca, pki.IssueRequest{CommonName: peerCN, DNSNames: []string{"es-0.es-info.ns.svc"}, ServerAuth: true, ClientAuth: true})
	user := staticCert(t, ca, pki.IssueRequest{CommonName: "myuser", ClientAuth: true})
	userAsServer := staticCert(t, ca, serverReq("myuser"))
	foreignPeer := staticCert(t, foreign, serverReq(peerCN))
	clientOnlyPeer := staticCert(t, ca, pki.IssueRequest{CommonName: peerCN, ClientAuth: true})
	opensslUser, err := NewStaticKeyPair(readFile(t, "myuser.crt"), readFile(t, "myuser.key"))
	require.NoError(t, err)

	tests := []struct {
		name           string
		server, client CertSource
		wantErr        error // nil: accepted; ErrNotPeer or errAny
	}{
		{"peer to peer", peer, peer, nil},
		{"peer dialled by an address its certificate does not name", podOnly, peer, nil},
		{"user certificate on the peer port", peer, user, ErrNotPeer},
		{"old docs user certificate on the peer port", peer, opensslUser, ErrNotPeer},
		{"user certificate with server auth on the peer port", peer, userAsServer, ErrNotPeer},
		{"peer certificate of another CA dialling in", peer, foreignPeer, errAny},
		{"server that is not a peer", userAsServer, peer, ErrNotPeer},
		{"server from another CA", foreignPeer, peer, errAny},
		{"server certificate without server auth", clientOnlyPeer, peer, errAny},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := handshake(t, PeerServerConfig(tt.server, cas, peerCN), PeerClientConfig(tt.client, cas, peerCN))
			// wantErr is the table's own marker, compared as a value, not an error the code returned
			switch {
			case tt.wantErr == nil:
				require.NoError(t, r.clientErr)
				require.NoError(t, r.serverErr)
				assert.Equal(t, peerCN, r.user)
			case errors.Is(tt.wantErr, errAny):
				t.Logf("server: %v; client: %v", r.serverErr, r.clientErr)
				assert.Error(t, r.clientErr)
				assert.Error(t, r.serverErr)
			default:
				require.Error(t, r.clientErr)
				require.Error(t, r.serverErr)
				// The side that judged names the reason; the other sees an alert.
				if !assert.True(t, errors.Is(r.serverErr, tt.wantErr) || errors.Is(r.clientErr, tt.wantErr)) {
					t.Logf("server: %v; client: %v", r.serverErr, r.clientErr)
				}
			}
		})
	}

	t.Run("peer client without certificate", func(t *testing.T) {
		cfg := PeerClientConfig(peer, cas, peerCN)
		cfg.GetClientCertificate = nil
		r := handshake(t, PeerServerConfig(peer, cas, peerCN), cfg)
		assert.Error(t, r.clientErr)
		assert.Error(t, r.serverErr)
	})
	t.Run("empty peer CN means the default", func(t *testing.T) {
		r := handshake(t, PeerServerConfig(peer, cas, ""), PeerClientConfig(peer, cas, ""))
		require.NoError(t, r.clientErr)
		assert.Equal(t, pki.PeerCommonName, r.user)
	})
}

func TestUserFromState(t *testing.T) {
	leaf := func(cn string) *x509.Certificate { return &x509.Certificate{Subject: pkix.Name{CommonName: cn}} }
	tests := []struct {
		name    string
		cs      *tls.ConnectionState
		want    string
		wantErr error
	}{
		{"verified chain", &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{leaf("myuser"), leaf("ca")}}}, "myuser", nil},
		{"first verified chain wins", &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{leaf("a")}, {leaf("b")}}}, "a", nil},
		{"nil state", nil, "", ErrNoClientCertificate},
		{"no certificate", &tls.ConnectionState{}, "", ErrNoClientCertificate},
		{"unverified certificate only", &tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf("admin")}}, "", ErrNoClientCertificate},
		{"empty chain", &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{}}}, "", ErrNoClientCertificate},
		{"empty common name", &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{leaf("")}}}, "", ErrEmptyCommonName},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := UserFromState(tt.cs)
			assert.ErrorIs(t, err, tt.wantErr)
			assert.Equal(t, tt.want, got)
		})
	}
}

// TestOldDocsCertificateIsV1 proves the test data is what the old
// documentation produced, so the handshake tests above prove something.
func TestOldDocsCertificateIsV1(t *testing.T) {
	leaf := opensslPair(t, "myuser").Leaf
	assert.Equal(t, 1, leaf.Version)
	assert.Empty(t, leaf.Extensions)
	assert.Empty(t, leaf.ExtKeyUsage)
	assert.False(t, leaf.BasicConstraintsValid)
	chains, err := leaf.Verify(x509.VerifyOptions{Roots: opensslPool(t, "rootCA").Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	require.NoError(t, err)
	assert.Len(t, chains, 1)
}

func TestClientConfig(t *testing.T) {
	ca := opensslCA(t)
	serverCfg := ServerConfig(staticCert(t, ca, serverReq(pki.PeerCommonName)), opensslPool(t, "rootCA"))
	f := func(name string) string { return filepath.Join(opensslDir, name) }

	cfg, err := ClientConfig(f("myuser.crt"), f("myuser.key"), f("rootCA.crt"))
	require.NoError(t, err)
	assert.Equal(t, uint16(tls.VersionTLS12), cfg.MinVersion)
	cfg.ServerName = "localhost"
	r := handshake(t, serverCfg, cfg)
	require.NoError(t, r.clientErr)
	assert.Equal(t, "myuser", r.user)

	t.Run("host name is verified", func(t *testing.T) {
		cfg, err := ClientConfig(f("myuser.crt"), f("myuser.key"), f("rootCA.crt"))
		require.NoError(t, err)
		cfg.ServerName = "elsewhere.example"
		r := handshake(t, serverCfg, cfg)
		assert.Error(t, r.clientErr)
	})
	t.Run("server from another CA is refused", func(t *testing.T) {
		cfg, err := ClientConfig(f("myuser.crt"), f("myuser.key"), f("otherCA.crt"))
		require.NoError(t, err)
		cfg.ServerName = "localhost"
		r := handshake(t, serverCfg, cfg)
		assert.Error(t, r.clientErr)
	})

	for name, args := range map[string][3]string{
		"cert without key":   {f("myuser.crt"), "", f("rootCA.crt")},
		"key of another":     {f("myuser.crt"), f("otheruser.key"), f("rootCA.crt")},
		"missing CA":         {f("myuser.crt"), f("myuser.key"), f("nope.crt")},
		"CA file is not PEM": {f("myuser.crt"), f("myuser.key"), f("README.md")},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ClientConfig(args[0], args[1], args[2])
			assert.Error(t, err)
		})
	}
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(opensslDir, name))
	require.NoError(t, err)
	return data
}

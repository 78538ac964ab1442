package client

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// serveWith serves the cluster status over TLS with cert as the server
// certificate, requiring a client certificate of clientCA. The status's
// self is the client's CN.
func serveWith(t *testing.T, cert tls.Certificate, clientCA *testPKI) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]any{"self": r.TLS.PeerCertificates[0].Subject.CommonName})
	}))
	srv.EnableHTTP2 = true
	srv.TLS = &tls.Config{
		MinVersion:   tls.VersionTLS12,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    clientCA.pool,
		Certificates: []tls.Certificate{cert},
	}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are the point
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func certPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// secretFiles is a user's certificate, key and CA bundle in one
// directory, updated the way kubelet updates a cert-manager Secret
// volume (a ..data symlink swap).
func secretFiles(t *testing.T, p *testPKI, user string, ca []byte) (*atomicDir, map[string][]byte) {
	t.Helper()
	c := p.issue(user, false)
	keyDER, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	noErr(t, err)
	files := map[string][]byte{
		"tls.crt": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]}),
		"tls.key": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		"ca.crt":  ca,
	}
	return newAtomicDir(t, filepath.Join(t.TempDir(), "secret"), files), files
}

func isUnknownAuthority(err error) bool {
	var ua x509.UnknownAuthorityError
	return errors.As(err, &ua)
}

// TestCABundleIsReadAgainWhenItsFileChanges serves with a certificate of a
// second CA: refused while the client's CA file holds only the first,
// accepted once the file holds both, then only the second (and a server of
// the first CA refused), all with the same Client.
func TestCABundleIsReadAgainWhenItsFileChanges(t *testing.T) {
	ca1, ca2 := newTestPKI(t), newTestPKI(t)
	secret, files := secretFiles(t, ca1, "alice", certPEM(ca1.ca))
	dir := secret.Dir
	tc := must(TLSConfigFromFiles(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"), filepath.Join(dir, "ca.crt")))(t)

	// One client per server, made once, so that no failover hides a
	// refusal; both read the same files.
	clients := map[string]*Client{}
	only := func(srv *httptest.Server) *Client {
		if c, ok := clients[srv.URL]; ok {
			return c
		}
		c := must(New(Config{Endpoints: []string{srv.URL}, TLS: tc}))(t)
		t.Cleanup(func() { c.Close() })
		clients[srv.URL] = c
		return c
	}
	byCA2 := serveWith(t, ca2.server, ca1)
	byCA1 := serveWith(t, ca1.server, ca1)
	only(byCA2)
	only(byCA1)
	ctx := ctxT(t)

	_, err := only(byCA2).Cluster(ctx)
	wantErr(t, err, "ca2 is not trusted yet")
	check(t, isUnknownAuthority(err), "want an unknown authority, got %v", err)
	equal(t, "alice", must(only(byCA1).Cluster(ctx))(t).Self)

	files["ca.crt"] = append(certPEM(ca1.ca), certPEM(ca2.ca)...)
	secret.Update(files)
	equal(t, "alice", must(only(byCA2).Cluster(ctx))(t).Self, "ca2 trusted after the rewrite")
	equal(t, "alice", must(only(byCA1).Cluster(ctx))(t).Self)

	files["ca.crt"] = certPEM(ca2.ca)
	secret.Update(files)
	only(byCA1).Close() // a live connection keeps the trust of its handshake
	_, err = only(byCA1).Cluster(ctx)
	check(t, isUnknownAuthority(err), "ca1 dropped: want an unknown authority, got %v", err)
	equal(t, "alice", must(only(byCA2).Cluster(ctx))(t).Self)

	// A CA file that does not load leaves the last good one in use.
	files["ca.crt"] = []byte("not PEM")
	secret.Update(files)
	equal(t, "alice", must(only(byCA2).Cluster(ctx))(t).Self)
}

// TestServerNameIsStillVerified: verifying against the CA file by hand
// must keep crypto/tls's check of the name dialled, for DNS names and IP
// addresses alike.
func TestServerNameIsStillVerified(t *testing.T) {
	p := newTestPKI(t)
	cert, key := p.userFiles("myuser")
	loopback := []net.IP{net.IPv4(127, 0, 0, 1)}
	tests := []struct {
		name     string
		server   tls.Certificate
		host     string // endpoint host; the port is the server's
		accepted bool
	}{
		{"IP endpoint, certificate for that IP", p.issueNamed(nil, loopback), "127.0.0.1", true},
		{"IP endpoint, certificate for another IP", p.issueNamed([]string{"localhost"}, []net.IP{net.IPv4(10, 0, 0, 1)}), "127.0.0.1", false},
		{"DNS endpoint, certificate for that name", p.issueNamed([]string{"localhost"}, nil), "localhost", true},
		{"DNS endpoint, certificate for another name", p.issueNamed([]string{"other.example"}, loopback), "localhost", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := serveWith(t, tt.server, p)
			u, err := url.Parse(srv.URL)
			noErr(t, err)
			endpoint := "https://" + net.JoinHostPort(tt.host, u.Port())
			c := must(NewFromFiles([]string{endpoint}, cert, key, p.caFile()))(t)
			defer c.Close()
			_, err = c.Cluster(ctxT(t))
			if tt.accepted {
				noErr(t, err)
				return
			}
			var hostErr x509.HostnameError
			check(t, errors.As(err, &hostErr), "want a hostname error, got %v", err)
		})
	}
}

// A tls.Config of TLSConfigFromFiles in a transport of the caller's own
// cannot learn an IP endpoint's address (TLS sends no server name for it):
// it refuses rather than skip the name check, and works with ServerName.
func TestOwnTransportWithAnIPEndpointNeedsServerName(t *testing.T) {
	p := newTestPKI(t)
	srv := serveWith(t, p.server, p) // names localhost and 127.0.0.1
	cert, key := p.userFiles("myuser")
	get := func(tc *tls.Config) error {
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}}
		defer hc.CloseIdleConnections()
		resp, err := hc.Get(srv.URL + "/v1/cluster")
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	tc := must(TLSConfigFromFiles(cert, key, p.caFile()))(t)
	err := get(tc)
	wantErr(t, err)
	check(t, errors.Is(err, errNoServerName), "got %v, want %v", err, errNoServerName)

	tc.ServerName = "localhost"
	okErr(t, get(tc))
}

func TestTLSConfigFromFilesRefusesBadCAFiles(t *testing.T) {
	p := newTestPKI(t)
	cert, key := p.userFiles("myuser")
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.crt")
	noErr(t, os.WriteFile(garbage, []byte("not PEM"), 0o600))
	for name, ca := range map[string]string{
		"missing":        filepath.Join(dir, "nope.crt"),
		"no certificate": garbage,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := TLSConfigFromFiles(cert, key, ca)
			wantErr(t, err)
			check(t, err != nil && strings.Contains(err.Error(), ca), "error %v does not name %s", err, ca)
		})
	}
}

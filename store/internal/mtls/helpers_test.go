package mtls

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ephemeral-store/ephemeral-store/store/internal/filewatch/filewatchtest"
	"github.com/ephemeral-store/ephemeral-store/store/internal/pki"
)

// opensslDir holds the certificates of scripts/gen-openssl-testdata.sh.
var opensslDir = filepath.Join("testdata", "openssl")

// opensslCA is the old documentation's root CA, loaded through pki as the
// server's mint mode does.
func opensslCA(t *testing.T) *pki.CA {
	t.Helper()
	ca, err := pki.LoadCA(filepath.Join(opensslDir, "rootCA.crt"), filepath.Join(opensslDir, "rootCA.key"))
	require.NoError(t, err)
	return ca
}

func opensslPair(t *testing.T, name string) tls.Certificate {
	t.Helper()
	kp, err := tls.LoadX509KeyPair(filepath.Join(opensslDir, name+".crt"), filepath.Join(opensslDir, name+".key"))
	require.NoError(t, err)
	return kp
}

func opensslPool(t *testing.T, name string) *PoolReloader {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(opensslDir, name+".crt"))
	require.NoError(t, err)
	p, err := NewStaticPool(data)
	require.NoError(t, err)
	return p
}

func issuePEM(t *testing.T, ca *pki.CA, req pki.IssueRequest) ([]byte, []byte) {
	t.Helper()
	c, k, err := ca.Issue(req)
	require.NoError(t, err)
	return c, k
}

func issuePair(t *testing.T, ca *pki.CA, req pki.IssueRequest) tls.Certificate {
	t.Helper()
	kp, err := tls.X509KeyPair(issuePEM(t, ca, req))
	require.NoError(t, err)
	return kp
}

func staticCert(t *testing.T, ca *pki.CA, req pki.IssueRequest) *KeyPairReloader {
	t.Helper()
	k, err := NewStaticKeyPair(issuePEM(t, ca, req))
	require.NoError(t, err)
	return k
}

func serverReq(cn string) pki.IssueRequest {
	return pki.IssueRequest{CommonName: cn, DNSNames: []string{"localhost"}, ServerAuth: true, ClientAuth: true}
}

// result is what one connection did, seen from both ends.
type result struct {
	user      string // UserFromState on the server, echoed to the client
	proto     string // negotiated ALPN protocol
	serverErr error
	clientErr error
}

// serve accepts TLS connections on 127.0.0.1:0 until the test ends. For
// each it completes the handshake, writes the user name and a newline, and
// reports the handshake error, if any, on the returned channel.
func serve(t *testing.T, cfg *tls.Config) (string, <-chan error) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	require.NoError(t, err)
	errs := make(chan error, 16)
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				tc := c.(*tls.Conn)
				_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
				if err := tc.Handshake(); err != nil {
					errs <- err
					return
				}
				st := tc.ConnectionState()
				user, err := UserFromState(&st)
				if err != nil {
					user = "error: " + err.Error()
				}
				_, _ = tc.Write([]byte(user + "\n"))
				errs <- nil
			}()
		}
	}()
	return ln.Addr().String(), errs
}

// dial connects with cfg and reads the line the server writes. With TLS 1.3
// a refused client certificate shows only here, after the client's
// handshake has completed.
func dial(addr string, cfg *tls.Config) (user, proto string, err error) {
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: cfg}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", "", err
	}
	defer c.Close()
	tc := c.(*tls.Conn)
	_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(tc).ReadString('\n')
	if err != nil {
		return "", "", err
	}
	return strings.TrimSuffix(line, "\n"), tc.ConnectionState().NegotiatedProtocol, nil
}

// handshake makes one connection from clientCfg to a fresh server with
// serverCfg.
func handshake(t *testing.T, serverCfg, clientCfg *tls.Config) result {
	t.Helper()
	addr, errs := serve(t, serverCfg)
	var r result
	r.user, r.proto, r.clientErr = dial(addr, clientCfg)
	select {
	case r.serverErr = <-errs:
	case <-time.After(10 * time.Second):
		t.Fatal("server saw no connection")
	}
	return r
}

func poolOf(certs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

func newLog() (*slog.Logger, *filewatchtest.LogBuffer) { return filewatchtest.NewLog(slog.LevelDebug) }

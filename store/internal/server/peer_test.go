package server_test

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ephemeral-store/ephemeral-store/store/internal/testcluster"
)

var netDialer = net.Dialer{Timeout: 5 * time.Second}

// peerStatus speaks the peer protocol by hand: TLS, the RPC protocol byte,
// then an HTTP/1.1 request. It returns the HTTP status or the error.
func peerStatus(t *testing.T, addr, certFile, keyFile, caFile string) (int, error) {
	t.Helper()
	kp, err := tls.LoadX509KeyPair(certFile, keyFile)
	require.NoError(t, err)
	pem, err := os.ReadFile(caFile)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	conn, err := tls.DialWithDialer(&netDialer, "tcp", addr, &tls.Config{
		Certificates: []tls.Certificate{kp}, RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12,
	})
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte("PGET /peer/status HTTP/1.1\r\nHost: peer\r\n\r\n")); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

func TestUserCertificateCannotJoinAsAPeer(t *testing.T) {
	c, _ := single(t)
	peer := c.Node(0).Peer
	_, _, ca := c.CertPaths(testcluster.UserAll)

	// The twin that proves the probe can succeed: the peer certificate.
	status, err := peerStatus(t, peer, filepath.Join(c.Dir, "server.crt"), filepath.Join(c.Dir, "server.key"), ca)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, status)

	cert, key, _ := c.CertPaths(testcluster.UserAll)
	_, err = peerStatus(t, peer, cert, key, ca)
	require.Error(t, err, "a user certificate (CN myuser) must be refused on the peer port")
}

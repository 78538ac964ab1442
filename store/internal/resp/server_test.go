package resp

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ephemeral-store/ephemeral-store/store/internal/auth"
	"github.com/ephemeral-store/ephemeral-store/store/internal/fsm"
	"github.com/ephemeral-store/ephemeral-store/store/internal/mtls"
	"github.com/ephemeral-store/ephemeral-store/store/internal/pki"
)

// fakeState is a replica whose barrier counts calls and can fail.
type fakeState struct {
	mu       sync.Mutex
	kv       map[string]string
	barriers int
	fail     error
}

func (f *fakeState) Get(key string) (*fsm.KeyValue, int64, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.kv[key]
	if !ok {
		return nil, 7, false
	}
	return &fsm.KeyValue{Key: key, Value: []byte(v)}, 7, true
}

func (f *fakeState) LinearizableRead(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.barriers++
	return f.fail
}

func (f *fakeState) barrierCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.barriers
}

type fakeUsers map[string]auth.User

func (u fakeUsers) Authenticate(name string) (auth.User, error) {
	if x, ok := u[name]; ok {
		return x, nil
	}
	return auth.User{}, auth.ErrUnknownUser
}

type fixture struct {
	t       *testing.T
	state   *fakeState
	addr    string
	ca      *pki.CA
	metrics *Metrics
	srv     *Server
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ca, err := pki.NewCA("test-ca", time.Hour)
	require.NoError(t, err)
	certPEM, keyPEM, err := ca.Issue(pki.IssueRequest{CommonName: "server", IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ServerAuth: true})
	require.NoError(t, err)
	serving, err := tls.X509KeyPair(certPEM, keyPEM)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	state := &fakeState{kv: map[string]string{"pools/a": "up", "pools/b": "down", "other/x": "secret"}}
	users := fakeUsers{
		"all":    {Name: "all", AllKeys: true},
		"reader": {Name: "reader", Permissions: []auth.Permission{{Prefix: "pools/", Access: auth.AccessRead}}},
	}
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg, nil)
	srv := New(Options{
		State: state, Barrier: state, Users: users, UserOf: mtls.UserFromState,
		TLS:         &tls.Config{Certificates: []tls.Certificate{serving}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12},
		MaxKeyBytes: 16, ReadTimeout: time.Second, Metrics: m,
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		assert.NoError(t, srv.Close(ctx))
		assert.ErrorIs(t, <-served, ErrServerClosed)
	})
	return &fixture{t: t, state: state, addr: ln.Addr().String(), ca: ca, metrics: m, srv: srv}
}

// testConn is a RESP client that renders replies as text: "+OK", "-ERR …",
// ":3", "$value", "nil", "[a nil b]".
type testConn struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func (f *fixture) dial(user string) *testConn {
	f.t.Helper()
	c, err := f.dialErr(user)
	require.NoError(f.t, err)
	return c
}

func (f *fixture) dialErr(user string) (*testConn, error) {
	pool := x509.NewCertPool()
	pool.AddCert(f.ca.Cert)
	cfg := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	if user != "" {
		certPEM, keyPEM, err := f.ca.Issue(pki.IssueRequest{CommonName: user, ClientAuth: true})
		require.NoError(f.t, err)
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		require.NoError(f.t, err)
		cfg.Certificates = []tls.Certificate{cert}
	}
	c, err := tls.Dial("tcp", f.addr, cfg)
	if err != nil {
		return nil, err
	}
	f.t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	return &testConn{t: f.t, c: c, r: bufio.NewReader(c)}, nil
}

func (c *testConn) send(raw string) {
	c.t.Helper()
	_, err := c.c.Write([]byte(raw))
	require.NoError(c.t, err)
}

func (c *testConn) do(args ...string) string {
	c.t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	c.send(b.String())
	return c.reply()
}

func (c *testConn) reply() string {
	c.t.Helper()
	s, err := readReply(c.r)
	require.NoError(c.t, err)
	return s
}

func readReply(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSuffix(line, "\r\n")
	switch line[0] {
	case '+', '-', ':':
		return line, nil
	case '$':
		n, _ := strconv.Atoi(line[1:])
		if n < 0 {
			return "nil", nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", err
		}
		return "$" + string(buf[:n]), nil
	case '*':
		n, _ := strconv.Atoi(line[1:])
		var items []string
		for range n {
			s, err := readReply(r)
			if err != nil {
				return "", err
			}
			items = append(items, strings.TrimPrefix(s, "$"))
		}
		return "[" + strings.Join(items, " ") + "]", nil
	}
	return "", fmt.Errorf("unknown reply %q", line)
}

func TestCommands(t *testing.T) {
	f := newFixture(t)
	c := f.dial("all")
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"PING"}, "+PONG"},
		{[]string{"ping", "hi"}, "$hi"},
		{[]string{"ECHO", "a b"}, "$a b"},
		{[]string{"GET", "pools/a"}, "$up"},
		{[]string{"get", "pools/none"}, "nil"},
		{[]string{"MGET", "pools/a", "pools/none", "pools/b"}, "[up nil down]"},
		{[]string{"EXISTS", "pools/a", "pools/none", "pools/a"}, ":2"},
		{[]string{"GET"}, "-ERR wrong number of arguments for 'get' command"},
		{[]string{"GET", "a", "b"}, "-ERR wrong number of arguments for 'get' command"},
		{[]string{"GET", "this-key-is-too-long"}, "-ERR key too large: key is 20 bytes, the limit is 16"},
		{[]string{"GET", "a\x01"}, "-ERR invalid key: key must not contain control characters"},
		{[]string{"GET", ""}, "-ERR invalid key: empty key"},
		{[]string{"SET", "pools/a", "x"}, "-" + readOnlyMessage},
		{[]string{"del", "pools/a"}, "-" + readOnlyMessage},
		{[]string{"FLUSHALL"}, "-" + readOnlyMessage},
		{[]string{"KEYS", "*"}, "-ERR unknown command 'KEYS': this port serves GET, MGET, EXISTS, PING, ECHO, READONLY, READWRITE, HELLO, CLIENT, SELECT, QUIT"},
		{[]string{"HELLO", "3"}, "-NOPROTO unsupported protocol version: this port speaks RESP2"},
		{[]string{"HELLO", "2", "AUTH", "u", "p"}, "-ERR this port authenticates by the client certificate; HELLO takes no AUTH"},
		{[]string{"AUTH", "secret"}, "-ERR this port authenticates by the client certificate; there is no password to give"},
		{[]string{"CLIENT", "SETINFO", "LIB-NAME", "x"}, "+OK"},
		{[]string{"CLIENT", "GETNAME"}, "nil"},
		{[]string{"CLIENT", "KILL"}, "-ERR unknown CLIENT subcommand 'KILL': this port serves CLIENT SETINFO, SETNAME, GETNAME, ID"},
		{[]string{"SELECT", "0"}, "+OK"},
		{[]string{"SELECT", "1"}, "-ERR DB index is out of range: the store has one keyspace, 0"},
		{[]string{"COMMAND", "DOCS"}, "[]"},
	}
	for _, tc := range tests {
		assert.Equal(t, tc.want, c.do(tc.args...), "%q", tc.args)
	}
	hello := c.do("HELLO", "2")
	assert.True(t, strings.HasPrefix(hello, "[server ephemeral-store version "), hello)
	assert.Contains(t, hello, "proto :2")
	// The connection still works after every refusal; QUIT ends it.
	assert.Equal(t, "+OK", c.do("QUIT"))
	_, err := readReply(c.r)
	assert.Error(t, err, "the server closes the connection after QUIT")
	assert.Equal(t, 3.0, testutil.ToFloat64(f.metrics.Commands.WithLabelValues("write", "error")), "SET, del, FLUSHALL")
}

func TestReadsAreLinearizableUntilReadOnly(t *testing.T) {
	f := newFixture(t)
	c := f.dial("all")
	assert.Equal(t, "$up", c.do("GET", "pools/a"))
	assert.Equal(t, "[up down]", c.do("MGET", "pools/a", "pools/b"))
	assert.Equal(t, 2, f.state.barrierCount(), "one read round per command, not per key")

	f.state.mu.Lock()
	f.state.fail = errors.New("no leader")
	f.state.mu.Unlock()
	assert.Equal(t, "-TRYAGAIN linearizable read not served (no leader); retry, or send READONLY to read this node's possibly stale copy", c.do("GET", "pools/a"))

	assert.Equal(t, "+OK", c.do("READONLY"))
	assert.Equal(t, "$up", c.do("GET", "pools/a"), "a stale read needs no leader")
	assert.Equal(t, 3, f.state.barrierCount())
	assert.Equal(t, "+OK", c.do("READWRITE"))
	assert.True(t, strings.HasPrefix(c.do("GET", "pools/a"), "-TRYAGAIN"))
	assert.Equal(t, 4, f.state.barrierCount())
}

func TestUsersAndPrefixes(t *testing.T) {
	f := newFixture(t)
	reader := f.dial("reader")
	assert.Equal(t, "$up", reader.do("GET", "pools/a"))
	assert.Equal(t, `-NOPERM user "reader" may not read "other/x"`, reader.do("GET", "other/x"))
	assert.Equal(t, `-NOPERM user "reader" may not read "other/x"`, reader.do("MGET", "pools/a", "other/x"), "one refused key refuses the command")
	assert.Equal(t, `-NOPERM user "reader" may not read "other/x"`, reader.do("EXISTS", "other/x"), "EXISTS would tell what exists")

	stranger := f.dial("stranger")
	assert.Equal(t, `-NOAUTH user "stranger" is not allowed in`, stranger.do("GET", "pools/a"))
	assert.Equal(t, "+PONG", stranger.do("PING"), "no data, no user needed")
	assert.Equal(t, 1.0, testutil.ToFloat64(f.metrics.AuthFailures.WithLabelValues("unknown_user")))
	assert.Equal(t, 3.0, testutil.ToFloat64(f.metrics.AuthFailures.WithLabelValues("forbidden")))

	// Without a certificate the handshake itself fails (TLS 1.3 reports
	// it on the first read).
	anon, err := f.dialErr("")
	if err == nil {
		anon.send("*1\r\n$4\r\nPING\r\n")
		_, err = readReply(anon.r)
	}
	require.Error(t, err)
}

func TestPipelinedCommandsAnswerInOrder(t *testing.T) {
	f := newFixture(t)
	c := f.dial("all")
	// Three commands in one write, one of them inline.
	c.send("*2\r\n$3\r\nGET\r\n$7\r\npools/a\r\nGET pools/b\r\n*2\r\n$4\r\nECHO\r\n$2\r\nok\r\n")
	assert.Equal(t, "$up", c.reply())
	assert.Equal(t, "$down", c.reply())
	assert.Equal(t, "$ok", c.reply())
}

func TestProtocolErrorClosesTheConnection(t *testing.T) {
	f := newFixture(t)
	c := f.dial("all")
	c.send("*1\r\n$-1\r\n")
	assert.Equal(t, "-ERR Protocol error: a command argument cannot be a null bulk string", c.reply())
	_, err := readReply(c.r)
	assert.Error(t, err)
	assert.Equal(t, 1.0, testutil.ToFloat64(f.metrics.Commands.WithLabelValues("protocol_error", "error")))
}

func TestCloseEndsConnections(t *testing.T) {
	f := newFixture(t)
	c := f.dial("all")
	assert.Equal(t, "+PONG", c.do("PING"))
	assert.Equal(t, 1.0, testutil.ToFloat64(f.metrics.Connections))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, f.srv.Close(ctx))
	_, err := readReply(c.r)
	assert.Error(t, err, "the connection is closed")
	assert.Equal(t, 0.0, testutil.ToFloat64(f.metrics.Connections))
	_, err = f.dialErr("all")
	assert.Error(t, err, "nothing listens any more")
}

// TestCertificateWithoutAUser: a verified certificate with no Common Name
// names no user; the client is told so before the connection closes.
func TestCertificateWithoutAUser(t *testing.T) {
	f := newFixture(t)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(42), NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, f.ca.Cert, key.Public(), f.ca.Key)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(f.ca.Cert)
	c, err := tls.Dial("tcp", f.addr, &tls.Config{
		RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12,
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
	})
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(30*time.Second)))
	r := bufio.NewReader(c)
	reply, err := readReply(r)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(reply, "-NOAUTH "), reply)
	_, err = readReply(r)
	assert.Error(t, err, "then the connection is closed")
	assert.Equal(t, 1.0, testutil.ToFloat64(f.metrics.AuthFailures.WithLabelValues("no_certificate_user")))
}

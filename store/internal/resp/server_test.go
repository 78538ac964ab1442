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
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ephemeral-store/ephemeral-store/store/internal/auth"
	"github.com/ephemeral-store/ephemeral-store/store/internal/cluster"
	"github.com/ephemeral-store/ephemeral-store/store/internal/fsm"
	"github.com/ephemeral-store/ephemeral-store/store/internal/mtls"
	"github.com/ephemeral-store/ephemeral-store/store/internal/pki"
	"github.com/ephemeral-store/ephemeral-store/store/internal/quota"
)

// fakeState is a replica whose barrier counts calls and can fail, and
// whose writes apply at once (or fail with applyErr).
type fakeState struct {
	mu       sync.Mutex
	kv       map[string]string
	barriers int
	fail     error
	applied  []fsm.Command
	applyErr error
}

func (f *fakeState) Apply(_ context.Context, cmd fsm.Command) (fsm.Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.applyErr != nil {
		return fsm.Result{}, f.applyErr
	}
	_, exists := f.kv[cmd.Key]
	switch {
	case cmd.PrevRevision != nil && *cmd.PrevRevision == 0 && exists:
		return fsm.Result{}, fmt.Errorf("%q: %w", cmd.Key, fsm.ErrRevisionMismatch)
	case cmd.Op == fsm.OpDelete && !exists:
		return fsm.Result{}, fmt.Errorf("%q: %w", cmd.Key, fsm.ErrKeyNotFound)
	}
	f.applied = append(f.applied, cmd) // only what changed the state
	switch {
	case cmd.Op == fsm.OpDelete:
		delete(f.kv, cmd.Key)
	default:
		f.kv[cmd.Key] = string(cmd.Value)
	}
	return fsm.Result{Revision: int64(len(f.applied))}, nil
}

func (f *fakeState) setApplyErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applyErr = err
}

// fakeQuota refuses values longer than limit.
type fakeQuota struct{ limit int }

func (q fakeQuota) Check(cmd fsm.Command) error {
	if len(cmd.Value) > q.limit {
		return fmt.Errorf("%w: %d bytes over %d", quota.ErrExceeded, len(cmd.Value), q.limit)
	}
	return nil
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

type fakeUsers struct {
	mu    sync.Mutex
	users map[string]auth.User
}

func (u *fakeUsers) Authenticate(name string) (auth.User, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if x, ok := u.users[name]; ok {
		return x, nil
	}
	return auth.User{}, auth.ErrUnknownUser
}

func (u *fakeUsers) remove(name string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	delete(u.users, name)
}

type fixture struct {
	t       *testing.T
	state   *fakeState
	users   *fakeUsers
	addr    string
	ca      *pki.CA
	metrics *Metrics
	srv     *Server
}

func newFixture(t *testing.T, tune ...func(*Options)) *fixture {
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
	users := &fakeUsers{users: map[string]auth.User{
		"all":    {Name: "all", AllKeys: true},
		"temp":   {Name: "temp", AllKeys: true},
		"reader": {Name: "reader", Permissions: []auth.Permission{{Prefix: "pools/", Access: auth.AccessRead}}},
	}}
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg, nil)
	o := Options{
		State: state, Barrier: state, Writer: state, Quota: fakeQuota{limit: 100}, Users: users, UserOf: mtls.UserFromState,
		MaxValueBytes: 200,
		TLS:           &tls.Config{Certificates: []tls.Certificate{serving}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12},
		MaxKeyBytes:   16, ReadTimeout: time.Second, Metrics: m,
	}
	for _, f := range tune {
		f(&o)
	}
	srv := New(o)
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
	return &fixture{t: t, state: state, users: users, addr: ln.Addr().String(), ca: ca, metrics: m, srv: srv}
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
		{[]string{"INCR", "pools/a"}, "-ERR 'INCR' is not supported: this port writes with SET, SETNX, SETEX, PSETEX, DEL; anything else goes through the HTTP API"},
		{[]string{"FLUSHALL"}, "-ERR 'FLUSHALL' is not supported: this port writes with SET, SETNX, SETEX, PSETEX, DEL; anything else goes through the HTTP API"},
		{[]string{"KEYS", "*"}, "-ERR unknown command 'KEYS': this port serves " + servedCommands},
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
	assert.Equal(t, 2.0, testutil.ToFloat64(f.metrics.Commands.WithLabelValues("unsupported", "error")), "INCR, FLUSHALL")
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
	assert.Equal(t, `-NOPERM user "reader" may not write "pools/a"`, reader.do("SET", "pools/a", "x"), "read-only prefix")
	assert.Equal(t, `-NOPERM user "reader" may not write "pools/a"`, reader.do("DEL", "pools/a"))
	assert.Empty(t, f.state.applied, "nothing refused was proposed")

	// A user not in the directory is answered NOAUTH to every command,
	// PING included, and may send only small commands.
	stranger := f.dial("stranger")
	assert.Equal(t, `-NOAUTH user "stranger" is not allowed in`, stranger.do("GET", "pools/a"))
	assert.Equal(t, `-NOAUTH user "stranger" is not allowed in`, stranger.do("PING"))
	assert.Equal(t, "-ERR argument too large: 1025 bytes, the limit is 1024", stranger.do("ECHO", strings.Repeat("x", 1025)))
	assert.Equal(t, 1.0, testutil.ToFloat64(f.metrics.AuthFailures.WithLabelValues("unknown_user")), "counted once, at connect")
	assert.Equal(t, "+OK", stranger.do("QUIT"))

	// A user removed while connected loses access at the next command.
	gone := f.dial("temp")
	assert.Equal(t, "$up", gone.do("GET", "pools/a"))
	f.users.remove("temp")
	assert.Equal(t, `-NOAUTH user "temp" is not allowed in`, gone.do("GET", "pools/a"))
	assert.Equal(t, `-NOAUTH user "temp" is not allowed in`, gone.do("SET", "pools/a", "x"))
	assert.Equal(t, 3.0, testutil.ToFloat64(f.metrics.AuthFailures.WithLabelValues("unknown_user")), "the stranger, then two refused commands")
	assert.Equal(t, 5.0, testutil.ToFloat64(f.metrics.AuthFailures.WithLabelValues("forbidden")))

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

func TestWrites(t *testing.T) {
	f := newFixture(t)
	c := f.dial("all")
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"SET", "pools/new", "v1"}, "+OK"},
		{[]string{"GET", "pools/new"}, "$v1"},
		{[]string{"set", "pools/new", "v2", "nx"}, "nil"},
		{[]string{"GET", "pools/new"}, "$v1"},
		{[]string{"SET", "pools/nx", "v", "NX", "EX", "30"}, "+OK"},
		{[]string{"SET", "pools/px", "v", "PX", "1500"}, "+OK"},
		{[]string{"SETEX", "pools/setex", "20", "v"}, "+OK"},
		{[]string{"SETNX", "pools/setex", "v"}, ":0"},
		{[]string{"SETNX", "pools/setnx", "v"}, ":1"},
		{[]string{"PSETEX", "pools/psetex", "250", "v"}, "+OK"},
		{[]string{"DEL", "pools/new", "pools/none", "pools/nx"}, ":2"},
		{[]string{"UNLINK", "pools/new"}, ":0"},
		{[]string{"EXISTS", "pools/new", "pools/px"}, ":1"},
		{[]string{"SET", "pools/a", "v", "EX"}, "-ERR syntax error"},
		{[]string{"SET", "pools/a", "v", "EX", "1", "PX", "1"}, "-ERR syntax error"},
		{[]string{"SET", "pools/a", "v", "FOREVER"}, "-ERR syntax error"},
		{[]string{"SET", "pools/a", "v", "EX", "0"}, "-ERR invalid expire time in 'set' command: want 1 to 31536000 (at most 8760h0m0s)"},
		{[]string{"SET", "pools/a", "v", "EX", "31536001"}, "-ERR invalid expire time in 'set' command: want 1 to 31536000 (at most 8760h0m0s)"},
		{[]string{"SETEX", "pools/a", "x", "v"}, "-ERR invalid expire time in 'set' command: want 1 to 31536000 (at most 8760h0m0s)"},
		{[]string{"SET", "pools/a", "v", "XX"}, "-ERR SET XX is not supported: compare-and-swap on a revision is on the HTTP API (PUT ?prev_revision=)"},
		{[]string{"SET", "pools/a", "v", "GET"}, "-ERR SET GET is not supported: compare-and-swap on a revision is on the HTTP API (PUT ?prev_revision=)"},
		{[]string{"SET", "pools/a"}, "-ERR wrong number of arguments for 'set' command"},
		{[]string{"SET", "", "v"}, "-ERR invalid key: empty key"},
		{[]string{"SET", "pools/big", strings.Repeat("v", 201)}, "-ERR value too large: 201 bytes, the limit is 200"},
		{[]string{"SET", "pools/big", strings.Repeat("v", 101)}, "-OOM quota exceeded: 101 bytes over 100; nothing was written"},
	}
	for _, tc := range tests {
		assert.Equal(t, tc.want, c.do(tc.args...), "%q", tc.args)
	}
	f.state.mu.Lock()
	ttls := map[string]time.Duration{}
	for _, cmd := range f.state.applied {
		if cmd.Op == fsm.OpPut {
			ttls[cmd.Key] = cmd.TTL
		}
	}
	f.state.mu.Unlock()
	assert.Equal(t, map[string]time.Duration{
		"pools/new": 0, "pools/nx": 30 * time.Second, "pools/px": 1500 * time.Millisecond,
		"pools/setex": 20 * time.Second, "pools/psetex": 250 * time.Millisecond, "pools/setnx": 0,
	}, ttls, "the TTL each write proposed")

	// A failed write says whether it may have happened.
	f.state.setApplyErr(fmt.Errorf("raft apply: %w: timed out", cluster.ErrOutcomeUnknown))
	reply := c.do("SET", "pools/a", "v")
	assert.True(t, strings.HasPrefix(reply, "-NOQUORUM the write may or may not have been applied (raft apply: "), reply)
	assert.True(t, strings.HasSuffix(reply, ": timed out); read the key before writing it again"), reply)
	f.state.setApplyErr(fmt.Errorf("forward: %w", cluster.ErrShutdown))
	assert.Equal(t, "-TRYAGAIN this node is shutting down and wrote nothing; send the command to another node", c.do("DEL", "pools/a"))
	f.state.setApplyErr(errors.New("disk on fire"))
	assert.Equal(t, "-ERR internal error: the write may or may not have been applied; read the key before writing it again", c.do("SET", "pools/a", "v"), "details go to the log")
}

// TestLargestValueFitsTheParser: a SET of the largest value passes the
// parser, whose limits follow --max-value-bytes, and one byte more is
// refused by the value check, not by a protocol error.
func TestLargestValueFitsTheParser(t *testing.T) {
	lim := limitsFor(1 << 20)
	assert.Equal(t, 1<<20, lim.arg)
	var in strings.Builder
	value := strings.Repeat("v", 1<<20)
	fmt.Fprintf(&in, "*3\r\n$3\r\nSET\r\n$7\r\npools/a\r\n$%d\r\n%s\r\n", len(value), value)
	args, err := newCommandReader(strings.NewReader(in.String()), lim).read()
	require.NoError(t, err)
	assert.Len(t, args[2], 1<<20)
}

// blockingWriter holds every write until released.
type blockingWriter struct {
	started chan struct{}
	release chan struct{}
}

func (b *blockingWriter) Apply(context.Context, fsm.Command) (fsm.Result, error) {
	close(b.started)
	<-b.release
	return fsm.Result{Revision: 1}, nil
}

// TestCloseAnswersTheWriteInProgress: Close waits for a write in flight
// and delivers its acknowledgement before ending the connection, while an
// idle connection ends at once.
func TestCloseAnswersTheWriteInProgress(t *testing.T) {
	f := newFixture(t)
	bw := &blockingWriter{started: make(chan struct{}), release: make(chan struct{})}
	f.srv.o.Writer = bw
	busy, idle := f.dial("all"), f.dial("all")
	assert.Equal(t, "+PONG", idle.do("PING"))
	busy.send("*3\r\n$3\r\nSET\r\n$7\r\npools/a\r\n$1\r\nv\r\n")
	<-bw.started

	closed := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		closed <- f.srv.Close(ctx)
	}()
	_, err := readReply(idle.r)
	assert.Error(t, err, "the idle connection ends at once")
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) with a write in flight", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(bw.release)
	assert.Equal(t, "+OK", busy.reply(), "the acknowledgement arrives")
	_, err = readReply(busy.r)
	assert.Error(t, err, "then the connection ends")
	require.NoError(t, <-closed)
}

// TestClientThatStopsReadingIsCut: replies a client never reads fill the
// socket buffers; the write deadline ends the connection instead of
// holding its handler (and Close) forever.
func TestClientThatStopsReadingIsCut(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.IdleTimeout = 300 * time.Millisecond })
	c := f.dial("all")
	arg := strings.Repeat("x", maxArgBytes)
	echo := fmt.Sprintf("*2\r\n$4\r\nECHO\r\n$%d\r\n%s\r\n", len(arg), arg)
	go func() {
		for range 1000 { // 64 MiB of replies, far beyond loopback buffers
			if _, err := c.c.Write([]byte(echo)); err != nil {
				return
			}
		}
	}()
	require.Eventually(t, func() bool { return testutil.ToFloat64(f.metrics.Connections) == 1 }, 10*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool { return testutil.ToFloat64(f.metrics.Connections) == 0 }, 30*time.Second, 20*time.Millisecond,
		"the connection whose replies are never read is closed")
}

// failSecond applies the first delete and fails every later one.
type failSecond struct {
	mu  sync.Mutex
	n   int
	err error
}

func (f *failSecond) Apply(context.Context, fsm.Command) (fsm.Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	if f.n == 1 {
		return fsm.Result{Revision: 1}, nil
	}
	return fsm.Result{}, f.err
}

// TestPartialDelSaysWhatHappened: a DEL whose keys partly failed says how
// many were deleted, never "wrote nothing".
func TestPartialDelSaysWhatHappened(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.Writer = &failSecond{err: fmt.Errorf("apply: %w", cluster.ErrShutdown)} })
	c := f.dial("all")
	reply := c.do("DEL", "pools/a", "pools/b")
	assert.True(t, strings.HasPrefix(reply, "-NOQUORUM 1 of 2 keys deleted, 0 were absent; the outcome of the others is unknown ("), reply)
}

// slowWriter commits each write after a pause.
type slowWriter struct{ pause time.Duration }

func (w slowWriter) Apply(context.Context, fsm.Command) (fsm.Result, error) {
	time.Sleep(w.pause)
	return fsm.Result{Revision: 1}, nil
}

// TestBusyPipelineIsNotIdle: a pipeline that keeps the server busy for
// longer than the idle timeout is answered whole.
func TestBusyPipelineIsNotIdle(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.IdleTimeout = 300 * time.Millisecond; o.Writer = slowWriter{2 * time.Millisecond} })
	c := f.dial("all")
	const n = 500 // a second of work
	go func() { _, _ = c.c.Write([]byte(strings.Repeat("*3\r\n$3\r\nSET\r\n$7\r\npools/a\r\n$1\r\nv\r\n", n))) }()
	for i := range n {
		reply, err := readReply(c.r)
		require.NoError(t, err, "reply %d", i)
		require.Equal(t, "+OK", reply)
	}
}

// TestCloseAnswersACommandThatRan: a pipeline's command that ran is
// answered even when Close comes while the next one is half received.
func TestCloseAnswersACommandThatRan(t *testing.T) {
	f := newFixture(t)
	c := f.dial("all")
	c.send("*3\r\n$3\r\nSET\r\n$7\r\npools/q\r\n$1\r\nv\r\n*3\r\n$3\r\nSET\r\n")
	require.Eventually(t, func() bool {
		f.state.mu.Lock()
		defer f.state.mu.Unlock()
		return len(f.state.applied) == 1
	}, 10*time.Second, 5*time.Millisecond, "the first SET is committed")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, f.srv.Close(ctx))
	assert.Equal(t, "+OK", c.reply())
}

// TestValueOverTheLimitKeepsTheConnection: one byte over --max-value-bytes
// is refused with an error the client can read, and the next command works.
func TestValueOverTheLimitKeepsTheConnection(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.MaxValueBytes = 1 << 20; o.Quota = nil })
	c := f.dial("all")
	assert.Equal(t, "+OK", c.do("SET", "pools/big", strings.Repeat("v", 1<<20)))
	assert.Equal(t, "-ERR argument too large: 1048577 bytes, the limit is 1048576", c.do("SET", "pools/big", strings.Repeat("v", 1<<20+1)))
	assert.Equal(t, "+PONG", c.do("PING"))
}

// TestConnectionLimit: one connection over MaxConnections is told why and
// closed; the others go on.
func TestConnectionLimit(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.MaxConnections = 1 })
	first := f.dial("all")
	assert.Equal(t, "+PONG", first.do("PING"))
	second := f.dial("all")
	assert.Equal(t, "-ERR max number of clients reached", second.reply())
	assert.Equal(t, "+PONG", first.do("PING"))
}

// failingListener fails its first Accepts as a process out of file
// descriptors does, then behaves.
type failingListener struct {
	net.Listener
	failures atomic.Int32
}

func (l *failingListener) Accept() (net.Conn, error) {
	if l.failures.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE}
	}
	return l.Listener.Accept()
}

// TestServeSurvivesAcceptErrors: running out of file descriptors for a
// moment does not end the port.
func TestServeSurvivesAcceptErrors(t *testing.T) {
	f := newFixture(t)
	srv := New(f.srv.o)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	fl := &failingListener{Listener: ln}
	fl.failures.Store(3)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(fl) }()
	f.addr = ln.Addr().String()
	assert.Equal(t, "+PONG", f.dial("all").do("PING"), "served after three failed accepts")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, srv.Close(ctx))
	assert.ErrorIs(t, <-served, ErrServerClosed)
}

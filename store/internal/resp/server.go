// Package resp serves the keys over the Redis protocol (RESP2) on a port
// of its own: GET, MGET, EXISTS, SET (with EX, PX, NX), SETNX, SETEX,
// PSETEX, DEL and UNLINK from a Redis client library, at a fraction of an HTTP/2 request's
// cost. It is a second door to the same keys, not a second store: the same
// mutual TLS (the user is the Common Name of the verified client
// certificate), the same users and key prefixes, the same read semantics
// (linearizable by default, stale after READONLY, as a Redis Cluster
// replica), and writes acknowledged once a majority has committed them, as
// on the HTTP API. What RESP has no form for (revisions, compare-and-swap
// on a revision, watches, listings) stays on the HTTP API.
package resp

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ephemeral-store/ephemeral-store/store/internal/auth"
	"github.com/ephemeral-store/ephemeral-store/store/internal/fsm"
	"github.com/ephemeral-store/ephemeral-store/store/internal/quota"
)

// Reader serves reads from the local replica.
type Reader interface {
	Get(key string) (*fsm.KeyValue, int64, bool)
}

// Barrier makes the next local read linearizable: it returns once the
// local replica has applied everything committed when it was called.
type Barrier interface {
	LinearizableRead(ctx context.Context) error
}

// Writer commits a write through the cluster (forwarded to the leader
// from a follower) and returns once a majority has it.
type Writer interface {
	Apply(ctx context.Context, cmd fsm.Command) (fsm.Result, error)
}

// Authenticator turns a certificate user name into a User.
type Authenticator interface {
	Authenticate(name string) (auth.User, error)
}

// Options wire the server.
type Options struct {
	State   Reader
	Barrier Barrier
	Writer  Writer
	// Quota, when set, refuses writes that would grow the data past it
	// before they are sent to the leader.
	Quota quota.Checker
	Users Authenticator
	// Topology, when set, answers CLUSTER SLOTS and NODES, so Redis
	// Cluster clients send writes to the leader (see cluster.go); nil:
	// CLUSTER is refused, as by a Redis without cluster mode.
	Topology Topology
	// UserOf names the user of a verified TLS connection.
	UserOf func(*tls.ConnectionState) (string, error)
	// TLS must require and verify client certificates.
	TLS           *tls.Config
	MaxKeyBytes   int
	MaxValueBytes int
	// ReadTimeout bounds a linearizable read and WriteTimeout a write
	// (default 2.5s each: below the 3s read timeout of common client
	// libraries, which resend a command whose answer is late, so a
	// client sees -TRYAGAIN or -NOQUORUM instead); IdleTimeout closes a
	// connection that sends or reads nothing (default 5m).
	ReadTimeout  time.Duration
	WriteTimeout time.Duration
	IdleTimeout  time.Duration
	// MaxConnections bounds the open connections (default 4096: each
	// holds its buffers, tens of KiB); one more is answered -ERR max
	// number of clients reached and closed.
	MaxConnections int
	Logger         *slog.Logger
	Metrics        *Metrics
}

// handshakeTimeout bounds the TLS handshake of a new connection.
const handshakeTimeout = 10 * time.Second

// strangerIdle cuts a silent connection of a user not in the directory.
const strangerIdle = 10 * time.Second

// defaultCommandTimeout bounds a read's barrier and a write's commit.
const defaultCommandTimeout = 2500 * time.Millisecond

// Server accepts RESP connections.
type Server struct {
	o Options

	mu       sync.Mutex
	ln       net.Listener
	conns    map[net.Conn]struct{}
	closed   bool
	closing  atomic.Bool // connections end after the command in progress
	handlers sync.WaitGroup
	lastID   atomic.Int64
}

// New returns a server; nothing is listened on until Serve.
func New(o Options) *Server {
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = defaultCommandTimeout
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = defaultCommandTimeout
	}
	if o.MaxConnections <= 0 {
		o.MaxConnections = 4096
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 5 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil, nil)
	}
	return &Server{o: o, conns: map[net.Conn]struct{}{}}
}

// ErrServerClosed is returned by Serve after Close.
var ErrServerClosed = errors.New("resp: server closed")

// Serve accepts connections on ln until Close; ln is closed on return.
// Accept errors other than the listener's closing are retried with a
// growing pause, as net/http does: running out of file descriptors for a
// moment must not end the port for the process's life.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.ln = ln
	s.mu.Unlock()
	defer ln.Close()
	var pause time.Duration
	for {
		raw, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("resp: accept: %w", err)
			}
			pause = min(max(2*pause, 5*time.Millisecond), time.Second)
			s.o.Logger.Warn("accept failed; retrying", "err", err, "pause", pause)
			time.Sleep(pause)
			continue
		}
		pause = 0
		if !s.track(raw) {
			raw.Close()
			return ErrServerClosed
		}
		go s.serveConn(raw)
	}
}

// track registers a connection so that Close can end it; false once closed.
func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	s.handlers.Add(1)
	return true
}

// full reports whether the connections are at MaxConnections.
func (s *Server) full() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns) > s.o.MaxConnections
}

func (s *Server) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.handlers.Done()
}

// Close stops accepting and ends every connection once its command in
// progress has been answered, so that no acknowledged write loses its
// acknowledgement: an idle connection ends at once, a pipeline's commands
// not yet started are not run. When ctx ends first, the connections still
// busy are cut (their clients see an unknown outcome, as for a cut HTTP
// request) and Close returns ctx's error.
func (s *Server) Close(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	s.closing.Store(true)
	if s.ln != nil {
		s.ln.Close()
	}
	// A reader blocked between commands wakes up now; a busy one sees
	// closing after its reply (serveConn sets its idle deadline before
	// it checks closing, so this deadline is never overwritten).
	for c := range s.conns {
		_ = c.SetReadDeadline(time.Now())
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.handlers.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		return fmt.Errorf("resp: connections still busy at close: %w", ctx.Err())
	}
}

// conn is one client connection's state.
type conn struct {
	s     *Server
	id    int64
	user  string // from the certificate, fixed for the connection
	stale bool   // READONLY was sent
	name  string // CLIENT SETNAME
	// stranger: the certificate's user is not in the users directory;
	// every command is answered -NOAUTH.
	stranger bool
	remote   string
	w        replyWriter
}

func (s *Server) serveConn(raw net.Conn) {
	defer s.untrack(raw)
	defer raw.Close()
	m := s.o.Metrics
	tc := tls.Server(raw, s.o.TLS)
	hctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
	err := tc.HandshakeContext(hctx)
	cancel()
	if err != nil {
		s.o.Logger.Debug("TLS handshake failed", "remote", raw.RemoteAddr().String(), "err", err)
		return
	}
	cs := tc.ConnectionState()
	remote := raw.RemoteAddr().String()
	name, err := s.o.UserOf(&cs)
	if err != nil {
		m.authFailure("no_certificate_user")
		s.o.Logger.Warn("authentication failed", "remote", remote, "err", err)
		refuse(tc, "NOAUTH "+err.Error())
		return
	}
	if s.full() {
		s.o.Logger.Warn("connection refused: too many connections", "remote", remote, "max", s.o.MaxConnections)
		refuse(tc, "ERR max number of clients reached")
		return
	}
	m.Connections.Inc()
	defer m.Connections.Dec()
	c := &conn{s: s, id: s.lastID.Add(1), user: name, remote: remote}
	bw := bufio.NewWriterSize(tc, 16<<10)
	c.w = replyWriter{w: bw}
	lim, idle := limitsFor(s.o.MaxValueBytes), s.o.IdleTimeout
	// The user is checked at once and again at every data command (a user
	// removed later loses access without reconnecting). A stranger is
	// answered -NOAUTH to every command, as Redis answers a client that
	// has not authenticated, so its client library shows why; it may
	// send only small commands and is soon cut when silent.
	if _, err := s.o.Users.Authenticate(name); err != nil {
		m.authFailure("unknown_user")
		s.o.Logger.Warn("authentication failed: unknown user", "user", name, "remote", remote)
		c.stranger = true
		lim, idle = limits{arg: 1 << 10, command: 4 << 10}, min(idle, strangerIdle)
	}
	r := newCommandReader(tc, lim)
	// flush sends the replies written so far; on every way out too, so
	// that a command that ran is answered.
	flush := func() error {
		_ = tc.SetWriteDeadline(time.Now().Add(idle))
		return bw.Flush()
	}
	for {
		if !r.buffered() {
			if err := flush(); err != nil {
				return
			}
		}
		// Before every command, not only when idle: a busy pipeline is
		// not idle. Set before closing is checked (see Close).
		_ = tc.SetReadDeadline(time.Now().Add(idle))
		if s.closing.Load() {
			_ = flush()
			return
		}
		args, err := r.read()
		var tooLarge *TooLargeError
		switch {
		case errors.As(err, &tooLarge):
			m.command("too_large", false, 0)
			c.w.err("ERR " + tooLarge.Error())
			continue
		case err != nil:
			if errors.Is(err, errProtocol) && !s.closing.Load() {
				m.command("protocol_error", false, 0)
				c.w.err("ERR " + err.Error())
			} else if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !s.closing.Load() {
				s.o.Logger.Debug("connection ended", "remote", c.remote, "err", err)
			}
			_ = flush()
			return
		case len(args) == 0:
			continue
		}
		// A client that stops reading its replies is cut like one that
		// stops sending, not held forever in a write.
		_ = tc.SetWriteDeadline(time.Now().Add(idle))
		if quit := c.run(args); quit {
			_ = flush()
			return
		}
	}
}

// refuse says once, unasked, why the connection closes: the client's first
// read shows the reason rather than a bare EOF.
func refuse(tc *tls.Conn, msg string) {
	_ = tc.SetWriteDeadline(time.Now().Add(handshakeTimeout))
	_, _ = tc.Write([]byte("-" + oneLine(msg) + "\r\n"))
}

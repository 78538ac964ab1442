// Package resp serves the keys over the Redis protocol (RESP2) on a port
// of its own: GET, MGET, EXISTS, SET (with EX, PX, NX), SETEX, PSETEX and
// DEL from a Redis client library, at a fraction of an HTTP/2 request's
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
	// UserOf names the user of a verified TLS connection.
	UserOf func(*tls.ConnectionState) (string, error)
	// TLS must require and verify client certificates.
	TLS           *tls.Config
	MaxKeyBytes   int
	MaxValueBytes int
	// ReadTimeout bounds a linearizable read (default 5s), WriteTimeout a
	// write (default 10s); IdleTimeout closes a connection that sends
	// nothing (default 5m).
	ReadTimeout  time.Duration
	WriteTimeout time.Duration
	IdleTimeout  time.Duration
	Logger       *slog.Logger
	Metrics      *Metrics
}

// handshakeTimeout bounds the TLS handshake of a new connection.
const handshakeTimeout = 10 * time.Second

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
		o.ReadTimeout = 5 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
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
	for {
		raw, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("resp: accept: %w", err)
		}
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
	s      *Server
	id     int64
	user   string // from the certificate, fixed for the connection
	stale  bool   // READONLY was sent
	remote string
	w      replyWriter
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
	name, err := s.o.UserOf(&cs)
	if err != nil {
		m.authFailure("no_certificate_user")
		s.o.Logger.Warn("authentication failed", "remote", raw.RemoteAddr().String(), "err", err)
		// Said once, unasked, before closing: the client's first read
		// shows why rather than a bare EOF.
		_ = tc.SetWriteDeadline(time.Now().Add(handshakeTimeout))
		_, _ = tc.Write([]byte("-NOAUTH " + oneLine(err.Error()) + "\r\n"))
		return
	}
	m.Connections.Inc()
	defer m.Connections.Dec()
	c := &conn{s: s, id: s.lastID.Add(1), user: name, remote: raw.RemoteAddr().String()}
	bw := bufio.NewWriterSize(tc, 16<<10)
	c.w = replyWriter{w: bw}
	r := newCommandReader(tc, limitsFor(s.o.MaxValueBytes))
	for {
		if !r.buffered() {
			if err := bw.Flush(); err != nil {
				return
			}
			_ = tc.SetReadDeadline(time.Now().Add(s.o.IdleTimeout))
		}
		if s.closing.Load() {
			_ = bw.Flush()
			return
		}
		args, err := r.read()
		if err != nil {
			if s.closing.Load() {
				return // woken by Close between commands
			}
			if errors.Is(err, errProtocol) {
				m.command("protocol_error", false, 0)
				c.w.err("ERR " + err.Error())
				_ = bw.Flush()
			} else if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				s.o.Logger.Debug("connection ended", "remote", c.remote, "err", err)
			}
			return
		}
		if len(args) == 0 {
			continue
		}
		// A client that stops reading its replies is cut like one that
		// stops sending, not held forever in a write.
		_ = tc.SetWriteDeadline(time.Now().Add(s.o.IdleTimeout))
		if quit := c.run(args); quit {
			_ = bw.Flush()
			return
		}
	}
}

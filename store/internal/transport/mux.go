// Package transport carries the peer traffic of a node over one mutual-TLS
// port: Raft's streams and the peer RPCs (join, forwarded writes, read
// index, status). After the TLS handshake the dialer sends one byte naming
// the protocol, as rqlite's mux does, so Raft never sees TLS and one port is
// enough.
package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// Protocol bytes sent by a dialer right after the handshake.
const (
	protoRaft byte = 'R'
	protoRPC  byte = 'P'
)

// handshakeTimeout bounds how long an accepted connection may take to
// finish TLS and name its protocol, so idle sockets cannot pile up.
const handshakeTimeout = 10 * time.Second

// ErrClosed is returned by Accept after Close.
var ErrClosed = errors.New("transport closed")

// Mux accepts TLS connections on the peer port and hands each to Raft or to
// the RPC server by its protocol byte.
type Mux struct {
	ln        net.Listener
	advertise string
	tlsServer *tls.Config
	tlsClient *tls.Config
	log       *slog.Logger

	raft atomic.Pointer[chanListener] // replaced when Raft restarts
	rpc  *chanListener

	closeOnce sync.Once
}

// NewMux wraps a plain TCP listener. serverTLS must require and verify peer
// certificates; clientTLS is what this node presents when it dials peers.
// advertise is the host:port peers know this node by.
func NewMux(ln net.Listener, advertise string, serverTLS, clientTLS *tls.Config, log *slog.Logger) *Mux {
	m := &Mux{ln: ln, advertise: advertise, tlsServer: serverTLS, tlsClient: clientTLS, log: log}
	m.raft.Store(newChanListener(advertiseAddr(advertise)))
	m.rpc = newChanListener(ln.Addr())
	return m
}

// Serve accepts connections until the listener is closed.
func (m *Mux) Serve() error {
	for {
		c, err := m.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("peer accept: %w", err)
		}
		go m.route(c)
	}
}

func (m *Mux) route(c net.Conn) {
	_ = c.SetDeadline(time.Now().Add(handshakeTimeout))
	tc := tls.Server(c, m.tlsServer)
	if err := tc.Handshake(); err != nil {
		m.log.Warn("peer connection refused", "remote", c.RemoteAddr().String(), "err", err)
		_ = c.Close()
		return
	}
	var b [1]byte
	if _, err := io.ReadFull(tc, b[:]); err != nil {
		_ = tc.Close()
		return
	}
	_ = c.SetDeadline(time.Time{})
	switch b[0] {
	case protoRaft:
		m.raft.Load().deliver(tc)
	case protoRPC:
		m.rpc.deliver(tc)
	default:
		m.log.Warn("peer connection with unknown protocol", "remote", c.RemoteAddr().String(), "byte", b[0])
		_ = tc.Close()
	}
}

// Close stops accepting; established connections are closed by their users.
func (m *Mux) Close() error {
	var err error
	m.closeOnce.Do(func() {
		err = m.ln.Close()
		m.raft.Load().Close()
		m.rpc.Close()
	})
	return err
}

// Addr is the address the peer listener is bound to.
func (m *Mux) Addr() net.Addr { return m.ln.Addr() }

// RPCListener yields the connections meant for the peer RPC server.
func (m *Mux) RPCListener() net.Listener { return m.rpc }

// StreamLayer gives a new Raft instance its connections; Raft closes it at
// shutdown, so each instance gets its own. Its Addr is the advertised name,
// never a resolved IP: Raft stores whatever string it is given, and a
// restarted pod comes back with a new IP but the same DNS name.
//
// Closing it also aborts its dials in flight and closes the connections it
// dialed: Raft's shutdown waits for its RPCs, and behind a partition each of
// them would otherwise wait out its whole timeout.
func (m *Mux) StreamLayer() raft.StreamLayer {
	l := newChanListener(advertiseAddr(m.advertise))
	if old := m.raft.Swap(l); old != nil {
		old.Close()
	}
	return &streamLayer{chanListener: l, mux: m, conns: map[net.Conn]struct{}{}}
}

type streamLayer struct {
	*chanListener
	mux *Mux

	mu    sync.Mutex
	conns map[net.Conn]struct{} // dialed and not yet closed
}

func (s *streamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	go func() {
		select {
		case <-s.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	c, err := s.mux.dial(ctx, string(address), protoRaft)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.done:
		_ = c.Close()
		return nil, ErrClosed
	default:
	}
	tc := &trackedConn{Conn: c, layer: s}
	s.conns[tc] = struct{}{}
	return tc, nil
}

// Close stops accepting and ends every connection this layer dialed.
func (s *streamLayer) Close() error {
	_ = s.chanListener.Close()
	s.mu.Lock()
	conns := s.conns
	s.conns = map[net.Conn]struct{}{}
	s.mu.Unlock()
	for c := range conns {
		_ = c.(*trackedConn).Conn.Close()
	}
	return nil
}

type trackedConn struct {
	net.Conn
	layer *streamLayer
}

func (c *trackedConn) Close() error {
	c.layer.mu.Lock()
	delete(c.layer.conns, c)
	c.layer.mu.Unlock()
	return c.Conn.Close()
}

// DialRPC opens a connection to a peer's RPC server; used as the
// DialContext of the peer HTTP client.
func (m *Mux) DialRPC(ctx context.Context, address string) (net.Conn, error) {
	return m.dial(ctx, address, protoRPC)
}

// errReservedName refuses addresses under the ".invalid" top-level domain,
// which RFC 6761 reserves as never resolvable: the cluster gives them to
// placeholder voters, which must never reach a process.
var errReservedName = errors.New("address under the reserved .invalid domain is never dialled")

func (m *Mux) dial(ctx context.Context, address string, proto byte) (net.Conn, error) {
	if host, _, err := net.SplitHostPort(address); err == nil && strings.HasSuffix(strings.TrimSuffix(host, "."), ".invalid") {
		return nil, fmt.Errorf("dial peer %s: %w", address, errReservedName)
	}
	d := tls.Dialer{NetDialer: &net.Dialer{KeepAlive: 15 * time.Second}, Config: m.tlsClient}
	c, err := d.DialContext(ctx, "tcp", address)
	if err != nil {
		return nil, fmt.Errorf("dial peer %s: %w", address, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetWriteDeadline(dl)
	}
	if _, err := c.Write([]byte{proto}); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("dial peer %s: %w", address, err)
	}
	_ = c.SetWriteDeadline(time.Time{})
	return c, nil
}

type advertiseAddr string

func (a advertiseAddr) Network() string { return "tcp" }
func (a advertiseAddr) String() string  { return string(a) }

// chanListener is a net.Listener fed by the mux.
type chanListener struct {
	addr   net.Addr
	ch     chan net.Conn
	done   chan struct{}
	closed sync.Once
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *chanListener) deliver(c net.Conn) {
	select {
	case l.ch <- c:
	case <-l.done:
		_ = c.Close()
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.closed.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }

// Package client is the Go client of ephemeral-store's HTTPS API
// (docs/interfaces.md): keys, listings, watches and cluster status, over
// HTTP/2 with a TLS client certificate, failing over between endpoints.
//
// # Failover
//
// A Client sends each request to one endpoint, starting with the one that
// answered last. It moves on to the next endpoint, at most once round the
// list, only when that cannot apply a change twice:
//
//   - reads (Get, List, ListAll, Watch before its stream opens, Cluster) on
//     any transport error (refused, reset, timed out, TLS failure) and on a
//     503 no_quorum or not_ready;
//   - writes (Put, Delete) only when the request never reached a server:
//     the connection could not be made (dial or DNS error, TLS handshake
//     refused), or the server answered 503 not_ready. A write that failed
//     after it was sent, including a 503 no_quorum (the leader may still
//     commit it), is returned to the caller, who knows whether repeating it
//     is safe (an unconditional Put is; a compare-and-swap may not be).
//
// Answers other than these (404, 412, 403...) are final and never retried.
// The client never sleeps between attempts; a 503's Retry-After is in
// APIError.RetryAfter for the caller to honour.
//
// # Watches
//
// Watch streams the changes under a prefix from a revision. Each change has
// its own revision, so a stream that breaks resumes exactly from the
// revision after the last event received; with the Resume option the
// Watcher does that itself, with backoff, on the same or another endpoint,
// and ends only on what resuming cannot fix (ErrCompacted: the revision is
// older than the history the nodes keep). ListThenWatch returns a prefix's
// keys at one revision and a Watcher of every change after it.
//
// # Wire types
//
// The JSON bodies of the answers are the types of package api
// (store/client/api), the ones the server encodes: Put returns an
// api.PutResult, Delete an api.DeleteResult, Cluster and Reform an
// api.ClusterStatus, Watcher.Next an api.Event; APIError.Code is one of
// the api.Code... constants. Get and List give KeyValues, built from the
// answer's headers or api.ListItems.
//
// # Dependencies
//
// The client is a module of its own (this package and api) that imports
// the standard library only: a program that uses it builds none of the
// server's dependencies.
//
// # Keys
//
// A key is any non-empty UTF-8 string without control characters and may
// contain "/". It travels as one path segment after /v1/kv/, escaped with
// url.PathEscape ("/" becomes %2F, "." and ".." become %2E), and the server
// recovers it by unescaping the raw path, so every key round-trips exactly.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ephemeral-store/ephemeral-store/store/client/api"
)

// DefaultTimeout bounds a call when Config.Timeout is zero.
const DefaultTimeout = 30 * time.Second

// Config configures a Client.
type Config struct {
	// Endpoints are the base URLs of store nodes, such as
	// "https://ephemeral-store:8087"; a bare "host:port" means https. At
	// least one is required.
	Endpoints []string
	// TLS holds the client certificate and the CA the servers are checked
	// against. It is cloned, and MinVersion is raised to TLS 1.2. Required
	// unless HTTPClient is set.
	TLS *tls.Config
	// HTTPClient, when set, sends every request instead of the client's own
	// HTTP/2 transport, and TLS is ignored. Its own Timeout, if any, also
	// cuts watch streams.
	HTTPClient *http.Client
	// Timeout bounds each call, failover included; for Watch it bounds only
	// the opening of the stream. Zero means DefaultTimeout, negative no
	// bound but the context's.
	Timeout time.Duration
}

// Client talks to a store cluster. It is safe for concurrent use; create one
// and share it, since it keeps connections alive.
type Client struct {
	endpoints []string // normalised base URLs, no trailing slash
	hc        *http.Client
	transport *http.Transport // ours, closed by Close; nil with Config.HTTPClient
	timeout   time.Duration
	current   atomic.Int64 // index of the endpoint that answered last
}

// New returns a client for cfg. It does not contact the servers.
func New(cfg Config) (*Client, error) {
	eps, err := normaliseEndpoints(cfg.Endpoints)
	if err != nil {
		return nil, err
	}
	c := &Client{endpoints: eps, timeout: cfg.Timeout}
	if c.timeout == 0 {
		c.timeout = DefaultTimeout
	}
	switch {
	case cfg.HTTPClient != nil:
		c.hc = cfg.HTTPClient
	case cfg.TLS != nil:
		c.transport = newTransport(cfg.TLS)
		c.hc = &http.Client{Transport: c.transport}
	default:
		return nil, errors.New("client: Config.TLS is required (the store only accepts TLS with a client certificate)")
	}
	return c, nil
}

// NewFromFiles returns a client presenting the PEM certificate and key in
// certFile and keyFile, trusting the CA certificates in caFile (the system
// roots when caFile is ""). The files are read again when they change on
// disk, so a rotated certificate or CA bundle is used for new connections
// without a restart (see TLSConfigFromFiles).
func NewFromFiles(endpoints []string, certFile, keyFile, caFile string) (*Client, error) {
	cfg, err := TLSConfigFromFiles(certFile, keyFile, caFile)
	if err != nil {
		return nil, err
	}
	return New(Config{Endpoints: endpoints, TLS: cfg})
}

// TLSConfigFromFiles builds the tls.Config NewFromFiles uses: TLS 1.2 or
// newer, the client certificate from certFile and keyFile (none when both
// are ""), and the CA certificates of caFile as roots (the system roots
// when caFile is ""). The files are read again at a handshake when their
// content has changed; content that does not load leaves the previous
// certificate or CA in use.
//
// With a caFile, the server's certificate is verified by VerifyConnection
// against the CA file as it is at the handshake, since RootCAs cannot
// change once a transport has cloned the config; InsecureSkipVerify is set
// only to make room for that check, which verifies the chain, the
// server-auth usage and the server's name as crypto/tls would. RootCAs
// holds the CA as first read, for callers that read it. The name comes
// from the ConnectionState, where TLS leaves it out for an IP address; a
// Client (New) supplies it, and a transport of your own must set
// ServerName to a DNS name of the server's certificate for an IP endpoint,
// or the handshake is refused. VerifyConnection IS the verification: a
// caller that needs its own must wrap the one returned, never replace it,
// or nothing verifies the server.
func TLSConfigFromFiles(certFile, keyFile, caFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	switch {
	case certFile != "" && keyFile != "":
		kp, err := loadKeyPair(certFile, keyFile)
		if err != nil {
			return nil, err
		}
		cfg.GetClientCertificate = getClientCertificate(kp)
	case certFile != "" || keyFile != "":
		return nil, fmt.Errorf("client: a certificate needs both files: cert %q, key %q", certFile, keyFile)
	}
	if caFile != "" {
		roots, err := loadRoots(caFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = roots.value()
		cfg.InsecureSkipVerify = true // verifyServer does the verification
		cfg.VerifyConnection = verifyServer(roots)
	}
	return cfg, nil
}

// tlsHandshakeTimeout bounds a TLS handshake of the client's transport.
const tlsHandshakeTimeout = 10 * time.Second

// newTransport is an HTTP/2-capable transport with keep-alives, bounded
// connection set-up and HTTP/2 pings, so that a dead node is noticed even
// on an idle watch stream. HTTPS_PROXY and NO_PROXY apply as usual (a
// CONNECT proxy does not see inside the mutual TLS), with one limit: through
// a proxy, net/http does the TLS handshake itself, so an IP-address
// endpoint has no name to verify the certificate against and is refused
// (with a CA file); use the DNS names of the certificate, or NO_PROXY.
func newTransport(cfg *tls.Config) *http.Transport {
	tc := cfg.Clone()
	if tc.MinVersion < tls.VersionTLS12 {
		tc.MinVersion = tls.VersionTLS12
	}
	if len(tc.NextProtos) == 0 {
		tc.NextProtos = []string{"h2", "http/1.1"}
	}
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:       http.ProxyFromEnvironment,
		DialContext: dialer.DialContext,
		DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return dialTLS(ctx, dialer, tc, network, addr)
		},
		TLSClientConfig:       tc, // through a proxy; dialTLS otherwise
		TLSHandshakeTimeout:   tlsHandshakeTimeout,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		HTTP2: &http.HTTP2Config{
			SendPingTimeout: 30 * time.Second,
			PingTimeout:     15 * time.Second,
		},
	}
}

// dialTLS connects to an https endpoint (without a proxy) as http.Transport
// would, with one addition: a VerifyConnection of cfg sees the host dialled
// as the ConnectionState's ServerName even when it is an IP address, which
// TLS leaves out of the handshake (no SNI for addresses) and hence out of
// the state. verifyServer needs it to check the name.
func dialTLS(ctx context.Context, d *net.Dialer, base *tls.Config, network, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	raw, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	cfg := base.Clone()
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	if verify := cfg.VerifyConnection; verify != nil {
		name := cfg.ServerName
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if cs.ServerName == "" {
				cs.ServerName = name
			}
			return verify(cs)
		}
	}
	conn := tls.Client(raw, cfg)
	hctx, cancel := context.WithTimeout(ctx, tlsHandshakeTimeout)
	defer cancel()
	if err := conn.HandshakeContext(hctx); err != nil {
		raw.Close()
		return nil, err
	}
	return conn, nil
}

func normaliseEndpoints(in []string) ([]string, error) {
	var out []string
	for _, raw := range in {
		s := strings.TrimSpace(raw)
		if s == "" {
			continue
		}
		if !strings.Contains(s, "://") {
			s = "https://" + s
		}
		u, err := url.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("client: endpoint %q: %w", raw, err)
		}
		if u.Scheme != "https" && u.Scheme != "http" {
			return nil, fmt.Errorf("client: endpoint %q: scheme must be https", raw)
		}
		if u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return nil, fmt.Errorf("client: endpoint %q: want https://host:port", raw)
		}
		out = append(out, strings.TrimSuffix(u.String(), "/"))
	}
	if len(out) == 0 {
		return nil, errors.New("client: no endpoint given")
	}
	return out, nil
}

// Endpoints returns the endpoints in use, normalised.
func (c *Client) Endpoints() []string { return append([]string(nil), c.endpoints...) }

// Close releases idle connections. Open watchers keep working until closed.
func (c *Client) Close() error {
	if c.transport != nil {
		c.transport.CloseIdleConnections()
	} else {
		c.hc.CloseIdleConnections()
	}
	return nil
}

// callContext applies the per-call timeout.
func (c *Client) callContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if c.timeout > 0 {
		return context.WithTimeout(ctx, c.timeout)
	}
	return context.WithCancel(ctx)
}

// call is one API request, before an endpoint is chosen.
type call struct {
	method string
	path   string // escaped path, e.g. "/v1/kv/pools%2Fa"
	query  url.Values
	body   []byte // sent when non-nil
}

// do sends r, failing over between endpoints as the package documentation
// says. It returns only 2xx responses; every other answer becomes an
// *APIError (alone, or in an *EndpointsError when several were tried).
func (c *Client) do(ctx context.Context, r call) (*http.Response, error) {
	n := len(c.endpoints)
	start := int(c.current.Load())
	var errs, named []error // each attempt's error; the same naming its endpoint
	for i := 0; i < n; i++ {
		idx := (start + i) % n
		resp, err := c.send(ctx, c.endpoints[idx], r)
		if err == nil && resp.StatusCode >= 200 && resp.StatusCode < 300 {
			if idx != start {
				c.current.Store(int64(idx))
			}
			return resp, nil
		}
		var apiErr *APIError
		if err == nil {
			apiErr = apiErrorFrom(resp)
			err = apiErr
		}
		errs = append(errs, err)
		if apiErr != nil {
			named = append(named, fmt.Errorf("%s: %w", c.endpoints[idx], apiErr))
		} else {
			named = append(named, err) // a transport error names its URL already
		}
		// Stop when the caller gave up or the call's timeout passed, and
		// when the rule forbids another attempt.
		if ctx.Err() != nil || !mayFailover(r.method, apiErr, err) {
			break
		}
	}
	if len(errs) == 1 {
		return nil, errs[0]
	}
	return nil, &EndpointsError{Attempts: named}
}

func (c *Client) send(ctx context.Context, endpoint string, r call) (*http.Response, error) {
	u := endpoint + r.path
	if len(r.query) > 0 {
		u += "?" + r.query.Encode()
	}
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u, body)
	if err != nil {
		return nil, fmt.Errorf("client: building request: %w", err)
	}
	if r.body != nil {
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	req.Header.Set("User-Agent", "ephemeral-store-client")
	return c.hc.Do(req)
}

// mayFailover is the rule of the package documentation.
func mayFailover(method string, apiErr *APIError, err error) bool {
	read := method == http.MethodGet || method == http.MethodHead
	if apiErr != nil {
		switch {
		case apiErr.Code == api.CodeNotReady:
			return true
		case apiErr.StatusCode == http.StatusServiceUnavailable && (apiErr.Code == api.CodeNoQuorum || apiErr.Code == ""):
			return read
		}
		return false
	}
	return read || neverSent(err)
}

// neverSent reports whether err shows that no request reached a server:
// the connection could not be dialled, or its TLS handshake failed or was
// refused with an alert ("remote error"; with TLS 1.3 a refused client
// certificate shows only when the response is read, but the server runs no
// handler on a connection whose handshake it refused).
func neverSent(err error) bool {
	var (
		op     *net.OpError
		dns    *net.DNSError
		verify *tls.CertificateVerificationError
		header tls.RecordHeaderError
		unkCA  x509.UnknownAuthorityError
		host   x509.HostnameError
	)
	switch {
	case errors.As(err, &op) && (op.Op == "dial" || op.Op == "remote error"),
		errors.As(err, &dns),
		errors.As(err, &verify),
		errors.As(err, &header),
		errors.As(err, &unkCA),
		errors.As(err, &host):
		return true
	}
	return false
}

// escapeKey makes key one path segment; see the package documentation.
func escapeKey(key string) string {
	s := url.PathEscape(key)
	if s == "." || s == ".." {
		s = strings.ReplaceAll(s, ".", "%2E")
	}
	return s
}

func kvPath(key string) (string, error) {
	if key == "" {
		return "", ErrEmptyKey
	}
	return "/v1/kv/" + escapeKey(key), nil
}

//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gruntwork-io/terratest/modules/k8s"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
	"k8s.io/streaming/pkg/httpstream"

	"github.com/ephemeral-store/ephemeral-store/store/client"
	"github.com/ephemeral-store/ephemeral-store/tests/internal/kindcluster"
)

const (
	// callTimeout bounds each attempt (failover included).
	callTimeout = 15 * time.Second
)

// kubeAccess is the Kubernetes API as the tunnels and the log followers
// use it, in the release's namespace.
type kubeAccess struct {
	config    *rest.Config
	clientset *kubernetes.Clientset
	ns        string
}

func newKubeAccess(t *testing.T, c *kindcluster.Cluster, r *release) *kubeAccess {
	t.Helper()
	config, err := k8s.LoadAPIClientConfigE(c.Kubeconfig, c.Context)
	require.NoError(t, err, "kubeconfig %s", c.Kubeconfig)
	config = rest.CopyConfig(config)
	// Pod polls and endpoint lookups of the log followers and the Service
	// tunnel: more than client-go's default 5 a second, still modest.
	config.QPS, config.Burst = 20, 40
	clientset, err := kubernetes.NewForConfig(config)
	require.NoError(t, err)
	return &kubeAccess{config: config, clientset: clientset, ns: r.ns}
}

// podTunnels gives store clients whose every connection is its own
// port-forward: the dialer opens a port-forward (the pods/portforward
// subresource, what kubectl port-forward uses) to the target pod and runs
// the TLS handshake through it. Unlike a long-lived tunnel, nothing dies
// with a pod: the next connection goes to the pod of that name that exists
// then. A connection that cannot be made, or whose TLS handshake fails (the
// pod is gone, not running yet, or its API port is closed), is a
// *net.OpError with Op "dial": no request was sent, so the client may fail
// over even for a write, and kvhistory.NotSent knows the write had no
// effect.
type podTunnels struct {
	kube *kubeAccess
	r    *release
	tls  *tls.Config
	// svcNext spreads the Service's connections over its endpoints.
	svcNext atomic.Int64
	dials   atomic.Int64
	refused atomic.Int64
}

// client is a store client whose endpoints are targets, pod names or the
// client Service's name, tried in that order.
func (p *podTunnels) client(t *testing.T, targets ...string) *client.Client {
	t.Helper()
	transport := &http.Transport{
		DialTLSContext:      p.dialTLS,
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     90 * time.Second,
		// A connection whose pod vanished without a word is noticed by
		// pings instead of a request's timeout.
		HTTP2: &http.HTTP2Config{SendPingTimeout: 5 * time.Second, PingTimeout: 5 * time.Second},
	}
	var endpoints []string
	for _, target := range targets {
		endpoints = append(endpoints, fmt.Sprintf("https://%s:%d", target, clientPort))
	}
	cl, err := client.New(client.Config{Endpoints: endpoints, HTTPClient: &http.Client{Transport: transport}, Timeout: callTimeout})
	require.NoError(t, err)
	t.Cleanup(func() { _ = cl.Close(); transport.CloseIdleConnections() })
	return cl
}

func (p *podTunnels) dialTLS(ctx context.Context, _, addr string) (net.Conn, error) {
	p.dials.Add(1)
	conn, err := p.connect(ctx, addr)
	if err != nil {
		p.refused.Add(1)
		return nil, &net.OpError{Op: "dial", Net: "portforward", Addr: tunnelAddr(addr), Err: err}
	}
	return conn, nil
}

func (p *podTunnels) connect(ctx context.Context, addr string) (net.Conn, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, err
	}
	pod := host
	if host == p.r.fullname {
		if pod, err = p.kube.servicePod(ctx, p.r.fullname, p.svcNext.Add(1)); err != nil {
			return nil, err
		}
	}
	raw, err := p.kube.portForward(ctx, pod, port)
	if err != nil {
		return nil, err
	}
	conn := tls.Client(raw, p.tls)
	if err := conn.HandshakeContext(ctx); err != nil {
		_ = raw.Close()
		return nil, fmt.Errorf("TLS handshake with pod %s through its port-forward: %w", pod, err)
	}
	return conn, nil
}

// servicePod picks a pod the Service routes to now, an EndpointSlice
// endpoint that is ready and not terminating: the pick-th of them in name
// order, so that successive picks go round robin.
func (k *kubeAccess) servicePod(ctx context.Context, service string, pick int64) (string, error) {
	list, err := k.clientset.DiscoveryV1().EndpointSlices(k.ns).List(ctx,
		metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + service})
	if err != nil {
		return "", fmt.Errorf("endpoints of service %s: %w", service, err)
	}
	var pods []string
	for _, s := range list.Items {
		for _, ep := range s.Endpoints {
			c := ep.Conditions
			if ep.TargetRef != nil && ep.TargetRef.Kind == "Pod" && (c.Ready == nil || *c.Ready) && (c.Terminating == nil || !*c.Terminating) {
				pods = append(pods, ep.TargetRef.Name)
			}
		}
	}
	if len(pods) == 0 {
		return "", fmt.Errorf("service %s has no ready endpoint", service)
	}
	sort.Strings(pods)
	return pods[int(pick%int64(len(pods)))], nil
}

// connect opens a SPDY connection of the port-forward protocol to pod (the
// pods/portforward subresource, what kubectl port-forward uses), or fails
// as kubectl would: no such pod, or the pod is not running.
func (k *kubeAccess) connect(ctx context.Context, pod string) (httpstream.Connection, error) {
	rt, upgrader, err := spdy.RoundTripperFor(k.config)
	if err != nil {
		return nil, err
	}
	u := k.clientset.CoreV1().RESTClient().Post().Resource("pods").Namespace(k.ns).Name(pod).SubResource("portforward").URL()
	dialer := spdy.NewDialerForStreaming(upgrader, &http.Client{Transport: rt}, http.MethodPost, u)
	type dialed struct {
		conn httpstream.Connection
		err  error
	}
	ch := make(chan dialed, 1)
	go func() {
		conn, _, err := dialer.Dial(portforward.PortForwardProtocolV1Name)
		ch <- dialed{conn, err}
	}()
	var conn httpstream.Connection
	select {
	case d := <-ch:
		if d.err != nil {
			return nil, fmt.Errorf("port-forward to pod %s: %w", pod, d.err)
		}
		conn = d.conn
	case <-ctx.Done():
		go func() {
			if d := <-ch; d.conn != nil {
				_ = d.conn.Close()
			}
		}()
		return nil, ctx.Err()
	}
	return conn, nil
}

// portForward opens one port-forward stream pair to port of pod, on a SPDY
// connection of its own that the returned conn closes.
func (k *kubeAccess) portForward(ctx context.Context, pod string, port int) (net.Conn, error) {
	conn, err := k.connect(ctx, pod)
	if err != nil {
		return nil, err
	}

	// The protocol of client-go's portforward.PortForwarder: an error
	// stream the kubelet reports a failed connection on, and a data stream.
	headers := http.Header{}
	headers.Set(corev1.StreamType, corev1.StreamTypeError)
	headers.Set(corev1.PortHeader, strconv.Itoa(port))
	headers.Set(corev1.PortForwardRequestIDHeader, "0")
	errStream, err := conn.CreateStream(headers)
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("port-forward to pod %s: error stream: %w", pod, err)
	}
	_ = errStream.Close() // nothing is written to it
	headers.Set(corev1.StreamType, corev1.StreamTypeData)
	data, err := conn.CreateStream(headers)
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("port-forward to pod %s: data stream: %w", pod, err)
	}
	sc := &streamConn{conn: conn, data: data, addr: tunnelAddr(fmt.Sprintf("%s:%d", pod, port))}
	go func() {
		msg, _ := io.ReadAll(errStream)
		if len(msg) > 0 {
			sc.fail(fmt.Errorf("port-forward to pod %s: %s", pod, strings.TrimSpace(string(msg))))
		}
	}()
	return sc, nil
}

// tunnelAddr names the far end of a port-forward.
type tunnelAddr string

func (a tunnelAddr) Network() string { return "portforward" }
func (a tunnelAddr) String() string  { return string(a) }

// streamConn is a port-forward data stream as a net.Conn. Deadlines are
// not supported (TLS and HTTP/2 use contexts, Close and pings instead).
type streamConn struct {
	conn httpstream.Connection
	data httpstream.Stream
	addr tunnelAddr

	mu     sync.Mutex
	remote error // what the kubelet reported on the error stream
}

func (s *streamConn) fail(err error) {
	s.mu.Lock()
	s.remote = err
	s.mu.Unlock()
	_ = s.conn.Close()
}

func (s *streamConn) wrap(err error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil && s.remote != nil {
		return s.remote
	}
	return err
}

func (s *streamConn) Read(b []byte) (int, error) {
	n, err := s.data.Read(b)
	return n, s.wrap(err)
}

func (s *streamConn) Write(b []byte) (int, error) {
	n, err := s.data.Write(b)
	return n, s.wrap(err)
}

// CloseWrite half-closes: the pod's end reads EOF and may still answer.
func (s *streamConn) CloseWrite() error { return s.data.Close() }

func (s *streamConn) Close() error                     { return s.conn.Close() }
func (s *streamConn) LocalAddr() net.Addr              { return tunnelAddr("local") }
func (s *streamConn) RemoteAddr() net.Addr             { return s.addr }
func (s *streamConn) SetDeadline(time.Time) error      { return nil }
func (s *streamConn) SetReadDeadline(time.Time) error  { return nil }
func (s *streamConn) SetWriteDeadline(time.Time) error { return nil }

// localTunnel serves port-forwards on a free local port, for what needs an
// address rather than a dialer (a store client with its own TLS settings,
// an HTTP GET, a raw TLS probe): each connection it accepts gets a
// port-forward of its own, to the pod of that name that exists then, or for
// a Service to a ready endpoint picked at that connection (round robin, as
// kube-proxy would). So a tunnel outlives the pods it forwards to, like the
// dialer of podTunnels; what it cannot reach, it closes the connection of.
type localTunnel struct {
	kube *kubeAccess
	kind k8s.KubeResourceType
	name string
	port int
	ln   net.Listener

	ctx    context.Context
	cancel context.CancelFunc
	pick   atomic.Int64
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]struct{} // open, closed by Close
	closed bool
}

// openTunnel opens a tunnel to port of the pod or Service name, once a
// port-forward connection to the pod it would use now succeeds: it fails
// while the pod is missing or not running, or the Service has no ready
// endpoint.
func openTunnel(ctx context.Context, kube *kubeAccess, kind k8s.KubeResourceType, name string, port int) (*localTunnel, error) {
	if kind != k8s.ResourceTypePod && kind != k8s.ResourceTypeService {
		return nil, fmt.Errorf("tunnel to %s/%s: only pods and services are supported", kind, name)
	}
	l := &localTunnel{kube: kube, kind: kind, name: name, port: port, conns: map[net.Conn]struct{}{}}
	pod, err := l.pod(ctx)
	if err != nil {
		return nil, err
	}
	probe, err := kube.connect(ctx, pod)
	if err != nil {
		return nil, err
	}
	_ = probe.Close()
	l.ln, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("tunnel to %s: %w", l, err)
	}
	// Connections are not tied to the opener's context, only to Close.
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.wg.Add(1)
	go l.serve()
	return l, nil
}

func (l *localTunnel) String() string { return fmt.Sprintf("%s/%s:%d", l.kind, l.name, l.port) }

// endpoint is the local host:port the tunnel listens on.
func (l *localTunnel) endpoint() string { return l.ln.Addr().String() }

// pod is the pod a new connection goes to.
func (l *localTunnel) pod(ctx context.Context) (string, error) {
	if l.kind == k8s.ResourceTypePod {
		return l.name, nil
	}
	return l.kube.servicePod(ctx, l.name, l.pick.Add(1))
}

func (l *localTunnel) serve() {
	defer l.wg.Done()
	for {
		local, err := l.ln.Accept()
		if err != nil {
			return // closed
		}
		if !l.track(local) {
			_ = local.Close()
			return
		}
		l.wg.Add(1)
		go l.relay(local)
	}
}

// track records an open connection for Close; false once closed.
func (l *localTunnel) track(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.conns[c] = struct{}{}
	return true
}

func (l *localTunnel) untrack(c net.Conn) {
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
	_ = c.Close()
}

// relay copies between a local connection and its port-forward as kubectl
// port-forward does: the local end's EOF half-closes the forward, and the
// connection ends when the pod's end does (or a copy fails).
func (l *localTunnel) relay(local net.Conn) {
	defer l.wg.Done()
	defer l.untrack(local)
	ctx, cancel := context.WithTimeout(l.ctx, 30*time.Second)
	pod, err := l.pod(ctx)
	var remote net.Conn
	if err == nil {
		remote, err = l.kube.portForward(ctx, pod, l.port)
	}
	cancel()
	if err != nil || !l.track(remote) {
		if remote != nil {
			_ = remote.Close()
		}
		return
	}
	defer l.untrack(remote)
	localDone := make(chan error, 1)
	go func() {
		_, err := io.Copy(remote, local)
		if cw, ok := remote.(interface{ CloseWrite() error }); ok && err == nil {
			err = cw.CloseWrite()
		}
		localDone <- err
	}()
	remoteDone := make(chan struct{})
	go func() {
		_, _ = io.Copy(local, remote)
		close(remoteDone)
	}()
	select {
	case <-remoteDone:
	case err := <-localDone:
		if err != nil {
			break
		}
		<-remoteDone
	}
}

// Close stops listening and closes every connection; it is idempotent.
func (l *localTunnel) Close() {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	conns := l.conns
	l.conns = nil
	l.mu.Unlock()
	l.cancel()
	_ = l.ln.Close()
	for c := range conns {
		_ = c.Close()
	}
	l.wg.Wait()
}

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
		if pod, err = p.servicePod(ctx); err != nil {
			return nil, err
		}
	}
	raw, err := p.forward(ctx, pod, port)
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

// servicePod picks, round robin, a pod the client Service routes to now:
// an EndpointSlice endpoint that is ready and not terminating.
func (p *podTunnels) servicePod(ctx context.Context) (string, error) {
	list, err := p.kube.clientset.DiscoveryV1().EndpointSlices(p.kube.ns).List(ctx,
		metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + p.r.fullname})
	if err != nil {
		return "", err
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
		return "", fmt.Errorf("service %s has no ready endpoint", p.r.fullname)
	}
	sort.Strings(pods)
	return pods[int(p.svcNext.Add(1))%len(pods)], nil
}

// forward opens one port-forward stream pair to port of pod, on a SPDY
// connection of its own that the returned conn closes.
func (p *podTunnels) forward(ctx context.Context, pod string, port int) (net.Conn, error) {
	rt, upgrader, err := spdy.RoundTripperFor(p.kube.config)
	if err != nil {
		return nil, err
	}
	u := p.kube.clientset.CoreV1().RESTClient().Post().Resource("pods").Namespace(p.kube.ns).Name(pod).SubResource("portforward").URL()
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

func (s *streamConn) Close() error                     { return s.conn.Close() }
func (s *streamConn) LocalAddr() net.Addr              { return tunnelAddr("local") }
func (s *streamConn) RemoteAddr() net.Addr             { return s.addr }
func (s *streamConn) SetDeadline(time.Time) error      { return nil }
func (s *streamConn) SetReadDeadline(time.Time) error  { return nil }
func (s *streamConn) SetWriteDeadline(time.Time) error { return nil }

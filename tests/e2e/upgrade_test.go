//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/gruntwork-io/terratest/modules/k8s"
	"github.com/gruntwork-io/terratest/modules/random"
	"github.com/gruntwork-io/terratest/modules/retry"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
	"k8s.io/streaming/pkg/httpstream"

	"github.com/ephemeral-store/ephemeral-store/store/client"
	"github.com/ephemeral-store/ephemeral-store/store/kvhistory"
	"github.com/ephemeral-store/ephemeral-store/tests/internal/kindcluster"
)

const (
	// upgradeTag is the second tag of the store image the image upgrade
	// rolls to: the same image, so only the pod template changes.
	upgradeTag = "e2e-upgrade"
	// storeContainerName is the store's container in the StatefulSet.
	storeContainerName = "ephemeral-store"
	// loadClients write and read concurrently for the whole test.
	loadClients = 4
	// loadKeys is small, so that clients conflict on every key, and large
	// enough that porcupine checks each key's history quickly.
	loadKeys = 12
	// loadPace is the least time between the starts of a client's
	// operations: about 4 x 8 operations a second, frugal with the two
	// CPUs the kind cluster and the port-forwards share.
	loadPace = 120 * time.Millisecond
	// opBound is how long one operation is retried before it counts as a
	// failed request. A rolling restart interrupts a client for a few
	// seconds at most; two minutes is generous even on a frozen VM.
	opBound = 2 * time.Minute
	// callTimeout bounds each attempt (failover included).
	callTimeout = 15 * time.Second
	// opsBeforeAndAfter is how many operations every client completes
	// before the first upgrade starts and after the second one ended.
	opsBeforeAndAfter = 25
)

// TestE2ERollingUpgradeUnderLoad: two `helm upgrade`s roll every store pod
// (an annotation, then the image tag) while four clients write and read
// continuously through per-connection port-forwards, retrying what fails.
// Every request succeeds within its retries, the recorded history is
// linearizable (porcupine), no acknowledged write is lost, every pod was
// replaced, and the pods' own logs show that each pod that led when it got
// SIGTERM handed leadership over and left through the new leader before it
// stopped.
func TestE2ERollingUpgradeUnderLoad(t *testing.T) {
	c := suite(t, "rolling upgrade under load")
	r := install(t, c, installOptions{Label: "upgrade"})
	run := strings.ToLower(random.UniqueID())

	kube := newKubeAccess(t, c, r)
	logs := followStoreLogs(t, kube, r)
	tunnels := &podTunnels{kube: kube, r: r, tls: r.tls.Clone()}
	tunnels.tls.NextProtos = []string{"h2", "http/1.1"}
	admin := tunnels.client(t, r.fullname)
	r.members(t, admin)

	// The image the second upgrade rolls to, loaded into the nodes before
	// any traffic (kind load is not free on two CPUs).
	oldImage := r.storeImage(t)
	newImage := loadUpgradeImage(t, c, oldImage)

	load := newUpgradeLoad(run)
	clients := newLoadClients(t, r, tunnels, r.replicas)
	stopLoad := load.start(t, clients)
	t.Logf("load: %d clients on %d keys under %s, one operation per client every %s at most, each retried for up to %s",
		len(clients), loadKeys, load.prefix, loadPace, opBound)
	load.waitOps(t, opsBeforeAndAfter, "before the first upgrade")

	// Upgrade 1: a pod annotation rolls every pod on the same image.
	before := r.storePods(t)
	rollFrom := load.h.Now()
	start1 := time.Now()
	r.upgrade(t, map[string]string{"podAnnotations.e2e-roll": run})
	took1 := time.Since(start1)
	end1 := time.Now()
	after1 := requireRolled(t, r, before, "upgrade 1 (podAnnotations)")
	for name, p := range after1 {
		require.Equal(t, run, p.Annotations["e2e-roll"], "pod %s lacks the annotation of upgrade 1", name)
	}
	r.members(t, admin)
	t.Logf("upgrade 1 (podAnnotations.e2e-roll=%s) rolled every pod in %s (helm upgrade --wait, readiness, helm test)",
		run, took1.Round(time.Second))

	// Upgrade 2: the image tag.
	start2 := time.Now()
	r.upgrade(t, map[string]string{"image.tag": upgradeTag})
	took2 := time.Since(start2)
	end2 := time.Now()
	rollTo := load.h.Now()
	after2 := requireRolled(t, r, after1, "upgrade 2 (image.tag)")
	require.Equal(t, newImage, r.storeImage(t), "the StatefulSet's image after upgrade 2")
	for name, p := range after2 {
		require.Equal(t, newImage, p.Spec.Containers[0].Image, "pod %s runs the old image", name)
	}
	r.members(t, admin)
	t.Logf("upgrade 2 (image %s -> %s) rolled every pod in %s (helm upgrade --wait, readiness, helm test)",
		oldImage, newImage, took2.Round(time.Second))

	load.waitOps(t, opsBeforeAndAfter, "after the second upgrade")
	stopLoad()

	final := load.finalReads(t, r, tunnels)

	// Numbers first, then the verdicts.
	load.reportWithGap(t, rollFrom, rollTo, "during the upgrades")
	t.Logf("upgrades: 1 (annotation) %s, 2 (image) %s; tunnels: %d connections opened, %d refused",
		took1.Round(time.Second), took2.Round(time.Second), tunnels.dials.Load(), tunnels.refused.Load())
	load.verdicts(t, final, "e2e-upgrade-linearizability-*.html")

	logs.requireHandovers(t, []upgradeWindow{{"upgrade 1", start1, end1}, {"upgrade 2", start2, end2}}, 2*r.replicas)
}

// podOrdinals turns pod names into their ordinals, for short client names.
func podOrdinals(pods []string) []string {
	out := make([]string, len(pods))
	for i, p := range pods {
		out[i] = p[strings.LastIndex(p, "-")+1:]
	}
	return out
}

// loadUpgradeImage tags the image the release runs as upgradeTag and loads
// it into the kind nodes; it returns the new reference.
func loadUpgradeImage(t *testing.T, c *kindcluster.Cluster, current string) string {
	t.Helper()
	i := strings.LastIndex(current, ":")
	require.True(t, i > 0 && !strings.Contains(current[i:], "/") && !strings.Contains(current, "@"),
		"the StatefulSet's image %q is not repository:tag", current)
	target := current[:i] + ":" + upgradeTag
	runHostTool(t, "docker", "tag", current, target)
	runHostTool(t, filepath.Join(c.RepoRoot, "bin", "kind"), "load", "docker-image", target, "--name", c.Name)
	t.Logf("image %s tagged %s and loaded into kind cluster %s", current, target, c.Name)
	return target
}

func runHostTool(t *testing.T, name string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	require.NoError(t, err, "%s %s:\n%s", name, strings.Join(args, " "), out)
}

// requireRolled fails unless every store pod of before was replaced (a new
// UID) and none of the new ones restarted; it returns the new pods.
func requireRolled(t *testing.T, r *release, before map[string]corev1.Pod, what string) map[string]corev1.Pod {
	t.Helper()
	after := r.storePods(t)
	require.Len(t, after, r.replicas, "store pods after %s", what)
	for i := range r.replicas {
		name := r.pod(i)
		old, now := before[name], after[name]
		require.NotEqual(t, old.UID, now.UID, "%s did not replace pod %s (%s)", what, name, podIdentity(now))
		for _, cs := range now.Status.ContainerStatuses {
			require.Zero(t, cs.RestartCount, "pod %s restarted after %s", name, what)
		}
		t.Logf("%s: %s %s -> %s", what, name, old.UID, now.UID)
	}
	return after
}

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

// loadClient is one client of the load.
type loadClient struct {
	name string
	cl   *client.Client
	done atomic.Int64 // operations completed
}

// loadOpMeta annotates an operation in porcupine's visualization.
type loadOpMeta struct {
	Client  string
	Attempt int
	Err     string
}

func (m loadOpMeta) String() string {
	s := fmt.Sprintf("%s attempt %d", m.Client, m.Attempt)
	if m.Err != "" {
		s += ": " + m.Err
	}
	return s
}

// upgradeLoad is the clients' traffic and its record. Each operation is
// retried until it succeeds or opBound passes: a read that fails is not
// recorded (it had no effect); a write is recorded per attempt, acknowledged
// or, when its outcome is unknown, with Return EndOfTime, and retried with a
// new value; a write that provably reached no server is retried unrecorded.
type upgradeLoad struct {
	h      *kvhistory.Recorder
	prefix string
	keys   []string

	ops, reads, acked, unknown, notSent, retries atomic.Int64

	mu          sync.Mutex
	failures    []string
	retryWhy    []string // the first reasons to retry, for the log
	longest     time.Duration
	longestWhat string
	clients     []*loadClient
}

func newUpgradeLoad(run string) *upgradeLoad {
	l := &upgradeLoad{h: kvhistory.NewRecorder(), prefix: "upgrade/" + run + "/"}
	for i := range loadKeys {
		l.keys = append(l.keys, fmt.Sprintf("%sk%02d", l.prefix, i))
	}
	return l
}

// start runs the clients until the returned stop is called (or the test
// ends); stop returns once every operation in flight has finished.
func (l *upgradeLoad) start(t *testing.T, clients []*loadClient) (stop func()) {
	t.Helper()
	l.clients = clients
	stopCtx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	for id, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.client(t.Context(), stopCtx, id, c)
		}()
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			wg.Wait()
		})
	}
	t.Cleanup(stop)
	return stop
}

// client runs operations until stop ends; ctx (the test's) aborts one in
// flight only when the test itself ends.
func (l *upgradeLoad) client(ctx, stop context.Context, id int, c *loadClient) {
	rng := rand.New(rand.NewPCG(uint64(id), uint64(time.Now().UnixNano())))
	for seq := 0; stop.Err() == nil; seq++ {
		begin := time.Now()
		key := l.keys[rng.IntN(len(l.keys))]
		if rng.IntN(2) == 0 {
			l.get(ctx, id, c, key)
		} else {
			l.put(ctx, id, c, key, seq)
		}
		c.done.Add(1)
		l.ops.Add(1)
		select {
		case <-stop.Done():
		case <-time.After(loadPace - time.Since(begin)):
		}
	}
}

func (l *upgradeLoad) fail(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failures = append(l.failures, fmt.Sprintf(format, args...))
}

// retrying counts a retry and keeps the first reasons.
func (l *upgradeLoad) retrying(c *loadClient, what string, attempt int, err error) {
	l.retries.Add(1)
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.retryWhy) < 12 {
		l.retryWhy = append(l.retryWhy, fmt.Sprintf("%s: %s, attempt %d: %v", c.name, what, attempt, err))
	}
}

func (l *upgradeLoad) waited(d time.Duration, what string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if d > l.longest {
		l.longest, l.longestWhat = d, what
	}
}

// loadBackoff is the pause before attempt n+1: 50 ms doubling to 1 s.
func loadBackoff(ctx context.Context, n int) {
	d := 50 * time.Millisecond << min(n-1, 5)
	select {
	case <-ctx.Done():
	case <-time.After(min(d, time.Second)):
	}
}

// get is a linearizable read, retried until it has an answer.
func (l *upgradeLoad) get(ctx context.Context, id int, c *loadClient, key string) (kvhistory.Output, bool) {
	start := time.Now()
	for attempt := 1; ; attempt++ {
		call := l.h.Now()
		kv, err := c.cl.Get(ctx, key)
		ret := l.h.Now()
		var out kvhistory.Output
		switch {
		case err == nil:
			out = kvhistory.Output{Found: true, Value: string(kv.Value), Rev: kv.ModifyRevision}
		case errors.Is(err, client.ErrKeyNotFound):
		case ctx.Err() != nil:
			return out, false // the test is over
		case kvhistory.Rejected(err) || time.Since(start) > opBound:
			l.fail("%s: get %s: %d attempts over %s, the last: %v", c.name, key, attempt, time.Since(start).Round(time.Millisecond), err)
			return out, false
		default:
			l.retrying(c, "get "+key, attempt, err)
			loadBackoff(ctx, attempt)
			continue
		}
		l.h.Add(porcupine.Operation{ClientId: id, Input: kvhistory.Input{Op: kvhistory.Get, Key: key}, Call: call,
			Output: out, Return: ret, Metadata: loadOpMeta{Client: c.name, Attempt: attempt}})
		l.reads.Add(1)
		l.waited(time.Since(start), fmt.Sprintf("%s: get %s (%d attempts)", c.name, key, attempt))
		return out, true
	}
}

// put writes a value unique to the attempt, retried until acknowledged.
func (l *upgradeLoad) put(ctx context.Context, id int, c *loadClient, key string, seq int) {
	start := time.Now()
	for attempt := 1; ; attempt++ {
		value := fmt.Sprintf("%s-%d-a%d", c.name, seq, attempt)
		call := l.h.Now()
		res, err := c.cl.Put(ctx, key, []byte(value))
		ret := l.h.Now()
		op := porcupine.Operation{ClientId: id, Input: kvhistory.Input{Op: kvhistory.Put, Key: key, Value: value},
			Call: call, Return: ret, Metadata: loadOpMeta{Client: c.name, Attempt: attempt}}
		switch {
		case err == nil:
			op.Output = kvhistory.Output{Rev: res.ModifyRevision}
			l.h.Add(op)
			l.acked.Add(1)
			l.waited(time.Since(start), fmt.Sprintf("%s: put %s (%d attempts)", c.name, key, attempt))
			return
		case kvhistory.Rejected(err):
			l.fail("%s: put %s refused: %v", c.name, key, err)
			return
		case kvhistory.NotSent(err):
			l.notSent.Add(1)
		default:
			// Sent, outcome unknown: it may take effect at any time.
			op.Output, op.Return = kvhistory.Output{Unknown: true}, kvhistory.EndOfTime
			op.Metadata = loadOpMeta{Client: c.name, Attempt: attempt, Err: err.Error()}
			l.h.Add(op)
			l.unknown.Add(1)
		}
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > opBound {
			l.fail("%s: put %s: %d attempts over %s, the last: %v", c.name, key, attempt, time.Since(start).Round(time.Millisecond), err)
			return
		}
		l.retrying(c, "put "+key, attempt, err)
		loadBackoff(ctx, attempt)
	}
}

// waitOps waits until every client has completed n more operations.
func (l *upgradeLoad) waitOps(t *testing.T, n int64, when string) {
	t.Helper()
	base := make([]int64, len(l.clients))
	for i, c := range l.clients {
		base[i] = c.done.Load()
	}
	_, err := retry.DoWithRetryContextE(t, t.Context(), fmt.Sprintf("every client completes %d operations %s", n, when),
		pollTries, pollEvery, func() (string, error) {
			for i, c := range l.clients {
				if got := c.done.Load() - base[i]; got < n {
					return "", fmt.Errorf("client %s has completed %d of %d operations (%d failures so far)", c.name, got, n, len(l.failuresList()))
				}
			}
			return "", nil
		})
	require.NoError(t, err)
	t.Logf("every client completed %d operations %s (%d operations so far)", n, when, l.ops.Load())
}

// readAll reads every key through c as client id (recorded, retried like
// any read).
func (l *upgradeLoad) readAll(t *testing.T, id int, c *loadClient) map[string]kvhistory.Output {
	t.Helper()
	out := map[string]kvhistory.Output{}
	for _, key := range l.keys {
		got, ok := l.get(t.Context(), id, c, key)
		require.True(t, ok, "final read of %s through %s failed: %v", key, c.name, l.failuresList())
		out[key] = got
	}
	return out
}

func (l *upgradeLoad) failuresList() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.failures)
}

func (l *upgradeLoad) report(t *testing.T) {
	t.Helper()
	l.mu.Lock()
	longest, what, why := l.longest, l.longestWhat, slices.Clone(l.retryWhy)
	l.mu.Unlock()
	for _, w := range why {
		t.Logf("load: retried %s", w)
	}
	t.Logf("load: %d operations (%d reads, %d acknowledged writes), %d retries (%d writes provably not sent, %d unknown outcomes), %d failed after retries",
		l.ops.Load(), l.reads.Load(), l.acked.Load(), l.retries.Load(), l.notSent.Load(), l.unknown.Load(), len(l.failuresList()))
	t.Logf("load: the longest wait for an answer was %s: %s", longest.Round(time.Millisecond), what)
}

// longestWriteGap is the longest time between from and to (timestamps of
// the recorder) when no client had a write acknowledged, and its start.
func (l *upgradeLoad) longestWriteGap(from, to int64) (time.Duration, time.Time) {
	times := []int64{from, to}
	for _, op := range l.h.Operations() {
		in, out := op.Input.(kvhistory.Input), op.Output.(kvhistory.Output)
		if in.Op == kvhistory.Put && !out.Unknown && op.Return > from && op.Return < to {
			times = append(times, op.Return)
		}
	}
	slices.Sort(times)
	var gap int64
	start := from
	for i := 1; i < len(times); i++ {
		if d := times[i] - times[i-1]; d > gap {
			gap, start = d, times[i-1]
		}
	}
	return time.Duration(gap), l.h.Time(start)
}

// lostWrites compares each key's final state with its acknowledged put of
// the highest revision: the final state must be that write, or a later
// write whose outcome was unknown.
func (l *upgradeLoad) lostWrites(final map[string]kvhistory.Output) []string {
	type write struct {
		value string
		rev   int64
	}
	last := map[string]write{}
	unknown := map[string]bool{} // key + "\x00" + value
	for _, op := range l.h.Operations() {
		in, out := op.Input.(kvhistory.Input), op.Output.(kvhistory.Output)
		switch {
		case in.Op != kvhistory.Put:
		case out.Unknown:
			unknown[in.Key+"\x00"+in.Value] = true
		case out.Rev > last[in.Key].rev:
			last[in.Key] = write{in.Value, out.Rev}
		}
	}
	var lost []string
	for _, key := range l.keys {
		w, ok := last[key]
		if !ok {
			continue
		}
		st := final[key]
		switch {
		case !st.Found:
			lost = append(lost, fmt.Sprintf("%s: last acknowledged put %q@%d, now absent", key, w.value, w.rev))
		case st.Rev == w.rev && st.Value == w.value:
		case st.Rev > w.rev && unknown[key+"\x00"+st.Value]:
		default:
			lost = append(lost, fmt.Sprintf("%s: last acknowledged put %q@%d, final state %q@%d", key, w.value, w.rev, st.Value, st.Rev))
		}
	}
	return lost
}

// The evidence of the handover comes from the store pods' own logs,
// followed (kubectl logs -f, through the API) from before the first upgrade
// for every incarnation of every pod, since a replaced pod's log is gone
// (kubectl logs --previous only covers a restarted container). A poll of
// /v1/cluster or of ephemeral_store_is_leader would only sample the
// leadership, and through the very port-forwards the roll breaks; the logs
// record every step, written by the process that took it:
//
//   - on SIGTERM an incarnation logs "signal received" (cli/serve.go); then
//     server.Server.Close reports not ready and keeps serving for the drain
//     delay (2 s), closes the client API, and cluster.Node.Close transfers
//     leadership if it leads (raft LeadershipTransfer; a failure logs
//     "leadership transfer failed"), then leaves: a follower asks the
//     leader, which retires it and logs "member left" with its id
//     (cluster/rpc.go handleLeave, which only a leader serves), while a
//     node still leading retires itself and no other node logs that line;
//     then it logs "raft stopped" and "stopped";
//   - every incarnation logs "leading" once it leads and may serve reads
//     (cluster/node.go watchLeadership), so the leader at an instant is the
//     author of the latest "leading" line before it (the pods share the
//     host's clock in kind).
//
// So "member left id=X" written by another incarnation Y proves, without
// comparing clocks, that when X left, Y led and X did not. For an X that led
// at its SIGTERM, that is the handover, and it happened before X's Raft
// stopped: the leader was a terminating pod only for its drain and the
// transfer. The timeline logged says how long that took, from the SIGTERM
// to the new leader's "leading".

// upgradeWindow is when an upgrade ran, to attribute each SIGTERM to one.
type upgradeWindow struct {
	name       string
	start, end time.Time
}

// storeLogEvent is one JSON line of a store's log (slog).
type storeLogEvent struct {
	At    time.Time `json:"time"`
	Level string    `json:"level"`
	Msg   string    `json:"msg"`
	ID    string    `json:"id"`
	Err   string    `json:"err"`
	// Raw is the line as logged.
	Raw string `json:"-"`
}

// storeIncarnation is one process of a store pod, named by its Raft ID.
type storeIncarnation struct {
	pod    string
	id     string
	events []storeLogEvent
}

func (inc *storeIncarnation) first(msg string) (storeLogEvent, bool) {
	for _, ev := range inc.events {
		if ev.Msg == msg {
			return ev, true
		}
	}
	return storeLogEvent{}, false
}

// storeLogs follows the logs of every incarnation of every store pod.
type storeLogs struct {
	mu    sync.Mutex
	byID  map[string]*storeIncarnation
	order []*storeIncarnation // by the start of their stream
}

// followStoreLogs starts one follower per pod name; each follows the pod of
// that name that exists, one incarnation after the other, until the test ends.
func followStoreLogs(t *testing.T, kube *kubeAccess, r *release) *storeLogs {
	t.Helper()
	l := &storeLogs{byID: map[string]*storeIncarnation{}}
	var wg sync.WaitGroup
	for i := range r.replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.follow(t.Context(), kube, r.pod(i))
		}()
	}
	t.Cleanup(wg.Wait)
	// Wait until the current incarnations are known, so that nothing of
	// the upgrades can be missed.
	_, err := retry.DoWithRetryContextE(t, t.Context(), "the logs of every store pod are followed", 60, time.Second,
		func() (string, error) {
			l.mu.Lock()
			defer l.mu.Unlock()
			pods := map[string]bool{}
			for _, inc := range l.order {
				pods[inc.pod] = true
			}
			if len(pods) < r.replicas {
				return "", fmt.Errorf("following %d of %d pods", len(pods), r.replicas)
			}
			return "", nil
		})
	require.NoError(t, err)
	return l
}

func (l *storeLogs) follow(ctx context.Context, kube *kubeAccess, pod string) {
	pods := kube.clientset.CoreV1().Pods(kube.ns)
	finished := map[types.UID]bool{}
	pause := func() {
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
	for ctx.Err() == nil {
		p, err := pods.Get(ctx, pod, metav1.GetOptions{})
		if err != nil || finished[p.UID] || !containerStarted(p) {
			pause()
			continue
		}
		uid := p.UID
		if err := l.stream(ctx, pods.GetLogs(pod, &corev1.PodLogOptions{Container: storeContainerName, Follow: true}), pod); err != nil {
			pause()
			continue
		}
		// The stream ended: the container stopped, or only the stream
		// broke (then it is followed again, its lines deduplicated).
		p, err = pods.Get(ctx, pod, metav1.GetOptions{})
		if apierrors.IsNotFound(err) || (err == nil && (p.UID != uid || !containerRunning(p))) {
			finished[uid] = true
		}
		pause()
	}
}

func containerStarted(p *corev1.Pod) bool {
	for _, cs := range p.Status.ContainerStatuses {
		if cs.Name == storeContainerName && (cs.State.Running != nil || cs.State.Terminated != nil) {
			return true
		}
	}
	return false
}

func containerRunning(p *corev1.Pod) bool {
	for _, cs := range p.Status.ContainerStatuses {
		if cs.Name == storeContainerName && cs.State.Running != nil {
			return true
		}
	}
	return false
}

// stream reads one log stream to its end. Its lines belong to the
// incarnation named by its "raft started" line; lines already recorded
// from an earlier stream of the same incarnation are skipped.
func (l *storeLogs) stream(ctx context.Context, req *rest.Request, pod string) error {
	rc, err := req.Stream(ctx)
	if err != nil {
		return err
	}
	defer rc.Close()
	var (
		inc     *storeIncarnation
		pending []storeLogEvent
		n       int // events of inc in this stream
	)
	sc := bufio.NewScanner(rc)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var ev storeLogEvent
		if json.Unmarshal(sc.Bytes(), &ev) != nil || ev.Msg == "" {
			continue
		}
		ev.Raw = sc.Text()
		if ev.Msg == "raft started" && ev.ID != "" && (inc == nil || inc.id != ev.ID) {
			// A new incarnation (the first of the stream, or one that
			// rejoined under a new ID in the same process).
			inc, n = l.incarnation(pod, ev.ID), 0
		}
		if inc == nil {
			pending = append(pending, ev)
			continue
		}
		for _, e := range append(pending, ev) {
			l.mu.Lock()
			if n >= len(inc.events) {
				inc.events = append(inc.events, e)
			}
			l.mu.Unlock()
			n++
		}
		pending = nil
	}
	return sc.Err()
}

func (l *storeLogs) incarnation(pod, id string) *storeIncarnation {
	l.mu.Lock()
	defer l.mu.Unlock()
	if inc, ok := l.byID[id]; ok {
		return inc
	}
	inc := &storeIncarnation{pod: pod, id: id}
	l.byID[id] = inc
	l.order = append(l.order, inc)
	return inc
}

// snapshot copies the incarnations and their events.
func (l *storeLogs) snapshot() []storeIncarnation {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]storeIncarnation, len(l.order))
	for i, inc := range l.order {
		out[i] = storeIncarnation{pod: inc.pod, id: inc.id, events: slices.Clone(inc.events)}
	}
	return out
}

// requireHandovers checks the logs as the comment above says: want
// incarnations ended on SIGTERM within the upgrades, each one handing
// leadership over if it led, leaving through another leader, and exiting
// before the grace period ran out; at least one of them led at its SIGTERM.
func (l *storeLogs) requireHandovers(t *testing.T, windows []upgradeWindow, want int) {
	t.Helper()
	// The last lines of the current leader (a "member left") may still be
	// on their way: wait until every ended incarnation is accounted for.
	var incs []storeIncarnation
	var problems []handoverProblem
	_, err := retry.DoWithRetryContextE(t, t.Context(), "the store logs show every SIGTERM's handover", 15, pollEvery,
		func() (string, error) {
			incs = l.snapshot()
			var ended int
			ended, problems = handoverProblems(incs)
			if ended < want {
				return "", fmt.Errorf("%d incarnations ended on SIGTERM in the logs, want %d", ended, want)
			}
			if len(problems) > 0 {
				return "", fmt.Errorf("%d problems", len(problems))
			}
			return "", nil
		})
	for _, line := range handoverTimeline(incs, windows) {
		t.Log(line)
	}
	for _, p := range problems {
		t.Errorf("handover: %s", p.what)
		if p.id == "" {
			continue
		}
		// The evidence: the incarnation's lines from its SIGTERM on, and
		// every warning of the others meanwhile.
		var lines []string
		for _, inc := range incs {
			for _, ev := range inc.events {
				if ev.At.Before(p.from) || ev.At.After(p.to) || (inc.id != p.id && ev.Level != "WARN" && ev.Level != "ERROR" && ev.Msg != "leading" && ev.Msg != "member left") {
					continue
				}
				lines = append(lines, ev.At.Format("15:04:05.000000")+" "+inc.id+" "+ev.Raw)
			}
		}
		sort.Strings(lines)
		if len(lines) > 80 {
			lines = lines[:80]
		}
		t.Logf("the logs of every store pod from %s's SIGTERM to its exit (its own lines, the others' warnings):\n  %s", p.id, strings.Join(lines, "\n  "))
	}
	require.NoError(t, err)
}

// handoverProblem is what the logs show wrong with one SIGTERM, and the
// span of the logs that shows it.
type handoverProblem struct {
	id       string
	what     string
	from, to time.Time
}

// leaderAt is the incarnation whose "leading" line is the latest at or
// before at ("" when none).
func leaderAt(incs []storeIncarnation, at time.Time) string {
	var best time.Time
	leader := ""
	for _, inc := range incs {
		for _, ev := range inc.events {
			if ev.Msg == "leading" && !ev.At.After(at) && !ev.At.Before(best) {
				best, leader = ev.At, inc.id
			}
		}
	}
	return leader
}

// leftThrough is the incarnation that logged "member left" for id, and when.
func leftThrough(incs []storeIncarnation, id string) (string, time.Time) {
	for _, inc := range incs {
		for _, ev := range inc.events {
			if ev.Msg == "member left" && ev.ID == id {
				return inc.id, ev.At
			}
		}
	}
	return "", time.Time{}
}

// successor is the first incarnation other than id that logged "leading"
// after from, and when.
func successor(incs []storeIncarnation, id string, from time.Time) (string, time.Time) {
	var next string
	var at time.Time
	for _, inc := range incs {
		for _, ev := range inc.events {
			if inc.id != id && ev.Msg == "leading" && ev.At.After(from) && (next == "" || ev.At.Before(at)) {
				next, at = inc.id, ev.At
			}
		}
	}
	return next, at
}

// handoverProblems counts the incarnations that ended on SIGTERM and lists
// what the logs show wrong with any of them: a leader that did not hand
// over before its Raft stopped, or led again; a failed transfer; a leave
// that no other leader confirmed; an exit that never came.
func handoverProblems(incs []storeIncarnation) (int, []handoverProblem) {
	var problems []handoverProblem
	ended, leaders := 0, 0
	for _, inc := range incs {
		sig, ok := inc.first("signal received, leaving the cluster")
		if !ok {
			continue
		}
		ended++
		end := inc.events[len(inc.events)-1].At
		stop, stopped := inc.first("raft stopped")
		if !stopped {
			stop.At = end
		}
		problem := func(format string, args ...any) {
			problems = append(problems, handoverProblem{id: inc.id, what: inc.id + " " + fmt.Sprintf(format, args...), from: sig.At, to: end})
		}
		if leaderAt(incs, sig.At) == inc.id {
			leaders++
			if next, at := successor(incs, inc.id, sig.At); next == "" || at.After(stop.At) {
				problem("led at its SIGTERM (%s) and no other incarnation took over before its Raft stopped", sig.At.Format(time.StampMilli))
			}
		}
		for _, ev := range inc.events {
			switch {
			case ev.At.After(sig.At) && ev.Msg == "leading":
				problem("led again after its SIGTERM, at %s", ev.At.Format(time.StampMilli))
			case ev.Msg == "leadership transfer failed":
				problem("logged %q: %s", ev.Msg, ev.Err)
			}
		}
		_, leftLogged := inc.first("left the cluster")
		by, _ := leftThrough(incs, inc.id)
		switch {
		case by == "" && !leftLogged:
			why := "never logged \"left the cluster\""
			if ev, ok := inc.first("could not leave the cluster before the deadline"); ok {
				why = fmt.Sprintf("gave up leaving at %s (\"%s\": its shutdown timeout ran out)", ev.At.Format(time.StampMilli), ev.Msg)
			}
			problem("could not leave the cluster after its SIGTERM: no leader confirmed it (no \"member left\" for it in another incarnation's log) and it %s", why)
		case by == "" || by == inc.id:
			problem("left the cluster as its own leader (no \"member left\" for it in another incarnation's log)")
		}
		if _, ok := inc.first("stopped"); !ok {
			problem("got SIGTERM at %s but its log ends before \"stopped\" (killed before its graceful exit ended?)", sig.At.Format(time.StampMilli))
		}
	}
	if ended > 0 && leaders == 0 {
		problems = append(problems, handoverProblem{what: fmt.Sprintf("none of the %d incarnations ended on SIGTERM led at its SIGTERM: the logs show no handover at all", ended)})
	}
	return ended, problems
}

// handoverTimeline describes every SIGTERM, in order, for the test log.
func handoverTimeline(incs []storeIncarnation, windows []upgradeWindow) []string {
	type term struct {
		inc storeIncarnation
		sig time.Time
	}
	var terms []term
	for _, inc := range incs {
		if sig, ok := inc.first("signal received, leaving the cluster"); ok {
			terms = append(terms, term{inc, sig.At})
		}
	}
	sort.Slice(terms, func(i, j int) bool { return terms[i].sig.Before(terms[j].sig) })
	var lines []string
	for _, tm := range terms {
		window := "outside the upgrades"
		for _, w := range windows {
			if !tm.sig.Before(w.start) && !tm.sig.After(w.end) {
				window = w.name
			}
		}
		rel := func(at time.Time) string { return "+" + at.Sub(tm.sig).Round(time.Millisecond).String() }
		line := fmt.Sprintf("%s: %s SIGTERM at %s", window, tm.inc.id, tm.sig.Format("15:04:05.000"))
		if leaderAt(incs, tm.sig) == tm.inc.id {
			line += " as the leader"
			if next, at := successor(incs, tm.inc.id, tm.sig); next != "" {
				line += fmt.Sprintf("; %s leading %s", next, rel(at))
			} else {
				line += "; no new leader in the logs"
			}
		} else {
			line += fmt.Sprintf(" as a follower of %s", leaderAt(incs, tm.sig))
		}
		if by, at := leftThrough(incs, tm.inc.id); by != "" {
			line += fmt.Sprintf("; left through %s %s", by, rel(at))
		} else {
			line += "; no leader confirmed its leave"
		}
		if ev, ok := tm.inc.first("raft stopped"); ok {
			line += fmt.Sprintf("; raft stopped %s", rel(ev.At))
		}
		if ev, ok := tm.inc.first("stopped"); ok {
			line += fmt.Sprintf("; exited %s", rel(ev.At))
		}
		lines = append(lines, line)
	}
	return lines
}

// TestE2ERollingUpgradeUnderLoadVerdictsCanFail is the teeth check of the suite's
// verdicts, without a cluster: the log analysis flags a leader that did not
// hand over, and the lost-write check flags an overwritten acknowledged
// write, while accepting the histories a correct roll produces.
func TestE2ERollingUpgradeUnderLoadVerdictsCanFail(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	ev := func(ms int, msg, id string) storeLogEvent {
		return storeLogEvent{At: at(ms), Level: "INFO", Msg: msg, ID: id}
	}
	// a led from the start and got SIGTERM at 1000; b took over.
	leaver := func(extra ...storeLogEvent) storeIncarnation {
		evs := []storeLogEvent{ev(0, "raft started", "a"), ev(10, "leading", "a"), ev(1000, "signal received, leaving the cluster", "")}
		evs = append(evs, extra...)
		return storeIncarnation{pod: "p-0", id: "a", events: evs}
	}
	graceful := []storeLogEvent{ev(4000, "left the cluster", "a"), ev(4010, "raft stopped", "a"), ev(4020, "stopped", "")}
	successor := storeIncarnation{pod: "p-1", id: "b", events: []storeLogEvent{
		ev(0, "raft started", "b"), ev(3900, "leading", "b"), ev(3990, "member left", "a")}}
	selfRetired := storeIncarnation{pod: "p-1", id: "b", events: []storeLogEvent{ev(0, "raft started", "b"), ev(4100, "leading", "b")}}
	transferFailed := storeLogEvent{At: at(3500), Level: "WARN", Msg: "leadership transfer failed", Err: "timeout"}
	gaveUp := storeLogEvent{At: at(11000), Level: "WARN", Msg: "could not leave the cluster before the deadline", ID: "a"}
	unconfirmed := storeIncarnation{pod: "p-1", id: "b", events: []storeLogEvent{ev(0, "raft started", "b"), ev(3900, "leading", "b")}}

	tests := []struct {
		name  string
		incs  []storeIncarnation
		wants string // a substring of a problem; "" for none
	}{
		{"leader handed over and left through its successor", []storeIncarnation{leaver(graceful...), successor}, ""},
		{"leader left as the leader", []storeIncarnation{leaver(graceful...), selfRetired}, "left the cluster as its own leader"},
		{"nobody took over before the leader stopped", []storeIncarnation{leaver(graceful...), selfRetired}, "no other incarnation took over"},
		{"leadership transfer failed", []storeIncarnation{leaver(append([]storeLogEvent{transferFailed}, graceful...)...), successor}, "leadership transfer failed"},
		{"leave never confirmed", []storeIncarnation{leaver(gaveUp, ev(11001, "raft stopped", "a"), ev(11002, "stopped", "")), unconfirmed}, "could not leave the cluster"},
		{"led again after SIGTERM", []storeIncarnation{leaver(append([]storeLogEvent{ev(3950, "leading", "a")}, graceful...)...), successor}, "led again"},
		{"killed before the graceful exit ended", []storeIncarnation{leaver(graceful[0]), successor}, "ends before \"stopped\""},
		{"no terminated pod ever led", []storeIncarnation{
			{pod: "p-0", id: "a", events: append([]storeLogEvent{ev(0, "raft started", "a"), ev(1000, "signal received, leaving the cluster", "")}, graceful...)},
			{pod: "p-1", id: "b", events: []storeLogEvent{ev(0, "raft started", "b"), ev(10, "leading", "b"), ev(3990, "member left", "a")}},
		}, "no handover at all"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ended, problems := handoverProblems(tt.incs)
			require.Equal(t, 1, ended)
			var whats []string
			for _, p := range problems {
				whats = append(whats, p.what)
			}
			if tt.wants == "" {
				require.Empty(t, whats)
				return
			}
			require.True(t, slices.ContainsFunc(whats, func(w string) bool { return strings.Contains(w, tt.wants) }),
				"no problem says %q: %v", tt.wants, whats)
		})
	}

	// Lost writes: k's last acknowledged put is "c-2"@20.
	l := newUpgradeLoad("teeth")
	key := l.keys[0]
	putOp := func(value string, rev int64, unknown bool) porcupine.Operation {
		op := porcupine.Operation{Input: kvhistory.Input{Op: kvhistory.Put, Key: key, Value: value}, Output: kvhistory.Output{Rev: rev}, Return: 1}
		if unknown {
			op.Output, op.Return = kvhistory.Output{Unknown: true}, kvhistory.EndOfTime
		}
		return op
	}
	l.h.Add(putOp("c-1", 10, false))
	l.h.Add(putOp("c-2", 20, false))
	l.h.Add(putOp("c-3", 0, true))
	for _, tt := range []struct {
		final kvhistory.Output
		lost  bool
	}{
		{kvhistory.Output{Found: true, Value: "c-2", Rev: 20}, false},
		{kvhistory.Output{Found: true, Value: "c-3", Rev: 30}, false}, // the later unknown write
		{kvhistory.Output{Found: true, Value: "c-1", Rev: 10}, true},
		{kvhistory.Output{Found: true, Value: "other", Rev: 30}, true},
		{kvhistory.Output{}, true},
	} {
		lost := l.lostWrites(map[string]kvhistory.Output{key: tt.final})
		require.Equal(t, tt.lost, len(lost) > 0, "final %+v: lost %v", tt.final, lost)
	}
}

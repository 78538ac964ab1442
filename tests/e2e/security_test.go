//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gruntwork-io/terratest/modules/k8s"
	"github.com/gruntwork-io/terratest/modules/random"
	"github.com/gruntwork-io/terratest/modules/retry"
	"github.com/stretchr/testify/require"

	"github.com/ephemeral-store/ephemeral-store/store/client/api"
	"github.com/ephemeral-store/ephemeral-store/tests/internal/testca"
)

// peerCommonName is the CN a peer certificate must carry (values tls.peerCommonName).
const peerCommonName = "ephemeral-store-peer"

// TLS alerts as Go's crypto/tls names them (RFC 8446 section 6.2): what a
// store port answers when it refuses a client certificate in the handshake.
const (
	alertCertificateRequired = "tls: certificate required"          // no certificate (TLS 1.3)
	alertUnknownCA           = "tls: unknown certificate authority" // does not chain to the CA
	alertExpired             = "tls: expired certificate"           // chains, but expired
	alertBadCertificate      = "tls: bad certificate"               // refused otherwise (peer port: not a peer's CN)
)

// TestE2ESecurity: against a real install, every wrong way in is refused
// with its own failure, while the release's user gets in on the same port
// (so a refusal is never "nothing listening"): no client certificate, a
// certificate of another CA (with the same subject as the real one), an
// unknown user's certificate of the right CA (401 unauthenticated, logged
// and counted), an expired certificate of the right CA, and a user's valid
// certificate on the peer port (only a peer's CN may connect there, which
// the server's own certificate proves). Then the server certificate is
// rotated by rewriting its Secret with a new certificate of the same CA: every
// pod serves it on both ports, and no pod restarted.
func TestE2ESecurity(t *testing.T) {
	c := suite(t, "Security on the cluster")
	r := install(t, c, installOptions{Label: "security"})
	run := strings.ToLower(random.UniqueID())
	ca := r.releaseCA(t)
	other := testca.New(t, ca.Cert.Subject.CommonName)
	pods := r.identities(t)
	t.Logf("store pods: %v", pods)

	// The valid user on the client port: the twin of every refusal below.
	key := "security/" + run
	cl, _ := r.podClient(t, 0)
	_, err := cl.Put(t.Context(), key, []byte("guarded"))
	require.NoError(t, err, "the release's user %s puts %s through %s", testUser, key, r.pod(0))
	kv, err := cl.Get(t.Context(), key)
	require.NoError(t, err)
	require.Equal(t, "guarded", string(kv.Value))
	t.Logf("user %s (the chart's certificate) puts and gets %s through %s:%d", testUser, key, r.pod(0), clientPort)

	clientEP := r.newPortProbe(t, 0, clientPort)
	peerEP := r.newPortProbe(t, 0, peerPort)
	got := clientEP.request(t, r.tls, "/v1/kv/"+key)
	require.Equal(t, http.StatusOK, got.Status, "the valid user on the client port: %s", got)
	require.Equal(t, "guarded", got.Body)
	t.Logf("raw probe, user %s on %s:%d: %s", testUser, r.pod(0), clientPort, got)

	unknownUser := "stranger-" + run
	unknownCert, unknownKey := ca.ValidClientCert(t, unknownUser)
	otherCert, otherKey := other.ValidClientCert(t, testUser)
	expiredCert, expiredKey := ca.ClientCert(t, testUser, time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour))
	userCert, userKey := ca.ValidClientCert(t, testUser)
	authFailuresBefore := r.metrics(t, 0, "ephemeral_store_auth_failures_total")

	refusals := []struct {
		name    string
		probe   *portProbe
		cfg     *tls.Config
		alert   string // the refusal is this TLS alert
		status  int    // or this HTTP status with the JSON error code
		code    string
		message string
	}{
		{name: "no client certificate", probe: clientEP, cfg: r.tlsConfig(t, nil, nil, ca.CertPEM), alert: alertCertificateRequired},
		{name: "certificate of another CA with the same subject", probe: clientEP, cfg: r.tlsConfig(t, otherCert, otherKey, ca.CertPEM), alert: alertUnknownCA},
		{name: "right CA, unknown CN " + unknownUser, probe: clientEP, cfg: r.tlsConfig(t, unknownCert, unknownKey, ca.CertPEM),
			status: http.StatusUnauthorized, code: "unauthenticated", message: fmt.Sprintf("user %q is not allowed in", unknownUser)},
		{name: "right CA, expired", probe: clientEP, cfg: r.tlsConfig(t, expiredCert, expiredKey, ca.CertPEM), alert: alertExpired},
		{name: "valid user certificate on the peer port", probe: peerEP, cfg: r.tlsConfig(t, userCert, userKey, ca.CertPEM), alert: alertBadCertificate},
		{name: "valid user certificate on the peer port, TLS 1.2", probe: peerEP, cfg: maxTLS12(r.tlsConfig(t, userCert, userKey, ca.CertPEM)), alert: alertBadCertificate},
	}
	for _, tc := range refusals {
		var out probeOutcome
		if tc.probe.port == clientPort {
			out = tc.probe.request(t, tc.cfg, "/v1/kv/"+key)
		} else {
			out = tc.probe.handshake(t, tc.cfg)
		}
		if tc.alert != "" {
			require.Equal(t, tc.alert, out.Alert, "%s on %s:%d: want the TLS alert %q, got %s", tc.name, r.pod(0), tc.probe.port, tc.alert, out)
			require.Zero(t, out.Status, "%s: refused in the handshake, no HTTP answer", tc.name)
		} else {
			require.Empty(t, out.Alert, "%s: the handshake must pass, the request be refused; got %s", tc.name, out)
			require.Equal(t, tc.status, out.Status, "%s: HTTP status; got %s", tc.name, out)
			require.Equal(t, tc.code, out.Code, "%s: JSON error code; got %s", tc.name, out)
			require.Contains(t, out.Message, tc.message, "%s: JSON error message", tc.name)
			require.NotContains(t, out.Body, "guarded", "%s: the value leaked", tc.name)
		}
		t.Logf("refused: %s on %s:%d -> %s", tc.name, r.pod(0), tc.probe.port, out)
	}

	// The unknown user's attempt is logged and counted by the pod that refused it.
	r.waitLogLine(t, 0, "authentication failed: unknown user", unknownUser)
	after := r.metrics(t, 0, "ephemeral_store_auth_failures_total")
	require.Greater(t, sampleWith(after, "unknown_user"), sampleWith(authFailuresBefore, "unknown_user"),
		"ephemeral_store_auth_failures_total{unknown_user} on %s: before %v, after %v", r.pod(0), authFailuresBefore, after)
	t.Logf("%s logged the refusal of %s and counted it: auth failures %v -> %v", r.pod(0), unknownUser, authFailuresBefore, after)

	// The twin of the peer-port refusal: a peer's certificate (the server's
	// own, CN ephemeral-store-peer) completes the handshake there. TLS 1.2, so
	// that a completed client handshake means the server accepted it.
	serverSecret := r.fullname + "-tls"
	srv, err := k8s.GetSecretContextE(t, t.Context(), r.kubectl, serverSecret)
	require.NoError(t, err, "server Secret %s", serverSecret)
	peerCfg := maxTLS12(r.tlsConfig(t, srv.Data["tls.crt"], srv.Data["tls.key"], ca.CertPEM))
	out := peerEP.handshake(t, peerCfg)
	require.True(t, out.HandshakeDone && out.Alert == "", "the server's own peer certificate on %s:%d: want a completed handshake, got %s", r.pod(0), peerPort, out)
	t.Logf("accepted: the peer certificate (CN %s) on %s:%d -> %s", peerCommonName, r.pod(0), peerPort, out)

	r.rotateServerCertificate(t, ca, pods, key)
}

// rotateServerCertificate rewrites the server certificate Secret (generate
// mode: <fullname>-tls) with a new certificate of the same CA, for the same
// names, and waits until every pod serves it on the client and the peer
// port, without any pod restarting; the cluster and the user keep working.
func (r *release) rotateServerCertificate(t *testing.T, ca *testca.CA, pods map[string]string, key string) {
	name := r.fullname + "-tls"
	secret, err := k8s.GetSecretContextE(t, t.Context(), r.kubectl, name)
	require.NoError(t, err, "server Secret %s", name)
	old := parseCertPEM(t, secret.Data["tls.crt"])
	for i := range r.replicas {
		p := r.newPortProbe(t, i, clientPort)
		out := p.leaf(t, r.tls)
		p.close()
		require.True(t, out.HandshakeDone, "%s: %s", r.pod(i), out)
		require.Equal(t, old.SerialNumber.String(), out.Leaf.SerialNumber.String(), "%s serves the Secret's certificate", r.pod(i))
	}
	t.Logf("before the rotation every pod serves serial %x (NotBefore %s) from Secret %s", old.SerialNumber, old.NotBefore.UTC(), name)

	certPEM, keyPEM := serverCert(t, ca, old)
	fresh := parseCertPEM(t, certPEM)
	patch, err := json.Marshal(map[string]any{"data": map[string]string{
		"tls.crt": base64.StdEncoding.EncodeToString(certPEM),
		"tls.key": base64.StdEncoding.EncodeToString(keyPEM),
	}})
	require.NoError(t, err)
	require.NoError(t, k8s.RunKubectlContextE(t, t.Context(), r.kubectl, "patch", "secret", name, "--type=merge", "-p", string(patch)),
		"kubectl patch secret %s", name)
	t.Logf("rotated: Secret %s now holds serial %x (NotBefore %s, same CA %q, same %d names)",
		name, fresh.SerialNumber, fresh.NotBefore.UTC(), ca.Cert.Subject.CommonName, len(fresh.DNSNames))

	// The kubelet refreshes Secret volumes within its sync period (about a
	// minute), the store reloads within seconds: each pod gets 5 minutes.
	peerCfg := maxTLS12(r.tlsConfig(t, certPEM, keyPEM, ca.CertPEM))
	for i := range r.replicas {
		for _, port := range []int{clientPort, peerPort} {
			p := r.newPortProbe(t, i, port)
			cfg := r.tls
			if port == peerPort {
				cfg = peerCfg // the new certificate is also the peers' client certificate
			}
			start := time.Now()
			_, err := retry.DoWithRetryContextE(t, t.Context(), fmt.Sprintf("%s:%d serves serial %x", r.pod(i), port, fresh.SerialNumber),
				pollTries, pollEvery, func() (string, error) {
					out := p.leaf(t, cfg)
					switch {
					case !out.HandshakeDone:
						return "", fmt.Errorf("handshake: %s", out)
					case out.Leaf.SerialNumber.Cmp(fresh.SerialNumber) != 0:
						return "", fmt.Errorf("still serial %x (NotBefore %s)", out.Leaf.SerialNumber, out.Leaf.NotBefore.UTC())
					case !out.Leaf.NotBefore.Equal(fresh.NotBefore):
						return "", fmt.Errorf("serial %x with NotBefore %s, want %s", out.Leaf.SerialNumber, out.Leaf.NotBefore.UTC(), fresh.NotBefore.UTC())
					}
					return out.String(), nil
				})
			require.NoError(t, err)
			p.close()
			t.Logf("%s:%d serves the rotated certificate (serial %x, NotBefore %s) after %s",
				r.pod(i), port, fresh.SerialNumber, fresh.NotBefore.UTC(), time.Since(start).Round(time.Second))
		}
	}

	requireSamePods(t, r, pods)
	cl, _ := r.tunnel(t, k8s.ResourceTypeService, r.fullname, nil)
	ids := r.members(t, cl)
	kv, err := cl.Get(t.Context(), key)
	require.NoError(t, err, "get %s after the rotation", key)
	require.Equal(t, "guarded", string(kv.Value))
	_, err = cl.Put(t.Context(), key, []byte("after rotation"))
	require.NoError(t, err, "put %s after the rotation", key)
	t.Logf("after the rotation: members %v, user %s reads %s and writes it again through the Service", ids, testUser, key)
}

// serverCert issues a server and peer certificate like the one in old: CN
// ephemeral-store-peer, the same names, server and client auth, a new key,
// and a NotBefore later than old's (whole seconds), so that a handshake
// shows which one is served by its NotBefore as well as its serial.
func serverCert(t *testing.T, ca *testca.CA, old *x509.Certificate) (certPEM, keyPEM []byte) {
	t.Helper()
	notBefore := time.Now().Truncate(time.Second)
	if !notBefore.After(old.NotBefore) {
		notBefore = old.NotBefore.Add(time.Second)
	}
	return ca.Sign(t, &x509.Certificate{
		Subject:     pkix.Name{CommonName: peerCommonName},
		NotBefore:   notBefore,
		NotAfter:    time.Now().Add(30 * 24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:    old.DNSNames,
		IPAddresses: old.IPAddresses,
	})
}

func parseCertPEM(t *testing.T, data []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(data)
	require.NotNil(t, block, "no PEM block")
	require.Equal(t, "CERTIFICATE", block.Type)
	cert, err := x509.ParseCertificate(block.Bytes)
	require.NoError(t, err)
	return cert
}

func maxTLS12(cfg *tls.Config) *tls.Config {
	c := cfg.Clone()
	c.MaxVersion = tls.VersionTLS12
	return c
}

// sampleWith is the sum of the samples whose labels contain value.
func sampleWith(samples map[string]float64, value string) float64 {
	var sum float64
	for labels, v := range samples {
		if strings.Contains(labels, `"`+value+`"`) {
			sum += v
		}
	}
	return sum
}

// waitLogLine waits until pod i's log has a line containing every part.
func (r *release) waitLogLine(t *testing.T, i int, parts ...string) {
	t.Helper()
	_, err := retry.DoWithRetryContextE(t, t.Context(), fmt.Sprintf("log of %s mentions %q", r.pod(i), parts), 30, pollEvery,
		func() (string, error) {
			out, err := k8s.RunKubectlAndGetOutputContextE(t, t.Context(), r.kubectl, "logs", r.pod(i), "--tail=500")
			if err != nil {
				return "", err
			}
			for _, line := range strings.Split(out, "\n") {
				all := true
				for _, p := range parts {
					all = all && strings.Contains(line, p)
				}
				if all {
					return line, nil
				}
			}
			return "", fmt.Errorf("no line with %q yet", parts)
		})
	require.NoError(t, err)
}

// portProbe connects to one port of one store pod through a port-forward,
// with raw TLS, to see exactly how the server answers: the TLS alert of a
// refused handshake, or the HTTP status and JSON error of a refused request.
// A connection that ends without either (a port-forward that broke, nothing
// listening) is not an answer: it is retried on a new port-forward, and
// fails the test if it persists.
type portProbe struct {
	r        *release
	pod      int
	port     int
	endpoint string
	closeFwd func()
}

func (r *release) newPortProbe(t *testing.T, pod, port int) *portProbe {
	t.Helper()
	p := &portProbe{r: r, pod: pod, port: port}
	p.endpoint, p.closeFwd = r.forward(t, k8s.ResourceTypePod, r.pod(pod), port)
	return p
}

// probeOutcome is how a store port answered one connection.
type probeOutcome struct {
	Version       uint16
	HandshakeDone bool              // the client side of the handshake completed
	Leaf          *x509.Certificate // the certificate the server presented
	Alert         string            // the TLS alert the server sent, as crypto/tls names it
	Status        int               // the HTTP status, when a request was answered
	Code, Message string            // its JSON error
	Body          string
	Err           error // no alert and no answer: the connection itself failed
}

func (o probeOutcome) String() string {
	var parts []string
	if o.Version != 0 {
		parts = append(parts, tls.VersionName(o.Version))
	}
	if o.Leaf != nil {
		parts = append(parts, fmt.Sprintf("server certificate CN %q serial %x", o.Leaf.Subject.CommonName, o.Leaf.SerialNumber))
	}
	if o.Alert != "" {
		parts = append(parts, "TLS alert "+o.Alert)
	}
	if o.Status != 0 {
		parts = append(parts, fmt.Sprintf("HTTP %d", o.Status))
	}
	if o.Code != "" {
		parts = append(parts, fmt.Sprintf("error %s: %s", o.Code, o.Message))
	}
	if o.Err != nil {
		parts = append(parts, "connection error: "+o.Err.Error())
	}
	return strings.Join(parts, ", ")
}

// answered reports whether the server answered: an alert, an HTTP
// response, or a completed handshake with no alert.
func (o probeOutcome) answered() bool {
	return o.Alert != "" || o.Status != 0 || (o.Err == nil && o.HandshakeDone)
}

// leaf runs a TLS handshake and returns at once: what the server presents.
func (p *portProbe) leaf(t *testing.T, cfg *tls.Config) probeOutcome {
	t.Helper()
	return p.do(t, cfg, probeLeaf, "")
}

// handshake runs a TLS handshake and then waits up to 15 s for the server
// to refuse the client certificate: under TLS 1.3 the server checks it after
// the client has finished its side of the handshake, and the alert is its
// next record. No alert within 15 s means accepted, as far as TLS 1.3 can
// tell on a port where the server never speaks first; under TLS 1.2 the
// alert comes before the server's Finished, so a completed handshake means
// accepted, and callers that assert acceptance use TLS 1.2.
func (p *portProbe) handshake(t *testing.T, cfg *tls.Config) probeOutcome {
	t.Helper()
	return p.do(t, cfg, probeAlert, "")
}

// request sends GET path over HTTP/1.1 after the handshake and reads the answer.
func (p *portProbe) request(t *testing.T, cfg *tls.Config, path string) probeOutcome {
	t.Helper()
	return p.do(t, cfg, probeRequest, path)
}

type probeMode int

const (
	probeLeaf probeMode = iota
	probeAlert
	probeRequest
)

func (p *portProbe) do(t *testing.T, cfg *tls.Config, mode probeMode, path string) probeOutcome {
	t.Helper()
	var out probeOutcome
	_, err := retry.DoWithRetryContextE(t, t.Context(), fmt.Sprintf("an answer from %s:%d", p.r.pod(p.pod), p.port), 20, pollEvery,
		func() (string, error) {
			out = dialProbe(t.Context(), p.endpoint, cfg, mode, path)
			if out.answered() {
				return out.String(), nil
			}
			// Not an answer of the store: renew the port-forward and try again.
			p.closeFwd()
			p.endpoint, p.closeFwd = p.r.forward(t, k8s.ResourceTypePod, p.r.pod(p.pod), p.port)
			return "", fmt.Errorf("no TLS alert and no answer: %s", out)
		})
	require.NoError(t, err, "%s:%d never answered (is anything listening?)", p.r.pod(p.pod), p.port)
	return out
}

func (p *portProbe) close() { p.closeFwd() }

// dialProbe is one connection: the handshake, then per mode nothing, a
// wait for an alert, or a GET.
func dialProbe(ctx context.Context, endpoint string, cfg *tls.Config, mode probeMode, path string) probeOutcome {
	var out probeOutcome
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cfg = cfg.Clone()
	cfg.NextProtos = []string{"http/1.1"}
	raw, err := (&net.Dialer{}).DialContext(ctx, "tcp", endpoint)
	if err != nil {
		out.Err = err
		return out
	}
	defer raw.Close()
	deadline, _ := ctx.Deadline()
	_ = raw.SetDeadline(deadline)
	conn := tls.Client(raw, cfg)
	classify := func(err error) {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "remote error" {
			out.Alert = op.Err.Error()
			return
		}
		out.Err = err
	}
	if err := conn.HandshakeContext(ctx); err != nil {
		classify(err)
		return out
	}
	out.HandshakeDone = true
	st := conn.ConnectionState()
	out.Version = st.Version
	if len(st.PeerCertificates) > 0 {
		out.Leaf = st.PeerCertificates[0]
	}
	switch {
	case mode == probeLeaf:
		return out
	case mode == probeAlert && st.Version == tls.VersionTLS12:
		return out // the server accepted the certificate before its Finished
	case mode == probeAlert:
		_ = conn.SetReadDeadline(time.Now().Add(60 * time.Second)) // a frozen VM must not pass for acceptance
		_, err := conn.Read(make([]byte, 1))
		var ne net.Error
		if err != nil && !(errors.As(err, &ne) && ne.Timeout()) {
			classify(err)
		}
		return out
	}
	req := fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path, cfg.ServerName)
	_, werr := io.WriteString(conn, req)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		classify(err)
		if out.Alert == "" && werr != nil {
			classify(werr)
		}
		return out
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	out.Status = resp.StatusCode
	out.Body = string(body)
	var e api.ErrorBody
	if json.Unmarshal(body, &e) == nil {
		out.Code, out.Message = e.Error.Code, e.Error.Message
	}
	return out
}

package chart

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// runningServerMetrics starts the real binary as `serve` (a single node,
// mutual TLS, as a pod runs it), writes and reads a few keys so the
// per-route and Raft series exist, and returns the families its /metrics
// shows, by name.
func runningServerMetrics(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "ephemeral-store")
	build := exec.Command("go", "build", "-o", bin, "./store/cmd/ephemeral-store")
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	certs := filepath.Join(dir, "certs")
	if out, err := exec.Command(bin, "certs", "--out", certs, "--user", "myuser").CombinedOutput(); err != nil {
		t.Fatalf("certs: %v\n%s", err, out)
	}
	users := filepath.Join(dir, "users")
	require.NoError(t, os.MkdirAll(users, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(users, "myuser.json"), []byte(`{"name":"myuser"}`), 0o644))

	client, probe, peer, respAddr := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	logFile, err := os.Create(filepath.Join(dir, "serve.log"))
	require.NoError(t, err)
	serve := exec.Command(bin, "serve", "--listen", client, "--peer-listen", peer, "--probe-listen", probe, "--resp-listen", respAddr,
		"--tls-cert", filepath.Join(certs, "server.crt"), "--tls-key", filepath.Join(certs, "server.key"),
		"--tls-ca", filepath.Join(certs, "rootCA.crt"), "--peer-cert", filepath.Join(certs, "peer.crt"),
		"--peer-key", filepath.Join(certs, "peer.key"), "--users-dir", users)
	serve.Stdout, serve.Stderr = logFile, logFile
	require.NoError(t, serve.Start())
	t.Cleanup(func() {
		_ = serve.Process.Signal(syscall.SIGTERM)
		_ = serve.Wait()
		logFile.Close()
		if t.Failed() {
			if b, err := os.ReadFile(logFile.Name()); err == nil {
				t.Logf("serve's log:\n%s", b)
			}
		}
	})

	probeURL := "http://" + probe
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		resp, err := http.Get(probeURL + "/readyz")
		if !assert.NoError(c, err) {
			return
		}
		resp.Body.Close()
		assert.Equal(c, http.StatusOK, resp.StatusCode)
	}, 2*time.Minute, 100*time.Millisecond, "serve never became ready")

	api := mtlsClient(t, certs)
	base := "https://" + strings.Replace(client, "127.0.0.1", "localhost", 1) + "/v1/kv/"
	for i := range 5 {
		req, err := http.NewRequest(http.MethodPut, fmt.Sprintf("%spools/web-%d", base, i), strings.NewReader("healthy"))
		require.NoError(t, err)
		resp, err := api.Do(req)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, "PUT")
	}
	resp, err := api.Get(base + "pools/web-0")
	require.NoError(t, err)
	resp.Body.Close()

	resp, err = http.Get(probeURL + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	return families
}

// seriesNames are the names a query can use: every family and, for
// histograms and summaries, their _bucket, _sum and _count series.
func seriesNames(families map[string]*dto.MetricFamily) map[string]bool {
	series := map[string]bool{}
	for name, f := range families {
		series[name] = true
		switch f.GetType() {
		case dto.MetricType_HISTOGRAM:
			series[name+"_bucket"], series[name+"_sum"], series[name+"_count"] = true, true, true
		case dto.MetricType_SUMMARY:
			series[name+"_sum"], series[name+"_count"] = true, true
		}
	}
	return series
}

// mtlsClient is a client of the store's API with myuser's certificate.
func mtlsClient(t *testing.T, certs string) *http.Client {
	t.Helper()
	kp, err := tls.LoadX509KeyPair(filepath.Join(certs, "myuser.crt"), filepath.Join(certs, "myuser.key"))
	require.NoError(t, err)
	caPEM, err := os.ReadFile(filepath.Join(certs, "rootCA.crt"))
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(caPEM))
	return &http.Client{Timeout: time.Minute, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{Certificates: []tls.Certificate{kp}, RootCAs: pool, MinVersion: tls.VersionTLS12},
	}}
}

// freeAddr is a loopback address that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

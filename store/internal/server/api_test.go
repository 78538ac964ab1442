package server_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ephemeral-store/ephemeral-store/store/client"
	"github.com/ephemeral-store/ephemeral-store/store/client/api"
	"github.com/ephemeral-store/ephemeral-store/store/internal/config"
	"github.com/ephemeral-store/ephemeral-store/store/internal/testcluster"
)

// httpClient is a plain net/http client presenting user's certificate
// (no certificate when user is "").
func httpClient(t *testing.T, c *testcluster.Cluster, user string) *http.Client {
	t.Helper()
	_, _, caFile := c.CertPaths(testcluster.UserAll)
	pool := x509.NewCertPool()
	pem, err := os.ReadFile(caFile)
	require.NoError(t, err)
	require.True(t, pool.AppendCertsFromPEM(pem))
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if user != "" {
		certFile, keyFile, _ := c.CertPaths(user)
		kp, err := tls.LoadX509KeyPair(certFile, keyFile)
		require.NoError(t, err)
		cfg.Certificates = []tls.Certificate{kp}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true}, Timeout: 20 * time.Second}
}

// do sends one request and returns status, decoded error code and body.
func do(t *testing.T, hc *http.Client, method, url string, body io.Reader) (int, string, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	require.NoError(t, err)
	resp, err := hc.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var e api.ErrorBody
	if resp.StatusCode >= 400 {
		require.NoError(t, json.Unmarshal(b, &e), "error bodies are JSON: %s", b)
		require.NotEmpty(t, e.Error.Code)
		require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	}
	return resp.StatusCode, e.Error.Code, b
}

func single(t *testing.T, opts ...testcluster.Option) (*testcluster.Cluster, string) {
	c := testcluster.New(t, 1, opts...)
	c.WaitReady(readyTimeout)
	return c, "https://" + c.Node(0).Client
}

func TestAPIHappyPathWithTheGoClient(t *testing.T) {
	c, _ := single(t)
	ctx := ctxT(t)
	cl := c.Client(testcluster.UserAll)

	put, err := cl.Put(ctx, "pools/web-1", []byte("healthy"))
	require.NoError(t, err)
	kv, err := cl.Get(ctx, "pools/web-1")
	require.NoError(t, err)
	require.Equal(t, "healthy", string(kv.Value))
	require.Equal(t, put.Revision, kv.ModifyRevision)
	require.Equal(t, put.Revision, kv.CreateRevision)

	// compare-and-swap: create-only fails on an existing key, a matching
	// revision succeeds, a stale one fails with 412.
	_, err = cl.Put(ctx, "pools/web-1", []byte("x"), client.WithPrevRevision(0))
	require.ErrorIs(t, err, client.ErrRevisionMismatch)
	put2, err := cl.Put(ctx, "pools/web-1", []byte("draining"), client.WithPrevRevision(put.Revision))
	require.NoError(t, err)
	_, err = cl.Put(ctx, "pools/web-1", []byte("x"), client.WithPrevRevision(put.Revision))
	require.ErrorIs(t, err, client.ErrRevisionMismatch)
	_, err = cl.Delete(ctx, "pools/web-1", client.WithDeletePrevRevision(put.Revision))
	require.ErrorIs(t, err, client.ErrRevisionMismatch)
	_, err = cl.Delete(ctx, "pools/web-1", client.WithDeletePrevRevision(put2.Revision))
	require.NoError(t, err)
	_, err = cl.Get(ctx, "pools/web-1")
	require.ErrorIs(t, err, client.ErrKeyNotFound)
	_, err = cl.Delete(ctx, "pools/web-1")
	require.ErrorIs(t, err, client.ErrKeyNotFound)

	// keys with characters that need escaping round-trip exactly
	for _, k := range []string{"a b", "100%", "q?x=1", "frag#1", "a//b", "x/../y", "ünï/cødé", "/leading"} {
		_, err := cl.Put(ctx, k, []byte(k))
		require.NoError(t, err, k)
		kv, err := cl.Get(ctx, k)
		require.NoError(t, err, k)
		require.Equal(t, k, kv.Key)
		require.Equal(t, k, string(kv.Value))
	}
}

func TestTTLExpiresKeys(t *testing.T) {
	c, _ := single(t)
	ctx := ctxT(t)
	cl := c.Client(testcluster.UserAll)
	_, err := cl.Put(ctx, "lease", []byte("v"), client.WithTTL(time.Second))
	require.NoError(t, err)
	_, err = cl.Put(ctx, "forever", []byte("v"))
	require.NoError(t, err)
	kv, err := cl.Get(ctx, "lease")
	require.NoError(t, err)
	require.Greater(t, kv.TTLRemaining, time.Duration(0))
	require.Eventually(t, func() bool {
		_, err := cl.Get(ctx, "lease")
		return errors.Is(err, client.ErrKeyNotFound)
	}, 10*time.Second, 50*time.Millisecond)
	_, err = cl.Get(ctx, "forever")
	require.NoError(t, err)
}

func TestListPages(t *testing.T) {
	c, _ := single(t)
	ctx := ctxT(t)
	cl := c.Client(testcluster.UserAll)
	for i := 0; i < 25; i++ {
		_, err := cl.Put(ctx, fmt.Sprintf("pools/m%02d", i), []byte{byte(i)})
		require.NoError(t, err)
	}
	_, err := cl.Put(ctx, "other/x", nil)
	require.NoError(t, err)
	page, err := cl.List(ctx, "pools/", client.WithLimit(10))
	require.NoError(t, err)
	require.Len(t, page.Items, 10)
	require.True(t, page.More)
	all, err := cl.ListAll(ctx, "pools/")
	require.NoError(t, err)
	require.Len(t, all, 25)
	require.Equal(t, "pools/m00", all[0].Key)
	require.Equal(t, "pools/m24", all[24].Key)
}

func TestWatchStreamsAndResumes(t *testing.T) {
	c, _ := single(t)
	ctx := ctxT(t)
	cl := c.Client(testcluster.UserAll)
	first, err := cl.Put(ctx, "pools/a", []byte("1"))
	require.NoError(t, err)
	_, err = cl.Put(ctx, "other/a", []byte("1"))
	require.NoError(t, err)
	_, err = cl.Put(ctx, "pools/b", []byte("2"))
	require.NoError(t, err)

	w, err := cl.Watch(ctx, "pools/", first.Revision)
	require.NoError(t, err)
	defer w.Close()
	_, err = cl.Delete(ctx, "pools/a")
	require.NoError(t, err)
	var got []string
	for len(got) < 3 {
		ev, err := w.Next()
		require.NoError(t, err)
		got = append(got, ev.Type+" "+ev.Key)
	}
	require.Equal(t, []string{"put pools/a", "put pools/b", "delete pools/a"}, got)
}

func TestWatchFromACompactedRevisionIsGone(t *testing.T) {
	c, base := single(t)
	ctx := ctxT(t)
	cl := c.Client(testcluster.UserAll)
	// The default history keeps 10 000 events: write past it.
	for i := 0; i < 10050; i++ {
		_, err := cl.Put(ctx, "k", []byte("v"))
		require.NoError(t, err)
	}
	_, err := cl.Watch(ctx, "", 1)
	require.ErrorIs(t, err, client.ErrCompacted)
	status, code, _ := do(t, httpClient(t, c, testcluster.UserAll), "GET", base+"/v1/watch/?prefix=&from=1", nil)
	require.Equal(t, http.StatusGone, status)
	require.Equal(t, "revision_compacted", code)
}

func TestAuthentication(t *testing.T) {
	c, base := single(t)
	tests := []struct {
		name       string
		user       string
		method     string
		path       string
		wantStatus int
		wantCode   string
	}{
		{"known user writes", testcluster.UserAll, "PUT", "/v1/kv/pools/a", 200, ""},
		{"unknown CN is 401", testcluster.UserUnknown, "GET", "/v1/kv/pools/a", 401, "unauthenticated"},
		{"read-only user may read its prefix", testcluster.UserReader, "GET", "/v1/kv/pools/a", 200, ""},
		{"read-only user may not write", testcluster.UserReader, "PUT", "/v1/kv/pools/a", 403, "forbidden"},
		{"read-only user may not delete", testcluster.UserReader, "DELETE", "/v1/kv/pools/a", 403, "forbidden"},
		{"read-only user may not read other prefixes", testcluster.UserReader, "GET", "/v1/kv/secret/a", 403, "forbidden"},
		{"read-only user may list its prefix", testcluster.UserReader, "GET", "/v1/kv/?prefix=pools/", 200, ""},
		{"read-only user may not list everything", testcluster.UserReader, "GET", "/v1/kv/?prefix=", 403, "forbidden"},
		{"read-only user may not watch everything", testcluster.UserReader, "GET", "/v1/watch/?prefix=", 403, "forbidden"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, code, body := do(t, httpClient(t, c, tt.user), tt.method, base+tt.path, strings.NewReader("v"))
			require.Equal(t, tt.wantStatus, status, "body: %s", body)
			require.Equal(t, tt.wantCode, code)
		})
	}
}

func TestHandshakeRefusesMissingOrForeignCertificates(t *testing.T) {
	c, base := single(t)
	t.Run("no client certificate", func(t *testing.T) {
		resp, err := httpClient(t, c, "").Get(base + "/v1/kv/a")
		closeBody(resp)
		require.Error(t, err, "a request without a client certificate must not get an answer")
	})
	t.Run("certificate from another CA", func(t *testing.T) {
		other := testcluster.New(t, 1) // its CA is unrelated
		hc := httpClient(t, other, testcluster.UserAll)
		// trust the target server, present a certificate it does not trust
		pool := x509.NewCertPool()
		pem, err := os.ReadFile(filepath.Join(c.Dir, "rootCA.crt"))
		require.NoError(t, err)
		pool.AppendCertsFromPEM(pem)
		hc.Transport.(*http.Transport).TLSClientConfig.RootCAs = pool
		resp, err := hc.Get(base + "/v1/kv/a")
		closeBody(resp)
		require.Error(t, err)
	})
	t.Run("TLS 1.1 is refused", func(t *testing.T) {
		hc := httpClient(t, c, testcluster.UserAll)
		tc := hc.Transport.(*http.Transport).TLSClientConfig
		tc.MinVersion, tc.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
		resp, err := hc.Get(base + "/v1/kv/a")
		closeBody(resp)
		require.Error(t, err)
	})
}

// closeBody closes the body of a response a test expected not to get.
func closeBody(resp *http.Response) {
	if resp != nil {
		_ = resp.Body.Close()
	}
}

func TestLimitsAndMalformedRequests(t *testing.T) {
	c, base := single(t, testcluster.WithConfig(func(_ int, cfg *config.Config) {
		cfg.MaxKeyBytes = 64
		cfg.MaxValueBytes = 1024
	}))
	hc := httpClient(t, c, testcluster.UserAll)
	tests := []struct {
		name       string
		method     string
		path       string
		body       string
		wantStatus int
		wantCode   string
	}{
		{"key over the limit", "PUT", "/v1/kv/" + strings.Repeat("k", 65), "v", 413, "key_too_large"},
		{"value over the limit", "PUT", "/v1/kv/k", strings.Repeat("v", 1025), 413, "value_too_large"},
		{"value at the limit", "PUT", "/v1/kv/k", strings.Repeat("v", 1024), 200, ""},
		{"bad ttl", "PUT", "/v1/kv/k?ttl=soon", "v", 400, "invalid_ttl"},
		{"negative ttl", "PUT", "/v1/kv/k?ttl=-5s", "v", 400, "invalid_ttl"},
		{"bad prev_revision", "PUT", "/v1/kv/k?prev_revision=x", "v", 400, "invalid_revision"},
		{"negative prev_revision", "DELETE", "/v1/kv/k?prev_revision=-1", "", 400, "invalid_revision"},
		{"key not valid UTF-8", "GET", "/v1/kv/a%ffb", "", 400, "invalid_key"},
		{"control character in key", "PUT", "/v1/kv/a%00b", "v", 400, "invalid_key"},
		{"empty key on PUT", "PUT", "/v1/kv/", "v", 400, "invalid_key"},
		{"method not allowed", "POST", "/v1/kv/k", "v", 405, "method_not_allowed"},
		{"unknown route", "GET", "/v2/kv/k", "", 404, "not_found"},
		{"missing key", "GET", "/v1/kv/nope", "", 404, "key_not_found"},
		{"bad limit", "GET", "/v1/kv/?limit=0", "", 400, "bad_request"},
		{"bad watch revision", "GET", "/v1/watch/?from=abc", "", 400, "invalid_revision"},
		{"bad stale flag", "GET", "/v1/kv/k?stale=perhaps", "", 400, "bad_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, code, body := do(t, hc, tt.method, base+tt.path, strings.NewReader(tt.body))
			require.Equal(t, tt.wantStatus, status, "body: %s", body)
			require.Equal(t, tt.wantCode, code)
		})
	}
	// nothing was lost by the refusals
	status, _, body := do(t, hc, "GET", base+"/v1/kv/k", nil)
	require.Equal(t, 200, status)
	require.Equal(t, strings.Repeat("v", 1024), string(body))
}

func TestGetCarriesRevisionAndTTLHeaders(t *testing.T) {
	c, base := single(t)
	hc := httpClient(t, c, testcluster.UserAll)
	status, _, body := do(t, hc, "PUT", base+"/v1/kv/k?ttl=30s", strings.NewReader("v"))
	require.Equal(t, 200, status)
	var put struct{ Revision int64 }
	require.NoError(t, json.Unmarshal(body, &put))
	resp, err := hc.Get(base + "/v1/kv/k")
	require.NoError(t, err)
	defer resp.Body.Close()
	rev := fmt.Sprint(put.Revision)
	require.Equal(t, rev, resp.Header.Get("ES-Modify-Revision"))
	require.Equal(t, rev, resp.Header.Get("ES-Create-Revision"))
	require.Equal(t, rev, resp.Header.Get("ES-Revision"))
	require.Equal(t, "30", resp.Header.Get("ES-TTL-Remaining"))
	require.Equal(t, "HTTP/2.0", resp.Proto, "the client API speaks HTTP/2")
}

func TestUsersDirectoryChangesApplyWithoutRestart(t *testing.T) {
	c, base := single(t)
	hc := httpClient(t, c, testcluster.UserUnknown)
	status, _, _ := do(t, hc, "GET", base+"/v1/kv/?prefix=", nil)
	require.Equal(t, 401, status)
	entry := `{ "name": "stranger", "auth_mode": "certificate" }`
	require.NoError(t, os.WriteFile(filepath.Join(c.Dir, "users", "stranger.json"), []byte(entry), 0o644))
	listStatus := func(ct *assert.CollectT, want int) {
		resp, err := hc.Get(base + "/v1/kv/?prefix=")
		if assert.NoError(ct, err) {
			_ = resp.Body.Close()
			assert.Equal(ct, want, resp.StatusCode)
		}
	}
	require.EventuallyWithT(t, func(ct *assert.CollectT) { listStatus(ct, 200) },
		10*time.Second, 50*time.Millisecond, "a new users entry must take effect without a restart")
	require.NoError(t, os.Remove(filepath.Join(c.Dir, "users", "stranger.json")))
	require.EventuallyWithT(t, func(ct *assert.CollectT) { listStatus(ct, 401) },
		10*time.Second, 50*time.Millisecond, "a removed users entry must lose access without a restart")
	status, _, _ = do(t, hc, "GET", base+"/v1/kv/?prefix=", nil)
	require.Equal(t, 401, status, "the refusal is a JSON error")
}

func TestProbePortServesHealthAndMetricsButNoData(t *testing.T) {
	c, _ := single(t)
	ctx := ctxT(t)
	_, err := c.Client(testcluster.UserAll).Put(ctx, "k", []byte("v"))
	require.NoError(t, err)
	probe := "http://" + c.Node(0).Probe
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/v1/kv/k": 404, "/debug/pprof/": 404} {
		resp, err := http.Get(probe + path)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, want, resp.StatusCode, path)
	}
	resp, err := http.Get(probe + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, series := range []string{
		"ephemeral_store_http_requests_total", "ephemeral_store_http_request_duration_seconds",
		"ephemeral_store_keys 1", "ephemeral_store_bytes", "ephemeral_store_watchers",
		"ephemeral_store_auth_failures_total", "ephemeral_store_data_loss_events_total",
	} {
		require.Contains(t, string(body), series)
	}
}

func TestPprofIsServedOnTheProbePortOnlyWhenAsked(t *testing.T) {
	c, _ := single(t, testcluster.WithConfig(func(_ int, cfg *config.Config) { cfg.Pprof = true }))
	probe := "http://" + c.Node(0).Probe
	for path, want := range map[string]string{
		"/debug/pprof/":                  "goroutine",
		"/debug/pprof/heap?debug=1":      "heap profile",
		"/debug/pprof/cmdline":           "",
		"/debug/pprof/goroutine?debug=1": "goroutine profile",
	} {
		resp, err := http.Get(probe + path)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, 200, resp.StatusCode, path)
		require.Contains(t, string(body), want, path)
	}
}

// Watch lines are newline-delimited JSON a plain HTTP client can read.
func TestWatchIsNewlineDelimitedJSON(t *testing.T) {
	c, base := single(t)
	hc := httpClient(t, c, testcluster.UserAll)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/v1/watch/?prefix=p/", nil)
	resp, err := hc.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, "application/x-ndjson", resp.Header.Get("Content-Type"))
	status, _, _ := do(t, hc, "PUT", base+"/v1/kv/p/x", bytes.NewReader([]byte("hello")))
	require.Equal(t, 200, status)
	line, err := bufio.NewReader(resp.Body).ReadBytes('\n')
	require.NoError(t, err)
	var ev struct {
		Type, Key string
		Value     []byte
		Revision  int64
	}
	require.NoError(t, json.Unmarshal(line, &ev))
	require.Equal(t, "put", ev.Type)
	require.Equal(t, "p/x", ev.Key)
	require.Equal(t, "hello", string(ev.Value))
}

// Users change live, open watch streams included: removing the user ends
// the stream with an error event.
func TestWatchEndsWhenItsUserIsRemoved(t *testing.T) {
	c, _ := single(t)
	ctx := ctxT(t)
	w, err := c.Client(testcluster.UserReader).Watch(ctx, "pools/", 0)
	require.NoError(t, err)
	defer w.Close()
	require.NoError(t, os.Remove(filepath.Join(c.Dir, "users", "reader.json")))
	_, err = w.Next()
	require.ErrorIs(t, err, client.ErrUnauthenticated, "the stream must end once its user is gone")
}

package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ephemeral-store/ephemeral-store/store/internal/pki"
)

// testCerts is a CA, a server certificate for 127.0.0.1 and a client
// certificate for "myuser", as files; made with the store's own pki, as
// the other packages' tests make theirs.
type testCerts struct {
	dir               string
	caFile            string
	certFile, keyFile string
	pool              *x509.CertPool
	server            tls.Certificate
}

func newTestCerts(t *testing.T) *testCerts {
	t.Helper()
	ca, err := pki.NewCA("cli test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c := &testCerts{dir: t.TempDir(), pool: x509.NewCertPool()}
	c.pool.AddCert(ca.Cert)
	c.caFile = filepath.Join(c.dir, "rootCA.crt")
	c.certFile, c.keyFile = filepath.Join(c.dir, "myuser.crt"), filepath.Join(c.dir, "myuser.key")
	issue := func(req pki.IssueRequest) (certPEM, keyPEM []byte) {
		certPEM, keyPEM, err := ca.Issue(req)
		if err != nil {
			t.Fatal(err)
		}
		return certPEM, keyPEM
	}
	serverCert, serverKey := issue(pki.IssueRequest{CommonName: "ephemeral-store-peer",
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ServerAuth: true, ClientAuth: true})
	if c.server, err = tls.X509KeyPair(serverCert, serverKey); err != nil {
		t.Fatal(err)
	}
	userCert, userKey := issue(pki.IssueRequest{CommonName: "myuser", ClientAuth: true})
	for name, data := range map[string][]byte{c.caFile: ca.CertPEM, c.certFile: userCert, c.keyFile: userKey} {
		if err := os.WriteFile(name, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// serve starts h over TLS requiring a client certificate of the test CA.
func (c *testCerts) serve(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = true
	srv.TLS = &tls.Config{
		MinVersion: tls.VersionTLS12, ClientAuth: tls.RequireAndVerifyClientCert,
		ClientCAs: c.pool, Certificates: []tls.Certificate{c.server},
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.URL
}

// flags are the connection flags for endpoint.
func (c *testCerts) flags(endpoint string) []string {
	return []string{"--endpoints", endpoint, "--cert", c.certFile, "--key", c.keyFile, "--cacert", c.caFile}
}

// memStore is a small in-memory server of the API contract.
type memStore struct {
	mu       sync.Mutex
	rev      int64
	kvs      map[string]memKV
	history  []map[string]any
	live     map[chan map[string]any]string
	queries  []string // "METHOD escaped-path?query"
	cutAfter int      // a watch stream ends with watcher_too_slow after this many events (0: never)
	stop     chan struct{}
}

type memKV struct {
	value          []byte
	create, modify int64
	ttl            time.Duration
}

func newMemStore(t *testing.T) *memStore {
	m := &memStore{kvs: map[string]memKV{}, live: map[chan map[string]any]string{}, stop: make(chan struct{})}
	t.Cleanup(func() { close(m.stop) })
	return m
}

func (m *memStore) seen() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.queries...)
}

func apiError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

func (m *memStore) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.EscapedPath()
	q := r.URL.Query()
	m.mu.Lock()
	m.queries = append(m.queries, r.Method+" "+path+"?"+r.URL.RawQuery)
	m.mu.Unlock()
	switch {
	case path == "/v1/kv/" && r.Method == http.MethodGet:
		m.list(w, q)
	case strings.HasPrefix(path, "/v1/kv/"):
		key, err := url.PathUnescape(strings.TrimPrefix(path, "/v1/kv/"))
		if err != nil || key == "" {
			apiError(w, 400, "invalid_key", "bad key")
			return
		}
		m.kv(w, r, key)
	case path == "/v1/watch/":
		m.watch(w, r, q)
	case path == "/v1/cluster":
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"self":"pod-1/b2","leader":"pod-0/a1","state":"Follower","revision":9,"commit_index":12,"applied_index":12,
			"members":[{"id":"pod-0/a1","name":"pod-0","address":"pod-0.info:8088","suffrage":"voter","leader":true},
			{"id":"pod-1/b2","name":"pod-1","address":"pod-1.info:8088","suffrage":"voter","leader":false}]}`)
	default:
		apiError(w, 404, "not_found", "no route")
	}
}

func (m *memStore) kv(w http.ResponseWriter, r *http.Request, key string) {
	q := r.URL.Query()
	body, _ := io.ReadAll(r.Body)
	m.mu.Lock()
	defer m.mu.Unlock()
	cur, ok := m.kvs[key]
	if q.Has("prev_revision") {
		prev, _ := strconv.ParseInt(q.Get("prev_revision"), 10, 64)
		if (prev == 0 && ok) || (prev != 0 && cur.modify != prev) {
			apiError(w, 412, "revision_mismatch", fmt.Sprintf("%q: revision mismatch", key))
			return
		}
	}
	switch r.Method {
	case http.MethodGet:
		if !ok {
			apiError(w, 404, "key_not_found", fmt.Sprintf("%q: key not found", key))
			return
		}
		w.Header().Set("ES-Revision", strconv.FormatInt(m.rev, 10))
		w.Header().Set("ES-Create-Revision", strconv.FormatInt(cur.create, 10))
		w.Header().Set("ES-Modify-Revision", strconv.FormatInt(cur.modify, 10))
		if cur.ttl > 0 {
			w.Header().Set("ES-TTL-Remaining", strconv.Itoa(int(cur.ttl.Seconds())))
		}
		_, _ = w.Write(cur.value)
	case http.MethodPut:
		m.rev++
		kv := memKV{value: body, create: m.rev, modify: m.rev}
		if ok {
			kv.create = cur.create
		}
		if s := q.Get("ttl"); s != "" {
			kv.ttl, _ = time.ParseDuration(s)
		}
		m.kvs[key] = kv
		m.publish(map[string]any{"type": "put", "key": key, "value": body, "revision": m.rev})
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"key": key, "revision": m.rev, "create_revision": kv.create, "modify_revision": kv.modify})
	case http.MethodDelete:
		if !ok {
			apiError(w, 404, "key_not_found", fmt.Sprintf("%q: key not found", key))
			return
		}
		m.rev++
		delete(m.kvs, key)
		m.publish(map[string]any{"type": "delete", "key": key, "revision": m.rev})
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"key": key, "revision": m.rev})
	}
}

func (m *memStore) publish(ev map[string]any) {
	m.history = append(m.history, ev)
	for ch, prefix := range m.live {
		if strings.HasPrefix(ev["key"].(string), prefix) {
			ch <- ev
		}
	}
}

func (m *memStore) list(w http.ResponseWriter, q url.Values) {
	limit := 100
	if q.Has("limit") {
		limit, _ = strconv.Atoi(q.Get("limit"))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var keys []string
	for k := range m.kvs {
		if strings.HasPrefix(k, q.Get("prefix")) && k > q.Get("after") {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	more := len(keys) > limit
	if more {
		keys = keys[:limit]
	}
	items := []map[string]any{}
	for _, k := range keys {
		it := map[string]any{"key": k, "create_revision": m.kvs[k].create, "modify_revision": m.kvs[k].modify}
		if !q.Has("keys_only") {
			it["value"] = m.kvs[k].value
		}
		items = append(items, it)
	}
	page := map[string]any{"revision": m.rev, "items": items, "more": more}
	if more {
		page["next"] = keys[len(keys)-1]
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(page)
}

func (m *memStore) watch(w http.ResponseWriter, r *http.Request, q url.Values) {
	prefix := q.Get("prefix")
	from, _ := strconv.ParseInt(q.Get("from"), 10, 64)
	ch := make(chan map[string]any, 1000)
	m.mu.Lock()
	if q.Has("from") {
		for _, ev := range m.history {
			if ev["revision"].(int64) >= from && strings.HasPrefix(ev["key"].(string), prefix) {
				ch <- ev
			}
		}
	}
	m.live[ch] = prefix
	cut := m.cutAfter
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		delete(m.live, ch)
		m.mu.Unlock()
	}()
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(200)
	w.(http.Flusher).Flush()
	enc := json.NewEncoder(w)
	for sent := 0; ; {
		select {
		case <-r.Context().Done():
			return
		case <-m.stop:
			return
		case ev := <-ch:
			_ = enc.Encode(ev)
			sent++
			if cut > 0 && sent == cut {
				_, _ = io.WriteString(w, `{"type":"error","error":{"code":"watcher_too_slow","message":"watcher too slow"}}`+"\n")
				return
			}
			w.(http.Flusher).Flush()
		}
	}
}

// run executes the command line and returns its exit code, stdout and
// stderr.
func run(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := execute(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// withEnv makes bindEnv see env instead of the process environment.
func withEnv(t *testing.T, env map[string]string) {
	t.Helper()
	oldLookup, oldEnviron := lookupEnv, environ
	lookupEnv = func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	environ = func() []string {
		var kv []string
		for k, v := range env {
			kv = append(kv, k+"="+v)
		}
		return kv
	}
	t.Cleanup(func() { lookupEnv, environ = oldLookup, oldEnviron })
}

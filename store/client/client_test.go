package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// serveFake starts a fake store behind TLS and returns it with its URL.
func serveFake(t *testing.T, p *testPKI) (*fakeStore, string) {
	f := newFakeStore()
	srv := p.startTLS(f)
	t.Cleanup(func() { close(f.stop) }) // runs before srv.Close: ends watch handlers
	return f, srv.URL
}

// must fails the test on err, else returns v: must(c.Get(ctx, "k"))(t).
func must[T any](v T, err error) func(*testing.T) T {
	return func(t *testing.T) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func TestRequestsHaveTheDocumentedShape(t *testing.T) {
	p := newTestPKI(t)
	f, u := serveFake(t, p)
	c := p.client(u)
	ctx := ctxT(t)

	must(c.Put(ctx, "pools/web-1", []byte("healthy"), WithTTL(30*time.Second)))(t)
	must(c.Put(ctx, "pools/web-1", []byte("draining"), WithPrevRevision(1)))(t)
	must(c.Get(ctx, "pools/web-1", Stale()))(t)
	must(c.List(ctx, "pools/", WithLimit(5), WithAfter("pools/a"), KeysOnly(), Stale()))(t)
	must(c.Delete(ctx, "pools/web-1", WithDeletePrevRevision(2)))(t)
	must(c.Cluster(ctx))(t)

	want := []seenRequest{
		{"PUT", "/v1/kv/pools%2Fweb-1", "ttl=30s", "healthy", "HTTP/2.0"},
		{"PUT", "/v1/kv/pools%2Fweb-1", "prev_revision=1", "draining", "HTTP/2.0"},
		{"GET", "/v1/kv/pools%2Fweb-1", "stale=true", "", "HTTP/2.0"},
		{"GET", "/v1/kv/", "after=pools%2Fa&keys_only=true&limit=5&prefix=pools%2F&stale=true", "", "HTTP/2.0"},
		{"DELETE", "/v1/kv/pools%2Fweb-1", "prev_revision=2", "", "HTTP/2.0"},
		{"GET", "/v1/cluster", "", "", "HTTP/2.0"},
	}
	got := f.seen()
	if len(got) != len(want) {
		t.Fatalf("got %d requests, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("request %d:\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}
}

func TestCreateOnlyPutSendsPrevRevisionZero(t *testing.T) {
	p := newTestPKI(t)
	f, u := serveFake(t, p)
	c := p.client(u)
	ctx := ctxT(t)
	must(c.Put(ctx, "k", []byte("v"), WithPrevRevision(0)))(t)
	_, err := c.Put(ctx, "k", []byte("v"), WithPrevRevision(0))
	if !errors.Is(err, ErrRevisionMismatch) {
		t.Fatalf("second create-only put: got %v, want ErrRevisionMismatch", err)
	}
	if q := f.seen()[0].RawQuery; q != "prev_revision=0" {
		t.Fatalf("query %q, want prev_revision=0", q)
	}
}

func TestKeysRoundTripThroughEscaping(t *testing.T) {
	p := newTestPKI(t)
	f, u := serveFake(t, p)
	c := p.client(u)
	ctx := ctxT(t)
	keys := []string{
		"a b", "100%", "q?x=1", "frag#1", "a/b/c", "a//b", "x/../y", "/leading", "trailing/",
		".", "..", "./x", "ünï/cødé", "emoji 🙂", "semi;colon,comma", "plus+and&amp=eq", "%2F", "~tilde",
	}
	for _, k := range keys {
		put := must(c.Put(ctx, k, []byte("v:"+k)))(t)
		if put.Key != k {
			t.Errorf("put %q: server saw key %q", k, put.Key)
		}
		kv := must(c.Get(ctx, k))(t)
		if kv.Key != k || string(kv.Value) != "v:"+k {
			t.Errorf("get %q: got key %q value %q", k, kv.Key, kv.Value)
		}
	}
	for _, r := range f.seen() {
		rest := strings.TrimPrefix(r.EscapedPath, "/v1/kv/")
		if strings.Contains(rest, "/") || rest == "." || rest == ".." {
			t.Errorf("key sent as %q: it must be one path segment", r.EscapedPath)
		}
	}
	all := must(c.ListAll(ctx, ""))(t)
	if len(all) != len(keys) {
		t.Fatalf("listed %d keys, want %d", len(all), len(keys))
	}
	if _, err := c.Get(ctx, ""); !errors.Is(err, ErrEmptyKey) {
		t.Fatalf("empty key: got %v, want ErrEmptyKey", err)
	}
}

func TestGetReadsRevisionsAndTTL(t *testing.T) {
	p := newTestPKI(t)
	_, u := serveFake(t, p)
	c := p.client(u)
	ctx := ctxT(t)
	first := must(c.Put(ctx, "lease", []byte("1"), WithTTL(30*time.Second)))(t)
	second := must(c.Put(ctx, "lease", []byte("2"), WithTTL(30*time.Second)))(t)
	must(c.Put(ctx, "other", nil))(t)
	kv := must(c.Get(ctx, "lease"))(t)
	if kv.CreateRevision != first.Revision || kv.ModifyRevision != second.Revision || kv.Revision != 3 {
		t.Fatalf("revisions: got create %d modify %d read %d, want %d %d 3", kv.CreateRevision, kv.ModifyRevision, kv.Revision, first.Revision, second.Revision)
	}
	if kv.TTLRemaining != 30*time.Second {
		t.Fatalf("TTLRemaining %s, want 30s", kv.TTLRemaining)
	}
	other := must(c.Get(ctx, "other"))(t)
	if other.TTLRemaining != 0 || len(other.Value) != 0 {
		t.Fatalf("key without TTL: %+v", other)
	}
}

func TestErrorsMapToSentinels(t *testing.T) {
	sentinels := []error{ErrKeyNotFound, ErrRevisionMismatch, ErrUnauthenticated, ErrForbidden, ErrTooLarge,
		ErrBadRequest, ErrNoQuorum, ErrNotReady, ErrCompacted, ErrWatcherTooSlow}
	tests := []struct {
		name       string
		status     int
		body       string
		retryAfter string
		want       error
		wantText   string
	}{
		{"missing key", 404, `{"error":{"code":"key_not_found","message":"\"pools/a\": key not found"}}`, "", ErrKeyNotFound, `"pools/a": key not found (404 key_not_found)`},
		{"failed compare-and-swap", 412, `{"error":{"code":"revision_mismatch","message":"m"}}`, "", ErrRevisionMismatch, "m (412 revision_mismatch)"},
		{"unknown user", 401, `{"error":{"code":"unauthenticated","message":"m"}}`, "", ErrUnauthenticated, ""},
		{"not permitted", 403, `{"error":{"code":"forbidden","message":"m"}}`, "", ErrForbidden, ""},
		{"key too large", 413, `{"error":{"code":"key_too_large","message":"m"}}`, "", ErrTooLarge, ""},
		{"value too large", 413, `{"error":{"code":"value_too_large","message":"m"}}`, "", ErrTooLarge, ""},
		{"bad ttl", 400, `{"error":{"code":"invalid_ttl","message":"m"}}`, "", ErrBadRequest, ""},
		{"no quorum", 503, `{"error":{"code":"no_quorum","message":"m"}}`, "1", ErrNoQuorum, "m (503 no_quorum)"},
		{"not ready", 503, `{"error":{"code":"not_ready","message":"m"}}`, "", ErrNotReady, ""},
		{"compacted", 410, `{"error":{"code":"revision_compacted","message":"m"}}`, "", ErrCompacted, ""},
		{"plain-text 503 from a proxy", 503, "upstream unavailable", "", ErrNoQuorum, "upstream unavailable (503)"},
		{"plain-text 403 from a proxy", 403, "", "", ErrForbidden, "forbidden (403)"},
		{"unknown route is not a missing key", 404, `{"error":{"code":"not_found","message":"no route"}}`, "", nil, "no route (404 not_found)"},
		{"internal error", 500, `{"error":{"code":"internal","message":"internal error"}}`, "", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			if tt.retryAfter != "" {
				rec.Header().Set("Retry-After", tt.retryAfter)
			}
			rec.WriteHeader(tt.status)
			_, _ = rec.WriteString(tt.body)
			err := error(apiErrorFrom(rec.Result()))
			for _, s := range sentinels {
				if got := errors.Is(err, s); got != (s == tt.want) { //nolint:errorlint // s and tt.want are sentinels of the table: identity is the point
					t.Errorf("errors.Is(%v, %v) = %v", err, s, got)
				}
			}
			var ae *APIError
			if !errors.As(err, &ae) || ae.StatusCode != tt.status {
				t.Fatalf("not an APIError with status %d: %#v", tt.status, err)
			}
			if tt.wantText != "" && err.Error() != tt.wantText {
				t.Errorf("Error() = %q, want %q", err.Error(), tt.wantText)
			}
			if tt.retryAfter != "" && ae.RetryAfter != time.Second {
				t.Errorf("RetryAfter = %s, want 1s", ae.RetryAfter)
			}
			if !errors.Is(err, &APIError{Code: ae.Code}) {
				t.Errorf("an APIError does not match its own code")
			}
		})
	}
}

// errorServer answers every request with one error, counting requests by
// method.
type errorServer struct {
	status int
	code   string
	count  map[string]*atomic.Int64
}

func newErrorServer(status int, code string) *errorServer {
	return &errorServer{status: status, code: code, count: map[string]*atomic.Int64{
		"GET": new(atomic.Int64), "PUT": new(atomic.Int64), "DELETE": new(atomic.Int64)}}
}

func (e *errorServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	e.count[r.Method].Add(1)
	if e.code == "abort" {
		panic(http.ErrAbortHandler) // a reset after the request arrived
	}
	writeErr(w, e.status, e.code, "refused by the test")
}

func TestFailoverToTheNextEndpointWhenTheFirstIsDown(t *testing.T) {
	p := newTestPKI(t)
	_, live := serveFake(t, p)
	c := p.client(deadEndpoint(t), live)
	ctx := ctxT(t)
	must(c.Put(ctx, "k", []byte("v")))(t)
	if got := c.current.Load(); got != 1 {
		t.Fatalf("the client should stay on the endpoint that answered, is on %d", got)
	}
	kv := must(c.Get(ctx, "k"))(t)
	if string(kv.Value) != "v" {
		t.Fatalf("got %q", kv.Value)
	}
}

func TestFailoverWhenTheFirstServerCertificateIsNotTrusted(t *testing.T) {
	p, other := newTestPKI(t), newTestPKI(t)
	foreign := newErrorServer(500, "internal")
	srv := httptest.NewUnstartedServer(foreign)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{other.server}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	_, live := serveFake(t, p)
	c := p.client(srv.URL, live)
	must(c.Put(ctxT(t), "k", []byte("v")))(t)
	if n := foreign.count["PUT"].Load(); n != 0 {
		t.Fatalf("the untrusted server got %d requests", n)
	}
}

func TestReadsFailOverOnNoQuorumButWritesDoNot(t *testing.T) {
	p := newTestPKI(t)
	minority := newErrorServer(503, "no_quorum")
	down := p.startTLS(minority)
	f, live := serveFake(t, p)
	ctx := ctxT(t)

	c := p.client(down.URL, live)
	_, err := c.Put(ctx, "k", []byte("v"))
	if !errors.Is(err, ErrNoQuorum) {
		t.Fatalf("put: got %v, want ErrNoQuorum", err)
	}
	var ae *APIError
	if !errors.As(err, &ae) || ae.RetryAfter != time.Second {
		t.Fatalf("put: want an APIError with RetryAfter 1s, got %#v", err)
	}
	if len(f.seen()) != 0 {
		t.Fatal("a write answered no_quorum (maybe committed later) must not be sent again elsewhere")
	}
	if _, err := c.Get(ctx, "k"); !errors.Is(err, ErrKeyNotFound) {
		t.Fatalf("get: got %v, want the live node's ErrKeyNotFound", err)
	}
	if got := minority.count["GET"].Load(); got != 1 {
		t.Fatalf("minority node saw %d GETs, want 1", got)
	}
}

func TestWritesFailOverOnNotReady(t *testing.T) {
	p := newTestPKI(t)
	joining := p.startTLS(newErrorServer(503, "not_ready"))
	_, live := serveFake(t, p)
	c := p.client(joining.URL, live)
	must(c.Put(ctxT(t), "k", []byte("v")))(t)
}

func TestWriteIsNotResentAfterAResetButAReadIs(t *testing.T) {
	p := newTestPKI(t)
	broken := newErrorServer(0, "abort")
	first := p.startTLS(broken)
	f, live := serveFake(t, p)
	ctx := ctxT(t)
	c := p.client(first.URL, live)
	if _, err := c.Put(ctx, "k", []byte("v")); err == nil {
		t.Fatal("put through a connection reset after sending: want an error")
	}
	if broken.count["PUT"].Load() == 0 || len(f.seen()) != 0 {
		t.Fatalf("the put must reach the first server only: first %d, second %d", broken.count["PUT"].Load(), len(f.seen()))
	}
	if _, err := c.Get(ctx, "k"); !errors.Is(err, ErrKeyNotFound) {
		t.Fatalf("get: got %v, want the second node's answer", err)
	}
}

func TestAllEndpointsFailingReportsEveryAttempt(t *testing.T) {
	p := newTestPKI(t)
	a := p.startTLS(newErrorServer(503, "no_quorum"))
	dead := deadEndpoint(t)
	c := p.client(a.URL, dead)
	_, err := c.Get(ctxT(t), "k")
	var ee *EndpointsError
	if !errors.As(err, &ee) || len(ee.Attempts) != 2 {
		t.Fatalf("got %v, want an EndpointsError of 2 attempts", err)
	}
	if !errors.Is(err, ErrNoQuorum) {
		t.Fatalf("errors.Is(%v, ErrNoQuorum) is false", err)
	}
	for _, s := range []string{a.URL, strings.TrimPrefix(dead, "https://"), "no_quorum", "refused"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("message %q does not name %q", err, s)
		}
	}
}

func TestListPagesAndListAll(t *testing.T) {
	p := newTestPKI(t)
	_, u := serveFake(t, p)
	c := p.client(u)
	ctx := ctxT(t)
	for i := 0; i < 25; i++ {
		must(c.Put(ctx, fmt.Sprintf("pools/m%02d", i), []byte{byte(i)}))(t)
	}
	must(c.Put(ctx, "other", []byte("x")))(t)
	page := must(c.List(ctx, "pools/", WithLimit(10)))(t)
	if len(page.Items) != 10 || !page.More || page.Next != "pools/m09" || page.Revision != 26 {
		t.Fatalf("first page: %d items, more %v, next %q, revision %d", len(page.Items), page.More, page.Next, page.Revision)
	}
	if page.Items[3].Value[0] != 3 || page.Items[3].Revision != 26 || page.Items[3].ModifyRevision != 4 {
		t.Fatalf("item: %+v", page.Items[3])
	}
	page = must(c.List(ctx, "pools/", WithLimit(10), WithAfter(page.Next), KeysOnly()))(t)
	if page.Items[0].Key != "pools/m10" || page.Items[0].Value != nil {
		t.Fatalf("second page starts with %+v", page.Items[0])
	}
	all := must(c.ListAll(ctx, "pools/", WithLimit(7)))(t)
	if len(all) != 25 || all[0].Key != "pools/m00" || all[24].Key != "pools/m24" {
		t.Fatalf("ListAll: %d items", len(all))
	}
	for i, kv := range all {
		if want := fmt.Sprintf("pools/m%02d", i); kv.Key != want {
			t.Fatalf("item %d is %q, want %q", i, kv.Key, want)
		}
	}
}

func TestWatchStreamsChangesInOrder(t *testing.T) {
	p := newTestPKI(t)
	_, u := serveFake(t, p)
	c := p.client(u)
	ctx := ctxT(t)
	first := must(c.Put(ctx, "pools/a", []byte("1")))(t)
	must(c.Put(ctx, "other/a", []byte("1")))(t)
	w := must(c.Watch(ctx, "pools/", first.Revision))(t)
	defer w.Close()
	must(c.Put(ctx, "pools/b", []byte("2")))(t)
	must(c.Delete(ctx, "pools/a"))(t)
	var got []string
	for len(got) < 3 {
		ev := must(w.Next())(t)
		got = append(got, fmt.Sprintf("%s %s %s %d", ev.Type, ev.Key, ev.Value, ev.Revision))
	}
	want := []string{"put pools/a 1 1", "put pools/b 2 3", "delete pools/a  4"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("events:\n got %q\nwant %q", got, want)
	}
	if w.LastRevision() != 4 {
		t.Fatalf("LastRevision %d, want 4", w.LastRevision())
	}
	w.Close()
	if _, err := w.Next(); !errors.Is(err, ErrWatcherClosed) {
		t.Fatalf("Next after Close: %v", err)
	}
}

func TestWatchFromNowOnlyResumesFromZero(t *testing.T) {
	p := newTestPKI(t)
	_, u := serveFake(t, p)
	c := p.client(u)
	ctx := ctxT(t)
	must(c.Put(ctx, "old", []byte("1")))(t)
	w := must(c.Watch(ctx, "", 0))(t)
	defer w.Close()
	if w.LastRevision()+1 != 0 {
		t.Fatalf("resuming a new-changes watch must ask for new changes again, LastRevision %d", w.LastRevision())
	}
	must(c.Put(ctx, "new", []byte("2")))(t)
	if ev := must(w.Next())(t); ev.Key != "new" {
		t.Fatalf("first event is %+v, want the new key only", ev)
	}
}

func TestWatchStreamErrorsAreTyped(t *testing.T) {
	p := newTestPKI(t)
	srv := p.startTLS(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("from") == "1" {
			writeErr(w, 410, "revision_compacted", "revision 1 is compacted")
			return
		}
		w.Header().Set("Content-Type", "application/x-ndjson")
		_, _ = io.WriteString(w, `{"type":"put","key":"k","value":"dg==","revision":7}`+"\n")
		_, _ = io.WriteString(w, `{"type":"error","error":{"code":"watcher_too_slow","message":"watcher too slow"}}`+"\n")
	}))
	c := p.client(srv.URL)
	ctx := ctxT(t)
	if _, err := c.Watch(ctx, "", 1); !errors.Is(err, ErrCompacted) {
		t.Fatalf("watch from a compacted revision: got %v, want ErrCompacted", err)
	}
	w := must(c.Watch(ctx, "", 5))(t)
	defer w.Close()
	ev := must(w.Next())(t)
	if ev.Key != "k" || string(ev.Value) != "v" || ev.Revision != 7 {
		t.Fatalf("event %+v", ev)
	}
	_, err := w.Next()
	if !errors.Is(err, ErrWatcherTooSlow) || err.Error() != "watcher too slow (watcher_too_slow)" {
		t.Fatalf("got %v, want ErrWatcherTooSlow", err)
	}
	if _, again := w.Next(); again != err { //nolint:errorlint // the very same error value must come back
		t.Fatalf("the error must stick, got %v", again)
	}
	if w.LastRevision() != 7 {
		t.Fatalf("LastRevision %d, want 7", w.LastRevision())
	}
}

func TestWatchEndsWithItsContext(t *testing.T) {
	p := newTestPKI(t)
	_, u := serveFake(t, p)
	c := p.client(u)
	ctx, cancel := context.WithCancel(ctxT(t))
	w := must(c.Watch(ctx, "", 0))(t)
	defer w.Close()
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	if _, err := w.Next(); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

func TestWatchOutlivesTheCallTimeout(t *testing.T) {
	p := newTestPKI(t)
	_, u := serveFake(t, p)
	cert, key := p.userFiles("myuser")
	tc := must(TLSConfigFromFiles(cert, key, p.caFile()))(t)
	// A timeout the opening of the watch meets even on a loaded machine (a
	// TLS handshake alone took over 100 ms under CI load), outlived below.
	c := must(New(Config{Endpoints: []string{u}, TLS: tc, Timeout: 2 * time.Second}))(t)
	defer c.Close()
	ctx := ctxT(t)
	w := must(c.Watch(ctx, "", 0))(t)
	defer w.Close()
	time.Sleep(3 * time.Second) // longer than Timeout, on purpose
	must(c.Put(ctx, "k", []byte("v")))(t)
	if ev := must(w.Next())(t); ev.Key != "k" {
		t.Fatalf("event %+v", ev)
	}
}

func TestTimeoutBoundsACall(t *testing.T) {
	p := newTestPKI(t)
	srv := p.startTLS(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	cert, key := p.userFiles("myuser")
	tc := must(TLSConfigFromFiles(cert, key, p.caFile()))(t)
	c := must(New(Config{Endpoints: []string{srv.URL}, TLS: tc, Timeout: 200 * time.Millisecond}))(t)
	defer c.Close()
	start := time.Now()
	_, err := c.Get(ctxT(t), "k")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want a deadline error", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the call took %s", d)
	}
}

func TestClusterStatusDecodes(t *testing.T) {
	p := newTestPKI(t)
	_, u := serveFake(t, p)
	st := must(p.client(u).Cluster(ctxT(t)))(t)
	if st.Leader != "n0/a" || st.CommitIndex != 7 || len(st.Members) != 1 || !st.Members[0].Leader || st.Members[0].Suffrage != "voter" {
		t.Fatalf("status %+v", st)
	}
}

func TestClientCertificateIsReadAgainWhenItsFilesChange(t *testing.T) {
	p := newTestPKI(t)
	srv := p.startTLS(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]any{"self": r.TLS.PeerCertificates[0].Subject.CommonName})
	}))
	cert, key := p.userFiles("alice")
	c := must(NewFromFiles([]string{srv.URL}, cert, key, p.caFile()))(t)
	defer c.Close()
	ctx := ctxT(t)
	if st := must(c.Cluster(ctx))(t); st.Self != "alice" {
		t.Fatalf("presented %q", st.Self)
	}
	p.writeKeyPair(p.issue("bob", false), cert, key)
	c.Close() // new connections only: a live one keeps its handshake
	if st := must(c.Cluster(ctx))(t); st.Self != "bob" {
		t.Fatalf("after rotation presented %q, want bob", st.Self)
	}
}

func TestNewRejectsBadConfiguration(t *testing.T) {
	p := newTestPKI(t)
	cert, key := p.userFiles("myuser")
	tc := must(TLSConfigFromFiles(cert, key, p.caFile()))(t)
	for name, cfg := range map[string]Config{
		"no endpoint":           {TLS: tc},
		"only blank endpoints":  {Endpoints: []string{" ", ""}, TLS: tc},
		"ftp scheme":            {Endpoints: []string{"ftp://h:1"}, TLS: tc},
		"query in endpoint":     {Endpoints: []string{"https://h:1/?x=1"}, TLS: tc},
		"neither TLS nor a hc":  {Endpoints: []string{"https://h:1"}},
		"unparseable endpoint":  {Endpoints: []string{"https://h:1:%zz"}, TLS: tc},
		"endpoint without host": {Endpoints: []string{"https://"}, TLS: tc},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: New accepted %+v", name, cfg)
		}
	}
	c := must(New(Config{Endpoints: []string{"127.0.0.1:8087", "https://b:8087/"}, TLS: tc}))(t)
	if got := c.Endpoints(); got[0] != "https://127.0.0.1:8087" || got[1] != "https://b:8087" {
		t.Errorf("endpoints normalised to %q", got)
	}
	for name, files := range map[string][3]string{
		"missing cert":      {p.dir + "/nope.crt", key, p.caFile()},
		"cert without key":  {cert, "", p.caFile()},
		"missing CA":        {cert, key, p.dir + "/nope.crt"},
		"CA file is no PEM": {cert, key, key + "x"},
	} {
		if name == "CA file is no PEM" {
			writePEM(t, files[2], "NOTHING", nil)
		}
		if _, err := NewFromFiles([]string{"https://h:1"}, files[0], files[1], files[2]); err == nil {
			t.Errorf("%s: NewFromFiles accepted it", name)
		}
	}
}

func TestEscapeKeyIsOneSegment(t *testing.T) {
	for key, want := range map[string]string{
		"pools/web-1": "pools%2Fweb-1",
		"a b":         "a%20b",
		"..":          "%2E%2E",
		".":           "%2E",
		"...":         "...",
		"?#%":         "%3F%23%25",
	} {
		if got := escapeKey(key); got != want {
			t.Errorf("escapeKey(%q) = %q, want %q", key, got, want)
		}
		if back, _ := url.PathUnescape(escapeKey(key)); back != key {
			t.Errorf("%q does not round-trip: %q", key, back)
		}
	}
}

func TestAFinalAnswerIsReturnedAsIs(t *testing.T) {
	p := newTestPKI(t)
	_, a := serveFake(t, p)
	b := p.startTLS(newErrorServer(500, "internal"))
	c := p.client(a, b.URL)
	_, err := c.Get(ctxT(t), "k")
	var ae *APIError
	if !errors.As(err, &ae) || err != error(ae) { //nolint:errorlint // the *APIError itself, not wrapped, is what is asserted
		t.Fatalf("got %#v, want the *APIError itself", err)
	}
	if err.Error() != `"k": key not found (404 key_not_found)` {
		t.Fatalf("message %q", err)
	}
}

package httpapi

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/ephemeral-store/ephemeral-store/store/client/api"
	"github.com/ephemeral-store/ephemeral-store/store/internal/auth"
	"github.com/ephemeral-store/ephemeral-store/store/internal/cluster"
	"github.com/ephemeral-store/ephemeral-store/store/internal/fsm"
)

// localCluster applies commands straight to a state machine: the API layer
// is tested against a plain map, as hraftd tests its HTTP layer. It leads
// since the test binary started.
type localCluster struct{ s *fsm.State }

var localTakeover = time.Now()

func (l localCluster) Apply(_ context.Context, c fsm.Command) (fsm.Result, error) {
	c.PrepareOnLeader(max(time.Since(localTakeover), 1), time.Now())
	r := l.s.Apply(c)
	return r, r.Err
}
func (localCluster) LinearizableRead(context.Context) error { return nil }
func (localCluster) Status() api.ClusterStatus              { return api.ClusterStatus{} }
func (localCluster) ForceReform(context.Context, string, string) error {
	return cluster.ErrReformRefused
}

type oneUser struct{ u auth.User }

func (o oneUser) Authenticate(name string) (auth.User, error) {
	if name != o.u.Name {
		return auth.User{}, auth.ErrUnknownUser
	}
	return o.u, nil
}

func newTestAPI() *API {
	s := fsm.New(fsm.Limits{HistoryEvents: 64, WatcherBuffer: 8})
	return New(Options{
		Cluster: localCluster{s}, State: s,
		Users:       oneUser{auth.User{Name: "myuser", AuthMode: "certificate", AllKeys: true}},
		UserOf:      func(*tls.ConnectionState) (string, error) { return "myuser", nil },
		MaxKeyBytes: 64, MaxValueBytes: 256,
	})
}

// FuzzRequest drives the whole request parsing (path, query, body, method)
// and checks the contract: never a 5xx, every error is JSON with a code, and
// a successful PUT's value reads back intact.
func FuzzRequest(f *testing.F) {
	seeds := []struct{ method, target, body string }{
		{"PUT", "/v1/kv/pools/web-1?ttl=30s", "healthy"},
		{"PUT", "/v1/kv/k?prev_revision=0", "v"},
		{"GET", "/v1/kv/k?stale", ""},
		{"DELETE", "/v1/kv/k?prev_revision=1", ""},
		{"GET", "/v1/kv/?prefix=pools/&limit=2&after=pools/a&keys_only", ""},
		{"GET", "/v1/kv/%E2%82%AC%2Fx", ""},
		{"PUT", "/v1/kv/a%2F%2Fb?ttl=1", "x"},
		{"GET", "/v1/cluster", ""},
		{"POST", "/v1/kv/k", "v"},
		{"PUT", "/v1/kv/k?ttl=9999999999999h", "v"},
		{"GET", "/v1/watch/?prefix=p&from=99999999999999999999", ""},
	}
	for _, s := range seeds {
		f.Add(s.method, s.target, s.body)
	}
	f.Fuzz(func(t *testing.T, method, target, body string) {
		if !strings.HasPrefix(target, "/") || strings.ContainsAny(target, " \r\n\t") || !utf8.ValidString(method) {
			return
		}
		switch method {
		case "GET", "PUT", "DELETE", "POST", "HEAD":
		default:
			return
		}
		if strings.HasPrefix(target, "/v1/watch") && method == "GET" {
			return // a watch stream stays open; its parsing is covered by FuzzParse
		}
		req, err := http.NewRequest(method, "https://store"+target, strings.NewReader(body))
		if err != nil {
			return // not a request a server would receive
		}
		req.TLS = &tls.ConnectionState{}
		a := newTestAPI()
		rec := httptest.NewRecorder()
		a.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %s: status %d: %s", method, target, rec.Code, rec.Body)
		}
		if rec.Code >= 400 {
			var e api.ErrorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error.Code == "" {
				t.Fatalf("%s %s: error body is not JSON with a code: %q", method, target, rec.Body)
			}
			return
		}
		if method == "PUT" {
			get := httptest.NewRequest("GET", "https://store"+req.URL.EscapedPath()+"?stale", nil)
			get.TLS = &tls.ConnectionState{}
			rec2 := httptest.NewRecorder()
			a.ServeHTTP(rec2, get)
			if rec2.Code != 200 || rec2.Body.String() != body {
				t.Fatalf("PUT %s then GET: %d %q, want 200 %q", target, rec2.Code, rec2.Body, body)
			}
		}
	})
}

// FuzzParse checks the query and key parsers alone: they never panic and
// what they accept is within the documented bounds.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"ttl=30s", "ttl=0", "ttl=-1s", "prev_revision=7", "limit=1001", "from=abc", "stale=maybe", "%zz"} {
		f.Add("/v1/kv/a%20b", s)
	}
	f.Fuzz(func(t *testing.T, path, rawQuery string) {
		if key, err := parseKey(path, "/v1/kv/", 1024); err == nil {
			if len(key) > 1024 || !utf8.ValidString(key) {
				t.Fatalf("accepted key %q", key)
			}
		}
		q, err := url.ParseQuery(rawQuery)
		if err != nil {
			return
		}
		if d, err := parseTTL(q); err == nil && (d < 0 || d > fsm.MaxTTL) {
			t.Fatalf("accepted ttl %s", d)
		}
		if r, err := parseRevision(q, "prev_revision"); err == nil && r != nil && *r < 0 {
			t.Fatalf("accepted revision %d", *r)
		}
		if n, err := parseLimit(q); err == nil && (n < 1 || n > maxPage) {
			t.Fatalf("accepted limit %d", n)
		}
		_, _ = flag(q, "stale")
	})
}

// Package httpapi serves the client API (docs/interfaces.md, "HTTP API") over the
// client port. Every request is authenticated by the CN of the verified
// client certificate, authorized by the user's key prefixes, and answered
// with JSON errors carrying a stable code.
package httpapi

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ephemeral-store/ephemeral-store/store/client/api"
	"github.com/ephemeral-store/ephemeral-store/store/internal/auth"
	"github.com/ephemeral-store/ephemeral-store/store/internal/fsm"
	"github.com/ephemeral-store/ephemeral-store/store/internal/quota"
)

// Replicator is what the API needs from the cluster: commit a change,
// make a read linearizable, describe membership.
type Replicator interface {
	Apply(ctx context.Context, cmd fsm.Command) (fsm.Result, error)
	LinearizableRead(ctx context.Context) error
	Status() api.ClusterStatus
	// ForceReform empties every leaderless member of the cluster whose ID
	// is confirm and bootstraps a new one (an operator's decision that the
	// silent voters are dead).
	ForceReform(ctx context.Context, confirm, by string) error
}

// Reader serves reads from the local replica.
type Reader interface {
	Get(key string) (*fsm.KeyValue, int64, bool)
	List(prefix, after string, limit int, opts fsm.ListOptions) ([]*fsm.KeyValue, bool, int64)
	Watch(prefix string, from int64) (*fsm.Watcher, error)
	// ClockNow is the replica's estimate of the cluster time, which TTLs
	// run on (never a wall clock).
	ClockNow() time.Duration
}

// Quota refuses a write that would take the data past the node's quota
// (store/internal/quota) before it is sent to the leader, which checks it
// again before proposing it.
type Quota interface {
	Check(cmd fsm.Command) error
}

// Authenticator turns a certificate user name into a User.
type Authenticator interface {
	Authenticate(name string) (auth.User, error)
}

// UserFunc extracts the user from the verified TLS state.
type UserFunc func(*tls.ConnectionState) (string, error)

// maxPageBytes bounds the key and value bytes of one list page.
const maxPageBytes = 4 << 20

// Options wire the API.
type Options struct {
	Cluster       Replicator
	State         Reader
	Users         Authenticator
	UserOf        UserFunc
	MaxKeyBytes   int
	MaxValueBytes int
	// Quota, when set, refuses writes that would grow the data past it.
	Quota   Quota
	Logger  *slog.Logger
	Metrics *Metrics
	// PermissionRecheck is how often an open watch re-checks its user
	// (default 5s).
	PermissionRecheck time.Duration
}

func (a *API) recheckEvery() time.Duration {
	if a.o.PermissionRecheck > 0 {
		return a.o.PermissionRecheck
	}
	return 5 * time.Second
}

// API is the client-facing HTTP handler.
type API struct {
	o Options
}

// New returns the handler.
func New(o Options) *API {
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil, nil)
	}
	return &API{o: o}
}

// statusRecorder remembers the status for metrics and logs.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// ServeHTTP dispatches from the route table (routes.go).
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w}
	route := a.route(rec, r)
	status := rec.status
	if status == 0 {
		status = http.StatusOK
	}
	a.o.Metrics.observe(route, r.Method, status, time.Since(start))
}

func (a *API) route(w http.ResponseWriter, r *http.Request) string {
	path := r.URL.EscapedPath()
	rt := findRoute(path, r.Method)
	if rt == nil {
		writeError(w, newError(http.StatusNotFound, api.CodeNotFound, fmt.Sprintf("no route for %s", path)))
		return "unknown"
	}
	user, err := a.authenticate(r)
	if err != nil {
		writeError(w, err)
		return rt.Name
	}
	a.handle(w, r, func() error {
		if !slices.Contains(rt.Methods, r.Method) {
			return methodNotAllowed(r, strings.Join(rt.Methods, ", "))
		}
		return rt.serve(a, w, r, user)
	})
	return rt.Name
}

// reform is the operator's forced re-forming after a quorum loss whose
// silent voters are known dead. It throws the cluster's data away, so it
// takes a user with read/write on every key and the cluster ID as
// confirmation, and it is logged with the user's name.
func (a *API) reform(w http.ResponseWriter, r *http.Request, u auth.User) error {
	if !u.AllKeys {
		a.o.Metrics.AuthFailures.WithLabelValues("forbidden").Inc()
		return newError(http.StatusForbidden, api.CodeForbidden, fmt.Sprintf("user %q may not reform the cluster: it takes read/write on every key", u.Name))
	}
	confirm := r.URL.Query().Get("confirm")
	if confirm == "" {
		return newError(http.StatusBadRequest, api.CodeConfirmationRequired, "reform throws every key away: repeat the cluster_id of /v1/cluster as ?confirm=")
	}
	a.o.Logger.Warn("forced reform requested", "user", u.Name, "remote", r.RemoteAddr, "confirm", confirm)
	if err := a.o.Cluster.ForceReform(r.Context(), confirm, u.Name); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a.o.Cluster.Status())
	return nil
}

func (a *API) handle(w http.ResponseWriter, r *http.Request, f func() error) {
	if err := f(); err != nil {
		status, code := writeError(w, err)
		if status >= 500 {
			a.o.Logger.Error("request failed", "method", r.Method, "path", r.URL.Path, "code", code, "err", err)
		}
	}
}

func methodNotAllowed(r *http.Request, allowed string) error {
	return newError(http.StatusMethodNotAllowed, api.CodeMethodNotAllowed, fmt.Sprintf("%s is not allowed here; use %s", r.Method, allowed))
}

// authenticate finds the user named by the verified certificate. A
// certificate is always required by the TLS layer; this only refuses users
// that are not (or no longer) in the users directory.
func (a *API) authenticate(r *http.Request) (auth.User, error) {
	if r.TLS == nil {
		a.o.Metrics.AuthFailures.WithLabelValues("no_tls").Inc()
		return auth.User{}, newError(http.StatusUnauthorized, api.CodeUnauthenticated, "a TLS client certificate is required")
	}
	name, err := a.o.UserOf(r.TLS)
	if err != nil {
		a.o.Metrics.AuthFailures.WithLabelValues("no_certificate_user").Inc()
		a.o.Logger.Warn("authentication failed", "remote", r.RemoteAddr, "err", err)
		return auth.User{}, newError(http.StatusUnauthorized, api.CodeUnauthenticated, err.Error())
	}
	u, err := a.o.Users.Authenticate(name)
	if err != nil {
		a.o.Metrics.AuthFailures.WithLabelValues("unknown_user").Inc()
		a.o.Logger.Warn("authentication failed: unknown user", "user", name, "remote", r.RemoteAddr)
		return auth.User{}, newError(http.StatusUnauthorized, api.CodeUnauthenticated, fmt.Sprintf("user %q is not allowed in", name))
	}
	return u, nil
}

func (a *API) authorize(u auth.User, key string, need auth.Access) error {
	if err := auth.Authorize(u, key, need); err != nil {
		a.o.Metrics.AuthFailures.WithLabelValues("forbidden").Inc()
		return newError(http.StatusForbidden, api.CodeForbidden, fmt.Sprintf("user %q may not %s %q", u.Name, verb(need), key))
	}
	return nil
}

func verb(need auth.Access) string {
	if need == auth.AccessReadWrite {
		return "write"
	}
	return "read"
}

func (a *API) kv(w http.ResponseWriter, r *http.Request, u auth.User) error {
	key, err := parseKey(r.URL.EscapedPath(), "/v1/kv/", a.o.MaxKeyBytes)
	if err != nil {
		return err
	}
	if key == "" {
		return newError(http.StatusBadRequest, api.CodeInvalidKey, "empty key; list keys with GET /v1/kv/?prefix=")
	}
	q := r.URL.Query()
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		if err := a.authorize(u, key, auth.AccessRead); err != nil {
			return err
		}
		return a.get(w, r, key)
	case http.MethodPut:
		if err := a.authorize(u, key, auth.AccessReadWrite); err != nil {
			return err
		}
		return a.put(w, r, key)
	case http.MethodDelete:
		if err := a.authorize(u, key, auth.AccessReadWrite); err != nil {
			return err
		}
		prev, err := parseRevision(q, "prev_revision")
		if err != nil {
			return err
		}
		res, err := a.o.Cluster.Apply(r.Context(), fsm.Command{Op: fsm.OpDelete, Key: key, PrevRevision: prev})
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, api.DeleteResult{Key: key, Revision: res.Revision})
		return nil
	default: // the route table let only its methods through
		return methodNotAllowed(r, "GET, HEAD, PUT, DELETE")
	}
}

func (a *API) readBarrier(r *http.Request) error {
	stale, err := flag(r.URL.Query(), "stale")
	if err != nil || stale {
		return err
	}
	return a.o.Cluster.LinearizableRead(r.Context())
}

func (a *API) get(w http.ResponseWriter, r *http.Request, key string) error {
	if err := a.readBarrier(r); err != nil {
		return err
	}
	kv, rev, ok := a.o.State.Get(key)
	if !ok {
		return fmt.Errorf("%q: %w", key, fsm.ErrKeyNotFound)
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("ES-Revision", strconv.FormatInt(rev, 10))
	h.Set("ES-Create-Revision", strconv.FormatInt(kv.CreateRevision, 10))
	h.Set("ES-Modify-Revision", strconv.FormatInt(kv.ModifyRevision, 10))
	if rem := kv.TTLRemaining(a.o.State.ClockNow()); rem > 0 {
		h.Set("ES-TTL-Remaining", strconv.FormatInt(int64(math.Ceil(rem.Seconds())), 10))
	}
	h.Set("Content-Length", strconv.Itoa(len(kv.Value)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		// G705: the value goes to an authenticated API client as application/octet-stream,
		// never rendered as a page
		_, _ = w.Write(kv.Value) //nolint:gosec // see above
	}
	return nil
}

func (a *API) put(w http.ResponseWriter, r *http.Request, key string) error {
	q := r.URL.Query()
	ttl, err := parseTTL(q)
	if err != nil {
		return err
	}
	prev, err := parseRevision(q, "prev_revision")
	if err != nil {
		return err
	}
	tooLarge := newError(http.StatusRequestEntityTooLarge, api.CodeValueTooLarge, fmt.Sprintf("value is over the limit of %d bytes", a.o.MaxValueBytes))
	if r.ContentLength > int64(a.o.MaxValueBytes) {
		return tooLarge
	}
	value, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(a.o.MaxValueBytes)))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return tooLarge
		}
		return newError(http.StatusBadRequest, api.CodeBadRequest, fmt.Sprintf("reading the value: %v", err))
	}
	cmd := fsm.Command{Op: fsm.OpPut, Key: key, Value: value, TTL: ttl, PrevRevision: prev}
	if err := a.checkQuota(r.Context(), cmd); err != nil {
		return err
	}
	res, err := a.o.Cluster.Apply(r.Context(), cmd)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.PutResult{
		Key: key, Revision: res.Revision,
		CreateRevision: res.CreateRevision, ModifyRevision: res.ModifyRevision,
	})
	return nil
}

// checkQuota refuses a write that would take the data past the quota
// before it leaves this node, so that a doomed value does not cross the
// network. A follower's state may lag the leader's: before it refuses, it
// catches up to the leader's commit index (the barrier of a linearizable
// read), so that a delete the client has just made counts. Whatever this
// node says, the leader checks again before proposing.
func (a *API) checkQuota(ctx context.Context, cmd fsm.Command) error {
	if a.o.Quota == nil {
		return nil
	}
	return quota.Precheck(ctx, a.o.Quota, a.o.Cluster.LinearizableRead, cmd)
}

func (a *API) list(w http.ResponseWriter, r *http.Request, u auth.User) error {
	q := r.URL.Query()
	prefix := q.Get("prefix")
	if len(prefix) > a.o.MaxKeyBytes {
		return newError(http.StatusRequestEntityTooLarge, api.CodeKeyTooLarge, "prefix is longer than the key limit")
	}
	if err := auth.AuthorizePrefix(u, prefix, auth.AccessRead); err != nil {
		a.o.Metrics.AuthFailures.WithLabelValues("forbidden").Inc()
		return newError(http.StatusForbidden, api.CodeForbidden, fmt.Sprintf("user %q may not list %q", u.Name, prefix))
	}
	limit, err := parseLimit(q)
	if err != nil {
		return err
	}
	keysOnly, err := flag(q, "keys_only")
	if err != nil {
		return err
	}
	if err := a.readBarrier(r); err != nil {
		return err
	}
	// A page also ends at maxPageBytes of values, so a page of large values
	// cannot make the server copy and encode gigabytes.
	kvs, more, rev := a.o.State.List(prefix, q.Get("after"), limit, fsm.ListOptions{MaxBytes: maxPageBytes, KeysOnly: keysOnly})
	page := api.ListPage{Revision: rev, Items: make([]api.ListItem, len(kvs)), More: more}
	now := a.o.State.ClockNow()
	for i, kv := range kvs {
		it := api.ListItem{Key: kv.Key, CreateRevision: kv.CreateRevision, ModifyRevision: kv.ModifyRevision}
		if !keysOnly {
			it.Value = kv.Value
			if it.Value == nil {
				it.Value = []byte{}
			}
		}
		if rem := kv.TTLRemaining(now); rem > 0 {
			it.TTLRemainingMS = max(rem.Milliseconds(), 1)
		}
		page.Items[i] = it
	}
	if more && len(kvs) > 0 {
		page.Next = kvs[len(kvs)-1].Key
	}
	writeJSON(w, http.StatusOK, page)
	return nil
}

func (a *API) watch(w http.ResponseWriter, r *http.Request, u auth.User) error {
	q := r.URL.Query()
	prefix := q.Get("prefix")
	if err := auth.AuthorizePrefix(u, prefix, auth.AccessRead); err != nil {
		a.o.Metrics.AuthFailures.WithLabelValues("forbidden").Inc()
		return newError(http.StatusForbidden, api.CodeForbidden, fmt.Sprintf("user %q may not watch %q", u.Name, prefix))
	}
	from, err := parseRevision(q, "from")
	if err != nil {
		return err
	}
	var start int64
	if from != nil {
		start = *from
	}
	wt, err := a.o.State.Watch(prefix, start)
	if err != nil {
		return err
	}
	defer wt.Close()
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	if flusher != nil {
		flusher.Flush()
	}
	enc := json.NewEncoder(w)
	// Users change live: a stream ends when its user loses the right to it.
	recheck := time.NewTicker(a.recheckEvery())
	defer recheck.Stop()
	for {
		select {
		case <-r.Context().Done():
			return nil
		case <-recheck.C:
			cur, err := a.o.Users.Authenticate(u.Name)
			if err == nil {
				err = auth.AuthorizePrefix(cur, prefix, auth.AccessRead)
			}
			if err != nil {
				_, code := statusOf(err)
				_ = enc.Encode(endOfWatch(code, fmt.Sprintf("user %q may no longer watch %q", u.Name, prefix)))
				return nil
			}
		case ev, ok := <-wt.C():
			if !ok {
				if werr := wt.Err(); werr != nil {
					_, code := statusOf(werr)
					if errors.Is(werr, fsm.ErrWatcherTooSlow) {
						code = api.CodeWatcherTooSlow
					}
					_ = enc.Encode(endOfWatch(code, werr.Error()))
				}
				return nil
			}
			line := api.WatchEvent{Event: api.Event{Type: string(ev.Type), Key: ev.Key, Value: ev.Value, Revision: ev.Revision}}
			if err := enc.Encode(line); err != nil {
				return nil // client went away
			}
			if flusher != nil && len(wt.C()) == 0 {
				flusher.Flush()
			}
		}
	}
}

// endOfWatch is the last line of a watch stream that ends with an error.
func endOfWatch(code, msg string) api.WatchEvent {
	return api.WatchEvent{Event: api.Event{Type: api.EventError}, Error: &api.ErrorDetail{Code: code, Message: msg}}
}

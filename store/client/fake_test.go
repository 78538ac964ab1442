package client

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ephemeral-store/ephemeral-store/store/client/api"
)

// fakeStore is a minimal in-memory server of the API contract
// (docs/interfaces.md), enough to test the client's side of it. It parses
// keys exactly as store/internal/httpapi does: the escaped path after
// /v1/kv/, percent-decoded.
type fakeStore struct {
	mu        sync.Mutex
	rev       int64
	kvs       map[string]fakeKV
	history   []api.Event
	compacted int64 // watches from a revision <= this get 410
	subs      map[chan api.Event]string
	requests  []seenRequest
	stop      chan struct{}
}

type fakeKV struct {
	value          []byte
	create, modify int64
	expire         time.Time
}

type seenRequest struct {
	Method, EscapedPath, RawQuery, Body, Proto string
}

func newFakeStore() *fakeStore {
	return &fakeStore{kvs: map[string]fakeKV{}, subs: map[chan api.Event]string{}, stop: make(chan struct{})}
}

func (f *fakeStore) seen() []seenRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]seenRequest(nil), f.requests...)
}

func writeErr(w http.ResponseWriter, status int, code, msg string) {
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func (f *fakeStore) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.requests = append(f.requests, seenRequest{r.Method, r.URL.EscapedPath(), r.URL.RawQuery, string(body), r.Proto})
	f.mu.Unlock()
	path := r.URL.EscapedPath()
	q := r.URL.Query()
	switch {
	case path == "/v1/kv/" && r.Method == http.MethodGet:
		f.list(w, q)
	case strings.HasPrefix(path, "/v1/kv/"):
		key, err := url.PathUnescape(strings.TrimPrefix(path, "/v1/kv/"))
		if err != nil || key == "" {
			writeErr(w, 400, "invalid_key", "bad key")
			return
		}
		f.kv(w, r, key, body)
	case path == "/v1/watch/":
		f.watch(w, r, q)
	case path == "/v1/cluster":
		writeJSON(w, map[string]any{"self": "n0/a", "leader": "n0/a", "state": "Leader", "revision": f.rev,
			"commit_index": 7, "applied_index": 7,
			"members": []map[string]any{{"id": "n0/a", "name": "n0", "address": "n0:8088", "suffrage": "voter", "leader": true}}})
	default:
		writeErr(w, 404, "not_found", "no route")
	}
}

func (f *fakeStore) kv(w http.ResponseWriter, r *http.Request, key string, body []byte) {
	q := r.URL.Query()
	var prev *int64
	if q.Has("prev_revision") {
		n, err := strconv.ParseInt(q.Get("prev_revision"), 10, 64)
		if err != nil || n < 0 {
			writeErr(w, 400, "invalid_revision", "bad prev_revision")
			return
		}
		prev = &n
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	cur, exists := f.kvs[key]
	if exists && !cur.expire.IsZero() && time.Now().After(cur.expire) {
		exists = false
	}
	if prev != nil && ((*prev == 0 && exists) || (*prev != 0 && (!exists || cur.modify != *prev))) {
		writeErr(w, 412, "revision_mismatch", fmt.Sprintf("%q: revision mismatch", key))
		return
	}
	switch r.Method {
	case http.MethodGet:
		if !exists {
			writeErr(w, 404, "key_not_found", fmt.Sprintf("%q: key not found", key))
			return
		}
		w.Header().Set("ES-Revision", strconv.FormatInt(f.rev, 10))
		w.Header().Set("ES-Create-Revision", strconv.FormatInt(cur.create, 10))
		w.Header().Set("ES-Modify-Revision", strconv.FormatInt(cur.modify, 10))
		if !cur.expire.IsZero() {
			w.Header().Set("ES-TTL-Remaining", strconv.Itoa(int(time.Until(cur.expire).Seconds()+0.999)))
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = w.Write(cur.value)
	case http.MethodPut:
		var expire time.Time
		if s := q.Get("ttl"); s != "" {
			d, err := time.ParseDuration(s)
			if err != nil || d <= 0 {
				writeErr(w, 400, "invalid_ttl", "bad ttl")
				return
			}
			expire = time.Now().Add(d)
		}
		f.rev++
		kv := fakeKV{value: body, create: f.rev, modify: f.rev, expire: expire}
		if exists {
			kv.create = cur.create
		}
		f.kvs[key] = kv
		f.publish(api.Event{Type: api.EventPut, Key: key, Value: body, Revision: f.rev})
		writeJSON(w, map[string]any{"key": key, "revision": f.rev, "create_revision": kv.create, "modify_revision": kv.modify})
	case http.MethodDelete:
		if !exists {
			writeErr(w, 404, "key_not_found", fmt.Sprintf("%q: key not found", key))
			return
		}
		f.rev++
		delete(f.kvs, key)
		f.publish(api.Event{Type: api.EventDelete, Key: key, Revision: f.rev})
		writeJSON(w, map[string]any{"key": key, "revision": f.rev})
	default:
		writeErr(w, 405, "method_not_allowed", "no")
	}
}

// publish records ev and hands it to live watchers; f.mu is held.
func (f *fakeStore) publish(ev api.Event) {
	f.history = append(f.history, ev)
	for ch, prefix := range f.subs {
		if strings.HasPrefix(ev.Key, prefix) {
			ch <- ev
		}
	}
}

func (f *fakeStore) list(w http.ResponseWriter, q url.Values) {
	limit := 100
	if q.Has("limit") {
		limit, _ = strconv.Atoi(q.Get("limit"))
	}
	prefix, after := q.Get("prefix"), q.Get("after")
	f.mu.Lock()
	defer f.mu.Unlock()
	var keys []string
	for k := range f.kvs {
		if strings.HasPrefix(k, prefix) && k > after {
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
		kv := f.kvs[k]
		it := map[string]any{"key": k, "create_revision": kv.create, "modify_revision": kv.modify}
		if !q.Has("keys_only") {
			it["value"] = kv.value
		}
		if !kv.expire.IsZero() {
			it["ttl_remaining_ms"] = time.Until(kv.expire).Milliseconds()
		}
		items = append(items, it)
	}
	page := map[string]any{"revision": f.rev, "items": items, "more": more}
	if more {
		page["next"] = keys[len(keys)-1]
	}
	writeJSON(w, page)
}

func (f *fakeStore) watch(w http.ResponseWriter, r *http.Request, q url.Values) {
	prefix := q.Get("prefix")
	from, _ := strconv.ParseInt(q.Get("from"), 10, 64)
	ch := make(chan api.Event, 100)
	f.mu.Lock()
	if q.Has("from") && from <= f.compacted {
		f.mu.Unlock()
		writeErr(w, 410, "revision_compacted", fmt.Sprintf("revision %d is compacted", from))
		return
	}
	var backlog []api.Event
	for _, ev := range f.history {
		if q.Has("from") && ev.Revision >= from && strings.HasPrefix(ev.Key, prefix) {
			backlog = append(backlog, ev)
		}
	}
	f.subs[ch] = prefix
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.subs, ch)
		f.mu.Unlock()
	}()
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	for _, ev := range backlog {
		_ = enc.Encode(ev)
	}
	w.(http.Flusher).Flush()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-f.stop:
			return
		case ev := <-ch:
			_ = enc.Encode(ev)
			w.(http.Flusher).Flush()
		}
	}
}

package client

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ephemeral-store/ephemeral-store/store/client/api"
)

// TestListThenWatchSnapshotThenChanges: the snapshot is one listing at
// one revision and the watch asks for the revision after it.
func TestListThenWatchSnapshotThenChanges(t *testing.T) {
	p := newTestPKI(t)
	f, u := serveFake(t, p)
	c := p.client(u)
	ctx := ctxT(t)
	must(c.Put(ctx, "p/a", []byte("1")))(t)
	must(c.Put(ctx, "other", []byte("x")))(t)
	must(c.Put(ctx, "p/b", []byte("2")))(t)
	snap, w := func() (*Snapshot, *Watcher) {
		s, w, err := c.ListThenWatch(ctx, "p/")
		if err != nil {
			t.Fatal(err)
		}
		return s, w
	}()
	defer w.Close()
	var items []string
	for _, kv := range snap.Items {
		items = append(items, fmt.Sprintf("%s=%s@%d", kv.Key, kv.Value, kv.ModifyRevision))
	}
	if snap.Revision != 3 || strings.Join(items, " ") != "p/a=1@1 p/b=2@3" {
		t.Fatalf("snapshot at %d: %v", snap.Revision, items)
	}
	must(c.Put(ctx, "p/c", []byte("3")))(t)
	must(c.Delete(ctx, "p/a"))(t)
	sameList(t, "events", nextN(t, w, 2), []string{"4 put p/c 3", "5 delete p/a "})
	var queries []string
	for _, r := range f.seen() {
		if r.Method == http.MethodGet && strings.HasPrefix(r.EscapedPath, "/v1/") {
			queries = append(queries, r.EscapedPath+"?"+r.RawQuery)
		}
	}
	sameList(t, "requests", queries, []string{"/v1/kv/?limit=1000&prefix=p%2F", "/v1/watch/?from=4&prefix=p%2F"})
}

// TestListThenWatchRefusesMoreThanOnePage: pages are read at different
// revisions, so a prefix of more than one page has no one-revision
// snapshot: a clear error, not a silently inconsistent one.
func TestListThenWatchRefusesMoreThanOnePage(t *testing.T) {
	p := newTestPKI(t)
	srv := p.startTLS(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]any{"revision": 9, "items": []map[string]any{{"key": "p/a", "modify_revision": 2}}, "more": true, "next": "p/a"})
	}))
	_, _, err := p.client(srv.URL).ListThenWatch(ctxT(t), "p/")
	if !errors.Is(err, ErrSnapshotTooLarge) {
		t.Fatalf("got %v, want ErrSnapshotTooLarge", err)
	}
}

// TestListThenWatchListsAgainWhenCompacted: a write burst compacting the
// listed revision before the watch opens makes it list again.
func TestListThenWatchListsAgainWhenCompacted(t *testing.T) {
	p := newTestPKI(t)
	var lists atomic.Int64
	srv := p.startTLS(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/v1/kv/":
			writeJSON(w, map[string]any{"revision": 10 * lists.Add(1), "items": []map[string]any{}})
		case r.URL.Query().Get("from") == "11":
			writeErr(w, 410, api.CodeRevisionCompacted, "compacted")
		default:
			lines("hang", put(21))(w, r)
		}
	}))
	snap, w, err := p.client(srv.URL).ListThenWatch(ctxT(t), "")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if snap.Revision != 20 || must(w.Next())(t).Revision != 21 {
		t.Fatalf("snapshot at %d, want the second listing's 20", snap.Revision)
	}
}

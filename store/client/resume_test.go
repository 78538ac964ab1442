package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ephemeral-store/ephemeral-store/store/client/api"
)

// retries records the revision each retry resumes from; its resume
// retries at once.
type retries struct {
	mu   sync.Mutex
	from []int64
}

func (r *retries) resume() Resume {
	return Resume{MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond, OnRetry: func(_ error, from int64, _ time.Duration) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.from = append(r.from, from)
	}}
}

func (r *retries) froms() []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int64(nil), r.from...)
}

// nextN reads n events and renders them "rev type key value".
func nextN(t *testing.T, w *Watcher, n int) []string {
	t.Helper()
	var got []string
	for len(got) < n {
		ev, err := w.Next()
		if err != nil {
			t.Fatalf("after %q: %v", got, err)
		}
		got = append(got, fmt.Sprintf("%d %s %s %s", ev.Revision, ev.Type, ev.Key, ev.Value))
	}
	return got
}

func sameList(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("%s:\n got %q\nwant %q", what, got, want)
	}
}

// TestResumeOnAnotherEndpointAfterTheNodeDies: one store behind two
// endpoints; the endpoint the watch streams from is killed mid-stream
// while writes go on through the other. The Watcher resumes there from
// the revision after the last event it returned: every event once, in
// order.
func TestResumeOnAnotherEndpointAfterTheNodeDies(t *testing.T) {
	p := newTestPKI(t)
	f := newFakeStore()
	a, b := p.startTLS(f), p.startTLS(f)
	t.Cleanup(func() { close(f.stop) })
	ctx := ctxT(t)
	writer := p.client(b.URL)
	var r retries
	w := must(p.client(a.URL, b.URL).Watch(ctx, "w/", 1, r.resume()))(t)
	defer w.Close()

	var want []string
	put := func(i int) {
		res := must(writer.Put(ctx, fmt.Sprintf("w/%d", i), []byte(fmt.Sprint(i))))(t)
		want = append(want, fmt.Sprintf("%d put w/%d %d", res.Revision, i, i))
	}
	for i := range 5 {
		put(i)
	}
	got := nextN(t, w, 5)
	// The node dies: its connections are cut, it accepts no more.
	a.CloseClientConnections()
	a.Close()
	for i := 5; i < 10; i++ {
		put(i)
	}
	got = append(got, nextN(t, w, 5)...)
	sameList(t, "events", got, want)
	if froms := r.froms(); len(froms) == 0 || froms[0] != 6 {
		t.Fatalf("resumed from %v, want a first resume from revision 6", froms)
	}
	// The resumed stream was asked for revision 6 on the live endpoint.
	var resumedFrom []string
	for _, req := range f.seen() {
		if req.EscapedPath == "/v1/watch/" {
			resumedFrom = append(resumedFrom, req.RawQuery)
		}
	}
	if last := resumedFrom[len(resumedFrom)-1]; !strings.Contains(last, "from=6") {
		t.Fatalf("watch requests %q: the last must ask from=6", resumedFrom)
	}
}

// scripted serves watch requests one after another from a list of
// handlers, and records the query of each.
type scripted struct {
	mu      sync.Mutex
	steps   []func(w http.ResponseWriter, r *http.Request)
	queries []string
}

func (s *scripted) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.queries = append(s.queries, r.URL.RawQuery)
	i := len(s.queries) - 1
	step := s.steps[min(i, len(s.steps)-1)]
	s.mu.Unlock()
	step(w, r)
}

func (s *scripted) seen() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.queries...)
}

// lines answers a stream with the given NDJSON lines, then ends it as end
// says: "eof" returns (a clean end), "reset" aborts the stream (HTTP/2
// RST_STREAM), "hang" waits for the client to go.
func lines(end string, ls ...string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		for _, l := range ls {
			_, _ = io.WriteString(w, l+"\n")
		}
		w.(http.Flusher).Flush()
		switch end {
		case "reset":
			panic(http.ErrAbortHandler)
		case "hang":
			<-r.Context().Done()
		}
	}
}

func put(rev int) string {
	return fmt.Sprintf(`{"type":"put","key":"k","value":"dg==","revision":%d}`, rev)
}

func errorLine(code string) string {
	return fmt.Sprintf(`{"type":"error","error":{"code":%q,"message":"m"}}`, code)
}

func status(code int, errCode string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) { writeErr(w, code, errCode, "m") }
}

// TestResumeCases: how each end of a stream is met, with a server that
// plays its part request by request.
func TestResumeCases(t *testing.T) {
	cases := []struct {
		name  string
		steps []func(http.ResponseWriter, *http.Request)
		// the revisions Next returns, then the error it ends with ("" = it
		// is still streaming: the test closes it)
		revs    []int64
		errIs   error
		queries []string // the watch requests' queries, in order
	}{
		{
			name: "a reset stream resumes after the last event",
			steps: []func(http.ResponseWriter, *http.Request){
				lines("reset", put(3), put(4)),
				lines("hang", put(5)),
			},
			revs:    []int64{3, 4, 5},
			queries: []string{"from=3&prefix=", "from=5&prefix="},
		},
		{
			name: "a clean end (server shutdown) resumes",
			steps: []func(http.ResponseWriter, *http.Request){
				lines("eof", put(3)),
				lines("hang", put(4)),
			},
			revs:    []int64{3, 4},
			queries: []string{"from=3&prefix=", "from=4&prefix="},
		},
		{
			name: "a server that sends an event again: returned once",
			steps: []func(http.ResponseWriter, *http.Request){
				lines("reset", put(3), put(4)),
				lines("hang", put(4), put(5)),
			},
			revs:    []int64{3, 4, 5},
			queries: []string{"from=3&prefix=", "from=5&prefix="},
		},
		{
			name: "watcher too slow resumes",
			steps: []func(http.ResponseWriter, *http.Request){
				lines("eof", put(3), errorLine(api.CodeWatcherTooSlow)),
				lines("hang", put(4)),
			},
			revs:    []int64{3, 4},
			queries: []string{"from=3&prefix=", "from=4&prefix="},
		},
		{
			name: "no quorum, then not ready, then the stream",
			steps: []func(http.ResponseWriter, *http.Request){
				lines("reset", put(3)),
				status(503, api.CodeNoQuorum),
				status(503, api.CodeNotReady),
				lines("hang", put(7)),
			},
			revs:    []int64{3, 7},
			queries: []string{"from=3&prefix=", "from=4&prefix=", "from=4&prefix=", "from=4&prefix="},
		},
		{
			name: "compacted on resume is final",
			steps: []func(http.ResponseWriter, *http.Request){
				lines("reset", put(3)),
				status(410, api.CodeRevisionCompacted),
			},
			revs:    []int64{3},
			errIs:   ErrCompacted,
			queries: []string{"from=3&prefix=", "from=4&prefix="},
		},
		{
			name: "the cluster re-formed empty: compacted in the stream is final",
			steps: []func(http.ResponseWriter, *http.Request){
				lines("eof", put(3), errorLine(api.CodeRevisionCompacted)),
			},
			revs:    []int64{3},
			errIs:   ErrCompacted,
			queries: []string{"from=3&prefix="},
		},
		{
			name: "forbidden (the user lost the right) is final",
			steps: []func(http.ResponseWriter, *http.Request){
				lines("eof", put(3), errorLine(api.CodeForbidden)),
			},
			revs:    []int64{3},
			errIs:   ErrForbidden,
			queries: []string{"from=3&prefix="},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newTestPKI(t)
			s := &scripted{steps: tc.steps}
			srv := p.startTLS(s)
			var r retries
			w := must(p.client(srv.URL).Watch(ctxT(t), "", 3, r.resume()))(t)
			defer w.Close()
			var revs []int64
			for range tc.revs {
				ev, err := w.Next()
				if err != nil {
					t.Fatalf("after %v: %v", revs, err)
				}
				revs = append(revs, ev.Revision)
			}
			if fmt.Sprint(revs) != fmt.Sprint(tc.revs) {
				t.Fatalf("revisions %v, want %v", revs, tc.revs)
			}
			if tc.errIs != nil {
				_, err := w.Next()
				if !errors.Is(err, tc.errIs) {
					t.Fatalf("got %v, want %v", err, tc.errIs)
				}
				if _, again := w.Next(); again != err { //nolint:errorlint // the very same error value must come back
					t.Fatalf("the error must stick: %v then %v", err, again)
				}
			}
			sameList(t, "watch requests", s.seen(), tc.queries)
		})
	}
}

// TestResumeCompactedNamesTheRevision: the caller learns which revision
// could not be resumed.
func TestResumeCompactedNamesTheRevision(t *testing.T) {
	p := newTestPKI(t)
	f := newFakeStore()
	srv := p.startTLS(f)
	t.Cleanup(func() { close(f.stop) })
	ctx := ctxT(t)
	c := p.client(srv.URL)
	for i := range 3 {
		must(c.Put(ctx, fmt.Sprintf("k%d", i), []byte("v")))(t)
	}
	w := must(c.Watch(ctx, "", 1, Resume{MinBackoff: time.Millisecond}))(t)
	defer w.Close()
	nextN(t, w, 3)
	f.mu.Lock()
	f.compacted = 10 // history lost, as after a re-formed cluster
	f.mu.Unlock()
	srv.CloseClientConnections()
	_, err := w.Next()
	if !errors.Is(err, ErrCompacted) || !strings.Contains(err.Error(), "resuming from revision 4") {
		t.Fatalf("got %v, want ErrCompacted naming revision 4", err)
	}
}

// TestResumeWaitsEndWithCloseAndContext: a Watcher retrying against a
// cluster without quorum, or a node whose streams open and break at once,
// backs off (growing waits) and stops at once on Close or when its
// context ends.
func TestResumeWaitsEndWithCloseAndContext(t *testing.T) {
	failures := map[string]func(http.ResponseWriter, *http.Request){
		"no quorum":          status(503, api.CodeNoQuorum),
		"streams that break": lines("reset"),
	}
	for name, failure := range failures {
		for _, stop := range []string{"close", "context"} {
			t.Run(name+", "+stop, func(t *testing.T) { resumeWaits(t, failure, stop) })
		}
	}
}

func resumeWaits(t *testing.T, failure func(http.ResponseWriter, *http.Request), stop string) {
	p := newTestPKI(t)
	s := &scripted{steps: []func(http.ResponseWriter, *http.Request){
		lines("reset", put(3)),
		failure,
	}}
	srv := p.startTLS(s)
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	waits := make(chan time.Duration, 100)
	w := must(p.client(srv.URL).Watch(ctx, "", 3, Resume{
		MinBackoff: 4 * time.Millisecond, MaxBackoff: 40 * time.Millisecond,
		OnRetry: func(_ error, _ int64, wait time.Duration) { waits <- wait },
	}))(t)
	defer w.Close()
	must(w.Next())(t)
	errc := make(chan error, 1)
	go func() { _, err := w.Next(); errc <- err }()
	var seen []time.Duration
	for len(seen) < 6 {
		select {
		case d := <-waits:
			seen = append(seen, d)
		case err := <-errc:
			t.Fatalf("Next returned %v after %d retries, want it to keep retrying", err, len(seen))
		case <-time.After(10 * time.Second):
			t.Fatalf("%d retries in 10 s", len(seen))
		}
	}
	// Jittered in [b/2, b]: the sixth wait's backoff is capped at 40 ms.
	if seen[0] > 4*time.Millisecond || seen[5] < 20*time.Millisecond || seen[5] > 40*time.Millisecond {
		t.Fatalf("waits %v: want 2-4 ms growing to 20-40 ms", seen)
	}
	want := ErrWatcherClosed
	if stop == "close" {
		w.Close()
	} else {
		cancel()
		want = context.Canceled
	}
	select {
	case err := <-errc:
		if !errors.Is(err, want) {
			t.Fatalf("got %v, want %v", err, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Next did not return after " + stop)
	}
}

// TestResumeFromNowStartsAtTheCurrentRevision: a resuming watch of "new
// changes only" reads the current revision first, so that a resume
// loses none of the changes made while it reconnects.
func TestResumeFromNowStartsAtTheCurrentRevision(t *testing.T) {
	p := newTestPKI(t)
	f := newFakeStore()
	srv := p.startTLS(f)
	t.Cleanup(func() { close(f.stop) })
	ctx := ctxT(t)
	c := p.client(srv.URL)
	must(c.Put(ctx, "old", []byte("1")))(t)
	must(c.Put(ctx, "old", []byte("2")))(t)
	var r retries
	w := must(c.Watch(ctx, "", 0, r.resume()))(t)
	defer w.Close()
	if w.LastRevision() != 2 {
		t.Fatalf("LastRevision %d, want the current revision 2", w.LastRevision())
	}
	srv.CloseClientConnections()                            // breaks the stream before any event
	must(p.client(srv.URL).Put(ctx, "new", []byte("3")))(t) // a client whose connection was not cut
	sameList(t, "events", nextN(t, w, 1), []string{"3 put new 3"})
	if froms := r.froms(); len(froms) == 0 || froms[0] != 3 {
		t.Fatalf("resumed from %v, want 3", froms)
	}
}

// TestWithoutResumeTheStreamEndIsReturned: Watch without Resume keeps its
// one-stream contract (callers with their own loop rely on it).
func TestWithoutResumeTheStreamEndIsReturned(t *testing.T) {
	p := newTestPKI(t)
	s := &scripted{steps: []func(http.ResponseWriter, *http.Request){lines("reset", put(3))}}
	srv := p.startTLS(s)
	w := must(p.client(srv.URL).Watch(ctxT(t), "", 3))(t)
	defer w.Close()
	must(w.Next())(t)
	if _, err := w.Next(); err == nil || errors.Is(err, io.EOF) {
		t.Fatalf("got %v, want the broken stream's error", err)
	}
	if n := len(s.seen()); n != 1 {
		t.Fatalf("%d watch requests, want 1", n)
	}
}

package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/ephemeral-store/ephemeral-store/store/client/api"
)

// WatchOption changes a Watch or a ListThenWatch.
type WatchOption interface{ applyWatch(*watchOptions) }

type watchOptions struct {
	resume *Resume
}

// Default backoff of Resume.
const (
	DefaultResumeMinBackoff = 100 * time.Millisecond
	DefaultResumeMaxBackoff = 5 * time.Second
)

// Resume, given to Watch or ListThenWatch, makes the Watcher outlive its
// streams: when one breaks (the node was killed or shut down, the
// connection was reset, the server cut off a watcher too slow, the
// cluster had no quorum), Next opens another, on the same endpoint or
// the next one the Client knows, from the revision after the last event
// it returned, and goes on. No event is lost or returned twice: the
// server sends every event from the revision asked for, one per
// revision, in order, and Next drops any it already returned.
//
// Between attempts it waits MinBackoff, doubling up to MaxBackoff (each
// wait jittered between half and all of it), until a stream delivers an
// event again. The Watcher's
// context and Close end the waiting. What resuming cannot fix ends Next
// with that error: ErrCompacted (the revision to resume from is older
// than the history the nodes keep, or the cluster re-formed empty: list
// again, or use ListThenWatch), ErrForbidden, ErrUnauthenticated, a bad
// request.
//
// A Watch from revision 0 (changes from now on) with Resume first reads
// the current revision of the prefix (a one-key listing), so that the
// changes after it are resumable too; LastRevision reports it.
type Resume struct {
	// MinBackoff is the first wait; zero means DefaultResumeMinBackoff.
	MinBackoff time.Duration
	// MaxBackoff bounds the wait; zero means DefaultResumeMaxBackoff.
	MaxBackoff time.Duration
	// OnRetry, if set, is called before each wait with why the stream
	// ended or the attempt failed, the revision it resumes from, and the
	// wait: for logging. It runs on the goroutine calling Next.
	OnRetry func(err error, from int64, wait time.Duration)
}

func (r Resume) applyWatch(o *watchOptions) { o.resume = &r }

// Watcher reads the events of a watch. Next must not be called
// concurrently; Close may be called from any goroutine.
type Watcher struct {
	c      *Client
	prefix string
	resume *Resume // nil: one stream only
	ctx    context.Context
	cancel context.CancelFunc // ends the Watcher: its streams and any wait

	mu      sync.Mutex
	cur     *stream // guarded by mu, replaced when resuming
	done    bool    // Close was called; guarded by mu
	last    int64
	err     error         // sticky, once the Watcher is over
	backoff time.Duration // the next wait when resuming; 0 after an event
}

// stream is one watch response being read.
type stream struct {
	body   io.ReadCloser
	dec    *json.Decoder
	cancel context.CancelFunc
}

func (s *stream) close() {
	s.cancel()
	s.body.Close()
}

// Watch streams every change to keys starting with prefix ("" for all),
// beginning with revision fromRevision (0: only changes from now on). A
// fromRevision older than the kept history fails at once with
// ErrCompacted. The stream lives until ctx ends or Close is called; the
// Client's Timeout bounds only its opening. Without Resume, the Watcher
// ends with its first stream (see Next); with it, it goes on across
// broken streams and endpoints. The first stream must open: Watch returns
// the error when it does not, Resume or not.
func (c *Client) Watch(ctx context.Context, prefix string, fromRevision int64, opts ...WatchOption) (*Watcher, error) {
	if fromRevision < 0 {
		return nil, fmt.Errorf("client: watch %q: negative revision %d", prefix, fromRevision)
	}
	var o watchOptions
	for _, opt := range opts {
		opt.applyWatch(&o)
	}
	if r := o.resume; r != nil {
		if r.MinBackoff <= 0 {
			r.MinBackoff = DefaultResumeMinBackoff
		}
		if r.MaxBackoff <= 0 {
			r.MaxBackoff = DefaultResumeMaxBackoff
		}
		r.MaxBackoff = max(r.MaxBackoff, r.MinBackoff)
		if fromRevision == 0 {
			// "From now on" cannot be resumed without a revision to
			// resume from: take the current one.
			page, err := c.list(ctx, prefix, listOptions{limit: 1, keysOnly: true})
			if err != nil {
				return nil, fmt.Errorf("client: watch %q: reading the current revision: %w", prefix, err)
			}
			fromRevision = page.Revision + 1
		}
	}
	wctx, cancel := context.WithCancel(ctx)
	w := &Watcher{c: c, prefix: prefix, resume: o.resume, ctx: wctx, cancel: cancel, last: fromRevision - 1}
	s, err := w.open(fromRevision)
	if err != nil {
		cancel()
		return nil, err
	}
	w.cur = s
	return w, nil
}

// open starts one stream from revision from (0: new changes only).
func (w *Watcher) open(from int64) (*stream, error) {
	q := url.Values{"prefix": {w.prefix}}
	if from > 0 {
		q.Set("from", strconv.FormatInt(from, 10))
	}
	sctx, cancel := context.WithCancel(w.ctx)
	var timer *time.Timer
	if w.c.timeout > 0 {
		timer = time.AfterFunc(w.c.timeout, cancel)
	}
	resp, err := w.c.do(sctx, call{method: http.MethodGet, path: "/v1/watch/", query: q})
	if timer != nil && !timer.Stop() && err == nil {
		// The opening timed out just as the answer came.
		resp.Body.Close()
		err = fmt.Errorf("client: watch %q: opening the stream: %w", w.prefix, context.DeadlineExceeded)
	}
	if err != nil {
		cancel()
		return nil, err
	}
	return &stream{body: resp.Body, dec: json.NewDecoder(resp.Body), cancel: cancel}, nil
}

// Next blocks for the next event. Without Resume it returns
//   - io.EOF when the server ended the stream without an error (it shut
//     down, say): resume with Watch(ctx, prefix, w.LastRevision()+1);
//   - an *APIError when the server ended it with one: ErrWatcherTooSlow
//     (resume as above), ErrCompacted (the history is gone, or the
//     cluster re-formed empty: list again);
//   - the context's error when ctx ended, ErrWatcherClosed after Close;
//   - another error when the connection broke.
//
// With Resume, it resumes instead of returning the errors resuming can
// fix (io.EOF, a broken connection, ErrWatcherTooSlow, ErrNoQuorum,
// ErrNotReady, every endpoint unreachable), and returns the others.
//
// After an error, every later call returns the same error.
func (w *Watcher) Next() (api.Event, error) {
	for {
		if w.err != nil {
			return api.Event{}, w.err
		}
		w.mu.Lock()
		s := w.cur
		w.mu.Unlock()
		ev, err := w.read(s)
		if err == nil {
			if w.resume != nil && ev.Revision <= w.last {
				continue // already returned before the stream broke
			}
			w.last = max(w.last, ev.Revision)
			w.backoff = 0 // the stream works: a break starts the waits over
			return ev, nil
		}
		if w.resume == nil || !resumable(err) {
			w.fail(err)
			return api.Event{}, err
		}
		if err := w.reconnect(err); err != nil {
			w.fail(err)
			return api.Event{}, err
		}
	}
}

// read decodes the next line of s: an event, or why the stream ended.
func (w *Watcher) read(s *stream) (api.Event, error) {
	var line api.WatchEvent
	if err := s.dec.Decode(&line); err != nil {
		if stop := w.stopped(); stop != nil {
			return api.Event{}, stop
		}
		if errors.Is(err, io.EOF) {
			return api.Event{}, io.EOF
		}
		return api.Event{}, fmt.Errorf("client: watch stream: %w", err)
	}
	if line.Type == api.EventError {
		e := &APIError{Message: "the server ended the watch"}
		if line.Error != nil {
			e.Code, e.Message = line.Error.Code, line.Error.Message
		}
		return api.Event{}, e
	}
	return line.Event, nil
}

// stopped is ErrWatcherClosed after Close, the context's error once it
// ended, else nil.
func (w *Watcher) stopped() error {
	w.mu.Lock()
	done := w.done
	w.mu.Unlock()
	switch {
	case done:
		return ErrWatcherClosed
	case w.ctx.Err() != nil:
		return context.Cause(w.ctx)
	}
	return nil
}

// reconnect replaces the broken stream by a new one from w.last+1, waiting
// between attempts, until one opens, the Watcher is stopped, or an answer
// says resuming cannot work.
func (w *Watcher) reconnect(cause error) error {
	w.mu.Lock()
	w.cur.close()
	w.mu.Unlock()
	// The wait goes on growing across streams that open but deliver
	// nothing before they break (a node that accepts, then fails).
	backoff := w.backoff
	if backoff == 0 {
		backoff = w.resume.MinBackoff
	}
	for {
		from := w.last + 1
		wait := backoff/2 + rand.N(backoff/2+1) //nolint:gosec // jitter (watchers of one node do not return in step) needs no secrecy
		if w.resume.OnRetry != nil {
			w.resume.OnRetry(cause, from, wait)
		}
		t := time.NewTimer(wait)
		select {
		case <-w.ctx.Done():
			t.Stop()
			return w.stopped()
		case <-t.C:
		}
		s, err := w.open(from)
		if err == nil {
			w.mu.Lock()
			if w.done {
				w.mu.Unlock()
				s.close()
				return ErrWatcherClosed
			}
			w.cur = s
			w.mu.Unlock()
			w.backoff = min(2*backoff, w.resume.MaxBackoff)
			return nil
		}
		if stop := w.stopped(); stop != nil {
			return stop
		}
		if !resumable(err) {
			return fmt.Errorf("client: watch %q: resuming from revision %d: %w", w.prefix, from, err)
		}
		cause = err
		backoff = min(2*backoff, w.resume.MaxBackoff)
	}
}

// resumable reports whether a new stream may fix what ended the last one
// or failed to open the next: the stream or the connection broke, the
// server shut down or cut off a slow watcher, the cluster or node was not
// ready, an opening timed out. An answer that would come again (forbidden,
// compacted, a bad request) is final; so is a Close or the end of the
// Watcher's context, which stopped() catches first.
func resumable(err error) bool {
	if errors.Is(err, ErrWatcherClosed) {
		return false
	}
	var many *EndpointsError
	if errors.As(err, &many) {
		for _, a := range many.Attempts {
			if !resumable(a) {
				return false
			}
		}
		return true
	}
	var ae *APIError
	if !errors.As(err, &ae) {
		return true // io.EOF, a reset, a refused dial, an opening timed out
	}
	switch {
	case ae.Code == api.CodeWatcherTooSlow, ae.Code == api.CodeNoQuorum, ae.Code == api.CodeNotReady, ae.Code == api.CodeInternal:
		return true
	case ae.Code == "" && ae.StatusCode >= 500:
		return true // a proxy's 502/503/504 page
	}
	return false
}

func (w *Watcher) fail(err error) {
	w.err = err
	w.release()
}

// LastRevision is the revision of the last event returned by Next; before
// any, the starting revision minus one (-1 for a watch of new changes only
// without Resume), so that Watch(ctx, prefix, w.LastRevision()+1) always
// resumes the stream.
func (w *Watcher) LastRevision() int64 { return w.last }

// Close ends the watch and frees its stream. It is safe to call more than
// once and concurrently with Next, which then returns ErrWatcherClosed.
func (w *Watcher) Close() error {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
	w.release()
	return nil
}

func (w *Watcher) release() {
	w.cancel()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cur != nil {
		w.cur.close()
	}
}

// ErrSnapshotTooLarge: ListThenWatch found more under the prefix than one
// listing returns (maxPageKeys keys, or the server's page byte bound).
var ErrSnapshotTooLarge = errors.New("prefix too large for one snapshot")

// maxPageKeys is the server's largest page (docs/interfaces.md).
const maxPageKeys = 1000

// Snapshot is the content of a prefix at one revision.
type Snapshot struct {
	// Revision is the store revision the listing was read at: the
	// Watcher of ListThenWatch returns the changes after it.
	Revision int64
	// Items are the keys under the prefix at Revision, in key order.
	Items []KeyValue
}

// ListThenWatch returns the keys under prefix as of one revision, and a
// Watcher of every change after it: applying the Watcher's events to the
// Snapshot, in order, gives the prefix as it is at each later revision,
// with no change missed or seen twice. Give it Resume to keep the
// Watcher going across broken streams; a Watcher that still ends with
// ErrCompacted (it fell further behind than the nodes' history) means
// calling ListThenWatch again.
//
// The snapshot is one listing, read at one revision (a linearizable
// read; Stale is not accepted), so it holds at most 1000 keys and the
// server's page byte bound (4 MiB of keys and values); a larger prefix
// fails with ErrSnapshotTooLarge: watch narrower prefixes. Pages read
// one after another would each be at their own revision, and the stream
// gives no sign of having caught up with the last of them.
func (c *Client) ListThenWatch(ctx context.Context, prefix string, opts ...WatchOption) (*Snapshot, *Watcher, error) {
	// A write burst can compact the revision just listed before the watch
	// opens (the history is bounded): list again, a few times.
	const attempts = 3
	var err error
	for range attempts {
		var page *ListPage
		page, err = c.list(ctx, prefix, listOptions{limit: maxPageKeys})
		if err != nil {
			return nil, nil, fmt.Errorf("client: list then watch %q: %w", prefix, err)
		}
		if page.More {
			return nil, nil, fmt.Errorf("client: list then watch %q: more than one page (%d keys, then more from %q): %w",
				prefix, len(page.Items), page.Next, ErrSnapshotTooLarge)
		}
		var w *Watcher
		w, err = c.Watch(ctx, prefix, page.Revision+1, opts...)
		if err == nil {
			return &Snapshot{Revision: page.Revision, Items: page.Items}, w, nil
		}
		if !errors.Is(err, ErrCompacted) {
			break
		}
	}
	return nil, nil, fmt.Errorf("client: list then watch %q: %w", prefix, err)
}

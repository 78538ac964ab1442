package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// Event types of a watch stream.
const (
	EventPut    = "put"
	EventDelete = "delete"
	// EventExpire is a key removed by its TTL.
	EventExpire = "expire"
)

// Event is one change under a watched prefix.
type Event struct {
	// Type is EventPut, EventDelete or EventExpire.
	Type  string `json:"type"`
	Key   string `json:"key"`
	Value []byte `json:"value,omitempty"`
	// Revision is the store revision of the change; events arrive in
	// revision order.
	Revision int64 `json:"revision"`
}

// Watcher reads the events of one watch stream. Next must not be called
// concurrently; Close may be called from any goroutine.
type Watcher struct {
	body   io.ReadCloser
	dec    *json.Decoder
	ctx    context.Context
	cancel context.CancelFunc

	last   int64
	err    error // sticky, once the stream is over
	closed sync.Once
	mu     sync.Mutex
	done   bool // Close was called
}

// Watch streams every change to keys starting with prefix ("" for all),
// beginning with revision fromRevision (0: only changes from now on). A
// fromRevision older than the kept history fails at once with
// ErrCompacted. The stream lives until ctx ends or Close is called; the
// Client's Timeout bounds only its opening.
func (c *Client) Watch(ctx context.Context, prefix string, fromRevision int64) (*Watcher, error) {
	if fromRevision < 0 {
		return nil, fmt.Errorf("client: watch %q: negative revision %d", prefix, fromRevision)
	}
	q := url.Values{"prefix": {prefix}}
	if fromRevision > 0 {
		q.Set("from", strconv.FormatInt(fromRevision, 10))
	}
	sctx, cancel := context.WithCancel(ctx)
	var timer *time.Timer
	if c.timeout > 0 {
		timer = time.AfterFunc(c.timeout, cancel)
	}
	resp, err := c.do(sctx, call{method: http.MethodGet, path: "/v1/watch/", query: q})
	if timer != nil && !timer.Stop() && err == nil {
		// The opening timed out just as the answer came.
		resp.Body.Close()
		err = fmt.Errorf("client: watch %q: opening the stream: %w", prefix, context.DeadlineExceeded)
	}
	if err != nil {
		cancel()
		return nil, err
	}
	return &Watcher{
		body:   resp.Body,
		dec:    json.NewDecoder(resp.Body),
		ctx:    sctx,
		cancel: cancel,
		last:   fromRevision - 1,
	}, nil
}

// Next blocks for the next event. It returns
//   - io.EOF when the server ended the stream without an error (it shut
//     down, say): resume with Watch(ctx, prefix, w.LastRevision()+1);
//   - an *APIError when the server ended it with one: ErrWatcherTooSlow
//     (resume as above), ErrCompacted (the history is gone, or the
//     cluster re-formed empty: list again);
//   - the context's error when ctx ended, ErrWatcherClosed after Close;
//   - another error when the connection broke.
//
// After an error, every later call returns the same error.
func (w *Watcher) Next() (Event, error) {
	if w.err != nil {
		return Event{}, w.err
	}
	var line struct {
		Event
		Error *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := w.dec.Decode(&line); err != nil {
		w.mu.Lock()
		done := w.done
		w.mu.Unlock()
		switch {
		case done:
			err = ErrWatcherClosed
		case w.ctx.Err() != nil:
			err = w.ctx.Err()
		case errors.Is(err, io.EOF):
			err = io.EOF
		default:
			err = fmt.Errorf("client: watch stream: %w", err)
		}
		w.fail(err)
		return Event{}, err
	}
	if line.Type == "error" {
		e := &APIError{Message: "the server ended the watch"}
		if line.Error != nil {
			e.Code, e.Message = line.Error.Code, line.Error.Message
		}
		w.fail(e)
		return Event{}, e
	}
	if line.Revision > w.last {
		w.last = line.Revision
	}
	return line.Event, nil
}

func (w *Watcher) fail(err error) {
	w.err = err
	w.release()
}

// LastRevision is the revision of the last event returned by Next; before
// any, the starting revision minus one (-1 for a watch of new changes only),
// so that Watch(ctx, prefix, w.LastRevision()+1) always resumes the stream.
func (w *Watcher) LastRevision() int64 { return w.last }

// Close ends the stream and frees its connection stream. It is safe to
// call more than once and concurrently with Next, which then returns
// ErrWatcherClosed.
func (w *Watcher) Close() error {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
	w.release()
	return nil
}

func (w *Watcher) release() {
	w.closed.Do(func() {
		w.cancel()
		w.body.Close()
	})
}

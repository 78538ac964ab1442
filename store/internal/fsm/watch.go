package fsm

import (
	"strings"
	"sync"
)

// hub keeps the bounded history of events and fans new events out to
// watchers. Its own lock orders publication against subscription, so a
// watcher sees every event exactly once: either in the replay or live.
type hub struct {
	limits Limits

	mu       sync.Mutex
	history  []Event // ring of the last limits.HistoryEvents events, oldest first
	start    int     // index of the oldest event in history once it is full
	compact  int64   // newest revision no longer in history; older resumes fail
	watchers map[*Watcher]struct{}
}

func newHub(l Limits) *hub {
	return &hub{limits: l, watchers: make(map[*Watcher]struct{})}
}

func (h *hub) publish(events []Event) {
	if len(events) == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range events {
		if len(h.history) < h.limits.HistoryEvents {
			h.history = append(h.history, e)
		} else {
			h.compact = h.history[h.start].Revision
			h.history[h.start] = e
			h.start = (h.start + 1) % len(h.history)
		}
		for w := range h.watchers {
			w.offer(e)
		}
	}
}

// ordered returns the history oldest first.
func (h *hub) ordered() []Event {
	out := make([]Event, 0, len(h.history))
	out = append(out, h.history[h.start:]...)
	return append(out, h.history[:h.start]...)
}

func (h *hub) subscribe(prefix string, from, current int64) (*Watcher, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if from > 0 && from <= h.compact {
		return nil, ErrCompacted
	}
	var replay []Event
	if from > 0 {
		for _, e := range h.ordered() {
			if e.Revision >= from && strings.HasPrefix(e.Key, prefix) {
				replay = append(replay, e)
			}
		}
	} else {
		// Only changes after the revision the caller saw.
		from = current + 1
	}
	w := &Watcher{
		hub:    h,
		prefix: prefix,
		next:   from,
		ch:     make(chan Event, len(replay)+h.limits.WatcherBuffer),
	}
	for _, e := range replay {
		w.offer(e)
	}
	h.watchers[w] = struct{}{}
	return w, nil
}

func (h *hub) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.watchers)
}

// reset drops the history: everything up to rev is gone, and watchers are
// told so.
func (h *hub) reset(rev int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.history, h.start, h.compact = nil, 0, rev
	for w := range h.watchers {
		w.closeLocked(ErrCompacted)
	}
}

// Watcher is one subscription. Read events from C until it is closed, then
// Err says why (nil after Close).
type Watcher struct {
	hub    *hub
	prefix string
	next   int64 // lowest revision still to deliver
	ch     chan Event
	err    error
	closed bool
}

// C delivers the events in revision order.
func (w *Watcher) C() <-chan Event { return w.ch }

// Err is why the stream ended: ErrWatcherTooSlow, ErrCompacted, or nil.
func (w *Watcher) Err() error {
	w.hub.mu.Lock()
	defer w.hub.mu.Unlock()
	return w.err
}

// Close ends the subscription.
func (w *Watcher) Close() {
	w.hub.mu.Lock()
	defer w.hub.mu.Unlock()
	w.closeLocked(nil)
}

// offer is called with the hub locked.
func (w *Watcher) offer(e Event) {
	if w.closed || e.Revision < w.next || !strings.HasPrefix(e.Key, w.prefix) {
		return
	}
	select {
	case w.ch <- e:
		w.next = e.Revision + 1
	default:
		// A full buffer means the reader is not keeping up; holding more
		// would let one slow client grow the server's memory without bound.
		w.closeLocked(ErrWatcherTooSlow)
	}
}

func (w *Watcher) closeLocked(err error) {
	if w.closed {
		return
	}
	w.closed, w.err = true, err
	close(w.ch)
	delete(w.hub.watchers, w)
}

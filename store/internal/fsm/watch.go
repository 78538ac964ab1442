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
	history  []Event // kept events, oldest first, from index head on
	head     int
	bytes    int   // key and value bytes of the kept events
	compact  int64 // newest revision no longer in history; older resumes fail
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
		h.history = append(h.history, e)
		h.bytes += eventBytes(e)
		// Bounded by count and by bytes: a few large values must not hold
		// gigabytes of history.
		for len(h.history)-h.head > h.limits.HistoryEvents || (h.bytes > h.limits.HistoryBytes && len(h.history)-h.head > 1) {
			old := h.history[h.head]
			h.history[h.head] = Event{}
			h.compact, h.bytes, h.head = old.Revision, h.bytes-eventBytes(old), h.head+1
		}
		if h.head > len(h.history)/2 {
			h.history, h.head = append([]Event(nil), h.history[h.head:]...), 0
		}
		for w := range h.watchers {
			w.offer(e)
		}
	}
}

func eventBytes(e Event) int { return len(e.Key) + len(e.Value) }

// ordered returns the history oldest first.
func (h *hub) ordered() []Event { return h.history[h.head:] }

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

// raiseCompact refuses resumes from revisions at or below rev when the kept
// history has none of them (a new cluster's base revision).
func (h *hub) raiseCompact(rev int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.history) == h.head && rev > h.compact {
		h.compact = rev
	}
}

// reset drops the history: everything up to rev is gone, and watchers are
// told so.
func (h *hub) reset(rev int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.history, h.head, h.bytes, h.compact = nil, 0, 0, rev
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

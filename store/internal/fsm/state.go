package fsm

import (
	"bytes"
	"container/heap"
	"sort"
	"sync"
	"time"

	"github.com/ephemeral-store/ephemeral-store/store/internal/kvtable"
)

// KeyValue is one key as a reader receives it: a copy, the reader's to keep.
// The state machine itself holds keys in a kvtable.Table, off the Go heap.
type KeyValue struct {
	Key            string `json:"key"`
	Value          []byte `json:"value"`
	CreateRevision int64  `json:"create_revision"`
	ModifyRevision int64  `json:"modify_revision"`
	// ExpireAt is when the key expires, on the cluster clock (State.Clock):
	// 0 = never. Negative: the put carried no cluster time (a leader of an
	// older version, or one before its takeover); -ExpireAt is the TTL
	// still to run, placed on the cluster clock by the next command that
	// advances it (State.placePending). Read it through TTLRemaining.
	ExpireAt time.Duration `json:"expire_at,omitempty"`
}

// TTLRemaining is the time left before expiry at cluster time now
// (State.ClockNow), 0 for a key without a TTL, and at least 1ns for a key
// whose expiry the leader has not yet replicated (it is still there).
func (kv *KeyValue) TTLRemaining(now time.Duration) time.Duration {
	switch {
	case kv.ExpireAt == 0:
		return 0
	case kv.ExpireAt < 0:
		return -kv.ExpireAt
	}
	return max(kv.ExpireAt-now, time.Nanosecond)
}

// EventType names a change in a watch stream.
type EventType string

// The kinds of change a watcher sees; their values are the client API's
// (api.EventPut...).
const (
	EventPut    EventType = "put"
	EventDelete EventType = "delete"
	EventExpire EventType = "expire"
)

// Event is one change, as watchers receive it (the client API sends it
// as an api.Event).
type Event struct {
	Type     EventType
	Key      string
	Value    []byte
	Revision int64
}

// Limits bound the memory the state machine spends on history and watchers.
type Limits struct {
	// HistoryEvents is how many past events are kept for watchers resuming
	// from an older revision.
	HistoryEvents int
	// HistoryBytes bounds the key and value bytes of that history.
	HistoryBytes int
	// WatcherBuffer is how many events a watcher may have unread before it
	// is cut off with ErrWatcherTooSlow.
	WatcherBuffer int
}

// DefaultLimits keeps 10 000 events (at most 64 MiB) of history and lets a
// watcher fall 1 024 events behind: a few seconds of a busy pool, bounded
// memory per watcher.
func DefaultLimits() Limits {
	return Limits{HistoryEvents: 10000, HistoryBytes: 64 << 20, WatcherBuffer: 1024}
}

// State is the in-memory map. Apply is called by one goroutine (Raft's FSM
// loop); reads may come from any goroutine.
//
// Time: expiry is measured on the cluster clock, a duration that only the
// leader advances, by stamping each command with its cluster time
// (Command.Clock). A leader's cluster time is its replica's estimate when
// it took over (ClockNow) plus the time elapsed on its own monotonic clock
// since, so it never runs faster than real time from one leader to the
// next, and no wall clock of any node takes part: a stepped or fast wall
// clock expires nothing early. See the cluster package's DESIGN.md, "TTL".
type State struct {
	limits Limits

	mu sync.RWMutex
	// table holds every key, its value, revisions and expiry outside the
	// Go heap (see the kvtable package).
	table    *kvtable.Table
	bytes    int64 // key and value bytes held, kept as keys change
	revision int64
	// expiring indexes keys with a TTL by their cluster expiry time, for
	// the leader's expiry loop; pending holds the keys whose TTL waits for
	// a cluster time (negative ExpireAt).
	expiring map[string]time.Duration
	pending  map[string]struct{}
	// clock is the replicated cluster time: the largest Clock any applied
	// command carried (or a restored snapshot's). Part of the replicated
	// state: every replica has the same value after the same entry.
	clock time.Duration
	// clockAt is this replica's monotonic reading when clock last rose;
	// zero while it never did (the estimate then stands still). Local:
	// only ClockNow uses it.
	clockAt time.Time
	// highest is the highest revision this process held before a Reset:
	// a new cluster's base revision starts above it (HighestRevision).
	highest int64

	// now is time.Now; tests replace it.
	now func() time.Time

	hub *hub
}

// New returns an empty state machine.
func New(limits Limits) *State {
	if limits.HistoryEvents <= 0 {
		limits.HistoryEvents = DefaultLimits().HistoryEvents
	}
	if limits.HistoryBytes <= 0 {
		limits.HistoryBytes = DefaultLimits().HistoryBytes
	}
	if limits.WatcherBuffer <= 0 {
		limits.WatcherBuffer = DefaultLimits().WatcherBuffer
	}
	return &State{
		limits:   limits,
		table:    kvtable.New(),
		expiring: make(map[string]time.Duration),
		pending:  make(map[string]struct{}),
		now:      time.Now,
		hub:      newHub(limits),
	}
}

// Apply executes one command. It must be deterministic: the same sequence of
// commands gives the same state and results on every replica.
func (s *State) Apply(c Command) Result {
	if err := c.Validate(); err != nil {
		s.mu.RLock()
		defer s.mu.RUnlock()
		return Result{Revision: s.revision, Err: err}
	}
	s.mu.Lock()
	var (
		res    Result
		events []Event
	)
	if c.Clock > s.clock {
		s.clock, s.clockAt = c.Clock, s.now()
		s.placePending()
	}
	switch c.Op {
	case OpPut:
		res, events = s.put(c)
	case OpDelete:
		res, events = s.del(c)
	case OpExpire:
		res, events = s.expire(c)
	case OpBase:
		if c.BaseRevision > s.revision {
			s.revision = c.BaseRevision
			s.hub.raiseCompact(c.BaseRevision)
		}
		res = Result{Revision: s.revision}
	case OpClock:
		res = Result{Revision: s.revision}
	}
	s.mu.Unlock()
	// Publishing after unlocking keeps slow watcher bookkeeping out of the
	// readers' way; the hub orders events by revision itself.
	s.hub.publish(events)
	return res
}

// current is what the state holds of one key: its revisions and expiry,
// and its size in key and value bytes.
type current struct {
	kvtable.Meta
	size int64
}

func (s *State) current(key string) (current, bool) {
	e, ok := s.table.Get(key)
	if !ok {
		return current{}, false
	}
	return current{Meta: e.Meta(), size: int64(len(e.Key()) + len(e.Value()))}, true
}

func (s *State) checkPrev(c Command) (current, bool, error) {
	cur, exists := s.current(c.Key)
	if c.PrevRevision == nil {
		return cur, exists, nil
	}
	want := *c.PrevRevision
	switch {
	case want == 0 && exists:
		return cur, exists, ErrRevisionMismatch
	case want != 0 && !exists:
		return cur, exists, ErrKeyNotFound
	case want != 0 && cur.Modify != want:
		return cur, exists, ErrRevisionMismatch
	}
	return cur, exists, nil
}

func (s *State) put(c Command) (Result, []Event) {
	cur, exists, err := s.checkPrev(c)
	if err != nil {
		r := Result{Revision: s.revision, Err: err}
		if exists {
			r.CreateRevision, r.ModifyRevision = cur.Create, cur.Modify
		}
		return r, nil
	}
	s.revision++
	m := kvtable.Meta{Create: s.revision, Modify: s.revision}
	switch {
	case c.TTL > 0 && c.Clock > 0:
		m.ExpireAt = int64(s.clock + c.TTL)
	case c.TTL > 0:
		// Unstamped (an older leader, or one before its takeover): the
		// TTL starts at the next cluster time a leader stamps, after this
		// write, so the key lives at least its TTL.
		m.ExpireAt = int64(-c.TTL)
	}
	if exists {
		m.Create = cur.Create
		s.bytes -= cur.size
	}
	s.table.Put(c.Key, c.Value, m)
	s.bytes += int64(len(c.Key) + len(c.Value))
	s.indexExpiry(c.Key, time.Duration(m.ExpireAt))
	return Result{Revision: s.revision, CreateRevision: m.Create, ModifyRevision: m.Modify},
		[]Event{{Type: EventPut, Key: c.Key, Value: exactSize(c.Value), Revision: s.revision}}
}

// exactSize returns v, or a copy of it in a slice of its own size when v
// holds spare capacity: the watch history keeps an event's value, and a
// decoded command's value is a little larger than its bytes (JSON's
// base64 decoder sizes it for the encoded length: 258 bytes for a value of
// 256, which Go rounds up to an allocation of 288).
func exactSize(v []byte) []byte {
	if cap(v) == len(v) {
		return v
	}
	return bytes.Clone(v)
}

func (s *State) del(c Command) (Result, []Event) {
	cur, exists, err := s.checkPrev(c)
	if err == nil && !exists {
		err = ErrKeyNotFound
	}
	if err != nil {
		return Result{Revision: s.revision, Err: err}, nil
	}
	s.revision++
	s.bytes -= cur.size
	s.table.Delete(c.Key)
	delete(s.expiring, c.Key)
	delete(s.pending, c.Key)
	return Result{Revision: s.revision}, []Event{{Type: EventDelete, Key: c.Key, Revision: s.revision}}
}

func (s *State) expire(c Command) (Result, []Event) {
	var events []Event
	for _, e := range c.Expire {
		cur, exists := s.current(e.Key)
		if !exists || cur.Modify != e.ModifyRevision {
			continue // rewritten or deleted since the leader decided
		}
		s.revision++
		s.bytes -= cur.size
		s.table.Delete(e.Key)
		delete(s.expiring, e.Key)
		delete(s.pending, e.Key)
		events = append(events, Event{Type: EventExpire, Key: e.Key, Revision: s.revision})
	}
	return Result{Revision: s.revision}, events
}

// copyOut is a reader's copy of a record, under the key it was found by,
// with its value or without.
func copyOut(key string, e kvtable.Entry, withValue bool) *KeyValue {
	m := e.Meta()
	var value []byte
	if v := e.Value(); withValue && len(v) > 0 {
		value = bytes.Clone(v)
	}
	return &KeyValue{Key: key, Value: value, CreateRevision: m.Create, ModifyRevision: m.Modify,
		ExpireAt: time.Duration(m.ExpireAt)}
}

// Get returns the key and the current store revision.
func (s *State) Get(key string) (*KeyValue, int64, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	e, ok := s.table.Get(key)
	if !ok {
		return nil, s.revision, false
	}
	return copyOut(key, e, true), s.revision, true
}

// ListOptions bound what a List page copies out of the state.
type ListOptions struct {
	// MaxBytes ends a page before the item that would take its key and
	// value bytes past it (a page holds at least one item); 0: no bound.
	MaxBytes int
	// KeysOnly leaves the values out of the page (Value nil); MaxBytes
	// still counts them, so a page ends where it would with values.
	KeysOnly bool
}

// ValueSize returns the size of key's value, without copying it.
func (s *State) ValueSize(key string) (int, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	e, ok := s.table.Get(key)
	if !ok {
		return 0, false
	}
	return len(e.Value()), true
}

// List returns up to limit keys (0: all) under prefix that sort after
// `after`, in key order, whether more follow, and the store revision the
// page was read at. It keeps only the page's candidates while it scans,
// and copies out only the page.
func (s *State) List(prefix, after string, limit int, opts ListOptions) ([]*KeyValue, bool, int64) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	pre := []byte(prefix)
	page := &entryHeap{}
	more := false
	s.table.Range(func(e kvtable.Entry) bool {
		k := e.Key()
		if !bytes.HasPrefix(k, pre) || string(k) <= after {
			return true
		}
		if limit <= 0 || page.Len() < limit {
			heap.Push(page, e)
			return true
		}
		more = true
		if bytes.Compare(k, (*page)[0].Key()) < 0 {
			(*page)[0] = e
			heap.Fix(page, 0)
		}
		return true
	})
	entries := []kvtable.Entry(*page)
	sort.Slice(entries, func(i, j int) bool { return bytes.Compare(entries[i].Key(), entries[j].Key()) < 0 })
	out := make([]*KeyValue, 0, len(entries))
	size := 0
	for i, e := range entries {
		if size += len(e.Key()) + len(e.Value()); opts.MaxBytes > 0 && size > opts.MaxBytes && i > 0 {
			more = true
			break
		}
		out = append(out, copyOut(string(e.Key()), e, !opts.KeysOnly))
	}
	return out, more, s.revision
}

// entryHeap is a max-heap of entries by key: the page's candidates, the
// largest first, to be dropped when a smaller key turns up.
type entryHeap []kvtable.Entry

func (h entryHeap) Len() int           { return len(h) }
func (h entryHeap) Less(i, j int) bool { return bytes.Compare(h[i].Key(), h[j].Key()) > 0 }
func (h entryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *entryHeap) Push(x any)        { *h = append(*h, x.(kvtable.Entry)) }
func (h *entryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

// Revision is the revision of the last change.
func (s *State) Revision() int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.revision
}

// Stats reports the number of keys and the bytes of keys and values held,
// in constant time (metrics scrape it).
func (s *State) Stats() (keys int, bytes int64) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.table.Len(), s.bytes
}

// indexExpiry files key, just stored with expiry expireAt, in the expiry
// index it belongs to.
func (s *State) indexExpiry(key string, expireAt time.Duration) {
	delete(s.expiring, key)
	delete(s.pending, key)
	switch {
	case expireAt > 0:
		s.expiring[key] = expireAt
	case expireAt < 0:
		s.pending[key] = struct{}{}
	}
}

// placePending starts the TTL of every unstamped put at the cluster time
// that just rose, the same on every replica. A stored record is never
// changed (pinned snapshots may be reading it), so each is rewritten.
func (s *State) placePending() {
	for k := range s.pending {
		e, _ := s.table.Get(k)
		m := e.Meta()
		m.ExpireAt = int64(s.clock) - m.ExpireAt
		s.table.Put(k, e.Value(), m)
		s.expiring[k] = time.Duration(m.ExpireAt)
	}
	clear(s.pending)
}

// Clock is the replicated cluster time: the largest cluster time an
// applied command carried. It moves only with the log.
func (s *State) Clock() time.Duration {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.clock
}

// ClockNow estimates the cluster time now on this replica: the replicated
// clock plus the time elapsed on this process's monotonic clock since it
// rose here. The leader stamped that value before this replica applied
// it, so the estimate is never ahead of the leader's clock: a TTL shown
// from it is never shorter than the leader's. A leader taking over starts
// its own cluster time from this estimate (the cluster package).
func (s *State) ClockNow() time.Duration {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.clockAt.IsZero() {
		return s.clock
	}
	return s.clock + s.now().Sub(s.clockAt)
}

// PendingTTLs is how many keys wait for a cluster time to start their TTL.
func (s *State) PendingTTLs() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.pending)
}

// HighestRevision is the highest revision this process has held, in this
// state or in any state a Reset emptied: a new cluster's base revision
// must lie above it. Process memory only: a restarted process forgets it.
func (s *State) HighestRevision() int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return max(s.highest, s.revision)
}

// Expired lists up to max keys whose expiry is at or before cluster time
// now, for the leader to propose as one OpExpire.
func (s *State) Expired(now time.Duration, max int) []Expiry {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []Expiry
	for k, at := range s.expiring {
		if at <= now {
			e, _ := s.table.Get(k)
			out = append(out, Expiry{Key: k, ModifyRevision: e.Meta().Modify})
			if len(out) >= max {
				break
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// Watch streams the changes under prefix from revision from (0: only new
// changes). It fails with ErrCompacted when from is older than the kept
// history. The watcher ends when ctx-like cancel is called or it falls too
// far behind (its Err is then ErrWatcherTooSlow).
func (s *State) Watch(prefix string, from int64) (*Watcher, error) {
	// Holding the read lock while registering means no Apply can slip between
	// the history replay and the live subscription.
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.hub.subscribe(prefix, from, s.revision)
}

// Watchers is the number of open watchers.
func (s *State) Watchers() int { return s.hub.count() }

// Reset empties the state: a new, unrelated history begins (after a
// confirmed quorum loss). Open watchers are cut off with ErrCompacted. The
// revision it held is remembered for HighestRevision.
func (s *State) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.highest = max(s.highest, s.revision)
	s.table.Retire()
	s.table = kvtable.New()
	s.bytes = 0
	s.expiring = make(map[string]time.Duration)
	s.pending = make(map[string]struct{})
	s.revision = 0
	// A new cluster's clock is a new timeline: it must not run on from
	// this one's, or its leader's cluster time would be ahead of the next.
	s.clock, s.clockAt = 0, time.Time{}
	s.hub.reset(0)
}

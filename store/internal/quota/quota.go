// Package quota refuses writes that would grow the data past a bound, so
// that memory never kills a majority (etcd's --quota-backend-bytes and
// Redis's maxmemory play the same part). Every replica holds every key and
// grows in lockstep: without a bound, one large write burst OOM-kills every
// pod at once, a majority loss that empties the store. With it, writes
// that grow the data are refused (HTTP 507, quota_exceeded) while reads,
// deletes and writes that do not grow the data go on.
//
// Usage is an estimate of the memory the data takes: the key and value
// bytes plus PerKeyOverhead for every key (the record's header and size
// class, the index slot, the retained snapshots' pins). What else the process holds (the Raft log, the
// watch history, Go's collector headroom, a snapshot arriving as bytes) is
// left to the quota's distance from the memory limit: config.DefaultQuotaRatio
// explains the numbers.
//
// The quota is a local decision, taken before a write is proposed, never
// in the replicated state machine: nodes with different quotas (a rolling
// change of the memory limit) must still apply the same log the same way.
package quota

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/ephemeral-store/ephemeral-store/store/internal/fsm"
)

// ErrExceeded refuses a write that would take the data past the quota.
// Nothing was proposed: the write did not happen and may be sent again
// once room is freed.
var ErrExceeded = errors.New("quota exceeded")

// PerKeyOverhead is the memory one key costs beyond its key and value
// bytes, rounded up. The state machine holds keys off the Go heap
// (store/internal/kvtable): a 32-byte record header, up to 15 bytes of
// size-class rounding for records up to 1 KiB (up to 12.5 % of a larger
// record, which this does not count: the quota's distance from the memory
// limit covers it), an index slot (8 bytes at a load of 3/8 to 3/4:
// 11 to 21 per key), and 8 bytes on the heap for each of the two
// snapshots the node keeps. BenchmarkStateMemoryPerKey (store/internal/fsm)
// measures 325 bytes for a 16-byte key with a 256-byte value at 200 000
// and 1.6 million keys, 321 at a million: 49 to 53 above the raw 272, and
// 8 more per kept snapshot. A key with a TTL costs its expiry index entry
// on the heap besides (about 60 bytes), which this does not count.
const PerKeyOverhead = 96

// State is what the quota reads of the local replica.
type State interface {
	// Stats reports the number of keys and their key and value bytes.
	Stats() (keys int, bytes int64)
	// ValueSize returns the size of a key's current value, if it has one.
	ValueSize(key string) (int, bool)
}

// Quota bounds the estimated memory of the data. Without a limit it admits
// everything and still reports what the data uses.
type Quota struct {
	limit int64
	state State
	// pending is the growth of the writes admitted on this node that are
	// not applied yet: a burst of writes, each checked against the state
	// before the others are applied, would otherwise all fit.
	pending atomic.Int64
}

// New returns a quota of limit bytes over state; limit <= 0 means none.
func New(limit int64, state State) *Quota {
	return &Quota{limit: max(limit, 0), state: state}
}

// Limit is the quota in bytes (0: none).
func (q *Quota) Limit() int64 { return q.limit }

// Used is the estimated memory of the data held now.
func (q *Quota) Used() int64 {
	keys, bytes := q.state.Stats()
	return bytes + int64(keys)*PerKeyOverhead
}

// Growth is how much cmd would add to Used: a new key costs its key,
// value and PerKeyOverhead; a rewrite the difference of the values, which
// is zero or less for a write that shrinks or keeps a value. Deletes,
// expiries and every other operation never grow the data.
func Growth(cmd fsm.Command, state State) int64 {
	if cmd.Op != fsm.OpPut {
		return 0
	}
	if size, ok := state.ValueSize(cmd.Key); ok {
		return int64(len(cmd.Value)) - int64(size)
	}
	return int64(len(cmd.Key)) + int64(len(cmd.Value)) + PerKeyOverhead
}

// Check refuses cmd when it would grow the data past the quota. It
// reserves nothing: a node that forwards a write checks it so that a
// doomed value does not cross the network, and the leader decides (Admit).
func (q *Quota) Check(cmd fsm.Command) error {
	if q.limit == 0 {
		return nil
	}
	g := Growth(cmd, q.state)
	if g <= 0 {
		return nil
	}
	return q.refuse(q.Used(), g)
}

// Admit is Check with a reservation, for the node that proposes the write
// (the leader): the growth counts as used until release is called, once
// the write is applied or has failed, so that concurrent writes cannot
// all pass on the same room. release is never nil.
func (q *Quota) Admit(cmd fsm.Command) (release func(), err error) {
	if q.limit == 0 {
		return func() {}, nil
	}
	g := Growth(cmd, q.state)
	if g <= 0 {
		return func() {}, nil
	}
	pending := q.pending.Add(g)
	if err := q.refuse(q.Used()+pending-g, g); err != nil {
		q.pending.Add(-g)
		return func() {}, err
	}
	var once atomic.Bool
	return func() {
		if once.CompareAndSwap(false, true) {
			q.pending.Add(-g)
		}
	}, nil
}

func (q *Quota) refuse(used, growth int64) error {
	if used+growth <= q.limit {
		return nil
	}
	return fmt.Errorf("%w: the write needs %d bytes and %d of the quota of %d are used: delete keys or shrink values to make room, or raise the quota (--quota-bytes, or the memory limit)",
		ErrExceeded, growth, used, q.limit)
}

// Checker is the quota as a front end sees it.
type Checker interface {
	Check(cmd fsm.Command) error
}

// Precheck is a front end's check of a write before it goes to the leader
// (which checks again before proposing it): a refusal by this replica's
// view is confirmed after catchUp brings the view up to the leader's, so
// a replica that lags behind a delete does not refuse a write that fits.
// When catchUp fails, the leader, if any, decides. q may be nil (no quota).
func Precheck(ctx context.Context, q Checker, catchUp func(context.Context) error, cmd fsm.Command) error {
	if q == nil || q.Check(cmd) == nil {
		return nil
	}
	if err := catchUp(ctx); err != nil {
		return nil //nolint:nilerr // the leader, if any, decides
	}
	return q.Check(cmd)
}

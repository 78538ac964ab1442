// Package fsm is the replicated state machine: an in-memory map of keys with
// revisions, TTLs and a bounded history of changes for watchers. Every change
// is a Command that a Raft log can carry; nothing here touches the network or
// a disk.
package fsm

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Op names a state machine operation.
type Op string

// The operations a Command can carry.
const (
	OpPut    Op = "put"
	OpDelete Op = "delete"
	// OpExpire removes keys whose TTL the leader has decided is over. Each
	// entry names the modify revision it expires, so a key rewritten after
	// the leader's decision survives.
	OpExpire Op = "expire"
	// OpBase starts a new cluster's revisions above every revision an
	// earlier cluster (lost with its quorum) can have handed out, so a
	// client's old revision never matches a new, unrelated version in a
	// compare-and-swap, and resuming a watch from it is refused as compacted.
	OpBase Op = "base"
	// OpClock only carries the leader's cluster time (Command.Clock). The
	// leader proposes one when the replicated clock has fallen a clockTick
	// behind its own, so a replica that restores a snapshot or replays the
	// log learns a recent cluster time even when nothing else is written.
	// A replica of an older version refuses it as an unknown operation,
	// which changes nothing there.
	OpClock Op = "clock"
	// OpReplicas records the replica count the leader read from the
	// platform. The cluster layer applies it (its members agree on one
	// count through the log); it never reaches State, which holds keys.
	OpReplicas Op = "replicas"
)

// MaxTTL bounds a put's TTL at every front end: the store holds
// short-lived state, and a bound keeps expiry arithmetic far from overflow.
const MaxTTL = 365 * 24 * time.Hour

// Command is one change to the state machine. Commands are applied in log
// order on every replica and Apply must give every replica the same result,
// so a Command carries every input that is not already in the state: the
// leader stamps its cluster time (Clock) once, before the command enters
// the log, and a put's expiry is its TTL on that replicated clock.
type Command struct {
	Op    Op     `json:"op"`
	Key   string `json:"key,omitempty"`
	Value []byte `json:"value,omitempty"`
	// TTL is what the client asked for; zero means no expiry. A put
	// expires at the cluster time it is applied at plus TTL.
	TTL time.Duration `json:"ttl,omitempty"`
	// Clock is the proposing leader's cluster time (see State.Clock):
	// elapsed time on the leaders' monotonic clocks, carried from leader to
	// leader through the log, never a wall-clock reading. Zero: unstamped,
	// by a leader of an older version or by one that had not yet taken
	// over (the cluster package); a put's TTL then starts at the next stamp.
	Clock time.Duration `json:"clock,omitempty"`
	// ExpireAt is the leader's wall-clock expiry instant in Unix
	// nanoseconds, written only for replicas of older versions during a
	// rolling upgrade (they decide expiry by it). This version never reads
	// it: it is no input to Apply.
	ExpireAt int64 `json:"expire_at,omitempty"`
	// PrevRevision, when set, makes the change conditional: the key's modify
	// revision must equal it, and 0 means "the key must not exist".
	PrevRevision *int64 `json:"prev_revision,omitempty"`
	// Expire lists the keys an OpExpire removes.
	Expire []Expiry `json:"expire,omitempty"`
	// BaseRevision is the revision an OpBase raises the store to.
	BaseRevision int64 `json:"base_revision,omitempty"`
	// Replicas is the count an OpReplicas records.
	Replicas int `json:"replicas,omitempty"`
}

// Expiry names one key an OpExpire removes and the version it removes.
type Expiry struct {
	Key            string `json:"key"`
	ModifyRevision int64  `json:"modify_revision"`
}

// NewBase is the OpBase a newly bootstrapped cluster proposes first: the
// larger of the leader's wall clock in microseconds and floor, the highest
// revision the bootstrapping nodes know an earlier cluster reached (see
// the cluster package's DESIGN.md, "Revisions across a data loss"). An
// earlier cluster started at its own bootstrap instant and would have
// needed more than one write per microsecond since then to pass the
// clock; the floor covers a clock that was stepped back.
func NewBase(now time.Time, floor int64) Command {
	return Command{Op: OpBase, BaseRevision: max(now.UnixMicro(), floor)}
}

// PrepareOnLeader fixes the inputs that must be decided once for all
// replicas, just before the command enters the log: the leader's cluster
// time (zero: none yet) and, for older replicas only, the wall-clock
// expiry instant they expect.
func (c *Command) PrepareOnLeader(clock time.Duration, wall time.Time) {
	c.Clock = clock
	if c.Op == OpPut && c.TTL > 0 {
		c.ExpireAt = wall.Add(c.TTL).UnixNano()
	}
}

// Validate reports a command that no replica could apply meaningfully.
func (c *Command) Validate() error {
	switch c.Op {
	case OpPut, OpDelete:
		if c.Key == "" {
			return fmt.Errorf("%s: %w", c.Op, ErrEmptyKey)
		}
	case OpExpire, OpBase, OpClock:
	default:
		return fmt.Errorf("%w: %q", ErrUnknownOp, c.Op)
	}
	if c.TTL < 0 {
		return fmt.Errorf("ttl %s: %w", c.TTL, ErrNegativeTTL)
	}
	return nil
}

// Encode serializes a command for the log.
func (c *Command) Encode() ([]byte, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode command: %w", err)
	}
	return b, nil
}

// DecodeCommand is the inverse of Encode.
func DecodeCommand(b []byte) (Command, error) {
	var c Command
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("decode command: %w", err)
	}
	return c, nil
}

// Result is what applying a Command produced. Err carries the deterministic
// refusals (ErrRevisionMismatch, ErrKeyNotFound): the command was committed
// but changed nothing.
type Result struct {
	Revision       int64 `json:"revision"`
	CreateRevision int64 `json:"create_revision,omitempty"`
	ModifyRevision int64 `json:"modify_revision,omitempty"`
	Err            error `json:"-"`
}

// Errors a command can produce. They are part of the contract with the HTTP
// layer, which maps them to status codes in one place.
var (
	// ErrKeyNotFound: a delete, or a compare-and-swap, named a missing key.
	ErrKeyNotFound = errors.New("key not found")
	// ErrRevisionMismatch: prev_revision did not match the key's modify revision.
	ErrRevisionMismatch = errors.New("revision mismatch")
	// ErrCompacted: a watch asked for history that is no longer kept.
	ErrCompacted = errors.New("revision compacted")
	// ErrWatcherTooSlow: a watcher fell so far behind that it was cut off.
	ErrWatcherTooSlow = errors.New("watcher too slow")
	ErrEmptyKey       = errors.New("empty key")
	ErrUnknownOp      = errors.New("unknown operation")
	ErrNegativeTTL    = errors.New("negative ttl")
)

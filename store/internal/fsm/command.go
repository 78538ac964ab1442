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
	// OpReplicas records the replica count the leader read from the
	// platform. The cluster layer applies it (its members agree on one
	// count through the log); it never reaches State, which holds keys.
	OpReplicas Op = "replicas"
)

// Command is one change to the state machine. Commands are applied in log
// order on every replica and Apply must give every replica the same result,
// so a Command carries every input that is not already in the state: the
// expiry instant is decided once, by the leader, and travels as ExpireAt.
type Command struct {
	Op    Op     `json:"op"`
	Key   string `json:"key,omitempty"`
	Value []byte `json:"value,omitempty"`
	// TTL is what the client asked for; the leader turns it into ExpireAt
	// before proposing (PrepareOnLeader). Zero means no expiry.
	TTL time.Duration `json:"ttl,omitempty"`
	// ExpireAt is the leader's wall clock instant at which the key expires,
	// in Unix nanoseconds; zero means never.
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
// leader's clock in microseconds. An earlier cluster started at its own
// bootstrap instant and would have needed more than one write per
// microsecond since then to reach it.
func NewBase(now time.Time) Command {
	return Command{Op: OpBase, BaseRevision: now.UnixMicro()}
}

// PrepareOnLeader fixes the inputs that must be decided once for all
// replicas. It is called by the leader, with its clock, just before the
// command enters the log.
func (c *Command) PrepareOnLeader(now time.Time) {
	if c.Op == OpPut && c.TTL > 0 && c.ExpireAt == 0 {
		c.ExpireAt = now.Add(c.TTL).UnixNano()
	}
}

// Validate reports a command that no replica could apply meaningfully.
func (c *Command) Validate() error {
	switch c.Op {
	case OpPut, OpDelete:
		if c.Key == "" {
			return fmt.Errorf("%s: %w", c.Op, ErrEmptyKey)
		}
	case OpExpire, OpBase:
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

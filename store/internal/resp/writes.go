package resp

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ephemeral-store/ephemeral-store/store/internal/auth"
	"github.com/ephemeral-store/ephemeral-store/store/internal/cluster"
	"github.com/ephemeral-store/ephemeral-store/store/internal/fsm"
	"github.com/ephemeral-store/ephemeral-store/store/internal/quota"
)

// setOptions are what SET may add to a put: a TTL (EX seconds or PX
// milliseconds) and NX (only if the key does not exist, the store's
// compare-and-swap with revision 0).
type setOptions struct {
	ttl time.Duration
	nx  bool
}

// parseSetOptions reads SET's options; the ones that need a value model or
// a read-modify-write the store does not have (XX, GET, KEEPTTL, EXAT,
// PXAT) are refused by name.
func parseSetOptions(opts [][]byte) (setOptions, string) {
	var o setOptions
	for i := 0; i < len(opts); i++ {
		switch opt := strings.ToUpper(string(opts[i])); opt {
		case "EX", "PX":
			if o.ttl != 0 || i+1 == len(opts) {
				return o, "ERR syntax error"
			}
			i++
			n, err := parseDigits(opts[i])
			unit := time.Second
			if opt == "PX" {
				unit = time.Millisecond
			}
			if err != nil || n <= 0 || n > int64(fsm.MaxTTL/unit) {
				return o, fmt.Sprintf("ERR invalid expire time in 'set' command: want 1 to %d (at most %s)", int64(fsm.MaxTTL/unit), fsm.MaxTTL)
			}
			o.ttl = time.Duration(n) * unit
		case "NX":
			o.nx = true
		case "XX", "GET", "KEEPTTL", "EXAT", "PXAT":
			return o, fmt.Sprintf("ERR SET %s is not supported: compare-and-swap on a revision is on the HTTP API (PUT ?prev_revision=)", opt)
		default:
			return o, "ERR syntax error"
		}
	}
	return o, ""
}

// parseDigits reads a decimal number of digits only ("+5" and " 5" are
// not numbers here, as in Redis).
func parseDigits(b []byte) (int64, error) {
	if len(b) == 0 || len(b) > 18 {
		return 0, strconv.ErrSyntax
	}
	for _, ch := range b {
		if ch < '0' || ch > '9' {
			return 0, strconv.ErrSyntax
		}
	}
	return strconv.ParseInt(string(b), 10, 64)
}

// writeForm is the form of a SET's answer.
type writeForm int

const (
	replyOK      writeForm = iota // SET, SETEX, PSETEX: +OK, or nil when NX finds the key
	replyWritten                  // SETNX: 1, or 0 when the key exists
)

// set serves SET, SETNX, SETEX and PSETEX, answering once a majority has
// the value.
func (c *conn) set(key, value []byte, opts [][]byte, form writeForm) bool {
	w := &c.w
	o, bad := parseSetOptions(opts)
	if bad != "" {
		w.err(bad)
		return false
	}
	if !c.authorize([][]byte{key}, auth.AccessReadWrite) {
		return false
	}
	if len(value) > c.s.o.MaxValueBytes {
		w.err(fmt.Sprintf("ERR value too large: %d bytes, the limit is %d", len(value), c.s.o.MaxValueBytes))
		return false
	}
	cmd := fsm.Command{Op: fsm.OpPut, Key: string(key), Value: append([]byte(nil), value...), TTL: o.ttl}
	if o.nx {
		zero := int64(0)
		cmd.PrevRevision = &zero
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.s.o.WriteTimeout)
	defer cancel()
	if c.s.o.Quota != nil {
		if err := quota.Precheck(ctx, c.s.o.Quota, c.s.o.Barrier.LinearizableRead, cmd); err != nil {
			w.err(c.writeError(err))
			return false
		}
	}
	if _, err := c.s.o.Writer.Apply(ctx, cmd); err != nil {
		if o.nx && errors.Is(err, fsm.ErrRevisionMismatch) {
			// The key exists: Redis's answer to a refused NX.
			if form == replyWritten {
				w.integer(0)
			} else {
				w.null()
			}
			return true
		}
		w.err(c.writeError(err))
		return false
	}
	if form == replyWritten {
		w.integer(1)
	} else {
		w.simple("OK")
	}
	return true
}

// del serves DEL and UNLINK: each key is its own write, all sent at once
// (a follower's forwarder batches them to the leader), and the reply
// counts the keys that existed. When some fail, the reply says how many
// were deleted and what is known of the rest.
func (c *conn) del(keys [][]byte) bool {
	if !c.authorize(keys, auth.AccessReadWrite) {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.s.o.WriteTimeout)
	defer cancel()
	errs := make([]error, len(keys))
	var wg sync.WaitGroup
	for i, k := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = c.s.o.Writer.Apply(ctx, fsm.Command{Op: fsm.OpDelete, Key: string(k)})
		}()
	}
	wg.Wait()
	deleted, existed := int64(0), 0
	var failed error
	for _, err := range errs {
		switch {
		case err == nil:
			deleted++
		case errors.Is(err, fsm.ErrKeyNotFound):
			existed++ // committed: the key was not there
		case failed == nil:
			failed = err
		}
	}
	switch {
	case failed == nil:
		c.w.integer(deleted)
		return true
	case deleted == 0 && existed == 0:
		c.w.err(c.writeError(failed)) // one command's failure, as for SET
	default:
		c.s.o.Logger.Warn("DEL partly failed", "remote", c.remote, "deleted", deleted, "keys", len(keys), "err", failed)
		c.w.err(fmt.Sprintf("NOQUORUM %d of %d keys deleted, %d were absent; the outcome of the others is unknown (%v); read them before deleting again",
			deleted, len(keys), existed, failed))
	}
	return false
}

// writeError says what a failed write left behind, in the HTTP API's
// terms: refused before any attempt (retry anywhere), or of unknown
// outcome (read the key before writing it again).
func (c *conn) writeError(err error) string {
	switch {
	case errors.Is(err, quota.ErrExceeded):
		return "OOM " + err.Error() + "; nothing was written"
	case errors.Is(err, cluster.ErrShutdown):
		return "TRYAGAIN this node is shutting down and wrote nothing; send the command to another node"
	case errors.Is(err, cluster.ErrNoLeader), errors.Is(err, cluster.ErrOutcomeUnknown), errors.Is(err, context.DeadlineExceeded):
		return "NOQUORUM the write may or may not have been applied (" + err.Error() + "); read the key before writing it again"
	default:
		// Unexpected, and possibly after the write was sent: its outcome
		// is unknown. Details go to the log.
		c.s.o.Logger.Error("write failed", "remote", c.remote, "err", err)
		return "ERR internal error: the write may or may not have been applied; read the key before writing it again"
	}
}

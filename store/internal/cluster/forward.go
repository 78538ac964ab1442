package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ephemeral-store/ephemeral-store/store/internal/fsm"
)

// Forwarded writes. A follower does not send its leader one request per
// client write: the writes that arrive while forwardSlots batches are in
// flight wait together and go in the next batch (/peer/apply/batch), as
// reads share a read round (readindex.go). Under load a follower then
// sends a few requests per round trip instead of one per write, and the
// leader proposes a batch's commands at once, so Raft appends them
// together. With little load a write leaves at once, alone. A leader that
// does not know the route (an older version during a rolling upgrade) gets
// the commands one by one (/peer/apply).
//
// The commands of one batch are concurrent writes of different clients (a
// client waits for one write's answer before its next), so the leader may
// propose them in any order.

const (
	// forwardSlots is how many batches a follower has in flight to its
	// leader at once.
	forwardSlots = 4
	// maxForwardBatch bounds the commands of one batch (the leader refuses
	// more), and maxForwardBatchBytes their keys and values: values may be
	// up to 64 MiB, and a batch is held whole in memory on both sides. A
	// larger command goes alone.
	maxForwardBatch      = 256
	maxForwardBatchBytes = 4 << 20
	// singleRetry is how long a follower sends single writes to a leader
	// that lacked the batch route before it tries the route again (the
	// leader at that address may have been upgraded since).
	singleRetry = 30 * time.Second
)

// errRouteUnknown: the peer does not serve that route (an older version);
// it did nothing with the request.
var errRouteUnknown = errors.New("peer does not know the route")

// forwarder sends a follower's writes to the leader in batches.
type forwarder struct {
	peer *peerClient
	// ctx and timeout bound each batch: the node's context, since a batch
	// serves many writers and outlives any one of them.
	ctx     context.Context
	timeout time.Duration
	slots   chan struct{}
	sizes   prometheus.Observer // commands per batch sent (nil: none)

	mu sync.Mutex
	// next is the batch that has not started yet: writes join it.
	next *forwardBatch
	// single are leaders that lacked the batch route, with when they did.
	single map[string]time.Time
}

func newForwarder(ctx context.Context, peer *peerClient, timeout time.Duration, slots int, sizes prometheus.Observer) *forwarder {
	return &forwarder{
		peer: peer, ctx: ctx, timeout: timeout, slots: make(chan struct{}, slots), sizes: sizes,
		single: map[string]time.Time{},
	}
}

// forwardBatch is the writes one request carries to one leader.
type forwardBatch struct {
	leader string
	cmds   []fsm.Command
	bytes  int // keys and values of cmds
	done   chan struct{}
	out    []forwardOutcome // one per command, set before done closes
}

type forwardOutcome struct {
	res fsm.Result
	err error
}

// apply forwards cmd to the leader at leader in the next batch and returns
// its result. Errors are those of a single forwarded write: errNotLeader
// and errPeerUnreachable when the write was provably not proposed (the
// caller may retry it), ErrOutcomeUnknown when it may still commit, and
// the state machine's refusals.
func (f *forwarder) apply(ctx context.Context, leader string, cmd fsm.Command) (fsm.Result, error) {
	f.mu.Lock()
	size := len(cmd.Key) + len(cmd.Value)
	b := f.next
	if b == nil || b.leader != leader || len(b.cmds) >= maxForwardBatch ||
		(len(b.cmds) > 0 && b.bytes+size > maxForwardBatchBytes) {
		b = &forwardBatch{leader: leader, done: make(chan struct{})}
		f.next = b
		go f.run(b)
	}
	i := len(b.cmds)
	b.cmds = append(b.cmds, cmd)
	b.bytes += size
	f.mu.Unlock()
	select {
	case <-b.done:
		return b.out[i].res, b.out[i].err
	case <-ctx.Done():
		// The batch may still carry it (or already has).
		return fsm.Result{}, fmt.Errorf("forwarded write: %w: %w", ErrOutcomeUnknown, context.Cause(ctx))
	}
}

// run sends batch b once a slot is free; until then, writes join it.
func (f *forwarder) run(b *forwardBatch) {
	f.slots <- struct{}{}
	defer func() { <-f.slots }()
	defer close(b.done)
	f.mu.Lock()
	if f.next == b {
		f.next = nil // later writes go in a batch that starts after them
	}
	cmds := b.cmds
	f.mu.Unlock()
	ctx, cancel := context.WithTimeout(f.ctx, f.timeout)
	defer cancel()
	if f.sizes != nil {
		f.sizes.Observe(float64(len(cmds)))
	}
	b.out = f.send(ctx, b.leader, cmds)
}

// send delivers cmds to leader: in one batch request, or one by one to a
// leader without the batch route.
func (f *forwarder) send(ctx context.Context, leader string, cmds []fsm.Command) []forwardOutcome {
	out := make([]forwardOutcome, len(cmds))
	if !f.lacksBatchRoute(leader) {
		var resp applyBatchResponse
		err := f.peer.call(ctx, http.MethodPost, leader, "/peer/apply/batch", cmds, &resp)
		if err == nil && len(resp.Results) != len(cmds) {
			err = fmt.Errorf("%w: peer %s answered %d results for %d writes", ErrOutcomeUnknown, leader, len(resp.Results), len(cmds))
		}
		switch {
		case err == nil:
			for i, r := range resp.Results {
				out[i] = r.outcome(leader)
			}
			return out
		case !errors.Is(err, errRouteUnknown):
			for i := range out {
				out[i].err = err
			}
			return out
		}
		f.mu.Lock()
		f.single[leader] = time.Now()
		f.mu.Unlock()
	}
	var wg sync.WaitGroup
	for i, cmd := range cmds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i].res, out[i].err = f.peer.apply(ctx, leader, cmd)
		}()
	}
	wg.Wait()
	return out
}

func (f *forwarder) lacksBatchRoute(leader string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	at, ok := f.single[leader]
	if ok && time.Since(at) >= singleRetry {
		delete(f.single, leader)
		return false
	}
	return ok
}

// applyBatchResponse answers /peer/apply/batch: one result per command, in
// the order of the request.
type applyBatchResponse struct {
	Results []batchResult `json:"results"`
}

// batchResult is one command's outcome. Error is "" (applied), a code of
// fsmErrors (refused by the state machine or the quota), "not_leader"
// (never proposed: the follower may retry it) or "outcome_unknown".
type batchResult struct {
	Result  fsm.Result `json:"result"`
	Error   string     `json:"error,omitempty"`
	Message string     `json:"message,omitempty"`
}

const (
	batchNotLeader      = "not_leader"
	batchOutcomeUnknown = "outcome_unknown"
)

func newBatchResult(res fsm.Result, err error) batchResult {
	switch {
	case err == nil:
		return batchResult{Result: res}
	case errors.Is(err, raft.ErrNotLeader):
		return batchResult{Error: batchNotLeader, Message: err.Error()}
	}
	if code := fsmErrorCode(err); code != "" {
		return batchResult{Result: res, Error: code}
	}
	return batchResult{Error: batchOutcomeUnknown, Message: err.Error()}
}

// outcome is what a forwarded write's caller sees, as for a single one
// (peerClient.apply).
func (r batchResult) outcome(leader string) forwardOutcome {
	switch r.Error {
	case "":
		return forwardOutcome{res: r.Result}
	case batchNotLeader:
		return forwardOutcome{err: fmt.Errorf("%w: %s", errNotLeader, leader)}
	case batchOutcomeUnknown:
		return forwardOutcome{err: fmt.Errorf("%w: peer %s: %s", ErrOutcomeUnknown, leader, r.Message)}
	}
	if e, ok := fsmErrors[r.Error]; ok {
		r.Result.Err = e
		return forwardOutcome{res: r.Result, err: e}
	}
	return forwardOutcome{err: fmt.Errorf("%w: peer %s: unknown result code %q", ErrOutcomeUnknown, leader, r.Error)}
}

// handleApplyBatch proposes a follower's batch on this leader, every
// command at once, and answers each command's outcome.
func (n *Node) handleApplyBatch(w http.ResponseWriter, req *http.Request) {
	var cmds []fsm.Command
	if err := json.NewDecoder(req.Body).Decode(&cmds); err != nil {
		writeRPCError(w, http.StatusBadRequest, "bad_request", err)
		return
	}
	if len(cmds) > maxForwardBatch {
		writeRPCError(w, http.StatusBadRequest, "bad_request", fmt.Errorf("%d writes in one batch, at most %d", len(cmds), maxForwardBatch))
		return
	}
	inc := n.inc()
	if inc.r.State() != raft.Leader {
		writeRPCError(w, http.StatusMisdirectedRequest, "not_leader", errNotLeader)
		return
	}
	results := make([]batchResult, len(cmds))
	var wg sync.WaitGroup
	for i, cmd := range cmds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = newBatchResult(n.applyLocal(inc, cmd))
		}()
	}
	wg.Wait()
	writeJSON(w, http.StatusOK, applyBatchResponse{Results: results})
}

package faulttest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ephemeral-store/ephemeral-store/store/client"
	"github.com/ephemeral-store/ephemeral-store/store/kvhistory"
)

// trafficDuration is how long clients run in a fault test: long enough for
// the fault and its recovery, short enough for the package to stay within a
// few minutes, shorter under -short and the race detector.
func trafficDuration() time.Duration {
	d := 12 * time.Second
	if testing.Short() {
		d = 7 * time.Second
	}
	if raceEnabled {
		d = d * 3 / 4
	}
	return d
}

// workload drives concurrent clients over a small key space, so operations
// conflict, and records every operation for the linearizability check.
type workload struct {
	c         *Cluster
	h         *kvhistory.Recorder
	keys      []string
	clients   int
	opTimeout time.Duration

	// unique, when set, is the prefix of keys written once each: part
	// of the puts go to unique+"c<client>/<seq>", and every acknowledged
	// one must be found on every node at the end (see scheduleRun.checkUniqueWrites).
	unique string
	// pinned clients (every other one) talk to their node only, so both
	// sides of a partition take requests.
	pinned bool
	// seed, when not zero, seeds the clients' choices.
	seed uint64
	// backoff is a client's pause after a failed operation (100ms).
	backoff time.Duration
	// resp, when set, makes every fourth client speak the Redis protocol
	// (GET, SET, DEL on its node's RESP port) instead of the HTTP API;
	// their operations join the same history.
	resp bool

	acked      atomic.Int64 // writes with a definite answer
	unknown    atomic.Int64 // writes with an unknown outcome
	reads      atomic.Int64 // reads with an answer
	readErrors atomic.Int64

	mu         sync.Mutex
	unexpected []string // answers a correct store never gives to these requests
}

// opMeta annotates an operation in the visualization: the node it went
// through, over RESP or HTTP, and the error that left its outcome unknown.
type opMeta struct {
	Node int
	RESP bool
	Err  string
}

func (m opMeta) String() string {
	via := fmt.Sprintf("via n%d", m.Node)
	if m.RESP {
		via += " (RESP)"
	}
	if m.Err == "" {
		return via
	}
	return via + ": " + m.Err
}

func newWorkload(c *Cluster, clients int, keys ...string) *workload {
	return &workload{c: c, h: kvhistory.NewRecorder(), keys: keys, clients: clients, opTimeout: 5 * time.Second,
		backoff: 100 * time.Millisecond}
}

// run starts the clients; they stop when ctx ends and wait returns once
// every in-flight operation has finished.
func (w *workload) run(ctx context.Context) (wait func()) {
	var wg sync.WaitGroup
	for id := 0; id < w.clients; id++ {
		node := id % len(w.c.Nodes)
		var cl *client.Client
		if w.pinned && id%2 == 1 {
			cl = w.c.NodeClient(node, w.opTimeout)
		} else {
			cl = w.c.Client(node, w.opTimeout)
		}
		var rc *redis.Client
		if w.resp && id%4 == 3 {
			rc = w.c.respClient(node, w.opTimeout)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.client(ctx, id, node, clientOf{cl, rc})
		}()
	}
	return wg.Wait
}

// clientOf is a workload client's way in: the HTTP API, or the RESP
// port when resp is set.
type clientOf struct {
	http *client.Client
	resp *redis.Client
}

func (w *workload) client(ctx context.Context, id, node int, cl clientOf) {
	seed := w.seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	rng := rand.New(rand.NewPCG(uint64(id), seed))
	for seq := 0; ctx.Err() == nil; seq++ {
		key := w.keys[rng.IntN(len(w.keys))]
		var ok bool
		switch r := rng.IntN(100); {
		case w.unique != "" && rng.IntN(10) < 3:
			k := fmt.Sprintf("%sc%d/%d", w.unique, id, seq)
			ok = w.putVia(id, node, cl, k, k)
		case r < 50 && cl.resp != nil:
			ok = w.respGet(id, node, cl.resp, key)
		case r < 50:
			ok = w.get(id, node, cl.http, key)
		case r < 90:
			ok = w.putVia(id, node, cl, key, fmt.Sprintf("c%d-%d", id, seq))
		case cl.resp != nil:
			ok = w.respDelete(id, node, cl.resp, key)
		default:
			ok = w.delete(id, node, cl.http, key)
		}
		if !ok {
			// Back off a little after a failure so a fault does not
			// turn into a storm of unknown outcomes.
			select {
			case <-ctx.Done():
			case <-time.After(w.backoff):
			}
		}
	}
}

func (w *workload) putVia(id, node int, cl clientOf, key, value string) bool {
	if cl.resp != nil {
		return w.respPut(id, node, cl.resp, key, value)
	}
	return w.put(id, node, cl.http, key, value)
}

func (w *workload) unexpectedAnswer(format string, args ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.unexpected) < 20 {
		w.unexpected = append(w.unexpected, fmt.Sprintf(format, args...))
	}
}

// get is a linearizable read (stale reads are not linearizable and stay
// out of the history). A failed read has no effect and is dropped.
func (w *workload) get(id, node int, cl *client.Client, key string) bool {
	call := w.h.Now()
	kv, err := cl.Get(context.Background(), key)
	ret := w.h.Now()
	var out kvhistory.Output
	switch {
	case err == nil:
		out = kvhistory.Output{Found: true, Value: string(kv.Value), Rev: kv.ModifyRevision}
	case errors.Is(err, client.ErrKeyNotFound):
		out = kvhistory.Output{}
	default:
		w.readErrors.Add(1)
		if kvhistory.Rejected(err) {
			w.unexpectedAnswer("get %s via n%d: %v", key, node, err)
		}
		return false
	}
	w.reads.Add(1)
	w.h.Add(porcupine.Operation{ClientId: id, Input: kvhistory.Input{Op: kvhistory.Get, Key: key}, Call: call, Output: out, Return: ret,
		Metadata: opMeta{Node: node}})
	return true
}

func (w *workload) put(id, node int, cl *client.Client, key, value string) bool {
	call := w.h.Now()
	res, err := cl.Put(context.Background(), key, []byte(value))
	ret := w.h.Now()
	op := porcupine.Operation{ClientId: id, Input: kvhistory.Input{Op: kvhistory.Put, Key: key, Value: value}, Call: call, Return: ret,
		Metadata: opMeta{Node: node}}
	switch {
	case err == nil:
		op.Output = kvhistory.Output{Rev: res.ModifyRevision}
		w.acked.Add(1)
	case kvhistory.Rejected(err):
		w.unexpectedAnswer("put %s via n%d: %v", key, node, err)
		return false
	case kvhistory.NotSent(err):
		return false // it reached no server: no effect, nothing to record
	default:
		op.Output, op.Return = kvhistory.Output{Unknown: true}, kvhistory.EndOfTime
		op.Metadata = opMeta{Node: node, Err: err.Error()}
		w.unknown.Add(1)
	}
	w.h.Add(op)
	return err == nil
}

func (w *workload) delete(id, node int, cl *client.Client, key string) bool {
	call := w.h.Now()
	res, err := cl.Delete(context.Background(), key)
	ret := w.h.Now()
	op := porcupine.Operation{ClientId: id, Input: kvhistory.Input{Op: kvhistory.Delete, Key: key}, Call: call, Return: ret,
		Metadata: opMeta{Node: node}}
	switch {
	case err == nil:
		op.Output = kvhistory.Output{Found: true, Rev: res.Revision}
		w.acked.Add(1)
	case errors.Is(err, client.ErrKeyNotFound):
		op.Output = kvhistory.Output{}
		w.acked.Add(1)
	case kvhistory.Rejected(err):
		w.unexpectedAnswer("delete %s via n%d: %v", key, node, err)
		return false
	case kvhistory.NotSent(err):
		return false
	default:
		op.Output, op.Return = kvhistory.Output{Unknown: true}, kvhistory.EndOfTime
		op.Metadata = opMeta{Node: node, Err: err.Error()}
		w.unknown.Add(1)
	}
	w.h.Add(op)
	return err == nil || errors.Is(err, client.ErrKeyNotFound)
}

// ackedWritesAfter counts writes called after ts that were acknowledged.
func (w *workload) ackedWritesAfter(ts int64) int {
	n := 0
	for _, op := range w.h.Operations() {
		in, out := op.Input.(kvhistory.Input), op.Output.(kvhistory.Output)
		if in.Op != kvhistory.Get && !out.Unknown && op.Call >= ts {
			n++
		}
	}
	return n
}

// readState is one key as one node answered it.
type readState struct {
	Found bool
	Value string
	Rev   int64
}

func (r readState) String() string {
	if !r.Found {
		return "<none>"
	}
	return fmt.Sprintf("%q@%d", r.Value, r.Rev)
}

// readAll reads every key through cl; linearizable reads are recorded in
// the history under clientID.
func (w *workload) readAll(ctx context.Context, cl *client.Client, node, clientID int, stale bool) (map[string]readState, error) {
	out := map[string]readState{}
	for _, key := range w.keys {
		var opts []client.GetOption
		if stale {
			opts = append(opts, client.Stale())
		}
		call := w.h.Now()
		kv, err := cl.Get(ctx, key, opts...)
		ret := w.h.Now()
		var st readState
		switch {
		case err == nil:
			st = readState{Found: true, Value: string(kv.Value), Rev: kv.ModifyRevision}
		case errors.Is(err, client.ErrKeyNotFound):
		default:
			return nil, fmt.Errorf("get %s via n%d (stale=%v): %w", key, node, stale, err)
		}
		out[key] = st
		if !stale {
			w.h.Add(porcupine.Operation{ClientId: clientID, Input: kvhistory.Input{Op: kvhistory.Get, Key: key}, Call: call,
				Output: kvhistory.Output{Found: st.Found, Value: st.Value, Rev: st.Rev}, Return: ret, Metadata: opMeta{Node: node}})
		}
	}
	return out, nil
}

// verify runs after the traffic stopped and the faults healed: every node
// converges on the same state, that state keeps every acknowledged write
// (or a newer one), and the whole history is linearizable.
func (w *workload) verify(t *testing.T) {
	t.Helper()
	c := w.c
	live := w.live()
	require.NotEmpty(t, live, "no node runs")
	require.NoError(t, c.WaitReadyErr(live, 30*time.Second))

	// Converge: a linearizable read through the first node, then every
	// node's local copy must show the same state (a node may still be
	// applying). Only the nodes that run count: after a scale-down the
	// nodes beyond the replica count are gone for good.
	first := live[0]
	clients := make([]*client.Client, len(c.Nodes))
	for _, i := range live {
		clients[i] = c.NodeClient(i, 5*time.Second)
	}
	var (
		convergedMu sync.Mutex // the condition runs on its own goroutine
		converged   map[string]readState
	)
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		lin, err := w.readAll(context.Background(), clients[first], first, w.clients, false)
		if !assert.NoError(ct, err, "linearizable read through n%d", first) {
			return
		}
		for _, i := range live {
			st, err := w.readAll(context.Background(), clients[i], i, -1, true)
			if !assert.NoError(ct, err, "stale read through n%d", i) {
				return
			}
			for _, k := range w.keys {
				if !assert.Equal(ct, lin[k], st[k], "n%d has %s = %v, the cluster %v", i, k, st[k], lin[k]) {
					return
				}
			}
		}
		convergedMu.Lock()
		converged = lin
		convergedMu.Unlock()
	}, 15*time.Second, 200*time.Millisecond, "the nodes converge within 15s after the faults healed")
	convergedMu.Lock()
	final := converged
	convergedMu.Unlock()
	// Linearizable reads through every node join the history. A read may
	// fail while the cluster elects; only the answers count.
	for _, i := range live {
		var (
			readMu sync.Mutex
			read   map[string]readState
		)
		if !assert.EventuallyWithT(t, func(ct *assert.CollectT) {
			got, err := w.readAll(context.Background(), clients[i], i, w.clients+1+i, false)
			if assert.NoError(ct, err) {
				readMu.Lock()
				read = got
				readMu.Unlock()
			}
		}, 15*time.Second, 100*time.Millisecond, "final linearizable read through n%d", i) {
			continue
		}
		readMu.Lock()
		st := read
		readMu.Unlock()
		for _, k := range w.keys {
			if st[k] != final[k] {
				t.Errorf("final linearizable read through n%d: %s = %v, n%d said %v", i, k, st[k], first, final[k])
			}
		}
	}

	w.checkNoAckedWriteLost(t, final)

	w.mu.Lock()
	for _, u := range w.unexpected {
		t.Errorf("unexpected answer: %s", u)
	}
	w.mu.Unlock()

	ops := w.h.Operations()
	respOps := countRESP(ops)
	if w.resp {
		assert.Positive(t, respOps, "the RESP clients' operations are in the history")
	}
	res := kvhistory.Check(ops, 2*time.Minute, "faulttest-linearizability-*.html")
	t.Logf("history: %d operations (%d over RESP; %d acknowledged writes, %d unknown outcomes, %d reads, %d failed reads); porcupine %s in %s",
		len(ops), respOps, w.acked.Load(), w.unknown.Load(), w.reads.Load(), w.readErrors.Load(), res.Result, res.Duration.Round(time.Millisecond))
	if res.Result != porcupine.Ok {
		t.Errorf("history is not linearizable: porcupine says %s; visualization: %s", res.Result, res.Visualization)
	}
}

// countRESP is how many of ops went over the RESP port.
func countRESP(ops []porcupine.Operation) int {
	n := 0
	for _, op := range ops {
		if m, ok := op.Metadata.(opMeta); ok && m.RESP {
			n++
		}
	}
	return n
}

// live lists the nodes whose process runs (a paused one counts).
func (w *workload) live() []int {
	var out []int
	for i := range w.c.Nodes {
		if w.c.Running(i) {
			out = append(out, i)
		}
	}
	return out
}

// checkNoAckedWriteLost holds the final state of each key to the history
// with kvhistory.LostWrites (the rule is there).
func (w *workload) checkNoAckedWriteLost(t *testing.T, final map[string]readState) {
	t.Helper()
	if lost := w.lostWrites(final); len(lost) > 0 {
		t.Errorf("acknowledged writes lost:\n  %s", strings.Join(lost, "\n  "))
	}
}

// lostWrites lists the keys of final (w.keys, as read through one node)
// that lost an acknowledged write, one line each, "<key>: <what>".
func (w *workload) lostWrites(final map[string]readState) []string {
	fin := make(map[string]kvhistory.Output, len(final))
	for k, st := range final {
		fin[k] = kvhistory.Output{Found: st.Found, Value: st.Value, Rev: st.Rev}
	}
	// A RESP write is answered without a revision, and LostWrites orders
	// a key's acknowledged writes by revision: it is counted as a write
	// of unknown outcome, whose effect may or may not be in the final
	// state. That never reports a write lost that was not, but it is
	// weaker for the keys RESP clients write: any RESP DEL of a key, even
	// one that returned before a later acknowledged PUT, lets the key's
	// absence pass here. Porcupine still holds every write to every read,
	// the final linearizable reads included, and the partition tier finds
	// each acknowledged unique key on every node.
	ops := w.h.Operations()
	for i, op := range ops {
		if m, ok := op.Metadata.(opMeta); ok && m.RESP && op.Input.(kvhistory.Input).Op != kvhistory.Get {
			op.Output, op.Return = kvhistory.Output{Unknown: true}, kvhistory.EndOfTime
			ops[i] = op
		}
	}
	return kvhistory.LostWrites(ops, fin)
}

// writeAfterHeal proves the healed cluster takes writes again: one put
// through each node must be acknowledged within a bound (retrying while
// an election settles). The puts join the history.
func (w *workload) writeAfterHeal(t *testing.T) {
	t.Helper()
	for _, i := range w.live() {
		cl := w.c.NodeClient(i, 5*time.Second)
		id := w.clients + 1 + len(w.c.Nodes) + i
		var seq atomic.Int64
		assert.EventuallyWithT(t, func(ct *assert.CollectT) {
			ok := w.put(id, i, cl, w.keys[i%len(w.keys)], fmt.Sprintf("healed-n%d-%d", i, seq.Add(1)))
			assert.True(ct, ok, "put through n%d failed", i)
		}, 30*time.Second, 100*time.Millisecond, "the healed cluster takes writes through n%d within 30s", i)
	}
}

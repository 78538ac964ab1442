package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ephemeral-store/ephemeral-store/store/internal/fsm"
	"github.com/ephemeral-store/ephemeral-store/store/internal/quota"
)

// fakeLeader serves the peer routes a follower forwards writes to. Every
// command's result carries a revision derived from its key, so each writer
// can check it got its own answer; answer decides the outcome per key.
type fakeLeader struct {
	srv *httptest.Server
	// hold, when set, keeps batch requests waiting until releaseAll.
	hold        chan struct{}
	releaseOnce sync.Once
	answer      func(key string) batchResult

	mu      sync.Mutex
	batches []int // commands per batch request, in arrival order
	singles int   // /peer/apply requests
}

func newFakeLeader(t *testing.T, batchRoute bool) *fakeLeader {
	t.Helper()
	l := &fakeLeader{answer: func(key string) batchResult { return batchResult{Result: fsm.Result{Revision: revisionOf(key)}} }}
	mux := http.NewServeMux()
	if batchRoute {
		mux.HandleFunc("POST /peer/apply/batch", func(w http.ResponseWriter, req *http.Request) {
			var cmds []fsm.Command
			require.NoError(t, json.NewDecoder(req.Body).Decode(&cmds))
			l.mu.Lock()
			l.batches = append(l.batches, len(cmds))
			l.mu.Unlock()
			if l.hold != nil {
				<-l.hold
			}
			resp := applyBatchResponse{}
			for _, c := range cmds {
				resp.Results = append(resp.Results, l.answer(c.Key))
			}
			writeJSON(w, http.StatusOK, resp)
		})
	}
	mux.HandleFunc("POST /peer/apply", func(w http.ResponseWriter, req *http.Request) {
		var c fsm.Command
		require.NoError(t, json.NewDecoder(req.Body).Decode(&c))
		l.mu.Lock()
		l.singles++
		l.mu.Unlock()
		a := l.answer(c.Key)
		writeJSON(w, http.StatusOK, applyResponse{Result: a.Result, Error: a.Error})
	})
	l.srv = httptest.NewServer(mux)
	t.Cleanup(l.srv.Close)
	return l
}

// holdBatches makes batch requests wait until releaseAll, which the test's
// cleanup calls too (before the server's Close waits for them).
func (l *fakeLeader) holdBatches(t *testing.T) {
	l.hold = make(chan struct{})
	t.Cleanup(l.releaseAll)
}

func (l *fakeLeader) releaseAll() { l.releaseOnce.Do(func() { close(l.hold) }) }

func (l *fakeLeader) addr() string { return strings.TrimPrefix(l.srv.URL, "http://") }

func (l *fakeLeader) counts() ([]int, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]int(nil), l.batches...), l.singles
}

func revisionOf(key string) int64 {
	var r int64
	_, _ = fmt.Sscanf(key, "k%d", &r)
	return r + 1000
}

func testForwarder(t *testing.T, l *fakeLeader, slots int) *forwarder {
	t.Helper()
	return newForwarder(t.Context(), &peerClient{hc: l.srv.Client()}, 10*time.Second, slots, nil)
}

func put(key string) fsm.Command { return fsm.Command{Op: fsm.OpPut, Key: key, Value: []byte("v")} }

// pending is how many writes wait in the batch that has not started.
func (f *forwarder) pending() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.next == nil {
		return 0
	}
	return len(f.next.cmds)
}

// Writes that arrive while a batch is in flight go together in the next
// one, and every writer gets its own command's result.
func TestForwardedWritesThatArriveTogetherShareABatch(t *testing.T) {
	l := newFakeLeader(t, true)
	l.holdBatches(t)
	f := testForwarder(t, l, 1)

	results := make(chan error, 10)
	write := func(i int) {
		res, err := f.apply(t.Context(), l.addr(), put(fmt.Sprintf("k%d", i)))
		if err == nil && res.Revision != int64(1000+i) {
			err = fmt.Errorf("k%d got revision %d, the answer of another write", i, res.Revision)
		}
		results <- err
	}
	go write(0)
	require.Eventually(t, func() bool { b, _ := l.counts(); return len(b) == 1 }, 10*time.Second, time.Millisecond,
		"the first write leaves at once, alone")
	for i := 1; i < 10; i++ {
		go write(i)
	}
	require.Eventually(t, func() bool { return f.pending() == 9 }, 10*time.Second, time.Millisecond,
		"the nine writes that arrive meanwhile wait in one batch")
	l.releaseAll()
	for range 10 {
		require.NoError(t, <-results)
	}
	batches, singles := l.counts()
	assert.Equal(t, []int{1, 9}, batches)
	assert.Zero(t, singles)
}

// A batch holds at most maxForwardBatchBytes of keys and values: a write
// that would take it beyond waits for the next one, and one larger than
// the bound still goes, alone.
func TestForwardedBatchesAreBoundedInBytes(t *testing.T) {
	l := newFakeLeader(t, true)
	l.holdBatches(t)
	f := testForwarder(t, l, 1)
	big := func(key string, n int) fsm.Command {
		return fsm.Command{Op: fsm.OpPut, Key: key, Value: make([]byte, n)}
	}
	done := make(chan error, 4)
	go func() { _, err := f.apply(t.Context(), l.addr(), put("k0")); done <- err }()
	require.Eventually(t, func() bool { b, _ := l.counts(); return len(b) == 1 }, 10*time.Second, time.Millisecond)
	// While the first batch is held: two writes of 3 MiB cannot share a
	// batch, and a 5 MiB one goes alone.
	for i, n := range []int{3 << 20, 3 << 20, 5 << 20} {
		go func() { _, err := f.apply(t.Context(), l.addr(), big(fmt.Sprintf("k%d", i+1), n)); done <- err }()
		require.Eventually(t, func() bool {
			f.mu.Lock()
			defer f.mu.Unlock()
			return f.next != nil && f.next.cmds[len(f.next.cmds)-1].Key == fmt.Sprintf("k%d", i+1)
		}, 10*time.Second, time.Millisecond)
	}
	l.releaseAll()
	for range 4 {
		require.NoError(t, <-done)
	}
	batches, _ := l.counts()
	assert.Equal(t, []int{1, 1, 1, 1}, batches)
}

// Each command's outcome reaches its own writer as a single forwarded
// write's would: retryable only where it was never proposed.
func TestForwardedBatchOutcomesPerWrite(t *testing.T) {
	l := newFakeLeader(t, true)
	l.answer = func(key string) batchResult {
		switch key {
		case "not-leader":
			return batchResult{Error: batchNotLeader, Message: "lost leadership"}
		case "mismatch":
			return batchResult{Error: "revision_mismatch"}
		case "unknown":
			return batchResult{Error: batchOutcomeUnknown, Message: "leadership lost while committing"}
		case "strange":
			return batchResult{Error: "from_a_newer_version"}
		}
		return batchResult{Result: fsm.Result{Revision: 7}}
	}
	assertOutcomes(t, testForwarder(t, l, forwardSlots), l, map[string]error{
		"ok": nil, "not-leader": errNotLeader, "mismatch": fsm.ErrRevisionMismatch,
		"unknown": ErrOutcomeUnknown, "strange": ErrOutcomeUnknown,
	})
}

// assertOutcomes forwards a write of each key to l and checks what its
// writer sees: revision 7 where want is nil, else want (and, for a code this
// version does not know, the code in the message).
func assertOutcomes(t *testing.T, f *forwarder, l *fakeLeader, wants map[string]error) {
	t.Helper()
	for key, want := range wants {
		t.Run(key, func(t *testing.T) {
			res, err := f.apply(t.Context(), l.addr(), put(key))
			if want == nil {
				require.NoError(t, err)
				assert.Equal(t, int64(7), res.Revision)
				return
			}
			require.ErrorIs(t, err, want)
			if key == "strange" {
				assert.Contains(t, err.Error(), `unknown result code "from_a_newer_version"`)
			}
		})
	}
}

// A leader that does not know the batch route (an older version) gets the
// writes one by one, and is not asked for the route again at once.
func TestForwardedWritesFallBackToSinglesForALeaderWithoutTheRoute(t *testing.T) {
	l := newFakeLeader(t, false)
	f := testForwarder(t, l, forwardSlots)
	for i := range 3 {
		res, err := f.apply(t.Context(), l.addr(), put(fmt.Sprintf("k%d", i)))
		require.NoError(t, err)
		assert.Equal(t, int64(1000+i), res.Revision)
	}
	_, singles := l.counts()
	assert.Equal(t, 3, singles)
	assert.True(t, f.lacksBatchRoute(l.addr()))
}

// A single forwarded write (to a leader without the batch route) maps the
// leader's result code as a batched one does: a code this version does not
// know is an unknown outcome, never a success.
func TestSingleForwardedWriteOutcomes(t *testing.T) {
	l := newFakeLeader(t, false)
	l.answer = func(key string) batchResult {
		switch key {
		case "mismatch":
			return batchResult{Error: "revision_mismatch"}
		case "quota":
			return batchResult{Error: "quota_exceeded"}
		case "strange":
			return batchResult{Error: "from_a_newer_version"}
		}
		return batchResult{Result: fsm.Result{Revision: 7}}
	}
	assertOutcomes(t, testForwarder(t, l, forwardSlots), l, map[string]error{
		"ok": nil, "mismatch": fsm.ErrRevisionMismatch, "quota": quota.ErrExceeded, "strange": ErrOutcomeUnknown,
	})
	_, singles := l.counts()
	assert.Equal(t, 4, singles)
}

// A whole batch refused as not the leader is retryable for every writer; a
// batch cut off after sending is not, nor is a write whose writer gave up.
func TestForwardedBatchFailures(t *testing.T) {
	notLeader := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeRPCError(w, http.StatusMisdirectedRequest, "not_leader", errNotLeader)
	}))
	defer notLeader.Close()
	f := newForwarder(t.Context(), &peerClient{hc: notLeader.Client()}, 10*time.Second, forwardSlots, nil)
	_, err := f.apply(t.Context(), strings.TrimPrefix(notLeader.URL, "http://"), put("k1"))
	assert.ErrorIs(t, err, errNotLeader)

	hangUp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			_ = conn.Close()
		}
	}))
	defer hangUp.Close()
	f = newForwarder(t.Context(), &peerClient{hc: hangUp.Client()}, 10*time.Second, forwardSlots, nil)
	_, err = f.apply(t.Context(), strings.TrimPrefix(hangUp.URL, "http://"), put("k1"))
	assert.ErrorIs(t, err, ErrOutcomeUnknown)
	assert.False(t, errors.Is(err, errNotLeader))

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	l := newFakeLeader(t, true)
	l.holdBatches(t)
	_, err = testForwarder(t, l, 1).apply(ctx, l.addr(), put("k1"))
	assert.ErrorIs(t, err, ErrOutcomeUnknown, "a writer that gives up does not know whether its batch carried it")
}

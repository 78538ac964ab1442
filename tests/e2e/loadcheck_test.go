//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/gruntwork-io/terratest/modules/retry"
	"github.com/stretchr/testify/require"

	"github.com/ephemeral-store/ephemeral-store/store/client"
	"github.com/ephemeral-store/ephemeral-store/store/kvhistory"
)

const (
	// loadClients write and read concurrently for the whole test.
	loadClients = 4
	// loadKeys is small, so that clients conflict on every key, and large
	// enough that porcupine checks each key's history quickly.
	loadKeys = 12
	// loadPace is the least time between the starts of a client's
	// operations: about 4 x 8 operations a second, frugal with the two
	// CPUs the kind cluster and the port-forwards share.
	loadPace = 120 * time.Millisecond
	// opBound is how long one operation is retried before it counts as a
	// failed request. A rolling restart interrupts a client for a few
	// seconds at most; two minutes is generous even on a frozen VM.
	opBound = 2 * time.Minute
	// opsBeforeAndAfter is how many operations every client completes
	// before the first upgrade starts and after the second one ended.
	opsBeforeAndAfter = 25
)

// newLoadClients are the clients of an upgradeLoad: one through the client
// Service (a ready, non-terminating endpoint picked at each connection, as
// kube-proxy would), the others through pods 0 to pods-1 in turn, each
// starting at another pod.
func newLoadClients(t *testing.T, r *release, tunnels *podTunnels, pods int) []*loadClient {
	t.Helper()
	clients := []*loadClient{{name: "svc", cl: tunnels.client(t, r.fullname)}}
	for i := range loadClients - 1 {
		var targets []string
		for j := range pods {
			targets = append(targets, r.pod((i+j)%pods))
		}
		clients = append(clients, &loadClient{name: "pods-" + strings.Join(podOrdinals(targets), ""), cl: tunnels.client(t, targets...)})
	}
	return clients
}

// finalReads reads every key linearizably through each pod alone (the
// reads join the history, as clients numbered from len(l.clients)) and
// fails the test when two pods disagree.
func (l *upgradeLoad) finalReads(t *testing.T, r *release, tunnels *podTunnels) map[string]kvhistory.Output {
	t.Helper()
	final := map[string]kvhistory.Output{}
	for i := range r.replicas {
		got := l.readAll(t, len(l.clients)+i, &loadClient{name: "final-" + r.pod(i), cl: tunnels.client(t, r.pod(i))})
		for key, out := range got {
			if prev, ok := final[key]; ok && prev != out {
				t.Errorf("final read of %s: %s answered %+v, an earlier pod %+v", key, r.pod(i), out, prev)
			}
			final[key] = out
		}
	}
	return final
}

// verdicts fails the test for every request that failed after its
// retries, every acknowledged write that final lost (kvhistory.LostWrites,
// the check the fault tier makes too), and a history that is
// not linearizable (porcupine's visualization is written to a file named
// by the pattern visualization).
func (l *upgradeLoad) verdicts(t *testing.T, final map[string]kvhistory.Output, visualization string) {
	t.Helper()
	for _, f := range l.failuresList() {
		t.Errorf("request failed after its retries: %s", f)
	}
	lost := kvhistory.LostWrites(l.h.Operations(), final)
	for _, w := range lost {
		t.Errorf("acknowledged write lost: %s", w)
	}
	ops := l.h.Operations()
	res := kvhistory.Check(ops, 10*time.Minute, visualization)
	t.Logf("porcupine: %s on %d operations in %s; %d acknowledged writes lost", res.Result, len(ops), res.Duration.Round(time.Millisecond), len(lost))
	if res.Result != porcupine.Ok {
		t.Errorf("the history is not linearizable: porcupine says %s; visualization: %s", res.Result, res.Visualization)
	}
}

// reportWithGap logs the load's numbers and the longest time between from
// and to (recorder timestamps) without an acknowledged write, during names
// what happened then.
func (l *upgradeLoad) reportWithGap(t *testing.T, from, to int64, during string) {
	t.Helper()
	l.report(t)
	gap, gapAt := l.longestWriteGap(from, to)
	t.Logf("load: the longest time without any acknowledged write %s was %s (from %s)",
		during, gap.Round(time.Millisecond), gapAt.Format("15:04:05.000"))
}

// loadClient is one client of the load.
type loadClient struct {
	name string
	cl   *client.Client
	done atomic.Int64 // operations completed
}

// loadOpMeta annotates an operation in porcupine's visualization.
type loadOpMeta struct {
	Client  string
	Attempt int
	Err     string
}

func (m loadOpMeta) String() string {
	s := fmt.Sprintf("%s attempt %d", m.Client, m.Attempt)
	if m.Err != "" {
		s += ": " + m.Err
	}
	return s
}

// upgradeLoad is the clients' traffic and its record. Each operation is
// retried until it succeeds or opBound passes: a read that fails is not
// recorded (it had no effect); a write is recorded per attempt, acknowledged
// or, when its outcome is unknown, with Return EndOfTime, and retried with a
// new value; a write that provably reached no server is retried unrecorded.
type upgradeLoad struct {
	h      *kvhistory.Recorder
	prefix string
	keys   []string

	ops, reads, acked, unknown, notSent, retries atomic.Int64

	mu          sync.Mutex
	failures    []string
	retryWhy    []string // the first reasons to retry, for the log
	longest     time.Duration
	longestWhat string
	clients     []*loadClient
}

func newUpgradeLoad(run string) *upgradeLoad {
	l := &upgradeLoad{h: kvhistory.NewRecorder(), prefix: "upgrade/" + run + "/"}
	for i := range loadKeys {
		l.keys = append(l.keys, fmt.Sprintf("%sk%02d", l.prefix, i))
	}
	return l
}

// start runs the clients until the returned stop is called (or the test
// ends); stop returns once every operation in flight has finished.
func (l *upgradeLoad) start(t *testing.T, clients []*loadClient) (stop func()) {
	t.Helper()
	l.clients = clients
	stopCtx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	for id, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.client(t.Context(), stopCtx, id, c)
		}()
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			wg.Wait()
		})
	}
	t.Cleanup(stop)
	return stop
}

// client runs operations until stop ends; ctx (the test's) aborts one in
// flight only when the test itself ends.
func (l *upgradeLoad) client(ctx, stop context.Context, id int, c *loadClient) {
	rng := rand.New(rand.NewPCG(uint64(id), uint64(time.Now().UnixNano())))
	for seq := 0; stop.Err() == nil; seq++ {
		begin := time.Now()
		key := l.keys[rng.IntN(len(l.keys))]
		if rng.IntN(2) == 0 {
			l.get(ctx, id, c, key)
		} else {
			l.put(ctx, id, c, key, seq)
		}
		c.done.Add(1)
		l.ops.Add(1)
		select {
		case <-stop.Done():
		case <-time.After(loadPace - time.Since(begin)):
		}
	}
}

func (l *upgradeLoad) fail(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failures = append(l.failures, fmt.Sprintf(format, args...))
}

// retrying counts a retry and keeps the first reasons.
func (l *upgradeLoad) retrying(c *loadClient, what string, attempt int, err error) {
	l.retries.Add(1)
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.retryWhy) < 12 {
		l.retryWhy = append(l.retryWhy, fmt.Sprintf("%s: %s, attempt %d: %v", c.name, what, attempt, err))
	}
}

func (l *upgradeLoad) waited(d time.Duration, what string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if d > l.longest {
		l.longest, l.longestWhat = d, what
	}
}

// loadBackoff is the pause before attempt n+1: 50 ms doubling to 1 s.
func loadBackoff(ctx context.Context, n int) {
	d := 50 * time.Millisecond << min(n-1, 5)
	select {
	case <-ctx.Done():
	case <-time.After(min(d, time.Second)):
	}
}

// get is a linearizable read, retried until it has an answer.
func (l *upgradeLoad) get(ctx context.Context, id int, c *loadClient, key string) (kvhistory.Output, bool) {
	start := time.Now()
	for attempt := 1; ; attempt++ {
		call := l.h.Now()
		kv, err := c.cl.Get(ctx, key)
		ret := l.h.Now()
		var out kvhistory.Output
		switch {
		case err == nil:
			out = kvhistory.Output{Found: true, Value: string(kv.Value), Rev: kv.ModifyRevision}
		case errors.Is(err, client.ErrKeyNotFound):
		case ctx.Err() != nil:
			return out, false // the test is over
		case kvhistory.Rejected(err) || time.Since(start) > opBound:
			l.fail("%s: get %s: %d attempts over %s, the last: %v", c.name, key, attempt, time.Since(start).Round(time.Millisecond), err)
			return out, false
		default:
			l.retrying(c, "get "+key, attempt, err)
			loadBackoff(ctx, attempt)
			continue
		}
		l.h.Add(porcupine.Operation{ClientId: id, Input: kvhistory.Input{Op: kvhistory.Get, Key: key}, Call: call,
			Output: out, Return: ret, Metadata: loadOpMeta{Client: c.name, Attempt: attempt}})
		l.reads.Add(1)
		l.waited(time.Since(start), fmt.Sprintf("%s: get %s (%d attempts)", c.name, key, attempt))
		return out, true
	}
}

// put writes a value unique to the attempt, retried until acknowledged.
func (l *upgradeLoad) put(ctx context.Context, id int, c *loadClient, key string, seq int) {
	start := time.Now()
	for attempt := 1; ; attempt++ {
		value := fmt.Sprintf("%s-%d-a%d", c.name, seq, attempt)
		call := l.h.Now()
		res, err := c.cl.Put(ctx, key, []byte(value))
		ret := l.h.Now()
		op := porcupine.Operation{ClientId: id, Input: kvhistory.Input{Op: kvhistory.Put, Key: key, Value: value},
			Call: call, Return: ret, Metadata: loadOpMeta{Client: c.name, Attempt: attempt}}
		switch {
		case err == nil:
			op.Output = kvhistory.Output{Rev: res.ModifyRevision}
			l.h.Add(op)
			l.acked.Add(1)
			l.waited(time.Since(start), fmt.Sprintf("%s: put %s (%d attempts)", c.name, key, attempt))
			return
		case kvhistory.Rejected(err):
			l.fail("%s: put %s refused: %v", c.name, key, err)
			return
		case kvhistory.NotSent(err):
			l.notSent.Add(1)
		default:
			// Sent, outcome unknown: it may take effect at any time.
			op.Output, op.Return = kvhistory.Output{Unknown: true}, kvhistory.EndOfTime
			op.Metadata = loadOpMeta{Client: c.name, Attempt: attempt, Err: err.Error()}
			l.h.Add(op)
			l.unknown.Add(1)
		}
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > opBound {
			l.fail("%s: put %s: %d attempts over %s, the last: %v", c.name, key, attempt, time.Since(start).Round(time.Millisecond), err)
			return
		}
		l.retrying(c, "put "+key, attempt, err)
		loadBackoff(ctx, attempt)
	}
}

// waitOps waits until every client has completed n more operations.
func (l *upgradeLoad) waitOps(t *testing.T, n int64, when string) {
	t.Helper()
	base := make([]int64, len(l.clients))
	for i, c := range l.clients {
		base[i] = c.done.Load()
	}
	_, err := retry.DoWithRetryContextE(t, t.Context(), fmt.Sprintf("every client completes %d operations %s", n, when),
		pollTries, pollEvery, func() (string, error) {
			for i, c := range l.clients {
				if got := c.done.Load() - base[i]; got < n {
					return "", fmt.Errorf("client %s has completed %d of %d operations (%d failures so far)", c.name, got, n, len(l.failuresList()))
				}
			}
			return "", nil
		})
	require.NoError(t, err)
	t.Logf("every client completed %d operations %s (%d operations so far)", n, when, l.ops.Load())
}

// readAll reads every key through c as client id (recorded, retried like
// any read).
func (l *upgradeLoad) readAll(t *testing.T, id int, c *loadClient) map[string]kvhistory.Output {
	t.Helper()
	out := map[string]kvhistory.Output{}
	for _, key := range l.keys {
		got, ok := l.get(t.Context(), id, c, key)
		require.True(t, ok, "final read of %s through %s failed: %v", key, c.name, l.failuresList())
		out[key] = got
	}
	return out
}

func (l *upgradeLoad) failuresList() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.failures)
}

func (l *upgradeLoad) report(t *testing.T) {
	t.Helper()
	l.mu.Lock()
	longest, what, why := l.longest, l.longestWhat, slices.Clone(l.retryWhy)
	l.mu.Unlock()
	for _, w := range why {
		t.Logf("load: retried %s", w)
	}
	t.Logf("load: %d operations (%d reads, %d acknowledged writes), %d retries (%d writes provably not sent, %d unknown outcomes), %d failed after retries",
		l.ops.Load(), l.reads.Load(), l.acked.Load(), l.retries.Load(), l.notSent.Load(), l.unknown.Load(), len(l.failuresList()))
	t.Logf("load: the longest wait for an answer was %s: %s", longest.Round(time.Millisecond), what)
}

// longestWriteGap is the longest time between from and to (timestamps of
// the recorder) when no client had a write acknowledged, and its start.
func (l *upgradeLoad) longestWriteGap(from, to int64) (time.Duration, time.Time) {
	times := []int64{from, to}
	for _, op := range l.h.Operations() {
		in, out := op.Input.(kvhistory.Input), op.Output.(kvhistory.Output)
		if in.Op == kvhistory.Put && !out.Unknown && op.Return > from && op.Return < to {
			times = append(times, op.Return)
		}
	}
	slices.Sort(times)
	var gap int64
	start := from
	for i := 1; i < len(times); i++ {
		if d := times[i] - times[i-1]; d > gap {
			gap, start = d, times[i-1]
		}
	}
	return time.Duration(gap), l.h.Time(start)
}

// podOrdinals turns pod names into their ordinals, for short client names.
func podOrdinals(pods []string) []string {
	out := make([]string, len(pods))
	for i, p := range pods {
		out[i] = p[strings.LastIndex(p, "-")+1:]
	}
	return out
}

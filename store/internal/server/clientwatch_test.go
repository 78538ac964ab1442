package server_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ephemeral-store/ephemeral-store/store/client"
	"github.com/ephemeral-store/ephemeral-store/store/client/api"
	"github.com/ephemeral-store/ephemeral-store/store/internal/testcluster"
)

// The Go client's watch resumption and ListThenWatch against real nodes
// (mutual TLS, Raft, the watch history of each node).

// rendered is an event as compared here: revision, type, key, value.
func rendered(ev api.Event) string {
	return fmt.Sprintf("%d %s %s %s", ev.Revision, ev.Type, ev.Key, ev.Value)
}

// replay reads, through a fresh watch on node i, every event under prefix
// from revision from up to revision to: the history the node serves, to
// compare a watcher's events with.
func replay(ctx context.Context, t *testing.T, c *testcluster.Cluster, i int, prefix string, from, to int64) []string {
	t.Helper()
	w, err := c.Client(testcluster.UserAll, i).Watch(ctx, prefix, from)
	require.NoError(t, err)
	defer w.Close()
	var out []string
	for w.LastRevision() < to {
		ev, err := w.Next()
		require.NoError(t, err, "replaying %q from %d to %d on node %d, after %d events", prefix, from, to, i, len(out))
		out = append(out, rendered(ev))
	}
	return out
}

// checkOrdered fails on a revision that does not increase: a duplicate or
// an event out of order.
func checkOrdered(t *testing.T, evs []api.Event) {
	t.Helper()
	for i := 1; i < len(evs); i++ {
		require.Greater(t, evs[i].Revision, evs[i-1].Revision, "event %d (%s) after %s", i, rendered(evs[i]), rendered(evs[i-1]))
	}
}

// pump hands w's events to a channel until Next fails, then the error.
func pump(w *client.Watcher) (<-chan api.Event, <-chan error) {
	evs, errc := make(chan api.Event, 1024), make(chan error, 1)
	go func() {
		for {
			ev, err := w.Next()
			if err != nil {
				errc <- err
				return
			}
			evs <- ev
		}
	}()
	return evs, errc
}

// TestResumingWatchSurvivesItsNodeDying: a watch with client.Resume streams
// from node X, which is killed mid-watch while writes go on through the
// other nodes. The watcher resumes on another node and returns every
// revision exactly once, in order: the same events as the history of a
// surviving node, including every acknowledged write.
func TestResumingWatchSurvivesItsNodeDying(t *testing.T) {
	for _, victim := range []string{"follower", "leader"} {
		t.Run(victim, func(t *testing.T) {
			c := testcluster.New(t, 3)
			c.WaitReady(readyTimeout)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			x := c.Follower()
			if victim == "leader" {
				x = c.Leader()
			}
			var others []int
			for i := range 3 {
				if i != x {
					others = append(others, i)
				}
			}
			writer := c.Client(testcluster.UserAll, others...)
			start, err := writer.Put(ctx, "w/start", []byte("0"))
			require.NoError(t, err)

			var retries atomic.Int64
			w, err := c.Client(testcluster.UserAll, append([]int{x}, others...)...).Watch(ctx, "w/", start.Revision, client.Resume{
				MinBackoff: 20 * time.Millisecond, MaxBackoff: 500 * time.Millisecond,
				OnRetry: func(err error, from int64, wait time.Duration) {
					retries.Add(1)
					t.Logf("watch resumes from %d in %s: %v", from, wait, err)
				},
			})
			require.NoError(t, err)
			defer w.Close()
			evs, errc := pump(w)

			// The writer: 300 puts through the other nodes, each retried
			// until acknowledged (an unconditional put may apply twice:
			// the history shows both). Node X dies after the 100th,
			// once the watcher has returned events from it.
			const writes, killAfter = 300, 100
			var seen atomic.Int64
			acked := map[int64]string{start.Revision: "w/start 0"}
			var last int64
			writerDone := make(chan error, 1)
			go func() {
				for n := 1; n <= writes; n++ {
					key, val := fmt.Sprintf("w/%d", n%37), fmt.Sprint(n)
					for {
						res, err := writer.Put(ctx, key, []byte(val))
						if err == nil {
							acked[res.Revision], last = key+" "+val, res.Revision
							break
						}
						if ctx.Err() != nil {
							writerDone <- fmt.Errorf("write %d: %w", n, err)
							return
						}
						time.Sleep(20 * time.Millisecond)
					}
					if n == killAfter {
						for seen.Load() < killAfter/2 && ctx.Err() == nil {
							time.Sleep(5 * time.Millisecond)
						}
						t.Logf("killing node %d (%s) with %d events seen", x, victim, seen.Load())
						c.Kill(x)
					}
				}
				writerDone <- nil
			}()

			var got []api.Event
			done := false
			for !done || len(got) == 0 || got[len(got)-1].Revision < last {
				select {
				case ev := <-evs:
					got = append(got, ev)
					seen.Add(1)
				case err := <-writerDone:
					require.NoError(t, err)
					done = true
				case err := <-errc:
					t.Fatalf("the watch ended after %d events: %v", len(got), err)
				case <-ctx.Done():
					t.Fatalf("%d events by the deadline; writes done: %v", len(got), done)
				}
			}
			require.Positive(t, retries.Load(), "the watch never had to resume: the test killed no stream")
			checkOrdered(t, got)
			var mine []string
			for _, ev := range got {
				mine = append(mine, rendered(ev))
			}
			require.Equal(t, replay(ctx, t, c, others[0], "w/", start.Revision, last), mine,
				"the resumed watch differs from the surviving node's history")
			byRev := map[int64]string{}
			for _, ev := range got {
				byRev[ev.Revision] = ev.Key + " " + string(ev.Value)
			}
			for rev, kv := range acked {
				require.Equal(t, kv, byRev[rev], "acknowledged write at revision %d", rev)
			}
			t.Logf("%d events (%d acknowledged writes), %d resume attempts", len(got), len(acked), retries.Load())
		})
	}
}

// slowWatchOpen delays the opening of each watch stream. Between the
// listing and the watch, a list-then-watch that does not ask for the
// revision after the listing loses the writes made meanwhile: the delay
// makes that window wide enough for the writers to land in it every time.
type slowWatchOpen struct {
	rt    http.RoundTripper
	delay time.Duration
}

func (s slowWatchOpen) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Path == "/v1/watch/" {
		select {
		case <-time.After(s.delay):
		case <-r.Context().Done():
			return nil, r.Context().Err()
		}
	}
	return s.rt.RoundTrip(r)
}

// slowWatchClient is a client of node i whose watch streams open 200 ms
// late, over its own HTTP/2 transport with the user's certificate.
func slowWatchClient(t *testing.T, c *testcluster.Cluster, i int) *client.Client {
	t.Helper()
	tc, err := client.TLSConfigFromFiles(c.CertPaths(testcluster.UserAll))
	require.NoError(t, err)
	tc.ServerName = "localhost" // a DNS name of the nodes' certificates: the endpoint is an IP
	tr := &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	cl, err := client.New(client.Config{
		Endpoints:  []string{"https://" + c.Node(i).Client},
		HTTPClient: &http.Client{Transport: slowWatchOpen{rt: tr, delay: 200 * time.Millisecond}},
	})
	require.NoError(t, err)
	return cl
}

// TestListThenWatchReconstructsTheStateUnderConcurrentWrites: while
// writers put and delete keys under a prefix (and elsewhere), the
// snapshot of ListThenWatch plus its events rebuild exactly the final
// content of the prefix; the events are the node's history after the
// snapshot's revision, none missing, none twice. The watch opens late
// (slowWatchOpen), so writes land between the listing and the watch.
func TestListThenWatchReconstructsTheStateUnderConcurrentWrites(t *testing.T) {
	c := testcluster.New(t, 3)
	c.WaitReady(readyTimeout)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl := c.Client(testcluster.UserAll)
	for i := range 30 {
		_, err := cl.Put(ctx, fmt.Sprintf("l/%02d", i), []byte("initial"))
		require.NoError(t, err)
	}

	// Writers: puts and deletes under l/, and noise elsewhere that moves
	// the revision without touching the prefix.
	var (
		mu      sync.Mutex
		acked   = map[int64]string{} // revision of each acknowledged l/ write
		lastRev int64
	)
	record := func(rev int64, what string) {
		mu.Lock()
		defer mu.Unlock()
		acked[rev] = what
		lastRev = max(lastRev, rev)
	}
	var started sync.WaitGroup
	var wg sync.WaitGroup
	started.Add(3)
	errs := make(chan error, 3)
	for wr := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var once sync.Once
			defer once.Do(started.Done) // a writer that fails early must not hang the test
			wc := c.Client(testcluster.UserAll, wr)
			rng := rand.New(rand.NewPCG(uint64(wr), 19))
			for n := range 150 {
				if n == 20 {
					once.Do(started.Done)
				}
				key := fmt.Sprintf("l/%02d", rng.IntN(40))
				switch op := rng.IntN(10); {
				case wr == 2 && op < 5:
					if _, err := wc.Put(ctx, fmt.Sprintf("noise/%d", n), []byte("x")); err != nil {
						errs <- err
						return
					}
				case op < 3:
					res, err := wc.Delete(ctx, key)
					if errors.Is(err, client.ErrKeyNotFound) {
						continue
					}
					if err != nil {
						errs <- err
						return
					}
					record(res.Revision, "delete "+key)
				default:
					val := fmt.Sprintf("w%d-%d", wr, n)
					res, err := wc.Put(ctx, key, []byte(val))
					if err != nil {
						errs <- err
						return
					}
					record(res.Revision, "put "+key+" "+val)
				}
			}
		}()
	}
	started.Wait() // the snapshot is taken in the middle of the writes
	snap, w, err := slowWatchClient(t, c, c.Follower()).ListThenWatch(ctx, "l/", client.Resume{})
	require.NoError(t, err)
	defer w.Close()
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	type entry struct {
		value string
		mod   int64
	}
	local := map[string]entry{}
	for _, kv := range snap.Items {
		local[kv.Key] = entry{string(kv.Value), kv.ModifyRevision}
		require.LessOrEqual(t, kv.ModifyRevision, snap.Revision)
	}
	var got []api.Event
	evs, errc := pump(w)
	for len(got) == 0 || got[len(got)-1].Revision < lastRev {
		var ev api.Event
		select {
		case ev = <-evs:
		case err := <-errc:
			t.Fatalf("the watch ended after %d events: %v", len(got), err)
		case <-time.After(15 * time.Second):
			t.Fatalf("no event for 15 s after %d events (snapshot at %d): revision %d, the last acknowledged write under l/, never came",
				len(got), snap.Revision, lastRev)
		}
		require.Greater(t, ev.Revision, snap.Revision, "an event the snapshot already holds: %s", rendered(ev))
		got = append(got, ev)
		if ev.Type == api.EventPut {
			local[ev.Key] = entry{string(ev.Value), ev.Revision}
		} else {
			delete(local, ev.Key)
		}
	}
	checkOrdered(t, got)

	// The final content, read after every write was acknowledged.
	final, err := cl.List(ctx, "l/", client.WithLimit(1000))
	require.NoError(t, err)
	require.False(t, final.More)
	want := map[string]entry{}
	for _, kv := range final.Items {
		want[kv.Key] = entry{string(kv.Value), kv.ModifyRevision}
	}
	require.Equal(t, want, local, "snapshot at %d plus %d events is not the final content", snap.Revision, len(got))

	// No gap, no duplicate: exactly the node history after the snapshot,
	// with every acknowledged write after it.
	var mine []string
	for _, ev := range got {
		mine = append(mine, rendered(ev))
	}
	require.Equal(t, replay(ctx, t, c, c.Leader(), "l/", snap.Revision+1, lastRev), mine)
	byRev := map[int64]api.Event{}
	for _, ev := range got {
		byRev[ev.Revision] = ev
	}
	var after int
	for rev, what := range acked {
		if rev <= snap.Revision {
			continue
		}
		after++
		ev, ok := byRev[rev]
		require.True(t, ok, "acknowledged %s at revision %d is missing", what, rev)
		require.Contains(t, []string{"put " + ev.Key + " " + string(ev.Value), "delete " + ev.Key}, what)
	}
	require.Positive(t, after, "no write after the snapshot: the test raced nothing")
	revs := slices.Sorted(maps.Keys(acked))
	t.Logf("snapshot at %d of %d keys, %d events after it; l/ writes at revisions %d..%d", snap.Revision, len(snap.Items), len(got), revs[0], revs[len(revs)-1])
}

package kvhistory

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/ephemeral-store/ephemeral-store/store/client"
)

// The model tests run without a cluster: they prove the checker accepts
// what a correct store may answer and rejects what it must not.

func get(client int, key string, call, ret int64, found bool, value string) porcupine.Operation {
	return porcupine.Operation{ClientId: client, Input: Input{Op: Get, Key: key}, Call: call,
		Output: Output{Found: found, Value: value}, Return: ret}
}

func put(client int, key, value string, call, ret int64) porcupine.Operation {
	out := Output{}
	if ret == EndOfTime {
		out.Unknown = true
	}
	return porcupine.Operation{ClientId: client, Input: Input{Op: Put, Key: key, Value: value}, Call: call,
		Output: out, Return: ret}
}

func del(client int, key string, call, ret int64, found bool) porcupine.Operation {
	out := Output{Found: found}
	if ret == EndOfTime {
		out.Unknown = true
	}
	return porcupine.Operation{ClientId: client, Input: Input{Op: Delete, Key: key}, Call: call,
		Output: out, Return: ret}
}

// check is Check with the visualization removed when the test ends.
func check(t *testing.T, ops []porcupine.Operation, timeout time.Duration) Result {
	t.Helper()
	res := Check(ops, timeout, "kvhistory-test-*.html")
	if strings.HasPrefix(res.Visualization, "/") {
		t.Cleanup(func() { _ = os.Remove(res.Visualization) })
	}
	return res
}

// TestCheckRejectsStaleRead is the teeth check of every suite that relies
// on Check: a read that returns a value overwritten by a write that had
// already been acknowledged when the read started is not linearizable,
// and Check says so and draws it; the same history with the read
// overlapping the newer write is linearizable.
func TestCheckRejectsStaleRead(t *testing.T) {
	stale := []porcupine.Operation{
		put(0, "a", "1", 0, 10), put(1, "a", "2", 20, 30), get(2, "a", 40, 50, true, "1"),
	}
	res := check(t, stale, 10*time.Second)
	if res.Result != porcupine.Illegal {
		t.Fatalf("stale read: check = %s, want %s", res.Result, porcupine.Illegal)
	}
	fi, err := os.Stat(res.Visualization)
	if err != nil || fi.Size() == 0 {
		t.Fatalf("no visualization written for the stale read: %q %v", res.Visualization, err)
	}
	html, err := os.ReadFile(res.Visualization)
	if err != nil || !strings.Contains(string(html), "get(a)") {
		t.Fatalf("the visualization %s does not show the stale read (err %v)", res.Visualization, err)
	}

	concurrent := []porcupine.Operation{
		put(0, "a", "1", 0, 10), put(1, "a", "2", 20, 45), get(2, "a", 40, 50, true, "1"), get(2, "a", 60, 70, true, "2"),
	}
	if res := check(t, concurrent, 10*time.Second); res.Result != porcupine.Ok || res.Visualization != "" {
		t.Fatalf("read overlapping the newer write: check = %s (visualization %q), want %s", res.Result, res.Visualization, porcupine.Ok)
	}
}

func TestModel(t *testing.T) {
	tests := []struct {
		name string
		ops  []porcupine.Operation
		want porcupine.CheckResult
	}{
		{"concurrent read sees either value", []porcupine.Operation{
			put(0, "a", "1", 0, 10), put(1, "a", "2", 20, 40), get(2, "a", 25, 35, true, "1"), get(3, "a", 50, 60, true, "2"),
		}, porcupine.Ok},
		{"stale read after a newer write returned", []porcupine.Operation{
			put(0, "a", "1", 0, 10), put(1, "a", "2", 20, 30), get(2, "a", 40, 50, true, "1"),
		}, porcupine.Illegal},
		{"acknowledged write lost", []porcupine.Operation{
			put(0, "a", "1", 0, 10), get(1, "a", 20, 30, false, ""),
		}, porcupine.Illegal},
		{"read of a value never written", []porcupine.Operation{
			get(0, "a", 0, 10, true, "x"),
		}, porcupine.Illegal},
		{"unknown write may never happen", []porcupine.Operation{
			put(0, "a", "1", 0, 10), put(1, "a", "2", 20, EndOfTime), get(2, "a", 30, 40, true, "1"), get(2, "a", 50, 60, true, "1"),
		}, porcupine.Ok},
		{"unknown write may happen late", []porcupine.Operation{
			put(0, "a", "1", 0, 10), put(1, "a", "2", 20, EndOfTime), get(2, "a", 30, 40, true, "1"), get(2, "a", 50, 60, true, "2"),
		}, porcupine.Ok},
		{"unknown write once seen cannot vanish", []porcupine.Operation{
			put(0, "a", "1", 0, 10), put(1, "a", "2", 20, EndOfTime), get(2, "a", 30, 40, true, "2"), get(2, "a", 50, 60, true, "1"),
		}, porcupine.Illegal},
		{"delete reports whether it removed a key", []porcupine.Operation{
			put(0, "a", "1", 0, 10), del(1, "a", 20, 30, true), del(1, "a", 40, 50, true),
		}, porcupine.Illegal},
		{"delete of a missing key", []porcupine.Operation{
			del(0, "a", 0, 10, false), put(0, "a", "1", 20, 30), del(1, "a", 40, 50, true), get(2, "a", 60, 70, false, ""),
		}, porcupine.Ok},
		{"unknown delete may or may not remove", []porcupine.Operation{
			put(0, "a", "1", 0, 10), del(1, "a", 20, EndOfTime, false), get(2, "a", 30, 40, true, "1"), get(2, "a", 50, 60, false, ""),
		}, porcupine.Ok},
		{"keys are independent", []porcupine.Operation{
			put(0, "a", "1", 0, 10), put(1, "b", "2", 0, 10), get(2, "a", 20, 30, true, "1"), get(2, "b", 20, 30, true, "2"), get(3, "c", 20, 30, false, ""),
		}, porcupine.Ok},
		{"violation on one key of several", []porcupine.Operation{
			put(0, "a", "1", 0, 10), put(1, "b", "2", 0, 10), get(2, "a", 20, 30, true, "1"), get(2, "b", 20, 30, false, ""),
		}, porcupine.Illegal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := check(t, tt.ops, 10*time.Second)
			if res.Result != tt.want {
				t.Fatalf("check = %s, want %s (visualization %s)", res.Result, tt.want, res.Visualization)
			}
			if tt.want == porcupine.Illegal {
				if fi, err := os.Stat(res.Visualization); err != nil || fi.Size() == 0 {
					t.Fatalf("no visualization written for an illegal history: %q %v", res.Visualization, err)
				}
			}
		})
	}
}

// TestModelCopesWithManyUnknownWrites: a fault leaves many writes with an
// unknown outcome; the check of a long history must still finish fast.
func TestModelCopesWithManyUnknownWrites(t *testing.T) {
	var ops []porcupine.Operation
	ts := int64(0)
	last := map[string]string{}
	for i := 0; i < 4000; i++ {
		key := fmt.Sprintf("k%d", i%4)
		ts += 10
		switch {
		case i%50 == 7: // a write that timed out and never happened
			ops = append(ops, put(i%8, key, fmt.Sprintf("lost-%d", i), ts, EndOfTime))
		case i%3 == 0:
			v := fmt.Sprintf("v%d", i)
			ops = append(ops, put(i%8, key, v, ts, ts+5))
			last[key] = v
		default:
			v, ok := last[key]
			ops = append(ops, get(i%8, key, ts, ts+5, ok, v))
		}
	}
	res := check(t, ops, time.Minute)
	if res.Result != porcupine.Ok {
		t.Fatalf("check = %s after %s (visualization %s)", res.Result, res.Duration, res.Visualization)
	}
	t.Logf("%d operations, %d with unknown outcome, checked in %s", len(ops), 4000/50, res.Duration)
}

// TestRecorderIsSafeForConcurrentUse: operations added from many
// goroutines are all kept, on one clock that never runs backwards.
func TestRecorderIsSafeForConcurrentUse(t *testing.T) {
	h := NewRecorder()
	var wg sync.WaitGroup
	for c := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				call := h.Now()
				ret := h.Now()
				if ret < call {
					t.Errorf("clock ran backwards: call %d, return %d", call, ret)
				}
				h.Add(put(c, "a", fmt.Sprintf("c%d-%d", c, i), call, ret))
			}
		}()
	}
	wg.Wait()
	if n := len(h.Operations()); n != 800 || h.Len() != 800 {
		t.Fatalf("recorded %d operations (Len %d), want 800", n, h.Len())
	}
}

// TestOutcomeOfWriteErrors: which client errors leave a write out of the
// history (never sent, or refused) and which make its outcome unknown.
func TestOutcomeOfWriteErrors(t *testing.T) {
	dial := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	read := &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")}
	notReady := &client.APIError{StatusCode: 503, Code: "not_ready"}
	noQuorum := &client.APIError{StatusCode: 503, Code: "no_quorum"}
	forbidden := &client.APIError{StatusCode: 403, Code: "forbidden"}
	tests := []struct {
		name              string
		err               error
		notSent, rejected bool
	}{
		{"dial error", fmt.Errorf("post: %w", dial), true, false},
		{"not ready", notReady, true, false},
		{"every endpoint refused", &client.EndpointsError{Attempts: []error{dial, notReady}}, true, false},
		{"one endpoint took it", &client.EndpointsError{Attempts: []error{dial, noQuorum}}, false, false},
		{"no quorum after sending", noQuorum, false, false},
		{"reset after sending", read, false, false},
		{"forbidden", forbidden, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NotSent(tt.err); got != tt.notSent {
				t.Errorf("NotSent(%v) = %v, want %v", tt.err, got, tt.notSent)
			}
			if got := Rejected(tt.err); got != tt.rejected {
				t.Errorf("Rejected(%v) = %v, want %v", tt.err, got, tt.rejected)
			}
		})
	}
}

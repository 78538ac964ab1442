package faulttest

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// The model tests run without a cluster: they prove the checker accepts
// what a correct store may answer and rejects what it must not.

func get(client int, key string, call, ret int64, found bool, value string) porcupine.Operation {
	return porcupine.Operation{ClientId: client, Input: kvInput{Op: opGet, Key: key}, Call: call,
		Output: kvOutput{Found: found, Value: value}, Return: ret}
}

func put(client int, key, value string, call, ret int64) porcupine.Operation {
	out := kvOutput{}
	if ret == endOfTime {
		out.Unknown = true
	}
	return porcupine.Operation{ClientId: client, Input: kvInput{Op: opPut, Key: key, Value: value}, Call: call,
		Output: out, Return: ret}
}

func del(client int, key string, call, ret int64, found bool) porcupine.Operation {
	out := kvOutput{Found: found}
	if ret == endOfTime {
		out.Unknown = true
	}
	return porcupine.Operation{ClientId: client, Input: kvInput{Op: opDelete, Key: key}, Call: call,
		Output: out, Return: ret}
}

func TestKVModel(t *testing.T) {
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
			put(0, "a", "1", 0, 10), put(1, "a", "2", 20, endOfTime), get(2, "a", 30, 40, true, "1"), get(2, "a", 50, 60, true, "1"),
		}, porcupine.Ok},
		{"unknown write may happen late", []porcupine.Operation{
			put(0, "a", "1", 0, 10), put(1, "a", "2", 20, endOfTime), get(2, "a", 30, 40, true, "1"), get(2, "a", 50, 60, true, "2"),
		}, porcupine.Ok},
		{"unknown write once seen cannot vanish", []porcupine.Operation{
			put(0, "a", "1", 0, 10), put(1, "a", "2", 20, endOfTime), get(2, "a", 30, 40, true, "2"), get(2, "a", 50, 60, true, "1"),
		}, porcupine.Illegal},
		{"delete reports whether it removed a key", []porcupine.Operation{
			put(0, "a", "1", 0, 10), del(1, "a", 20, 30, true), del(1, "a", 40, 50, true),
		}, porcupine.Illegal},
		{"delete of a missing key", []porcupine.Operation{
			del(0, "a", 0, 10, false), put(0, "a", "1", 20, 30), del(1, "a", 40, 50, true), get(2, "a", 60, 70, false, ""),
		}, porcupine.Ok},
		{"unknown delete may or may not remove", []porcupine.Operation{
			put(0, "a", "1", 0, 10), del(1, "a", 20, endOfTime, false), get(2, "a", 30, 40, true, "1"), get(2, "a", 50, 60, false, ""),
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
			res := checkLinearizable(tt.ops, 10*time.Second)
			if res.Visualization != "" && len(res.Visualization) > 0 && res.Visualization[0] == '/' {
				defer os.Remove(res.Visualization)
			}
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

// TestKVModelCopesWithManyUnknownWrites: a fault leaves many writes with
// an unknown outcome; the check of a long history must still finish fast.
func TestKVModelCopesWithManyUnknownWrites(t *testing.T) {
	var ops []porcupine.Operation
	ts := int64(0)
	last := map[string]string{}
	for i := 0; i < 4000; i++ {
		key := fmt.Sprintf("k%d", i%4)
		ts += 10
		switch {
		case i%50 == 7: // a write that timed out and never happened
			ops = append(ops, put(i%8, key, fmt.Sprintf("lost-%d", i), ts, endOfTime))
		case i%3 == 0:
			v := fmt.Sprintf("v%d", i)
			ops = append(ops, put(i%8, key, v, ts, ts+5))
			last[key] = v
		default:
			v, ok := last[key]
			ops = append(ops, get(i%8, key, ts, ts+5, ok, v))
		}
	}
	res := checkLinearizable(ops, time.Minute)
	if res.Result != porcupine.Ok {
		t.Fatalf("check = %s after %s (visualization %s)", res.Result, res.Duration, res.Visualization)
	}
	t.Logf("%d operations, %d with unknown outcome, checked in %s", len(ops), 4000/50, res.Duration)
}

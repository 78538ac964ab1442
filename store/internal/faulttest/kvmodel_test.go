package faulttest

import (
	"fmt"
	"math"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
)

// The sequential specification the histories are checked against: one
// register per key, holding a value or nothing, with get, put and delete.

type opKind uint8

const (
	opGet opKind = iota
	opPut
	opDelete
)

func (k opKind) String() string {
	switch k {
	case opGet:
		return "get"
	case opPut:
		return "put"
	default:
		return "delete"
	}
}

// kvInput is what a client asked.
type kvInput struct {
	Op    opKind
	Key   string
	Value string // put only
}

// kvOutput is what it was answered. Unknown marks a write whose outcome the
// client never learnt (timeout, connection reset, 5xx): it may or may not
// have taken effect, and its Return is the end of time.
type kvOutput struct {
	Found   bool   // get: the key existed; delete: it deleted something
	Value   string // get only
	Unknown bool
	Rev     int64 // modify revision of a get or put, revision of a delete
}

// kvState is the per-key state: porcupine partitions the history by key.
type kvState struct {
	Exists bool
	Value  string
}

// kvModel is the model, partitioned per key.
var kvModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range history {
			k := op.Input.(kvInput).Key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		sort.Strings(keys)
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	PartitionEvent: func(history []porcupine.Event) [][]porcupine.Event {
		byID := map[int]string{}
		byKey := map[string][]porcupine.Event{}
		var keys []string
		for _, ev := range history {
			if ev.Kind == porcupine.CallEvent {
				byID[ev.Id] = ev.Value.(kvInput).Key
			}
			k := byID[ev.Id]
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], ev)
		}
		sort.Strings(keys)
		out := make([][]porcupine.Event, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() interface{} { return kvState{} },
	Step: func(state, input, output interface{}) (bool, interface{}) {
		st, in, out := state.(kvState), input.(kvInput), output.(kvOutput)
		switch in.Op {
		case opGet:
			if out.Found != st.Exists || (out.Found && out.Value != st.Value) {
				return false, st
			}
			return true, st
		case opPut:
			return true, kvState{Exists: true, Value: in.Value}
		default:
			if !out.Unknown && out.Found != st.Exists {
				return false, st
			}
			return true, kvState{}
		}
	},
	Hash: func(state interface{}) uint64 {
		st := state.(kvState)
		var h uint64 = 14695981039346656037
		for i := 0; i < len(st.Value); i++ {
			h = (h ^ uint64(st.Value[i])) * 1099511628211
		}
		if st.Exists {
			h ^= 1
		}
		return h
	},
	DescribeOperation: func(input, output interface{}) string {
		in, out := input.(kvInput), output.(kvOutput)
		var res string
		switch {
		case out.Unknown:
			res = "unknown"
		case in.Op == opGet && out.Found:
			res = fmt.Sprintf("%q@%d", out.Value, out.Rev)
		case in.Op == opGet || in.Op == opDelete && !out.Found:
			res = "not found"
		default:
			res = fmt.Sprintf("ok@%d", out.Rev)
		}
		switch in.Op {
		case opPut:
			return fmt.Sprintf("put(%s, %q) -> %s", in.Key, in.Value, res)
		default:
			return fmt.Sprintf("%s(%s) -> %s", in.Op, in.Key, res)
		}
	},
	DescribeState: func(state interface{}) string {
		st := state.(kvState)
		if !st.Exists {
			return "<none>"
		}
		return fmt.Sprintf("%q", st.Value)
	},
	DescribeOperationMetadata: func(info interface{}) string {
		if info == nil {
			return ""
		}
		return fmt.Sprint(info)
	},
}

// history records operations from many goroutines with a shared monotonic
// clock (nanoseconds since the recorder was made).
type history struct {
	start time.Time
	mu    sync.Mutex
	ops   []porcupine.Operation
}

func newHistory() *history { return &history{start: time.Now()} }

// now is the current timestamp; time.Since uses the monotonic clock.
func (h *history) now() int64 { return int64(time.Since(h.start)) }

// endOfTime is the Return of an operation whose outcome is unknown: it may
// take effect at any point after its call.
const endOfTime = int64(math.MaxInt64)

func (h *history) add(op porcupine.Operation) {
	h.mu.Lock()
	h.ops = append(h.ops, op)
	h.mu.Unlock()
}

func (h *history) operations() []porcupine.Operation {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]porcupine.Operation(nil), h.ops...)
}

// opMeta annotates an operation in the visualization.
type opMeta struct {
	Node int
	Err  string
}

func (m opMeta) String() string {
	if m.Err == "" {
		return fmt.Sprintf("via n%d", m.Node)
	}
	return fmt.Sprintf("via n%d: %s", m.Node, m.Err)
}

// checkResult is the outcome of a linearizability check.
type checkResult struct {
	Result porcupine.CheckResult
	// Visualization is the HTML file showing the history and the longest
	// linearizable prefixes, written when Result is not Ok.
	Visualization string
	Duration      time.Duration
}

// checkLinearizable checks ops against kvModel within timeout; when the
// answer is not Ok it writes porcupine's visualization to a temporary file
// that outlives the test.
func checkLinearizable(ops []porcupine.Operation, timeout time.Duration) checkResult {
	start := time.Now()
	res := porcupine.CheckOperationsTimeout(kvModel, ops, timeout)
	out := checkResult{Result: res, Duration: time.Since(start)}
	if res == porcupine.Ok {
		return out
	}
	// Again with the partial linearizations the visualization shows.
	_, info := porcupine.CheckOperationsVerbose(kvModel, ops, timeout)
	f, err := os.CreateTemp("", "faulttest-linearizability-*.html")
	if err != nil {
		out.Visualization = fmt.Sprintf("(cannot write the visualization: %v)", err)
		return out
	}
	defer f.Close()
	if err := porcupine.Visualize(kvModel, info, f); err != nil {
		out.Visualization = fmt.Sprintf("(visualization failed: %v)", err)
		return out
	}
	out.Visualization = f.Name()
	return out
}

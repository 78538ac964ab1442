// Package kvhistory records what clients of ephemeral-store asked and were
// answered, and checks such a history two ways: for linearizability against
// Model, the model of the API (Check, with porcupine,
// github.com/anishathalye/porcupine), and against the final state of the
// keys, for an acknowledged write that was lost (LostWrites). The
// multi-process fault tests (store/internal/faulttest) and the end-to-end
// suites on kind (tests/e2e, a module of its own) record their traffic with
// it and share both checks; it is public for that, and part of the
// contract listed in docs/interfaces.md: what counts as a correct answer of
// the store.
//
// The sequential specification is one register per key, holding a value or
// nothing, with get, put and delete; porcupine checks each key's operations
// separately (Model partitions by key). An operation is a
// porcupine.Operation whose Input is an Input and whose Output is an Output;
// its Call and Return come from one Recorder's clock. Metadata is free: it
// is printed with fmt.Sprint in the visualization.
//
// A write whose outcome the client never learnt (a timeout, a reset
// connection, a 503 no_quorum after the request was sent) may or may not
// have taken effect, at any time after its call: record it with
// Output.Unknown set and Return EndOfTime. A write that provably never
// reached a server (NotSent) or that the store refused (Rejected) has no
// effect and stays out of the history; so does a failed read.
package kvhistory

import (
	"fmt"
	"sort"

	"github.com/anishathalye/porcupine"
)

// Op is the kind of an operation.
type Op uint8

// The operations of the model.
const (
	// Get is a linearizable read (a stale read is not linearizable and
	// must stay out of the history).
	Get Op = iota
	// Put writes a value, creating the key if needed.
	Put
	// Delete removes the key; Output.Found says whether it existed.
	Delete
)

func (o Op) String() string {
	switch o {
	case Get:
		return "get"
	case Put:
		return "put"
	case Delete:
		return "delete"
	default:
		return fmt.Sprintf("op(%d)", uint8(o))
	}
}

// Input is what a client asked.
type Input struct {
	Op    Op
	Key   string
	Value string // Put only
}

// Output is what the client was answered.
type Output struct {
	// Found: for a Get, the key existed; for a Delete, it removed something.
	Found bool
	// Value is the value a Get read.
	Value string
	// Unknown marks a write whose outcome the client never learnt; the
	// operation's Return must then be EndOfTime.
	Unknown bool
	// Rev is the modify revision a Get read or a Put wrote, the revision
	// of a Delete. The model ignores it; it helps a person reading a
	// visualization, and LostWrites orders the acknowledged writes by it.
	Rev int64
}

// State is the model's state of one key.
type State struct {
	Exists bool
	Value  string
}

// Model is the porcupine model of the store's keys: it partitions a
// history by key and checks each key as a register. A Get must read the
// register; a Put always succeeds; a Delete with a known outcome must
// report whether the key existed, and one with an unknown outcome may have
// removed it or not.
var Model = porcupine.Model{
	Partition:      partition,
	PartitionEvent: partitionEvents,
	Init:           func() interface{} { return State{} },
	Step:           step,
	Hash: func(state interface{}) uint64 {
		st := state.(State)
		var h uint64 = 14695981039346656037 // FNV-1a
		for i := 0; i < len(st.Value); i++ {
			h = (h ^ uint64(st.Value[i])) * 1099511628211
		}
		if st.Exists {
			h ^= 1
		}
		return h
	},
	DescribeOperation: Describe,
	DescribeState: func(state interface{}) string {
		st := state.(State)
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

func step(state, input, output interface{}) (bool, interface{}) {
	st, in, out := state.(State), input.(Input), output.(Output)
	switch in.Op {
	case Get:
		if out.Found != st.Exists || (out.Found && out.Value != st.Value) {
			return false, st
		}
		return true, st
	case Put:
		return true, State{Exists: true, Value: in.Value}
	default:
		if !out.Unknown && out.Found != st.Exists {
			return false, st
		}
		return true, State{}
	}
}

// Describe renders one operation as "put(k, "v") -> ok@12",
// "get(k) -> "v"@12", "delete(k) -> not found" or "... -> unknown".
func Describe(input, output interface{}) string {
	in, out := input.(Input), output.(Output)
	var res string
	switch {
	case out.Unknown:
		res = "unknown"
	case in.Op == Get && out.Found:
		res = fmt.Sprintf("%q@%d", out.Value, out.Rev)
	case in.Op == Get || in.Op == Delete && !out.Found:
		res = "not found"
	default:
		res = fmt.Sprintf("ok@%d", out.Rev)
	}
	if in.Op == Put {
		return fmt.Sprintf("put(%s, %q) -> %s", in.Key, in.Value, res)
	}
	return fmt.Sprintf("%s(%s) -> %s", in.Op, in.Key, res)
}

// partition splits a history by key, keys in order.
func partition(history []porcupine.Operation) [][]porcupine.Operation {
	byKey := map[string][]porcupine.Operation{}
	for _, op := range history {
		k := op.Input.(Input).Key
		byKey[k] = append(byKey[k], op)
	}
	out := make([][]porcupine.Operation, 0, len(byKey))
	for _, k := range sortedKeys(byKey) {
		out = append(out, byKey[k])
	}
	return out
}

func partitionEvents(history []porcupine.Event) [][]porcupine.Event {
	keyOf := map[int]string{}
	byKey := map[string][]porcupine.Event{}
	for _, ev := range history {
		if ev.Kind == porcupine.CallEvent {
			keyOf[ev.Id] = ev.Value.(Input).Key
		}
		k := keyOf[ev.Id]
		byKey[k] = append(byKey[k], ev)
	}
	out := make([][]porcupine.Event, 0, len(byKey))
	for _, k := range sortedKeys(byKey) {
		out = append(out, byKey[k])
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

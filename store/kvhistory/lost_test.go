package kvhistory

import (
	"strings"
	"testing"

	"github.com/anishathalye/porcupine"
)

// TestLostWritesCatchesWhatACorrectStoreNeverEnds answers LostWrites with
// histories of one key and the final states a correct store may end in
// (none lost) and the ones it must not (a lost write, a resurrected delete,
// a value nobody wrote). Each failure mode has a twin that passes, so the
// check is seen to fail for the reason named, not for any difference.
func TestLostWritesCatchesWhatACorrectStoreNeverEnds(t *testing.T) {
	const k = "k"
	ackPut := func(value string, rev int64) porcupine.Operation {
		return porcupine.Operation{Input: Input{Op: Put, Key: k, Value: value}, Output: Output{Rev: rev}, Call: rev, Return: rev + 1}
	}
	unknownPut := func(value string) porcupine.Operation {
		return porcupine.Operation{Input: Input{Op: Put, Key: k, Value: value}, Output: Output{Unknown: true}, Return: EndOfTime}
	}
	ackDelete := func(found bool, rev int64) porcupine.Operation {
		return porcupine.Operation{Input: Input{Op: Delete, Key: k}, Output: Output{Found: found, Rev: rev}, Call: rev, Return: rev + 1}
	}
	unknownDelete := porcupine.Operation{Input: Input{Op: Delete, Key: k}, Output: Output{Unknown: true}, Return: EndOfTime}
	read := porcupine.Operation{Input: Input{Op: Get, Key: k}, Output: Output{Found: true, Value: "v1", Rev: 10}, Call: 11, Return: 12}
	at := func(value string, rev int64) Output { return Output{Found: true, Value: value, Rev: rev} }
	absent := Output{}

	tests := []struct {
		name  string
		ops   []porcupine.Operation
		final Output
		lost  string // a substring of the report; "" when nothing is lost
	}{
		{"acknowledged put read back", []porcupine.Operation{ackPut("v1", 10), read, ackPut("v2", 20)}, at("v2", 20), ""},
		{"lost write: an older acknowledged value", []porcupine.Operation{ackPut("v1", 10), ackPut("v2", 20)}, at("v1", 10), `put "v2"@20, final state "v1"@10`},
		{"lost write: the key gone", []porcupine.Operation{ackPut("v1", 10), ackPut("v2", 20)}, absent, `put "v2"@20, final state absent`},
		{"lost write: another value at its revision", []porcupine.Operation{ackPut("v2", 20)}, at("v3", 20), `final state "v3"@20`},
		{"lost write: overwritten by a value nobody wrote", []porcupine.Operation{ackPut("v2", 20)}, at("v3", 30), `final state "v3"@30`},
		{"unknown put that landed", []porcupine.Operation{ackPut("v1", 10), unknownPut("v2")}, at("v2", 15), ""},
		{"unknown put that did not land", []porcupine.Operation{ackPut("v1", 10), unknownPut("v2")}, at("v1", 10), ""},
		{"unknown put read at a revision below the acknowledged one", []porcupine.Operation{ackPut("v1", 10), unknownPut("v2")}, at("v2", 5), `put "v1"@10`},
		{"unknown put alone, landed", []porcupine.Operation{unknownPut("v2")}, at("v2", 3), ""},
		{"unknown put alone, not landed", []porcupine.Operation{unknownPut("v2")}, absent, ""},
		{"no write at all, a value appears", []porcupine.Operation{}, at("v9", 3), "no recorded Put wrote"},
		{"acknowledged delete stays deleted", []porcupine.Operation{ackPut("v1", 10), ackDelete(true, 20)}, absent, ""},
		{"resurrected delete", []porcupine.Operation{ackPut("v1", 10), ackDelete(true, 20)}, at("v1", 10), "delete@20, final state \"v1\"@10 (resurrected)"},
		{"resurrected delete, at a new revision", []porcupine.Operation{ackPut("v1", 10), ackDelete(true, 20)}, at("v1", 30), "(resurrected)"},
		{"unknown put that landed after a delete", []porcupine.Operation{ackPut("v1", 10), ackDelete(true, 20), unknownPut("v2")}, at("v2", 30), ""},
		{"unknown delete that landed", []porcupine.Operation{ackPut("v1", 10), unknownDelete}, absent, ""},
		{"unknown delete that did not land", []porcupine.Operation{ackPut("v1", 10), unknownDelete}, at("v1", 10), ""},
		{"a delete that found nothing is no write", []porcupine.Operation{ackPut("v1", 10), ackDelete(false, 0)}, at("v1", 10), ""},
		{"a delete that found nothing excuses no absence", []porcupine.Operation{ackPut("v1", 10), ackDelete(false, 0)}, absent, `put "v1"@10, final state absent`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lost := LostWrites(tt.ops, map[string]Output{k: tt.final})
			if tt.lost == "" {
				if len(lost) != 0 {
					t.Fatalf("final %s: want nothing lost, got %q", describeState(tt.final), lost)
				}
				return
			}
			if len(lost) != 1 || !strings.HasPrefix(lost[0], k+": ") || !strings.Contains(lost[0], tt.lost) {
				t.Fatalf("final %s: want one line %q, got %q", describeState(tt.final), tt.lost, lost)
			}
		})
	}
}

// TestLostWritesChecksTheKeysOfFinal: keys missing from final are not
// judged (the caller reads what it means to check); keys are reported in
// order.
func TestLostWritesChecksTheKeysOfFinal(t *testing.T) {
	ops := []porcupine.Operation{
		{Input: Input{Op: Put, Key: "a", Value: "1"}, Output: Output{Rev: 1}, Return: 2},
		{Input: Input{Op: Put, Key: "b", Value: "2"}, Output: Output{Rev: 2}, Return: 3},
		{Input: Input{Op: Put, Key: "c", Value: "3"}, Output: Output{Rev: 3}, Return: 4},
	}
	lost := LostWrites(ops, map[string]Output{"c": {}, "a": {}})
	if len(lost) != 2 || !strings.HasPrefix(lost[0], "a: ") || !strings.HasPrefix(lost[1], "c: ") {
		t.Fatalf("want a and c lost, in order, b not checked; got %q", lost)
	}
}

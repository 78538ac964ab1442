package kvhistory

import (
	"fmt"
	"sort"

	"github.com/anishathalye/porcupine"
)

// LostWrites checks that no acknowledged write of history ops was lost:
// final is the state of each key read once every write had ended (a
// linearizable read; Found, Value and Rev as a Get answers), and the check
// covers exactly the keys of final. It returns one line per key whose final
// state breaks the rule, "<key>: <what>", in key order; none when every key
// keeps its writes.
//
// The rule, per key: let W be its acknowledged write of the highest
// revision (a Put, or a Delete that removed the key; a Delete that found
// nothing changed nothing and does not count). Then the final state must be
//
//   - W itself: for a Put, its value at its revision exactly; for a Delete,
//     the key absent;
//   - or the effect of a write whose outcome is unknown (Output.Unknown),
//     which may have landed after W: a value such a Put wrote, at a
//     revision above W's; or, after a Put W, the key absent when a Delete
//     of unknown outcome exists.
//
// With no acknowledged write, the key must be absent or hold a value of an
// unknown Put. So an acknowledged write that was overwritten by nothing
// anyone was told about, rolled back, or deleted behind the clients' back
// is lost; an acknowledged Delete whose key came back with an acknowledged
// (older) value is a resurrected delete; an unknown write may or may not
// appear. The check relies on every Put writing a value no other Put of the
// key writes (the recorders of this repository make values unique per
// attempt); with repeated values it is weaker, never wrong.
//
// It complements Check: porcupine decides whether the reads the clients
// made are consistent with some order of the writes; LostWrites holds the
// final state to the revisions the store acknowledged, which the model
// ignores.
func LostWrites(ops []porcupine.Operation, final map[string]Output) []string {
	type write struct {
		op  Op
		val string
		rev int64
	}
	type keyWrites struct {
		last           *write          // the acknowledged write of the highest revision
		unknownPuts    map[string]bool // values of Puts with an unknown outcome
		unknownDeletes bool
	}
	byKey := map[string]*keyWrites{}
	for key := range final {
		byKey[key] = &keyWrites{unknownPuts: map[string]bool{}}
	}
	for _, op := range ops {
		in, out := op.Input.(Input), op.Output.(Output)
		kw := byKey[in.Key]
		if kw == nil || in.Op == Get {
			continue
		}
		switch {
		case out.Unknown && in.Op == Put:
			kw.unknownPuts[in.Value] = true
		case out.Unknown:
			kw.unknownDeletes = true
		case in.Op == Delete && !out.Found:
			// Removed nothing: not a write.
		case kw.last == nil || out.Rev > kw.last.rev:
			kw.last = &write{op: in.Op, val: in.Value, rev: out.Rev}
		}
	}

	keys := make([]string, 0, len(final))
	for key := range final {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	var lost []string
	for _, key := range keys {
		st, kw := final[key], byKey[key]
		var lastRev int64
		if kw.last != nil {
			lastRev = kw.last.rev
		}
		// An unknown Put that landed after the last acknowledged write.
		if st.Found && st.Rev > lastRev && kw.unknownPuts[st.Value] {
			continue
		}
		switch w := kw.last; {
		case w == nil:
			if !st.Found {
				continue
			}
			lost = append(lost, fmt.Sprintf("%s: no acknowledged write, final state %s, which no recorded Put wrote", key, describeState(st)))
		case w.op == Put:
			if st.Found && st.Value == w.val && st.Rev == w.rev {
				continue
			}
			if !st.Found && kw.unknownDeletes {
				continue
			}
			lost = append(lost, fmt.Sprintf("%s: last acknowledged write put %q@%d, final state %s", key, w.val, w.rev, describeState(st)))
		default:
			if !st.Found {
				continue
			}
			lost = append(lost, fmt.Sprintf("%s: last acknowledged write delete@%d, final state %s (resurrected)", key, w.rev, describeState(st)))
		}
	}
	return lost
}

func describeState(st Output) string {
	if !st.Found {
		return "absent"
	}
	return fmt.Sprintf("%q@%d", st.Value, st.Rev)
}

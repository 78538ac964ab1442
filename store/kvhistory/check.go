package kvhistory

import (
	"fmt"
	"os"
	"time"

	"github.com/anishathalye/porcupine"
)

// Result is the outcome of Check.
type Result struct {
	// Result is porcupine's answer: Ok, Illegal, or Unknown when the
	// timeout passed first.
	Result porcupine.CheckResult
	// Visualization is the path of porcupine's HTML visualization (the
	// history and the longest linearizable prefix of each key), written
	// only when Result is not Ok; or, when it could not be written, why.
	Visualization string
	// Duration is how long the check took.
	Duration time.Duration
}

// Check checks ops against Model within timeout. When the answer is not Ok
// it writes the visualization to a new file in the temporary directory,
// named by pattern as os.CreateTemp names it (e.g. "faults-*.html"), which
// outlives the test so that a person can open it.
func Check(ops []porcupine.Operation, timeout time.Duration, pattern string) Result {
	start := time.Now()
	res, info := porcupine.CheckOperationsVerbose(Model, ops, timeout)
	out := Result{Result: res, Duration: time.Since(start)}
	if res == porcupine.Ok {
		return out
	}
	f, err := os.CreateTemp("", pattern)
	if err != nil {
		out.Visualization = fmt.Sprintf("(cannot write the visualization: %v)", err)
		return out
	}
	defer f.Close()
	if err := porcupine.Visualize(Model, info, f); err != nil {
		out.Visualization = fmt.Sprintf("(visualization of %s failed: %v)", f.Name(), err)
		return out
	}
	out.Visualization = f.Name()
	return out
}

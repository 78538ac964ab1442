package faulttest

import (
	"fmt"
	"os"
	"testing"
)

// bin is the binary, certificates and users directory of this test run.
var bin *Binary

// TestMain builds the server once per run; a build failure fails the run
// loudly rather than skipping the multi-process tests.
func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "faulttest-bin-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "faulttest: temp dir: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	bin, err = Build(dir)
	if err != nil {
		fmt.Fprintf(os.Stderr, "faulttest: FAILED to build the server binary; no multi-process test can run:\n%v\n", err)
		return 1
	}
	return m.Run()
}

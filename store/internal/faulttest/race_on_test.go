//go:build race

package faulttest

// raceEnabled shortens traffic under the race detector, which slows the
// clients and the checker several times over.
const raceEnabled = true

package client

import (
	"slices"
	"testing"

	"github.com/ephemeral-store/ephemeral-store/store/client/api"
)

// TestSentinelsAreForServerCodes: every code mapped to a sentinel is one
// the server sends (api.Codes, checked against docs/interfaces.md there).
func TestSentinelsAreForServerCodes(t *testing.T) {
	for code := range sentinelByCode {
		if !slices.Contains(api.Codes(), code) {
			t.Errorf("a sentinel for %q, a code the server never sends", code)
		}
	}
}

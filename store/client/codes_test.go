package client

import (
	"slices"
	"testing"

	"github.com/ephemeral-store/ephemeral-store/store/client/errcode"
)

// TestCodesAreEveryServerCode: the client exports each code the server
// can send (errcode, checked against docs/interfaces.md there), no more.
func TestCodesAreEveryServerCode(t *testing.T) {
	exported := []string{
		CodeBadRequest, CodeInvalidKey, CodeInvalidTTL, CodeInvalidRevision, CodeConfirmationRequired,
		CodeUnauthenticated, CodeForbidden, CodeKeyNotFound, CodeNotFound, CodeMethodNotAllowed,
		CodeReformRefused, CodeRevisionCompacted, CodeRevisionMismatch, CodeKeyTooLarge, CodeValueTooLarge,
		CodeRequestCanceled, CodeInternal, CodeNoQuorum, CodeNotReady, CodeQuotaExceeded, CodeWatcherTooSlow,
	}
	all := slices.Sorted(slices.Values(errcode.All()))
	if got := slices.Sorted(slices.Values(exported)); !slices.Equal(got, all) {
		t.Errorf("exported codes %q, the server's %q", got, all)
	}
	for code := range sentinelByCode {
		if !slices.Contains(all, code) {
			t.Errorf("a sentinel for %q, a code the server never sends", code)
		}
	}
}

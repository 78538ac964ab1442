package client

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/ephemeral-store/ephemeral-store/store/internal/errcode"
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
	assert.ElementsMatch(t, errcode.All(), exported)
	for code := range sentinelByCode {
		assert.Contains(t, errcode.All(), code, "a sentinel for a code the server never sends")
	}
}

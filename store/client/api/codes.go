package api

// The stable codes of ErrorDetail.Code (docs/interfaces.md, "Error
// codes"), grouped by the HTTP status they come with. The server writes
// them, the peer channel carries back those a forwarded write can end
// with, and the Go client matches them. A code is part of the API:
// clients compare it, so it never changes once released. The table in
// docs/interfaces.md and the ErrorCode enum of docs/openapi.yaml list
// exactly these (tests check both ways).
const (
	// 400: a request that cannot succeed as sent.
	CodeBadRequest           = "bad_request"
	CodeInvalidKey           = "invalid_key"
	CodeInvalidTTL           = "invalid_ttl"
	CodeInvalidRevision      = "invalid_revision"
	CodeConfirmationRequired = "confirmation_required" // reform without ?confirm=<cluster_id>

	// 401: no certificate user, or a CN not in the users directory.
	CodeUnauthenticated = "unauthenticated"
	// 403: the user may not do that to that key or prefix.
	CodeForbidden = "forbidden"

	// 404
	CodeKeyNotFound = "key_not_found"
	CodeNotFound    = "not_found" // no such route

	// 405
	CodeMethodNotAllowed = "method_not_allowed"
	// 409: reform while a leader is known or was lost too recently.
	CodeReformRefused = "reform_refused"
	// 410: a watch from a revision older than the kept history.
	CodeRevisionCompacted = "revision_compacted"
	// 412: a failed compare-and-swap.
	CodeRevisionMismatch = "revision_mismatch"

	// 413
	CodeKeyTooLarge   = "key_too_large"
	CodeValueTooLarge = "value_too_large"

	// 499: the client went away before the answer; seen in metrics and
	// logs only.
	CodeRequestCanceled = "request_canceled"

	// 500: details go to the server's log, not to the client.
	CodeInternal = "internal"

	// 503, with Retry-After.
	CodeNoQuorum = "no_quorum"
	CodeNotReady = "not_ready"

	// 507: the write would take the data past the node's quota (--quota-bytes);
	// nothing was written. Reads and deletes still work.
	CodeQuotaExceeded = "quota_exceeded"

	// The last line of a watch stream whose watcher fell too far behind.
	CodeWatcherTooSlow = "watcher_too_slow"
)

// Codes returns every code.
func Codes() []string {
	return []string{
		CodeBadRequest, CodeInvalidKey, CodeInvalidTTL, CodeInvalidRevision, CodeConfirmationRequired,
		CodeUnauthenticated, CodeForbidden,
		CodeKeyNotFound, CodeNotFound,
		CodeMethodNotAllowed, CodeReformRefused, CodeRevisionCompacted, CodeRevisionMismatch,
		CodeKeyTooLarge, CodeValueTooLarge,
		CodeRequestCanceled,
		CodeInternal,
		CodeNoQuorum, CodeNotReady,
		CodeQuotaExceeded,
		CodeWatcherTooSlow,
	}
}

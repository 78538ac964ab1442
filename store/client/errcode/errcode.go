// Package errcode declares, once, the stable codes of the client API's
// JSON errors, {"error":{"code":...,"message":...}} (docs/interfaces.md,
// "Error codes"). The server writes them (httpapi), the peer channel
// carries back those a forwarded write can end with (cluster), and the Go
// client matches them; it exports them as client.Code... for its callers.
// It belongs to the client's module, which the server's module requires,
// so that both import this one list and cannot drift apart (the client
// module cannot import the server's internal packages).
//
// A code is part of the API: clients compare it, so it never changes once
// released. The table in docs/interfaces.md lists exactly these (a test
// checks both ways).
package errcode

// The codes, grouped by the HTTP status they come with.
const (
	// 400: a request that cannot succeed as sent.
	BadRequest           = "bad_request"
	InvalidKey           = "invalid_key"
	InvalidTTL           = "invalid_ttl"
	InvalidRevision      = "invalid_revision"
	ConfirmationRequired = "confirmation_required" // reform without ?confirm=<cluster_id>

	// 401: no certificate user, or a CN not in the users directory.
	Unauthenticated = "unauthenticated"
	// 403: the user may not do that to that key or prefix.
	Forbidden = "forbidden"

	// 404
	KeyNotFound = "key_not_found"
	NotFound    = "not_found" // no such route

	// 405
	MethodNotAllowed = "method_not_allowed"
	// 409: reform while a leader is known or was lost too recently.
	ReformRefused = "reform_refused"
	// 410: a watch from a revision older than the kept history.
	RevisionCompacted = "revision_compacted"
	// 412: a failed compare-and-swap.
	RevisionMismatch = "revision_mismatch"

	// 413
	KeyTooLarge   = "key_too_large"
	ValueTooLarge = "value_too_large"

	// 499: the client went away before the answer; seen in metrics and
	// logs only.
	RequestCanceled = "request_canceled"

	// 500: details go to the server's log, not to the client.
	Internal = "internal"

	// 503, with Retry-After.
	NoQuorum = "no_quorum"
	NotReady = "not_ready"

	// 507: the write would take the data past the node's quota (--quota-bytes);
	// nothing was written. Reads and deletes still work.
	QuotaExceeded = "quota_exceeded"

	// The last line of a watch stream whose watcher fell too far behind.
	WatcherTooSlow = "watcher_too_slow"
)

// All returns every code.
func All() []string {
	return []string{
		BadRequest, InvalidKey, InvalidTTL, InvalidRevision, ConfirmationRequired,
		Unauthenticated, Forbidden,
		KeyNotFound, NotFound,
		MethodNotAllowed, ReformRefused, RevisionCompacted, RevisionMismatch,
		KeyTooLarge, ValueTooLarge,
		RequestCanceled,
		Internal,
		NoQuorum, NotReady,
		QuotaExceeded,
		WatcherTooSlow,
	}
}

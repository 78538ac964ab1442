package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/ephemeral-store/ephemeral-store/store/client/api"
	"github.com/ephemeral-store/ephemeral-store/store/internal/auth"
	"github.com/ephemeral-store/ephemeral-store/store/internal/cluster"
	"github.com/ephemeral-store/ephemeral-store/store/internal/fsm"
	"github.com/ephemeral-store/ephemeral-store/store/internal/quota"
)

// apiError is an error with its HTTP status and stable code, raised by the
// request parsing of this package.
type apiError struct {
	status int
	code   string
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func newError(status int, code, msg string) *apiError {
	return &apiError{status: status, code: code, msg: msg}
}

// statusOf maps every error the API can meet to a status and a stable code.
// It is the one place where sentinel errors become HTTP.
func statusOf(err error) (int, string) {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		return ae.status, ae.code
	case errors.Is(err, fsm.ErrKeyNotFound):
		return http.StatusNotFound, api.CodeKeyNotFound
	case errors.Is(err, fsm.ErrRevisionMismatch):
		return http.StatusPreconditionFailed, api.CodeRevisionMismatch
	case errors.Is(err, fsm.ErrCompacted):
		return http.StatusGone, api.CodeRevisionCompacted
	case errors.Is(err, fsm.ErrEmptyKey):
		return http.StatusBadRequest, api.CodeInvalidKey
	case errors.Is(err, fsm.ErrNegativeTTL):
		return http.StatusBadRequest, api.CodeInvalidTTL
	case errors.Is(err, auth.ErrUnknownUser):
		return http.StatusUnauthorized, api.CodeUnauthenticated
	case errors.Is(err, auth.ErrForbidden):
		return http.StatusForbidden, api.CodeForbidden
	case errors.Is(err, quota.ErrExceeded):
		// Refused before it was proposed: nothing was written. Not a 503:
		// retrying elsewhere does not help until room is freed.
		return http.StatusInsufficientStorage, api.CodeQuotaExceeded
	case errors.Is(err, cluster.ErrReformRefused):
		return http.StatusConflict, api.CodeReformRefused
	case errors.Is(err, cluster.ErrShutdown):
		// Refused before any attempt: safe for a client to send elsewhere.
		return http.StatusServiceUnavailable, api.CodeNotReady
	case errors.Is(err, cluster.ErrNoLeader), errors.Is(err, cluster.ErrOutcomeUnknown):
		// For a write, no_quorum means "may or may not have happened":
		// clients must not resend it blindly.
		return http.StatusServiceUnavailable, api.CodeNoQuorum
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, api.CodeNoQuorum
	case errors.Is(err, context.Canceled):
		// The client went away; nobody reads this answer, but metrics
		// should not count it as a server error (nginx's 499).
		return 499, api.CodeRequestCanceled
	default:
		return http.StatusInternalServerError, api.CodeInternal
	}
}

func writeError(w http.ResponseWriter, err error) (int, string) {
	status, code := statusOf(err)
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	msg := err.Error()
	if status == http.StatusInternalServerError {
		msg = "internal error" // details go to the log, not to clients
	}
	writeJSON(w, status, api.ErrorBody{Error: api.ErrorDetail{Code: code, Message: msg}})
	return status, code
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

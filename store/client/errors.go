package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ephemeral-store/ephemeral-store/store/client/api"
)

// Sentinel errors. Every error the server answers with is an *APIError;
// errors.Is matches it against these by its stable code, so callers never
// compare messages:
//
//	if errors.Is(err, client.ErrKeyNotFound) { ... }
var (
	// ErrKeyNotFound: 404 key_not_found, the key does not exist (or expired).
	ErrKeyNotFound = errors.New("key not found")
	// ErrRevisionMismatch: 412 revision_mismatch, a compare-and-swap
	// (WithPrevRevision) failed; prev_revision 0 failed because the key exists.
	ErrRevisionMismatch = errors.New("revision mismatch")
	// ErrUnauthenticated: 401 unauthenticated, the certificate's user is not
	// in the users directory.
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrForbidden: 403 forbidden, the user may not read or write that key
	// or prefix.
	ErrForbidden = errors.New("forbidden")
	// ErrTooLarge: 413 key_too_large or value_too_large.
	ErrTooLarge = errors.New("too large")
	// ErrBadRequest: 400 bad_request, invalid_key, invalid_ttl or
	// invalid_revision; retrying the same request cannot succeed.
	ErrBadRequest = errors.New("bad request")
	// ErrNoQuorum: 503 no_quorum, the cluster has no leader; RetryAfter says
	// when to try again.
	ErrNoQuorum = errors.New("no quorum")
	// ErrNotReady: 503 not_ready, the node has not joined a cluster yet.
	ErrNotReady = errors.New("not ready")
	// ErrQuotaExceeded: 507 quota_exceeded, the write would take the
	// data past the store's quota (a bound below the pods' memory limit).
	// Nothing was written; reads and deletes still work. Retrying does
	// not help until keys are deleted or values shrunk.
	ErrQuotaExceeded = errors.New("quota exceeded")
	// ErrCompacted: 410 revision_compacted, a watch asked for a revision
	// older than the kept history (or the cluster re-formed empty).
	ErrCompacted = errors.New("revision compacted")
	// ErrWatcherTooSlow: the server cut a watch stream off because the
	// watcher fell too far behind; resume from Watcher.LastRevision()+1.
	ErrWatcherTooSlow = errors.New("watcher too slow")
)

// Errors of the client itself, never sent by a server.
var (
	// ErrEmptyKey: a key operation was given "" (list with a prefix instead).
	ErrEmptyKey = errors.New("empty key")
	// ErrWatcherClosed: Next was called after Close.
	ErrWatcherClosed = errors.New("watcher closed")
)

// sentinelByCode maps the stable codes to sentinels.
var sentinelByCode = map[string]error{
	api.CodeKeyNotFound:       ErrKeyNotFound,
	api.CodeRevisionMismatch:  ErrRevisionMismatch,
	api.CodeUnauthenticated:   ErrUnauthenticated,
	api.CodeForbidden:         ErrForbidden,
	api.CodeKeyTooLarge:       ErrTooLarge,
	api.CodeValueTooLarge:     ErrTooLarge,
	api.CodeBadRequest:        ErrBadRequest,
	api.CodeInvalidKey:        ErrBadRequest,
	api.CodeInvalidTTL:        ErrBadRequest,
	api.CodeInvalidRevision:   ErrBadRequest,
	api.CodeNoQuorum:          ErrNoQuorum,
	api.CodeNotReady:          ErrNotReady,
	api.CodeQuotaExceeded:     ErrQuotaExceeded,
	api.CodeRevisionCompacted: ErrCompacted,
	api.CodeWatcherTooSlow:    ErrWatcherTooSlow,
}

// sentinelByStatus is the fallback for an error without a known code, such
// as a plain-text 503 from a proxy in front of the store.
var sentinelByStatus = map[int]error{
	http.StatusUnauthorized:          ErrUnauthenticated,
	http.StatusForbidden:             ErrForbidden,
	http.StatusRequestEntityTooLarge: ErrTooLarge,
	http.StatusPreconditionFailed:    ErrRevisionMismatch,
	http.StatusGone:                  ErrCompacted,
	http.StatusInsufficientStorage:   ErrQuotaExceeded,
}

// APIError is an error answered by the server: a non-2xx status with the
// JSON body {"error":{"code":...,"message":...}}, or an error line at the
// end of a watch stream (StatusCode 0 then).
type APIError struct {
	// StatusCode is the HTTP status; 0 for an error inside a watch stream.
	StatusCode int
	// Code is the stable code, one of api.Code... (docs/interfaces.md),
	// "" when the body was not the store's JSON (a proxy's error page, say).
	Code string
	// Message is the server's explanation, for people.
	Message string
	// RetryAfter is the server's Retry-After (on 503), zero if absent.
	RetryAfter time.Duration
}

// Error reads "message (404 key_not_found)".
func (e *APIError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = strings.ToLower(http.StatusText(e.StatusCode))
	}
	switch {
	case e.StatusCode != 0 && e.Code != "":
		return fmt.Sprintf("%s (%d %s)", msg, e.StatusCode, e.Code)
	case e.StatusCode != 0:
		return fmt.Sprintf("%s (%d)", msg, e.StatusCode)
	default:
		return fmt.Sprintf("%s (%s)", msg, e.Code)
	}
}

// Is matches the sentinel errors of this package by code (and by status
// when the code is unknown), and another *APIError with the same code.
func (e *APIError) Is(target error) bool {
	if t, ok := target.(*APIError); ok {
		return t.Code == e.Code && (t.StatusCode == 0 || t.StatusCode == e.StatusCode)
	}
	if s, ok := sentinelByCode[e.Code]; ok {
		return s == target
	}
	if s, ok := sentinelByStatus[e.StatusCode]; ok {
		return s == target
	}
	return e.StatusCode == http.StatusServiceUnavailable && target == ErrNoQuorum
}

// maxErrorBody bounds how much of an error response is read.
const maxErrorBody = 64 << 10

// apiErrorFrom reads an error response and closes its body.
func apiErrorFrom(resp *http.Response) *APIError {
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	e := &APIError{StatusCode: resp.StatusCode, RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"))}
	var wire api.ErrorBody
	if json.Unmarshal(body, &wire) == nil && wire.Error.Code != "" {
		e.Code, e.Message = wire.Error.Code, wire.Error.Message
		return e
	}
	e.Message = strings.TrimSpace(string(body))
	if len(e.Message) > 200 {
		e.Message = e.Message[:200] + "..."
	}
	return e
}

// parseRetryAfter accepts delay-seconds or an HTTP date.
func parseRetryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}

// EndpointsError is returned when a request was tried on more than one
// endpoint and none succeeded: each attempt's error, in the order tried.
// errors.Is and errors.As see every attempt, so errors.Is(err, ErrNoQuorum)
// holds when any endpoint answered no_quorum.
type EndpointsError struct {
	Attempts []error
}

func (e *EndpointsError) Error() string {
	parts := make([]string, len(e.Attempts))
	for i, err := range e.Attempts {
		parts[i] = err.Error()
	}
	return fmt.Sprintf("all %d endpoints failed: %s", len(e.Attempts), strings.Join(parts, "; "))
}

// Unwrap returns the attempts' errors.
func (e *EndpointsError) Unwrap() []error { return e.Attempts }

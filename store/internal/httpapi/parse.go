package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/ephemeral-store/ephemeral-store/store/client/api"
	"github.com/ephemeral-store/ephemeral-store/store/internal/fsm"
)

// parseKey extracts the key from the escaped path after prefix. Keys are
// taken from the escaped form so that "%2F" and "/" both mean "/" and no
// path cleaning ever rewrites a key.
func parseKey(escapedPath, prefix string, maxBytes int) (string, error) {
	raw := strings.TrimPrefix(escapedPath, prefix)
	key, err := url.PathUnescape(raw)
	if err != nil {
		return "", newError(http.StatusBadRequest, api.CodeInvalidKey, fmt.Sprintf("key is not valid percent-encoding: %v", err))
	}
	if err := fsm.CheckKey(key, maxBytes); err != nil {
		if errors.Is(err, fsm.ErrKeyTooLarge) {
			return "", newError(http.StatusRequestEntityTooLarge, api.CodeKeyTooLarge, fmt.Sprintf("key is %d bytes, the limit is %d", len(key), maxBytes))
		}
		return "", newError(http.StatusBadRequest, api.CodeInvalidKey, strings.TrimPrefix(err.Error(), fsm.ErrInvalidKey.Error()+": "))
	}
	return key, nil
}

// parseTTL accepts a Go duration ("30s", "1m30s") or whole seconds ("30").
func parseTTL(q url.Values) (time.Duration, error) {
	s := q.Get("ttl")
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		n, nerr := strconv.ParseInt(s, 10, 64)
		if nerr != nil || n > int64(fsm.MaxTTL/time.Second) {
			return 0, newError(http.StatusBadRequest, api.CodeInvalidTTL, fmt.Sprintf("ttl %q: want a duration such as 30s or whole seconds", s))
		}
		d = time.Duration(n) * time.Second
	}
	if d <= 0 || d > fsm.MaxTTL {
		return 0, newError(http.StatusBadRequest, api.CodeInvalidTTL, fmt.Sprintf("ttl %q: must be positive and at most %s", s, fsm.MaxTTL))
	}
	return d, nil
}

// parseRevision reads a non-negative revision parameter; absent is nil.
func parseRevision(q url.Values, name string) (*int64, error) {
	if !q.Has(name) {
		return nil, nil
	}
	n, err := strconv.ParseInt(q.Get(name), 10, 64)
	if err != nil || n < 0 {
		return nil, newError(http.StatusBadRequest, api.CodeInvalidRevision, fmt.Sprintf("%s %q: want a non-negative integer", name, q.Get(name)))
	}
	return &n, nil
}

// parseLimit reads the page size of a listing.
func parseLimit(q url.Values) (int, error) {
	if !q.Has("limit") {
		return defaultPage, nil
	}
	n, err := strconv.Atoi(q.Get("limit"))
	if err != nil || n < 1 || n > maxPage {
		return 0, newError(http.StatusBadRequest, api.CodeBadRequest, fmt.Sprintf("limit %q: want 1 to %d", q.Get("limit"), maxPage))
	}
	return n, nil
}

// flag reads a boolean query parameter where presence means true ("?stale").
func flag(q url.Values, name string) (bool, error) {
	if !q.Has(name) {
		return false, nil
	}
	switch strings.ToLower(q.Get(name)) {
	case "", "1", "true", "yes":
		return true, nil
	case "0", "false", "no":
		return false, nil
	}
	return false, newError(http.StatusBadRequest, api.CodeBadRequest, fmt.Sprintf("%s=%q: want true or false", name, q.Get(name)))
}

const (
	defaultPage = 100
	maxPage     = 1000
)

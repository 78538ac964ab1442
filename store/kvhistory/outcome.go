package kvhistory

import (
	"errors"
	"net"

	"github.com/ephemeral-store/ephemeral-store/store/client"
)

// Rejected reports whether a write error of the Go client proves that the
// write did not happen because the store refused it before it could enter
// the log (a 4xx: revision mismatch, bad request, too large, forbidden,
// unauthenticated). Retrying the same request cannot succeed.
func Rejected(err error) bool {
	for _, e := range []error{client.ErrRevisionMismatch, client.ErrBadRequest, client.ErrTooLarge,
		client.ErrForbidden, client.ErrUnauthenticated} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// NotSent reports whether a write error of the Go client proves that the
// write was never attempted: every endpoint tried failed to open a
// connection (the transport never writes a request, nor replays a written
// one, before it has connected; a failure of the TLS handshake counts when
// the dialer reports it as a *net.OpError with Op "dial") or refused it as
// not_ready (refused before any attempt). Such a write has no effect; any
// other failure leaves its outcome unknown.
func NotSent(err error) bool {
	var ee *client.EndpointsError
	if errors.As(err, &ee) {
		for _, a := range ee.Attempts {
			if !NotSent(a) {
				return false
			}
		}
		return len(ee.Attempts) > 0
	}
	var op *net.OpError
	return errors.Is(err, client.ErrNotReady) || (errors.As(err, &op) && op.Op == "dial")
}

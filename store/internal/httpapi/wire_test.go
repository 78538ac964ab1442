package httpapi

import (
	"testing"

	"github.com/ephemeral-store/ephemeral-store/store/client/api"
	"github.com/ephemeral-store/ephemeral-store/store/internal/fsm"
)

// TestWatchEventTypesAreTheAPIs: a watch line carries the state
// machine's event type as it is (watch), so each must be the api's name
// of that change.
func TestWatchEventTypesAreTheAPIs(t *testing.T) {
	for typ, want := range map[fsm.EventType]string{
		fsm.EventPut:    api.EventPut,
		fsm.EventDelete: api.EventDelete,
		fsm.EventExpire: api.EventExpire,
	} {
		if string(typ) != want {
			t.Errorf("fsm's %q travels as %q, which is not the api's %q", typ, string(typ), want)
		}
	}
}

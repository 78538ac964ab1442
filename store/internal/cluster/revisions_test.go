package cluster

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ephemeral-store/ephemeral-store/store/internal/fsm"
)

// TestRevisionFloorCoversEveryReport: the base floor a candidate hands to
// its voters lies above every revision any of them held (with the margin
// for entries they had not applied) and at or above every wall clock, so
// neither one clock stepped back nor a leader that never held the old data
// starts the new cluster among the old revisions.
func TestRevisionFloorCoversEveryReport(t *testing.T) {
	state := fsm.New(fsm.DefaultLimits())
	n := &Node{opts: Options{State: state, Wall: func() time.Time { return time.UnixMicro(1_000) }}}
	for name, tc := range map[string]struct {
		voters map[Peer]statusResponse
		want   int64
	}{
		"own clock only": {nil, 1_000},
		"a voter's clock ahead": {map[Peer]statusResponse{
			{Ordinal: 1}: {WallMicros: 5_000},
		}, 5_000},
		"a voter that emptied itself": {map[Peer]statusResponse{
			{Ordinal: 1}: {WallMicros: 900, HighestRevision: 7_000},
			{Ordinal: 2}: {WallMicros: 2_000},
		}, 7_000 + unappliedMargin},
		"an older node reports nothing": {map[Peer]statusResponse{
			{Ordinal: 1}: {},
		}, 1_000},
	} {
		t.Run(name, func(t *testing.T) {
			require.Equal(t, tc.want, n.revisionFloor(tc.voters))
		})
	}

	// The first leader adds its own memory to the floor it was handed.
	state.Apply(fsm.NewBase(time.UnixMicro(50_000), 0))
	state.Reset()
	inc := &incarnation{}
	inc.baseFloor.Store(3_000)
	require.Equal(t, int64(50_000+unappliedMargin), n.newBase(inc).BaseRevision)
	inc.baseFloor.Store(1 << 40)
	require.Equal(t, int64(1<<40), n.newBase(inc).BaseRevision)
}

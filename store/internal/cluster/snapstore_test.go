package cluster

import (
	"bytes"
	"io"
	"testing"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ephemeral-store/ephemeral-store/store/internal/fsm"
)

func TestSnapshotIsInvisibleUntilClosedAndCancelKeepsThePrevious(t *testing.T) {
	s := newSnapshotStore()
	cfg := raft.Configuration{Servers: []raft.Server{voter("n0/a", "n0:8088")}}

	first, err := s.Create(1, 10, 2, cfg, 1, nil)
	require.NoError(t, err)
	_, err = first.Write([]byte("first"))
	require.NoError(t, err)
	list, err := s.List()
	require.NoError(t, err)
	assert.Empty(t, list, "a snapshot being written must not be listed")
	require.NoError(t, first.Close())

	second, err := s.Create(1, 20, 2, cfg, 1, nil)
	require.NoError(t, err)
	_, _ = second.Write([]byte("partial"))
	require.NoError(t, second.Cancel())

	list, err = s.List()
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, uint64(10), list[0].Index, "a cancelled snapshot never replaces the latest")
	assert.Equal(t, int64(len("first")), list[0].Size)
	meta, rc, err := s.Open(list[0].ID)
	require.NoError(t, err)
	b, _ := io.ReadAll(rc)
	assert.Equal(t, "first", string(b))
	assert.Equal(t, meta.Size, int64(len(b)), "the size sent must match the bytes")

	_, _, err = s.Open("2-20")
	assert.Error(t, err)

	// A newer snapshot installed from the leader wins over an older local
	// one that finishes after it; the older one can still be opened.
	newer, _ := s.Create(1, 500, 3, cfg, 1, nil)
	older, _ := s.Create(1, 100, 3, cfg, 1, nil)
	_, _ = newer.Write([]byte("newer"))
	_, _ = older.Write([]byte("older"))
	require.NoError(t, newer.Close())
	require.NoError(t, older.Close())
	list, err = s.List()
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, uint64(500), list[0].Index, "an older snapshot closed later must not become the latest")
	_, rc, err = s.Open(older.ID())
	require.NoError(t, err, "the older one stays open-able")
	_ = rc.Close()
	_, err = s.Create(2, 30, 2, cfg, 1, nil)
	assert.Error(t, err, "only version 1 snapshots")
}

// TestOwnSnapshotIsAWriterWhoseBytesMatchItsSize: a snapshot of this node's
// state is kept as a writer, not bytes; every Open streams the same bytes,
// as many as the published size, and they restore the state of the instant
// it was taken, whatever was written after.
func TestOwnSnapshotIsAWriterWhoseBytesMatchItsSize(t *testing.T) {
	state := fsm.New(fsm.DefaultLimits())
	f := newRaftFSM(state)
	for i, l := range []*raft.Log{
		commandLog(t, 1, fsm.Command{Op: fsm.OpPut, Key: "a", Value: []byte("1")}),
		commandLog(t, 2, fsm.Command{Op: fsm.OpPut, Key: "b", Value: []byte("2")}),
	} {
		require.NoError(t, f.Apply(l).(fsm.Result).Err, i)
	}
	fsmSnap, err := f.Snapshot()
	require.NoError(t, err)
	// Written after the snapshot: must not show in it.
	require.NoError(t, f.Apply(commandLog(t, 3, fsm.Command{Op: fsm.OpPut, Key: "a", Value: []byte("changed")})).(fsm.Result).Err)

	s := newSnapshotStore()
	sink, err := s.Create(1, 2, 1, raft.Configuration{}, 1, nil)
	require.NoError(t, err)
	require.NoError(t, fsmSnap.Persist(sink))
	list, err := s.List()
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Nil(t, s.latest.data, "no bytes are held")

	read := func() []byte {
		meta, rc, err := s.Open(list[0].ID)
		require.NoError(t, err)
		defer rc.Close()
		b, err := io.ReadAll(rc)
		require.NoError(t, err)
		require.Equal(t, meta.Size, int64(len(b)), "the size sent must match the bytes")
		return b
	}
	first, second := read(), read()
	require.Equal(t, first, second, "every open streams the same bytes")

	restored := fsm.New(fsm.DefaultLimits())
	g := newRaftFSM(restored)
	var shedIndex uint64
	g.restored = func(index uint64, _ func(io.Writer) error) { shedIndex = index }
	require.NoError(t, g.Restore(io.NopCloser(bytes.NewReader(first))))
	require.EqualValues(t, 2, g.applied.Load())
	require.EqualValues(t, 2, shedIndex)
	kv, _, ok := restored.Get("a")
	require.True(t, ok)
	require.Equal(t, "1", string(kv.Value), "the snapshot is of its instant")
}

// TestShedReplacesReceivedBytesByAWriter: once a snapshot received from the
// leader is restored, its bytes give way to a writer of the restored state.
func TestShedReplacesReceivedBytesByAWriter(t *testing.T) {
	s := newSnapshotStore()
	sink, err := s.Create(1, 7, 1, raft.Configuration{}, 1, nil)
	require.NoError(t, err)
	_, err = sink.Write([]byte("received bytes"))
	require.NoError(t, err)
	require.NoError(t, sink.Close())
	_, opened, err := s.Open(sink.ID())
	require.NoError(t, err)

	s.shed(8, func(w io.Writer) error { _, err := w.Write([]byte("other")); return err })
	require.NotNil(t, s.latest.data, "a state past the snapshot's index is not its state")
	// The state machine's index can be below the Raft index (no-ops).
	s.shed(6, func(w io.Writer) error { _, err := w.Write([]byte("state")); return err })
	require.Nil(t, s.latest.data)

	meta, rc, err := s.Open(sink.ID())
	require.NoError(t, err)
	b, _ := io.ReadAll(rc)
	require.Equal(t, "state", string(b))
	require.EqualValues(t, len("state"), meta.Size)
	old, _ := io.ReadAll(opened)
	require.Equal(t, "received bytes", string(old), "a reader opened before keeps the bytes it was given")
}

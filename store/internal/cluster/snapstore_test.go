package cluster

import (
	"io"
	"testing"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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

package cluster

import (
	"bytes"
	"encoding/binary"
	"encoding/gob"
	"io"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"

	"github.com/ephemeral-store/ephemeral-store/store/internal/fsm"
)

func commandLog(t *testing.T, index uint64, cmd fsm.Command) *raft.Log {
	t.Helper()
	b, err := cmd.Encode()
	require.NoError(t, err)
	return &raft.Log{Index: index, Type: raft.LogCommand, Data: b}
}

// TestApplyBatchAnswersEachCommandAndAdvancesPastTheBatch: results line up
// with the entries (nil for a configuration), the state holds every write,
// and the applied index is the batch's last entry, whatever its type.
func TestApplyBatchAnswersEachCommandAndAdvancesPastTheBatch(t *testing.T) {
	state := fsm.New(fsm.DefaultLimits())
	f := newRaftFSM(state)
	woken := f.changed()
	logs := []*raft.Log{
		commandLog(t, 3, fsm.Command{Op: fsm.OpPut, Key: "a", Value: []byte("1")}),
		{Index: 4, Type: raft.LogConfiguration},
		commandLog(t, 5, fsm.Command{Op: fsm.OpPut, Key: "b", Value: []byte("2")}),
		{Index: 6, Type: raft.LogCommand, Data: []byte("not a command")},
		{Index: 7, Type: raft.LogConfiguration},
	}
	out := f.ApplyBatch(logs)
	require.Len(t, out, len(logs))
	first, ok := out[0].(fsm.Result)
	require.True(t, ok)
	require.NoError(t, first.Err)
	require.Nil(t, out[1], "a configuration entry has no result")
	second := out[2].(fsm.Result)
	require.NoError(t, second.Err)
	require.Greater(t, second.Revision, first.Revision)
	require.Error(t, out[3].(fsm.Result).Err, "an entry that does not decode is answered with an error")
	require.Nil(t, out[4])
	require.EqualValues(t, 7, f.applied.Load())
	select {
	case <-woken:
	default:
		t.Fatal("waiting readers were not woken")
	}
	for key, want := range map[string]string{"a": "1", "b": "2"} {
		kv, _, ok := state.Get(key)
		require.True(t, ok, key)
		require.Equal(t, want, string(kv.Value))
	}
}

// TestRestoreReadsTheFormatFromTheHeader: a snapshot of an earlier version
// (header without the stream bit, gob body) restores, and its index is the
// header's.
func TestRestoreReadsTheFormatFromTheHeader(t *testing.T) {
	var buf bytes.Buffer
	var hdr [8]byte
	binary.BigEndian.PutUint64(hdr[:], 41)
	buf.Write(hdr[:])
	type item struct {
		Key                            string
		Value                          []byte
		CreateRevision, ModifyRevision int64
	}
	require.NoError(t, gob.NewEncoder(&buf).Encode(struct {
		Revision int64
		Items    []item
	}{Revision: 3, Items: []item{{Key: "old", Value: []byte("v"), CreateRevision: 3, ModifyRevision: 3}}}))
	state := fsm.New(fsm.DefaultLimits())
	f := newRaftFSM(state)
	require.NoError(t, f.Restore(io.NopCloser(&buf)))
	require.EqualValues(t, 41, f.applied.Load())
	kv, rev, ok := state.Get("old")
	require.True(t, ok)
	require.EqualValues(t, 3, rev)
	require.Equal(t, "v", string(kv.Value))
}

// TestSnapshotsRoundTripWithTheClusterTime: the header of a snapshot this
// version writes names the clocked format; restoring it gives the index,
// the keys with their expiry and the cluster time.
func TestSnapshotsRoundTripWithTheClusterTime(t *testing.T) {
	src := fsm.New(fsm.DefaultLimits())
	src.Apply(fsm.Command{Op: fsm.OpPut, Key: "k", Value: []byte("v"), TTL: time.Minute, Clock: 42 * time.Second})
	var buf bytes.Buffer
	require.NoError(t, (&snapshot{index: 17, write: src.Snapshot()}).writeTo(&buf))

	dst := fsm.New(fsm.DefaultLimits())
	f := newRaftFSM(dst)
	require.NoError(t, f.Restore(io.NopCloser(&buf)))
	require.EqualValues(t, 17, f.applied.Load())
	require.Equal(t, 42*time.Second, dst.Clock())
	kv, _, ok := dst.Get("k")
	require.True(t, ok)
	require.Equal(t, 42*time.Second+time.Minute, kv.ExpireAt)
}

// TestReplicaCountIsAppliedAndCarriedBySnapshots: an OpReplicas entry sets
// the replicated count without touching the keys; a snapshot carries it to
// a node that restores it; a snapshot from a version without the count
// restores with the count unknown (0); and the previous reader, which only
// knows the stream bit, refuses the new snapshot instead of restoring it.
func TestReplicaCountIsAppliedAndCarriedBySnapshots(t *testing.T) {
	state := fsm.New(fsm.DefaultLimits())
	f := newRaftFSM(state)
	f.ApplyBatch([]*raft.Log{
		commandLog(t, 1, fsm.Command{Op: fsm.OpPut, Key: "k", Value: []byte("v")}),
		commandLog(t, 2, fsm.Command{Op: fsm.OpReplicas, Replicas: 5}),
	})
	require.EqualValues(t, 5, f.replicas.Load())
	require.EqualValues(t, 1, state.Revision(), "the count is no key and takes no revision")
	res := f.Apply(commandLog(t, 3, fsm.Command{Op: fsm.OpReplicas, Replicas: 3}))
	require.NoError(t, res.(fsm.Result).Err)
	require.EqualValues(t, 3, f.replicas.Load())

	snap, err := f.Snapshot()
	require.NoError(t, err)
	var buf bytes.Buffer
	require.NoError(t, snap.(*snapshot).writeTo(&buf))
	encoded := buf.Bytes()

	other := newRaftFSM(fsm.New(fsm.DefaultLimits()))
	require.NoError(t, other.Restore(io.NopCloser(bytes.NewReader(encoded))))
	require.EqualValues(t, 3, other.replicas.Load())
	require.EqualValues(t, 3, other.applied.Load())
	kv, _, ok := other.state.Get("k")
	require.True(t, ok)
	require.Equal(t, "v", string(kv.Value))

	// The previous version's reader: header, stream bit, then the state.
	hdr := binary.BigEndian.Uint64(encoded[:8])
	require.NotZero(t, hdr&clusterMetaBit)
	old := fsm.New(fsm.DefaultLimits())
	require.ErrorIs(t, old.Restore(bytes.NewReader(encoded[8:]), fsm.SnapshotStream), fsm.ErrBadSnapshot)

	// A snapshot without the count (written before there was one).
	withoutCount := &snapshot{index: 9, write: fsm.New(fsm.DefaultLimits()).Snapshot()}
	buf.Reset()
	require.NoError(t, withoutCount.writeTo(&buf))
	require.Zero(t, binary.BigEndian.Uint64(buf.Bytes()[:8])&clusterMetaBit)
	require.NoError(t, other.Restore(io.NopCloser(&buf)))
	require.Zero(t, other.replicas.Load(), "an older snapshot leaves the count unknown")
	require.EqualValues(t, 9, other.applied.Load())
}

package fsm

import (
	"bytes"
	"encoding/gob"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestGobSnapshotsOfOlderVersionsStillRestore: a node restores the gob
// snapshot a leader of an earlier version sends during a rolling upgrade.
func TestGobSnapshotsOfOlderVersionsStillRestore(t *testing.T) {
	var buf bytes.Buffer
	old := snapshotV1{Revision: 9, Items: []KeyValue{
		{Key: "a", Value: []byte("1"), CreateRevision: 2, ModifyRevision: 7, ExpireAt: 99},
		{Key: "b", Value: []byte("22"), CreateRevision: 9, ModifyRevision: 9},
	}}
	require.NoError(t, gob.NewEncoder(&buf).Encode(&old))
	s := New(DefaultLimits())
	require.NoError(t, s.Restore(&buf, SnapshotGob))
	kv, rev, ok := s.Get("a")
	require.True(t, ok)
	require.EqualValues(t, 9, rev)
	require.Equal(t, KeyValue{Key: "a", Value: []byte("1"), CreateRevision: 2, ModifyRevision: 7, ExpireAt: 99}, *kv)
	keys, bytes := s.Stats()
	require.Equal(t, 2, keys)
	require.EqualValues(t, 5, bytes)
}

// TestStreamSnapshotRoundTripsEveryField, with an empty value and large
// revisions, and writes the same bytes every time.
func TestStreamSnapshotRoundTripsEveryField(t *testing.T) {
	src := New(DefaultLimits())
	src.Apply(Command{Op: OpBase, BaseRevision: 1 << 50})
	src.Apply(Command{Op: OpPut, Key: "empty", Value: nil})
	src.Apply(Command{Op: OpPut, Key: "ttl", Value: []byte("x"), ExpireAt: 1<<62 + 5})
	write := src.Snapshot()
	var first, second bytes.Buffer
	require.NoError(t, write(&first))
	require.NoError(t, write(&second))
	require.Equal(t, first.Bytes(), second.Bytes())

	dst := New(DefaultLimits())
	require.NoError(t, dst.Restore(&first, SnapshotStream))
	for _, key := range []string{"empty", "ttl"} {
		want, _, _ := src.Get(key)
		got, rev, ok := dst.Get(key)
		require.True(t, ok, key)
		require.Equal(t, src.Revision(), rev)
		require.Equal(t, want.Key, got.Key)
		require.Equal(t, len(want.Value), len(got.Value))
		require.Equal(t, [3]int64{want.CreateRevision, want.ModifyRevision, want.ExpireAt},
			[3]int64{got.CreateRevision, got.ModifyRevision, got.ExpireAt})
	}
}

// TestBadSnapshotsAreRefusedAndLeaveTheState: truncated, trailing bytes,
// an absurd length, an unknown format.
func TestBadSnapshotsAreRefusedAndLeaveTheState(t *testing.T) {
	src := New(DefaultLimits())
	src.Apply(Command{Op: OpPut, Key: "k", Value: []byte("value")})
	var good bytes.Buffer
	require.NoError(t, src.Snapshot()(&good))
	b := good.Bytes()
	for name, tc := range map[string]struct {
		in     []byte
		format SnapshotFormat
	}{
		"empty":          {nil, SnapshotStream},
		"truncated":      {b[:len(b)-2], SnapshotStream},
		"trailing bytes": {append(append([]byte{}, b...), 0), SnapshotStream},
		"huge length":    {[]byte{2, 1, 0xff, 0xff, 0xff, 0xff, 0x7f}, SnapshotStream},
		"stream as gob":  {b, SnapshotGob},
		"unknown format": {b, 7},
	} {
		t.Run(name, func(t *testing.T) {
			s := New(DefaultLimits())
			s.Apply(Command{Op: OpPut, Key: "mine", Value: []byte("kept")})
			err := s.Restore(bytes.NewReader(tc.in), tc.format)
			require.Error(t, err)
			require.True(t, errors.Is(err, ErrBadSnapshot), err)
			_, _, ok := s.Get("mine")
			require.True(t, ok, "a refused snapshot leaves the state as it was")
		})
	}
}

// FuzzRestoreStream: no input panics or allocates without bound; what
// restores writes back to bytes that restore to the same state.
func FuzzRestoreStream(f *testing.F) {
	src := New(DefaultLimits())
	src.Apply(Command{Op: OpPut, Key: "a", Value: []byte("1"), ExpireAt: 5})
	var seed bytes.Buffer
	_ = src.Snapshot()(&seed)
	f.Add(seed.Bytes())
	f.Add([]byte{0, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		s := New(DefaultLimits())
		if err := s.Restore(bytes.NewReader(in), SnapshotStream); err != nil {
			return
		}
		var out bytes.Buffer
		require.NoError(t, s.Snapshot()(&out))
		again := New(DefaultLimits())
		require.NoError(t, again.Restore(&out, SnapshotStream))
		k1, b1 := s.Stats()
		k2, b2 := again.Stats()
		require.Equal(t, [2]int64{int64(k1), b1}, [2]int64{int64(k2), b2})
		require.Equal(t, s.Revision(), again.Revision())
	})
}

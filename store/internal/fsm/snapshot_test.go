package fsm

import (
	"bytes"
	"encoding/gob"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestGobSnapshotsOfOlderVersionsStillRestore: a node restores the gob
// snapshot a leader of an earlier version sends during a rolling upgrade.
// Its wall-clock expiry instant becomes the TTL left by this node's wall
// clock, pending until a leader of this version stamps a cluster time.
func TestGobSnapshotsOfOlderVersionsStillRestore(t *testing.T) {
	var buf bytes.Buffer
	old := snapshotV1{Revision: 9, Items: []itemV1{
		{Key: "a", Value: []byte("1"), CreateRevision: 2, ModifyRevision: 7, ExpireAt: time.Unix(1000, 0).UnixNano()},
		{Key: "b", Value: []byte("22"), CreateRevision: 9, ModifyRevision: 9},
	}}
	require.NoError(t, gob.NewEncoder(&buf).Encode(&old))
	s := New(DefaultLimits())
	s.now = func() time.Time { return time.Unix(970, 0) }
	require.NoError(t, s.Restore(&buf, SnapshotGob))
	kv, rev, ok := s.Get("a")
	require.True(t, ok)
	require.EqualValues(t, 9, rev)
	require.Equal(t, KeyValue{Key: "a", Value: []byte("1"), CreateRevision: 2, ModifyRevision: 7, ExpireAt: -30 * time.Second}, *kv)
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
	src.Apply(Command{Op: OpPut, Key: "ttl", Value: []byte("x"), TTL: 5, Clock: 1 << 62})
	src.Apply(Command{Op: OpPut, Key: "pending", Value: []byte("x"), TTL: 7}) // from an older leader
	write := src.Snapshot()
	var first, second bytes.Buffer
	require.NoError(t, write(&first))
	require.NoError(t, write(&second))
	require.Equal(t, first.Bytes(), second.Bytes())

	dst := New(DefaultLimits())
	require.NoError(t, dst.Restore(&first, SnapshotClocked))
	require.Equal(t, src.Clock(), dst.Clock())
	for _, key := range []string{"empty", "ttl", "pending"} {
		want, _, _ := src.Get(key)
		got, rev, ok := dst.Get(key)
		require.True(t, ok, key)
		require.Equal(t, src.Revision(), rev)
		require.Equal(t, want.Key, got.Key)
		require.Equal(t, len(want.Value), len(got.Value))
		require.Equal(t, [3]int64{want.CreateRevision, want.ModifyRevision, int64(want.ExpireAt)},
			[3]int64{got.CreateRevision, got.ModifyRevision, int64(got.ExpireAt)})
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
		"empty":          {nil, SnapshotClocked},
		"truncated":      {b[:len(b)-2], SnapshotClocked},
		"trailing bytes": {append(append([]byte{}, b...), 0), SnapshotClocked},
		"huge length":    {[]byte{2, 1, 0xff, 0xff, 0xff, 0xff, 0x7f}, SnapshotClocked},
		"negative clock": {[]byte{2, 0, 1}, SnapshotClocked},
		// What a node of the version before does with a snapshot of
		// this one: it refuses it rather than read cluster times as
		// wall-clock instants.
		"clocked as stream": {b, SnapshotStream},
		"stream as gob":     {b, SnapshotGob},
		"unknown format":    {b, 7},
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
	src.Apply(Command{Op: OpPut, Key: "a", Value: []byte("1"), TTL: 5, Clock: 3})
	var seed bytes.Buffer
	_ = src.Snapshot()(&seed)
	f.Add(seed.Bytes())
	f.Add([]byte{0, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		s := New(DefaultLimits())
		if err := s.Restore(bytes.NewReader(in), SnapshotClocked); err != nil {
			return
		}
		var out bytes.Buffer
		require.NoError(t, s.Snapshot()(&out))
		again := New(DefaultLimits())
		require.NoError(t, again.Restore(&out, SnapshotClocked))
		k1, b1 := s.Stats()
		k2, b2 := again.Stats()
		require.Equal(t, [2]int64{int64(k1), b1}, [2]int64{int64(k2), b2})
		require.Equal(t, s.Revision(), again.Revision())
		require.Equal(t, s.Clock(), again.Clock())
	})
}

// TestSnapshotKeepsItsInstantWhileApplyRewrites: a snapshot written while
// Apply rewrites, deletes and expires every key it captured (the records it
// reads are let go meanwhile) still writes the state of its instant, the
// same bytes on every call.
func TestSnapshotKeepsItsInstantWhileApplyRewrites(t *testing.T) {
	s := New(DefaultLimits())
	const n = 3000
	for i := range n {
		s.Apply(Command{Op: OpPut, Key: fmt.Sprintf("k/%d", i), Value: bytes.Repeat([]byte{byte(i)}, 100+i%300), TTL: time.Hour, Clock: time.Second})
	}
	write := s.Snapshot()
	var first bytes.Buffer
	require.NoError(t, write(&first))

	done := make(chan error, 1)
	var during bytes.Buffer
	go func() { done <- write(&during) }()
	for i := range n {
		key := fmt.Sprintf("k/%d", i)
		switch i % 3 {
		case 0:
			s.Apply(Command{Op: OpPut, Key: key, Value: []byte("rewritten")})
		case 1:
			s.Apply(Command{Op: OpDelete, Key: key})
		default:
			kv, _, _ := s.Get(key)
			s.Apply(Command{Op: OpExpire, Expire: []Expiry{{Key: key, ModifyRevision: kv.ModifyRevision}}})
		}
	}
	require.NoError(t, <-done)
	var after bytes.Buffer
	require.NoError(t, write(&after))
	require.Equal(t, first.Bytes(), during.Bytes())
	require.Equal(t, first.Bytes(), after.Bytes())

	restored := New(DefaultLimits())
	require.NoError(t, restored.Restore(&after, SnapshotClocked))
	require.EqualValues(t, n, restored.Revision())
	for i := range n {
		kv, _, ok := restored.Get(fmt.Sprintf("k/%d", i))
		require.True(t, ok)
		require.Equal(t, bytes.Repeat([]byte{byte(i)}, 100+i%300), kv.Value)
		require.EqualValues(t, i+1, kv.ModifyRevision)
	}
}

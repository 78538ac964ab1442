package fsm

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ephemeral-store/ephemeral-store/store/internal/kvtable"
)

// fakeMono is a replica's monotonic clock under the test's control.
type fakeMono struct{ t time.Time }

func (f *fakeMono) now() time.Time          { return f.t }
func (f *fakeMono) advance(d time.Duration) { f.t = f.t.Add(d) }

func newClocked(mono *fakeMono) *State {
	s := New(DefaultLimits())
	s.now = mono.now
	return s
}

// TestAWallClockStepExpiresNothingEarly: the leader that writes a key and
// the leader that decides its expiry see wall clocks an hour apart. Expiry
// runs on the cluster time both stamp, so neither the step forward nor the
// step back moves it: the key is due exactly its TTL of cluster time after
// the write.
func TestAWallClockStepExpiresNothingEarly(t *testing.T) {
	realWall := time.Unix(1_700_000_000, 0)
	for name, wall := range map[string]time.Time{
		"next leader's wall clock an hour ahead":  realWall.Add(time.Hour),
		"next leader's wall clock an hour behind": realWall.Add(-time.Hour),
	} {
		t.Run(name, func(t *testing.T) {
			s := New(DefaultLimits())
			put := Command{Op: OpPut, Key: "lease", Value: []byte("v"), TTL: 30 * time.Minute}
			put.PrepareOnLeader(10*time.Second, realWall) // the first leader
			s.Apply(put)
			// The next leader took over 1s of cluster time later and
			// stamps its own commands with its stepped wall clock.
			tick := Command{Op: OpClock}
			tick.PrepareOnLeader(11*time.Second, wall)
			s.Apply(tick)
			require.Empty(t, s.Expired(10*time.Second+30*time.Minute-time.Nanosecond, 10), "due before its TTL")
			kv, _, _ := s.Get("lease")
			require.Equal(t, 30*time.Minute-time.Second, kv.TTLRemaining(11*time.Second))
			require.Len(t, s.Expired(10*time.Second+30*time.Minute, 10), 1, "due after its TTL")
		})
	}
}

// TestClockNowRunsOnFromTheLastStamp: a replica's estimate is the
// replicated clock plus its own monotonic time since that rose, never more:
// a stamp below the estimate (the leader's value is older than the time
// this replica has counted since) re-bases it, a stamp below the replicated
// clock changes nothing, and a fresh state's estimate stands still.
func TestClockNowRunsOnFromTheLastStamp(t *testing.T) {
	mono := &fakeMono{t: time.Unix(0, 0)}
	s := newClocked(mono)
	mono.advance(time.Hour)
	require.Zero(t, s.ClockNow(), "no stamp yet: nothing to run on from")

	s.Apply(Command{Op: OpClock, Clock: 10 * time.Second})
	mono.advance(5 * time.Second)
	require.Equal(t, 15*time.Second, s.ClockNow())

	s.Apply(Command{Op: OpClock, Clock: 12 * time.Second})
	require.Equal(t, 12*time.Second, s.ClockNow(), "the leader's stamp, not this replica's own count")
	require.Equal(t, 12*time.Second, s.Clock())

	s.Apply(Command{Op: OpClock, Clock: 11 * time.Second})
	mono.advance(time.Second)
	require.Equal(t, 12*time.Second, s.Clock(), "the replicated clock never goes back")
	require.Equal(t, 13*time.Second, s.ClockNow())

	s.Reset()
	mono.advance(time.Minute)
	require.Zero(t, s.ClockNow(), "a new cluster's clock does not run on from the old one's")
}

// TestUnstampedTTLsStartAtTheNextStamp: a put from a leader of an older
// version, or from a leader before its takeover, carries no cluster time;
// its TTL starts at the next cluster time a leader stamps, on every replica
// alike, so it runs long (by the older leader's time in office), never
// short.
func TestUnstampedTTLsStartAtTheNextStamp(t *testing.T) {
	s := New(DefaultLimits())
	s.Apply(Command{Op: OpClock, Clock: 100 * time.Second})
	s.Apply(Command{Op: OpPut, Key: "old", Value: []byte("v"), TTL: time.Minute, ExpireAt: 1})
	kv, _, _ := s.Get("old")
	require.Equal(t, time.Minute, kv.TTLRemaining(time.Hour), "pending: its whole TTL is left")
	require.Empty(t, s.Expired(time.Hour, 10), "never due before it is placed")
	require.Equal(t, 1, s.PendingTTLs())

	s.Apply(Command{Op: OpPut, Key: "other", Value: []byte("v"), Clock: 500 * time.Second})
	kv, _, _ = s.Get("old")
	require.Equal(t, 500*time.Second+time.Minute, kv.ExpireAt)
	require.Zero(t, s.PendingTTLs())
	require.EqualValues(t, 1, kv.ModifyRevision, "placing the TTL is no write")
	require.Empty(t, s.Expired(500*time.Second+time.Minute-1, 10))
	require.Len(t, s.Expired(500*time.Second+time.Minute, 10), 1)
}

// TestSnapshotsCarryTheClusterTime: a replica that restores a snapshot
// continues the snapshot's cluster time from the moment it restores it;
// its own larger estimate from before does not survive (it would run ahead
// of the leader's timeline).
func TestSnapshotsCarryTheClusterTime(t *testing.T) {
	src := New(DefaultLimits())
	src.Apply(Command{Op: OpPut, Key: "k", Value: []byte("v"), TTL: time.Minute, Clock: 40 * time.Second})
	var buf bytes.Buffer
	require.NoError(t, src.Snapshot()(&buf))

	mono := &fakeMono{t: time.Unix(0, 0)}
	dst := newClocked(mono)
	dst.Apply(Command{Op: OpClock, Clock: 90 * time.Second})
	mono.advance(time.Second)
	require.NoError(t, dst.Restore(&buf, SnapshotClocked))
	require.Equal(t, 40*time.Second, dst.ClockNow())
	mono.advance(2 * time.Second)
	require.Equal(t, 42*time.Second, dst.ClockNow())
	kv, _, _ := dst.Get("k")
	require.Equal(t, 58*time.Second, kv.TTLRemaining(dst.ClockNow()))
}

// TestSnapshotsOfTheVersionBeforeKeepTheirTTLs: a stream snapshot without
// cluster time holds wall-clock instants; they become the TTL left by the
// restoring node's wall clock, pending until the next stamp.
func TestSnapshotsOfTheVersionBeforeKeepTheirTTLs(t *testing.T) {
	wall := time.Unix(1_700_000_000, 0)
	var buf bytes.Buffer
	items := []*KeyValue{
		{Key: "k", Value: []byte("v"), CreateRevision: 1, ModifyRevision: 1, ExpireAt: time.Duration(wall.Add(20 * time.Second).UnixNano())},
		{Key: "due", Value: []byte("v"), CreateRevision: 2, ModifyRevision: 2, ExpireAt: time.Duration(wall.Add(-time.Second).UnixNano())},
	}
	require.NoError(t, writeStream(&buf, 2, 0, pinnedOf(t, items)))
	b := buf.Bytes()[:buf.Len()-1] // the version before wrote no cluster time

	s := New(DefaultLimits())
	s.now = func() time.Time { return wall }
	require.NoError(t, s.Restore(bytes.NewReader(b), SnapshotStream))
	require.Zero(t, s.Clock())
	kv, _, _ := s.Get("k")
	require.Equal(t, -20*time.Second, kv.ExpireAt)
	s.Apply(Command{Op: OpClock, Clock: 7 * time.Second})
	kv, _, _ = s.Get("k")
	require.Equal(t, 27*time.Second, kv.ExpireAt)
	due := s.Expired(7*time.Second+time.Nanosecond, 10)
	require.Len(t, due, 1, "a key past its instant is due at the next stamp")
	require.Equal(t, "due", due[0].Key)
}

// TestResetRemembersTheHighestRevision: a node that empties itself keeps,
// in memory, the highest revision it held, for the next cluster's base.
func TestResetRemembersTheHighestRevision(t *testing.T) {
	s := New(DefaultLimits())
	s.Apply(NewBase(time.UnixMicro(5_000), 0))
	s.Apply(Command{Op: OpPut, Key: "k", Value: []byte("v")})
	s.Reset()
	require.Zero(t, s.Revision())
	require.EqualValues(t, 5_001, s.HighestRevision())
	s.Apply(Command{Op: OpPut, Key: "k", Value: []byte("v")})
	require.EqualValues(t, 5_001, s.HighestRevision())
}

// pinnedOf pins a table holding items, for writeStream.
func pinnedOf(t *testing.T, items []*KeyValue) *kvtable.Pinned {
	table := kvtable.New()
	t.Cleanup(table.Retire)
	for _, kv := range items {
		table.Put(kv.Key, kv.Value, kvtable.Meta{Create: kv.CreateRevision, Modify: kv.ModifyRevision, ExpireAt: int64(kv.ExpireAt)})
	}
	return table.Pin()
}

package fsm

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func rev(n int64) *int64 { return &n }

func TestApply(t *testing.T) {
	type step struct {
		cmd     Command
		wantErr error
		wantRev int64
	}
	tests := []struct {
		name  string
		steps []step
		check func(t *testing.T, s *State)
	}{
		{
			name: "put then overwrite keeps create revision",
			steps: []step{
				{cmd: Command{Op: OpPut, Key: "a", Value: []byte("1")}, wantRev: 1},
				{cmd: Command{Op: OpPut, Key: "a", Value: []byte("2")}, wantRev: 2},
			},
			check: func(t *testing.T, s *State) {
				kv, _, ok := s.Get("a")
				if !ok || string(kv.Value) != "2" || kv.CreateRevision != 1 || kv.ModifyRevision != 2 {
					t.Fatalf("got %+v", kv)
				}
			},
		},
		{
			name: "create only fails when the key exists",
			steps: []step{
				{cmd: Command{Op: OpPut, Key: "a", Value: []byte("1"), PrevRevision: rev(0)}, wantRev: 1},
				{cmd: Command{Op: OpPut, Key: "a", Value: []byte("2"), PrevRevision: rev(0)}, wantErr: ErrRevisionMismatch, wantRev: 1},
			},
		},
		{
			name: "compare and swap on modify revision",
			steps: []step{
				{cmd: Command{Op: OpPut, Key: "a", Value: []byte("1")}, wantRev: 1},
				{cmd: Command{Op: OpPut, Key: "b", Value: []byte("x")}, wantRev: 2},
				{cmd: Command{Op: OpPut, Key: "a", Value: []byte("2"), PrevRevision: rev(2)}, wantErr: ErrRevisionMismatch, wantRev: 2},
				{cmd: Command{Op: OpPut, Key: "a", Value: []byte("2"), PrevRevision: rev(1)}, wantRev: 3},
			},
		},
		{
			name: "cas on a missing key is not found",
			steps: []step{
				{cmd: Command{Op: OpPut, Key: "a", Value: []byte("1"), PrevRevision: rev(7)}, wantErr: ErrKeyNotFound},
			},
		},
		{
			name: "delete missing key",
			steps: []step{
				{cmd: Command{Op: OpDelete, Key: "a"}, wantErr: ErrKeyNotFound},
			},
		},
		{
			name: "conditional delete",
			steps: []step{
				{cmd: Command{Op: OpPut, Key: "a", Value: []byte("1")}, wantRev: 1},
				{cmd: Command{Op: OpDelete, Key: "a", PrevRevision: rev(5)}, wantErr: ErrRevisionMismatch, wantRev: 1},
				{cmd: Command{Op: OpDelete, Key: "a", PrevRevision: rev(1)}, wantRev: 2},
			},
			check: func(t *testing.T, s *State) {
				if _, _, ok := s.Get("a"); ok {
					t.Fatal("key still present after delete")
				}
			},
		},
		{
			name: "expire skips a key rewritten after the decision",
			steps: []step{
				{cmd: Command{Op: OpPut, Key: "a", Value: []byte("1"), TTL: 10, Clock: 1}, wantRev: 1},
				{cmd: Command{Op: OpPut, Key: "a", Value: []byte("2")}, wantRev: 2},
				{cmd: Command{Op: OpExpire, Expire: []Expiry{{Key: "a", ModifyRevision: 1}}}, wantRev: 2},
			},
			check: func(t *testing.T, s *State) {
				if kv, _, ok := s.Get("a"); !ok || string(kv.Value) != "2" {
					t.Fatalf("rewritten key was expired: %+v", kv)
				}
			},
		},
		{
			name: "invalid commands change nothing",
			steps: []step{
				{cmd: Command{Op: "frobnicate", Key: "a"}, wantErr: ErrUnknownOp},
				{cmd: Command{Op: OpPut}, wantErr: ErrEmptyKey},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(DefaultLimits())
			for i, st := range tt.steps {
				res := s.Apply(st.cmd)
				if !errors.Is(res.Err, st.wantErr) {
					t.Fatalf("step %d: err = %v, want %v", i, res.Err, st.wantErr)
				}
				if res.Revision != st.wantRev {
					t.Fatalf("step %d: revision = %d, want %d", i, res.Revision, st.wantRev)
				}
			}
			if tt.check != nil {
				tt.check(t, s)
			}
		})
	}
}

func TestTTLExpiryIsDecidedByTheLeaderClusterTime(t *testing.T) {
	s := New(DefaultLimits())
	leaderNow := 1000 * time.Second // the leader's cluster time
	c := Command{Op: OpPut, Key: "lease", Value: []byte("v"), TTL: 2 * time.Second}
	c.PrepareOnLeader(leaderNow, time.Unix(5, 0))
	s.Apply(c)
	s.Apply(Command{Op: OpPut, Key: "forever", Value: []byte("v")})

	if got := s.Expired(leaderNow+time.Second, 10); len(got) != 0 {
		t.Fatalf("expired too early: %v", got)
	}
	kv, _, _ := s.Get("lease")
	if rem := kv.TTLRemaining(leaderNow + 500*time.Millisecond); rem != 1500*time.Millisecond {
		t.Fatalf("TTLRemaining = %s", rem)
	}
	due := s.Expired(leaderNow+2*time.Second, 10)
	if len(due) != 1 || due[0].Key != "lease" {
		t.Fatalf("Expired = %v", due)
	}
	s.Apply(Command{Op: OpExpire, Expire: due})
	if _, _, ok := s.Get("lease"); ok {
		t.Fatal("lease survived its expiry")
	}
	if _, _, ok := s.Get("forever"); !ok {
		t.Fatal("key without TTL expired")
	}
}

func TestListPagesInKeyOrder(t *testing.T) {
	s := New(DefaultLimits())
	for _, k := range []string{"p/c", "p/a", "q/x", "p/b"} {
		s.Apply(Command{Op: OpPut, Key: k, Value: []byte(k)})
	}
	page, more, _ := s.List("p/", "", 2, ListOptions{})
	if len(page) != 2 || page[0].Key != "p/a" || page[1].Key != "p/b" || !more {
		t.Fatalf("first page = %v more=%v", keys(page), more)
	}
	page, more, _ = s.List("p/", "p/b", 2, ListOptions{})
	if len(page) != 1 || page[0].Key != "p/c" || more {
		t.Fatalf("second page = %v more=%v", keys(page), more)
	}
}

// TestListMatchesASortedScan: every page List keeps while it scans (a
// bounded heap of candidates) is the page a full sort would give, for
// prefixes, cursors, limits and byte bounds, with values or keys only.
func TestListMatchesASortedScan(t *testing.T) {
	s := New(DefaultLimits())
	r := rand.New(rand.NewPCG(3, 4))
	var all []string
	value := func(k string) []byte { return bytes.Repeat([]byte(k[:1]), 10+len(k)%7*100) }
	for i := range 600 {
		k := fmt.Sprintf("%c/%d", 'a'+r.IntN(3), i*7919%1000)
		s.Apply(Command{Op: OpPut, Key: k, Value: value(k)})
		all = append(all, k)
	}
	slices.Sort(all)
	all = slices.Compact(all)
	for _, tc := range []struct {
		prefix, after string
		limit         int
		opts          ListOptions
	}{
		{"", "", 0, ListOptions{}},
		{"", "", 10, ListOptions{}},
		{"b/", "", 25, ListOptions{}},
		{"b/", "b/5", 25, ListOptions{}},
		{"c/", "c/9", 1000, ListOptions{}},
		{"", "a/3", 100, ListOptions{KeysOnly: true}},
		{"a/", "", 100, ListOptions{MaxBytes: 3000}},
		{"a/", "", 100, ListOptions{MaxBytes: 1, KeysOnly: true}},
		{"z/", "", 10, ListOptions{}},
	} {
		t.Run(fmt.Sprintf("%q after %q limit %d %+v", tc.prefix, tc.after, tc.limit, tc.opts), func(t *testing.T) {
			want := []string{}
			for _, k := range all {
				if strings.HasPrefix(k, tc.prefix) && k > tc.after {
					want = append(want, k)
				}
			}
			wantMore := tc.limit > 0 && len(want) > tc.limit
			if wantMore {
				want = want[:tc.limit]
			}
			size := 0
			for i, k := range want {
				if size += len(k) + len(value(k)); tc.opts.MaxBytes > 0 && size > tc.opts.MaxBytes && i > 0 {
					want, wantMore = want[:i], true
					break
				}
			}
			page, more, rev := s.List(tc.prefix, tc.after, tc.limit, tc.opts)
			require.Equal(t, want, keys(page))
			require.Equal(t, wantMore, more)
			require.EqualValues(t, 600, rev)
			for _, kv := range page {
				if tc.opts.KeysOnly {
					require.Nil(t, kv.Value)
				} else {
					require.Equal(t, value(kv.Key), kv.Value)
				}
			}
		})
	}
}

func keys(kvs []*KeyValue) []string {
	out := make([]string, len(kvs))
	for i, kv := range kvs {
		out[i] = kv.Key
	}
	return out
}

func TestWatchResumesFromRevision(t *testing.T) {
	s := New(DefaultLimits())
	s.Apply(Command{Op: OpPut, Key: "p/a", Value: []byte("1")}) // 1
	s.Apply(Command{Op: OpPut, Key: "q/a", Value: []byte("1")}) // 2
	s.Apply(Command{Op: OpPut, Key: "p/b", Value: []byte("1")}) // 3

	w, err := s.Watch("p/", 2)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	s.Apply(Command{Op: OpDelete, Key: "p/a"}) // 4
	for _, want := range []Event{{Type: EventPut, Key: "p/b", Revision: 3}, {Type: EventDelete, Key: "p/a", Revision: 4}} {
		select {
		case got := <-w.C():
			if got.Type != want.Type || got.Key != want.Key || got.Revision != want.Revision {
				t.Fatalf("got %+v, want %+v", got, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no event, want %+v", want)
		}
	}
}

func TestWatchFromNowSeesOnlyNewChanges(t *testing.T) {
	s := New(DefaultLimits())
	s.Apply(Command{Op: OpPut, Key: "a", Value: []byte("old")})
	w, err := s.Watch("", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	s.Apply(Command{Op: OpPut, Key: "a", Value: []byte("new")})
	got := <-w.C()
	if got.Revision != 2 || !bytes.Equal(got.Value, []byte("new")) {
		t.Fatalf("got %+v", got)
	}
}

func TestWatchTooOldRevisionIsCompacted(t *testing.T) {
	s := New(Limits{HistoryEvents: 3, WatcherBuffer: 8})
	for i := 0; i < 5; i++ {
		s.Apply(Command{Op: OpPut, Key: "k", Value: []byte{byte(i)}})
	}
	if _, err := s.Watch("", 2); !errors.Is(err, ErrCompacted) {
		t.Fatalf("from=2 with history 3..5: err = %v, want ErrCompacted", err)
	}
	w, err := s.Watch("", 3)
	if err != nil {
		t.Fatalf("from=3 is still in history: %v", err)
	}
	w.Close()
}

func TestSlowWatcherIsCutOff(t *testing.T) {
	s := New(Limits{HistoryEvents: 100, WatcherBuffer: 4})
	w, err := s.Watch("", 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		s.Apply(Command{Op: OpPut, Key: "k", Value: []byte{byte(i)}})
	}
	n := 0
	for range w.C() {
		n++
	}
	if n != 4 {
		t.Fatalf("delivered %d events before cut-off, want the buffer's 4", n)
	}
	if !errors.Is(w.Err(), ErrWatcherTooSlow) {
		t.Fatalf("Err = %v, want ErrWatcherTooSlow", w.Err())
	}
	if s.Watchers() != 0 {
		t.Fatalf("cut-off watcher still registered")
	}
}

func TestSnapshotRestoreRoundTrip(t *testing.T) {
	src := New(DefaultLimits())
	src.Apply(Command{Op: OpPut, Key: "a", Value: []byte("1"), TTL: 99, Clock: 1})
	src.Apply(Command{Op: OpPut, Key: "b", Value: []byte("2")})
	src.Apply(Command{Op: OpPut, Key: "a", Value: []byte("3"), TTL: 99, Clock: 1})
	var buf bytes.Buffer
	if err := src.Snapshot()(&buf); err != nil {
		t.Fatal(err)
	}
	dst := New(DefaultLimits())
	if err := dst.Restore(&buf, SnapshotClocked); err != nil {
		t.Fatal(err)
	}
	kv, revision, ok := dst.Get("a")
	if !ok || string(kv.Value) != "3" || kv.CreateRevision != 1 || kv.ModifyRevision != 3 || revision != 3 {
		t.Fatalf("restored %+v at %d", kv, revision)
	}
	if got := dst.Expired(100, 10); len(got) != 1 || got[0].Key != "a" {
		t.Fatalf("expiry index not restored: %v", got)
	}
	if _, err := dst.Watch("", 2); !errors.Is(err, ErrCompacted) {
		t.Fatalf("history before the snapshot must be compacted, err = %v", err)
	}
}

func TestCommandEncodingRoundTrip(t *testing.T) {
	c := Command{Op: OpPut, Key: "k", Value: []byte{0, 1, 2}, ExpireAt: 5, PrevRevision: rev(0)}
	b, err := c.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeCommand(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Key != c.Key || !bytes.Equal(got.Value, c.Value) || got.PrevRevision == nil || *got.PrevRevision != 0 {
		t.Fatalf("round trip: %+v", got)
	}
}

func TestHistoryIsBoundedByBytes(t *testing.T) {
	s := New(Limits{HistoryEvents: 1000, HistoryBytes: 3000, WatcherBuffer: 8})
	big := bytes.Repeat([]byte("x"), 1000)
	for i := 0; i < 10; i++ {
		s.Apply(Command{Op: OpPut, Key: "k", Value: big})
	}
	// 1001 bytes per event: only the last two fit in 3000 bytes.
	if _, err := s.Watch("", 8); !errors.Is(err, ErrCompacted) {
		t.Fatalf("from=8: err = %v, want ErrCompacted", err)
	}
	w, err := s.Watch("", 9)
	if err != nil {
		t.Fatalf("from=9 should still be kept: %v", err)
	}
	w.Close()
}

func TestBaseRevisionSeparatesANewClusterFromTheOldOne(t *testing.T) {
	s := New(DefaultLimits())
	base := NewBase(time.UnixMicro(1_000_000), 0)
	if res := s.Apply(base); res.Revision != 1_000_000 {
		t.Fatalf("revision after base = %d", res.Revision)
	}
	put := s.Apply(Command{Op: OpPut, Key: "k", Value: []byte("v")})
	if put.Revision != 1_000_001 {
		t.Fatalf("first write after base = %d", put.Revision)
	}
	// A revision from the lost cluster matches nothing and resumes nothing.
	if res := s.Apply(Command{Op: OpPut, Key: "k", Value: []byte("w"), PrevRevision: rev(5)}); !errors.Is(res.Err, ErrRevisionMismatch) {
		t.Fatalf("old revision in CAS: %v", res.Err)
	}
	if _, err := s.Watch("", 5); !errors.Is(err, ErrCompacted) {
		t.Fatalf("watch from an old revision: %v, want ErrCompacted", err)
	}
	// A base never lowers the revision.
	if res := s.Apply(NewBase(time.UnixMicro(10), 0)); res.Revision != 1_000_001 {
		t.Fatalf("lower base moved the revision to %d", res.Revision)
	}
	// The floor wins over a clock that was stepped back.
	if b := NewBase(time.UnixMicro(10), 2_000_000); b.BaseRevision != 2_000_000 {
		t.Fatalf("base under a floor of 2000000 with the clock at 10: %d", b.BaseRevision)
	}
}

func TestStatsFollowEveryChange(t *testing.T) {
	s := New(DefaultLimits())
	s.Apply(Command{Op: OpPut, Key: "ab", Value: []byte("123")})                 // 5
	s.Apply(Command{Op: OpPut, Key: "ab", Value: []byte("1")})                   // 3
	s.Apply(Command{Op: OpPut, Key: "c", Value: []byte("xy"), TTL: 1, Clock: 1}) // 3
	if k, b := s.Stats(); k != 2 || b != 6 {
		t.Fatalf("after puts: %d keys, %d bytes; want 2, 6", k, b)
	}
	s.Apply(Command{Op: OpExpire, Expire: s.Expired(2, 10)})
	s.Apply(Command{Op: OpDelete, Key: "missing"})
	if k, b := s.Stats(); k != 1 || b != 3 {
		t.Fatalf("after expiry: %d keys, %d bytes; want 1, 3", k, b)
	}
	var buf bytes.Buffer
	if err := s.Snapshot()(&buf); err != nil {
		t.Fatal(err)
	}
	r := New(DefaultLimits())
	if err := r.Restore(&buf, SnapshotClocked); err != nil {
		t.Fatal(err)
	}
	if k, b := r.Stats(); k != 1 || b != 3 {
		t.Fatalf("after restore: %d keys, %d bytes; want 1, 3", k, b)
	}
	s.Apply(Command{Op: OpDelete, Key: "ab"})
	if k, b := s.Stats(); k != 0 || b != 0 {
		t.Fatalf("after delete: %d keys, %d bytes", k, b)
	}
}

// A decoded command's value has spare capacity (JSON sizes it for its
// base64 form); the watch history must not keep that slack, and the value
// the state shows readers and sends watchers is the same.
func TestPutKeepsValueInExactSizeSlice(t *testing.T) {
	data, err := (&Command{Op: OpPut, Key: "k", Value: bytes.Repeat([]byte("v"), 256)}).Encode()
	if err != nil {
		t.Fatal(err)
	}
	cmd, err := DecodeCommand(data)
	if err != nil {
		t.Fatal(err)
	}
	if cap(cmd.Value) == len(cmd.Value) {
		t.Fatalf("decoded value has no spare capacity (cap %d): the test no longer shows the slack", cap(cmd.Value))
	}
	s := New(DefaultLimits())
	w, err := s.Watch("", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	s.Apply(cmd)
	kv, _, ok := s.Get("k")
	if !ok {
		t.Fatal("key missing after put")
	}
	if !bytes.Equal(kv.Value, bytes.Repeat([]byte("v"), 256)) || cap(kv.Value) != len(kv.Value) {
		t.Fatalf("stored value len %d cap %d, want the 256 bytes in a slice of their size", len(kv.Value), cap(kv.Value))
	}
	if e := <-w.C(); !bytes.Equal(e.Value, kv.Value) {
		t.Fatalf("watch event value %q, want the stored value", e.Value)
	}
}

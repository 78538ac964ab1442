// Copyright (c) ephemeral-store authors
// SPDX-License-Identifier: MPL-2.0

package raft

// Regression tests for the ephemeral-store patch "applied prefix" (patch 7
// in PATCH.md): a follower never rewinds what it has applied, it takes an
// append whose previous entry it has applied (and compacted) as matching,
// and its own snapshot never lands on top of one installed while it was
// being written.

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"sync"
	"testing"
	"time"
)

// fakeLeader drives one follower over InmemTransport, entry by entry, as a
// leader of any term would.
type fakeLeader struct {
	t             *testing.T
	trans         *InmemTransport
	followerAddr  ServerAddress
	header        RPCHeader
	configuration Configuration
	// followerLogs is the follower's log store, for tests that look at it.
	followerLogs LogStore
}

// storeLikeLogs is the store's log store (store/internal/cluster,
// monotonicStore): monotonic, and DeleteRange clamped to what it holds.
// InmemStore's own DeleteRange wraps its last index to 2^64-1 when asked to
// delete from 0 in an empty store, which a compaction right after an install
// does, and removeOldLogs then spins on the main goroutine.
type storeLikeLogs struct{ monotonicInmem }

func (s storeLikeLogs) DeleteRange(lo, hi uint64) error {
	first, _ := s.FirstIndex()
	last, _ := s.LastIndex()
	if first == 0 && last == 0 {
		return nil
	}
	if lo, hi = max(lo, first), min(hi, last); lo > hi {
		return nil
	}
	return s.InmemStore.DeleteRange(lo, hi)
}

// publishingSnapshots is the store's snapshot store (store/internal/cluster,
// snapstore.go) in short: a snapshot is visible once its sink is closed, a
// newer one (by term, then index) stays the latest, and the previous one can
// still be opened.
type publishingSnapshots struct {
	mu               sync.Mutex
	latest, previous *publishingSink
	created          int
}

type publishingSink struct {
	store *publishingSnapshots
	meta  SnapshotMeta
	buf   []byte
	done  bool
}

func (s *publishingSnapshots) Create(version SnapshotVersion, index, term uint64, configuration Configuration,
	configurationIndex uint64, _ Transport) (SnapshotSink, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.created++
	return &publishingSink{store: s, meta: SnapshotMeta{Version: version, ID: fmt.Sprintf("%d-%d-%d", term, index, s.created),
		Index: index, Term: term, Configuration: configuration, ConfigurationIndex: configurationIndex}}, nil
}

func (s *publishingSnapshots) List() ([]*SnapshotMeta, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.latest == nil {
		return nil, nil
	}
	meta := s.latest.meta
	return []*SnapshotMeta{&meta}, nil
}

func (s *publishingSnapshots) Open(id string) (*SnapshotMeta, io.ReadCloser, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range []*publishingSink{s.latest, s.previous} {
		if k != nil && k.meta.ID == id {
			meta := k.meta
			return &meta, io.NopCloser(bytes.NewReader(k.buf)), nil
		}
	}
	return nil, nil, fmt.Errorf("no snapshot %s", id)
}

func (k *publishingSink) Write(p []byte) (int, error) {
	k.buf = append(k.buf, p...)
	return len(p), nil
}
func (k *publishingSink) ID() string    { return k.meta.ID }
func (k *publishingSink) Cancel() error { k.done = true; return nil }

func (k *publishingSink) Close() error {
	if k.done {
		return nil
	}
	k.done = true
	k.meta.Size = int64(len(k.buf))
	s := k.store
	s.mu.Lock()
	defer s.mu.Unlock()
	if l := s.latest; l != nil && (l.meta.Term > k.meta.Term || (l.meta.Term == k.meta.Term && l.meta.Index > k.meta.Index)) {
		s.previous = k
		return nil
	}
	s.previous, s.latest = s.latest, k
	return nil
}

// newFollower starts a follower (a non-voter, so it never starts an election
// while the fake leader is silent) on the store's kind of log store with
// conf's settings, and the fake leader that drives it.
func newFollower(t *testing.T, conf *Config, snaps SnapshotStore) (*fakeLeader, *Raft, *MockFSM) {
	t.Helper()
	leaderAddr, leaderTrans := NewInmemTransportWithTimeout("leader", 5*time.Second)
	followerAddr, followerTrans := NewInmemTransportWithTimeout("follower", 5*time.Second)
	leaderTrans.Connect(followerAddr, followerTrans)
	followerTrans.Connect(leaderAddr, leaderTrans)

	configuration := Configuration{Servers: []Server{
		{Suffrage: Voter, ID: "leader", Address: leaderAddr},
		{Suffrage: Nonvoter, ID: "follower", Address: followerAddr},
	}}
	conf.LocalID = "follower"
	conf.Logger = newTestLoggerWithPrefix(t, "follower")
	fsm := &MockFSM{}
	logs := storeLikeLogs{monotonicInmem{NewInmemStore()}}
	follower, err := NewRaft(conf, fsm, logs, NewInmemStore(), snaps, followerTrans)
	if err != nil {
		t.Fatalf("NewRaft: %v", err)
	}
	t.Cleanup(func() {
		if err := follower.Shutdown().Error(); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return &fakeLeader{
		t:             t,
		trans:         leaderTrans,
		followerAddr:  followerAddr,
		configuration: configuration,
		followerLogs:  logs,
		header: RPCHeader{
			ProtocolVersion: ProtocolVersionMax,
			ID:              []byte("leader"),
			Addr:            leaderTrans.EncodePeer("leader", leaderAddr),
		},
	}, follower, fsm
}

// entry i of term: 1 is the configuration, the rest are commands that name
// their term and index.
func (l *fakeLeader) entry(term, i uint64) *Log {
	if i == 1 {
		return &Log{Index: 1, Term: term, Type: LogConfiguration, Data: EncodeConfiguration(l.configuration)}
	}
	return &Log{Index: i, Term: term, Type: LogCommand, Data: []byte(fmt.Sprintf("t%d-%d", term, i))}
}

func (l *fakeLeader) entries(term, from, to uint64) []*Log {
	var out []*Log
	for i := from; i <= to; i++ {
		out = append(out, l.entry(term, i))
	}
	return out
}

func (l *fakeLeader) appendEntries(term, prev, prevTerm uint64, es []*Log, commit uint64) *AppendEntriesResponse {
	l.t.Helper()
	req := &AppendEntriesRequest{
		RPCHeader:         l.header,
		Term:              term,
		PrevLogEntry:      prev,
		PrevLogTerm:       prevTerm,
		Entries:           es,
		LeaderCommitIndex: commit,
	}
	var resp AppendEntriesResponse
	if err := l.trans.AppendEntries("follower", l.followerAddr, req, &resp); err != nil {
		l.t.Fatalf("AppendEntries(prev=%d): %v", prev, err)
	}
	return &resp
}

// installSnapshot sends a snapshot at index of the state of a leader that
// applied commands 2..index of term 1.
func (l *fakeLeader) installSnapshot(term, index uint64) *InstallSnapshotResponse {
	l.t.Helper()
	leaderFSM := &MockFSM{}
	for _, e := range l.entries(1, 2, index) {
		leaderFSM.Apply(e)
	}
	snap, err := leaderFSM.Snapshot()
	if err != nil {
		l.t.Fatalf("Snapshot: %v", err)
	}
	var sink bufferSink
	if err := snap.Persist(&sink); err != nil {
		l.t.Fatalf("Persist: %v", err)
	}
	data := sink.Bytes()
	var resp InstallSnapshotResponse
	if err := l.trans.InstallSnapshot("follower", l.followerAddr, &InstallSnapshotRequest{
		RPCHeader:          l.header,
		SnapshotVersion:    SnapshotVersionMax,
		Term:               term,
		LastLogIndex:       index,
		LastLogTerm:        1,
		Configuration:      EncodeConfiguration(l.configuration),
		ConfigurationIndex: 1,
		Size:               int64(len(data)),
	}, &resp, bytes.NewReader(data)); err != nil {
		l.t.Fatalf("InstallSnapshot(%d): %v", index, err)
	}
	return &resp
}

// waitApplied waits until the follower has applied index and returns its
// FSM's commands, which must be want.
func waitApplied(t *testing.T, r *Raft, fsm *MockFSM, index uint64, want []string) {
	t.Helper()
	start := time.Now()
	for r.AppliedIndex() < index || len(fsm.Logs()) < len(want) {
		if time.Since(start) > 10*time.Second {
			t.Fatalf("follower applied %d (FSM %d entries), want %d (%d entries)",
				r.AppliedIndex(), len(fsm.Logs()), index, len(want))
		}
		time.Sleep(5 * time.Millisecond)
	}
	var got []string
	for _, b := range fsm.Logs() {
		got = append(got, string(b))
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("FSM holds %v, want %v", got, want)
	}
}

func commands(term, from, to uint64) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, fmt.Sprintf("t%d-%d", term, i))
	}
	return out
}

func lastSnapshotIndex(t *testing.T, r *Raft) uint64 {
	t.Helper()
	n, err := strconv.ParseUint(r.Stats()["last_snapshot_index"], 10, 64)
	if err != nil {
		t.Fatalf("last_snapshot_index: %v", err)
	}
	return n
}

// compactedFollower is a follower that holds entries 1..20 of term 1, has
// applied 1..10 (the committed ones), and has snapshotted and compacted its
// log through 10: what a follower of a deposed leader looks like when that
// leader put more uncommitted entries on it than TrailingLogs.
func compactedFollower(t *testing.T, snaps SnapshotStore) (*fakeLeader, *Raft, *MockFSM) {
	t.Helper()
	conf := DefaultConfig()
	conf.TrailingLogs = 2
	conf.SnapshotThreshold = 1 << 30 // only the test snapshots
	leader, follower, fsm := newFollower(t, conf, snaps)
	if resp := leader.appendEntries(1, 0, 0, leader.entries(1, 1, 20), 10); !resp.Success {
		t.Fatalf("initial append refused: %+v", resp)
	}
	waitApplied(t, follower, fsm, 10, commands(1, 2, 10))
	if err := follower.Snapshot().Error(); err != nil {
		t.Fatalf("follower snapshot: %v", err)
	}
	if got := lastSnapshotIndex(t, follower); got != 10 {
		t.Fatalf("follower snapshot at %d, want 10", got)
	}
	return leader, follower, fsm
}

// TestAppendWithPrevLogInsideTheAppliedPrefix: a new leader (term 2) whose
// log shares 1..10 with the follower appends from 10. The follower has
// compacted entry 10 into its snapshot. Unpatched raft looks entry 10 up,
// does not find it and refuses; the leader then walks back below 10, past
// its own first entry, and sends its own older snapshot, which rewinds the
// follower (see the next test). Patched, an entry the follower has applied
// is committed, so the new leader holds the same entry: the append is taken.
func TestAppendWithPrevLogInsideTheAppliedPrefix(t *testing.T) {
	leader, follower, fsm := compactedFollower(t, NewInmemSnapshotStore())

	// Every previous index inside the applied prefix matches, including
	// ones long compacted, and the entries the follower has applied are
	// skipped, not looked up.
	for _, prev := range []uint64{10, 7} {
		resp := leader.appendEntries(2, prev, 1, append(leader.entries(1, prev+1, 10), leader.entries(2, 11, 12)...), 12)
		if !resp.Success {
			t.Fatalf("append with PrevLogEntry=%d (applied, compacted) refused: %+v", prev, resp)
		}
	}
	// 11..20 of term 1 were never committed; term 2's 11..12 replace them.
	waitApplied(t, follower, fsm, 12, append(commands(1, 2, 10), commands(2, 11, 12)...))
	if got := follower.LastIndex(); got != 12 {
		t.Fatalf("LastIndex = %d, want 12: the uncommitted suffix of term 1 must be gone", got)
	}
}

// TestCommitStopsAtTheLastMatchedEntry: the follower holds 11..20 of term
// 1, never committed; the leader of term 2 committed its own 11..30. An
// append from inside the applied prefix that ends at 10 proves nothing about
// 11..20: unpatched raft commits up to its own last index (20) and applies
// term 1's entries there. Patched, it commits only up to the last entry the
// request matched, and the next append replaces 11..20 before they apply.
func TestCommitStopsAtTheLastMatchedEntry(t *testing.T) {
	leader, follower, fsm := compactedFollower(t, NewInmemSnapshotStore())

	if resp := leader.appendEntries(2, 5, 1, leader.entries(1, 6, 10), 30); !resp.Success {
		t.Fatalf("append 6..10 refused: %+v", resp)
	}
	if resp := leader.appendEntries(2, 10, 1, nil, 30); !resp.Success {
		t.Fatalf("empty append from 10 refused: %+v", resp)
	}
	if got := follower.AppliedIndex(); got != 10 {
		t.Fatalf("applied index %d after appends that matched up to 10, want 10", got)
	}
	if resp := leader.appendEntries(2, 10, 1, leader.entries(2, 11, 12), 30); !resp.Success {
		t.Fatalf("append 11..12 of term 2 refused: %+v", resp)
	}
	waitApplied(t, follower, fsm, 12, append(commands(1, 2, 10), commands(2, 11, 12)...))
	if got := follower.LastIndex(); got != 12 {
		t.Fatalf("LastIndex = %d, want 12", got)
	}
}

// TestInstallSnapshotOlderThanApplied: a leader sends a snapshot at 5 to a
// follower that has applied 10. Unpatched raft restores it: the follower's
// state goes back to index 5 and its applied index with it, so a read it
// serves after waiting for index 10 can see older data than a read before.
// Patched, the follower already holds everything the snapshot does and
// answers success without touching its state; the leader goes on from 6.
func TestInstallSnapshotOlderThanApplied(t *testing.T) {
	leader, follower, fsm := compactedFollower(t, NewInmemSnapshotStore())

	if resp := leader.installSnapshot(2, 5); !resp.Success {
		t.Fatalf("snapshot at 5 refused: %+v", resp)
	}
	if got := follower.AppliedIndex(); got != 10 {
		t.Fatalf("applied index after a snapshot at 5 = %d, want 10 (never rewound)", got)
	}
	if got := len(fsm.Logs()); got != 9 {
		t.Fatalf("FSM holds %d commands after a snapshot at 5, want 9 (not restored)", got)
	}
	if resp := leader.appendEntries(2, 5, 1, append(leader.entries(1, 6, 10), leader.entries(2, 11, 12)...), 12); !resp.Success {
		t.Fatalf("append after the snapshot refused: %+v", resp)
	}
	waitApplied(t, follower, fsm, 12, append(commands(1, 2, 10), commands(2, 11, 12)...))
}

// gatedSnapshots holds the follower's own next snapshot in its first Write
// until released, as a slow Persist would: an InstallSnapshot from the
// leader then lands while it is being written.
type gatedSnapshots struct {
	SnapshotStore
	mu      sync.Mutex
	armed   bool
	entered chan struct{}
	release chan struct{}
}

func newGatedSnapshots() *gatedSnapshots {
	return &gatedSnapshots{SnapshotStore: NewInmemSnapshotStore(),
		entered: make(chan struct{}), release: make(chan struct{})}
}

func (g *gatedSnapshots) arm() { g.mu.Lock(); g.armed = true; g.mu.Unlock() }

func (g *gatedSnapshots) Create(version SnapshotVersion, index, term uint64, configuration Configuration,
	configurationIndex uint64, trans Transport) (SnapshotSink, error) {
	sink, err := g.SnapshotStore.Create(version, index, term, configuration, configurationIndex, trans)
	g.mu.Lock()
	defer g.mu.Unlock()
	if err != nil || !g.armed {
		return sink, err
	}
	g.armed = false
	return &gatedSink{SnapshotSink: sink, g: g}, nil
}

type gatedSink struct {
	SnapshotSink
	g      *gatedSnapshots
	waited bool
}

func (s *gatedSink) Write(p []byte) (int, error) {
	if !s.waited {
		s.waited = true
		close(s.g.entered)
		<-s.g.release
	}
	return s.SnapshotSink.Write(p)
}

// TestOwnSnapshotFinishingAfterAnInstall: the follower starts a snapshot of
// its state at 12 and, while it is being written, installs the leader's
// snapshot at `install`. Unpatched raft then records its own snapshot as the
// latest whatever was installed meanwhile:
//   - after an install at 15 (newer), the last snapshot goes back to 12 and
//     the node's latest snapshot no longer covers the log it dropped;
//   - after an install at 5 (older, restored by unpatched raft), the last
//     index reads 12 while the log holds nothing past 5 and 6..12 are not
//     applied; the next append that commits past 5 panics with "log not
//     found" in processLogs (seen once in CI, store/internal/server).
//
// Patched, an install never rewinds (the one at 5 is a no-op), and a
// snapshot that an install overtook is cancelled.
func TestOwnSnapshotFinishingAfterAnInstall(t *testing.T) {
	for _, install := range []uint64{5, 15} {
		t.Run(fmt.Sprintf("install-at-%d", install), func(t *testing.T) {
			snaps := newGatedSnapshots()
			leader, follower, fsm := compactedFollower(t, snaps)
			if resp := leader.appendEntries(1, 20, 1, nil, 12); !resp.Success {
				t.Fatalf("commit to 12 refused: %+v", resp)
			}
			waitApplied(t, follower, fsm, 12, commands(1, 2, 12))

			snaps.arm()
			own := follower.Snapshot()
			<-snaps.entered // the follower's snapshot at 12 is being written
			if resp := leader.installSnapshot(2, install); !resp.Success {
				t.Fatalf("snapshot at %d refused: %+v", install, resp)
			}
			close(snaps.release)
			err := own.Error()

			newest := max(install, 12)
			if got := lastSnapshotIndex(t, follower); got != newest {
				t.Fatalf("last snapshot index %d after own snapshot at 12 and install at %d (own snapshot error %v), want %d",
					got, install, err, newest)
			}
			if install > 12 && err == nil {
				t.Fatalf("own snapshot at 12 succeeded after the install at %d", install)
			}
			if install < 12 && err != nil {
				t.Fatalf("own snapshot at 12 failed: %v", err)
			}
			if got := follower.AppliedIndex(); got != newest {
				t.Fatalf("applied index %d, want %d", got, newest)
			}

			if install < 12 {
				// The append that panicked unpatched: it matches the
				// follower's own snapshot at 12 and commits past it.
				if resp := leader.appendEntries(2, 12, 1, nil, 14); !resp.Success {
					t.Fatalf("append from the follower's snapshot index refused: %+v", resp)
				}
			}

			// The leader goes on from its snapshot, committing everything
			// it sends: the follower must apply it.
			last := newest + 2
			resp := leader.appendEntries(2, install, 1, append(leader.entries(1, install+1, newest), leader.entries(2, newest+1, last)...), last)
			if !resp.Success {
				t.Fatalf("append from the installed snapshot refused: %+v", resp)
			}
			want := append(commands(1, 2, newest), commands(2, newest+1, last)...)
			if install > 12 {
				// The follower's state came from the snapshot, whose
				// commands MockFSM restores as they were.
				want = append(commands(1, 2, install), commands(2, install+1, last)...)
			}
			waitApplied(t, follower, fsm, last, want)
		})
	}
}

// TestSnapshotsInstallsAndAppendsInterleaved runs the follower's own
// snapshots in a loop, with the store's log and snapshot stores, while the
// leader installs snapshots above and at or below the applied index and
// appends from inside the applied prefix: every append must be taken, and
// every entry applied once and in order.
func TestSnapshotsInstallsAndAppendsInterleaved(t *testing.T) {
	conf := DefaultConfig()
	conf.TrailingLogs = 2
	conf.SnapshotThreshold = 1 << 30
	leader, follower, fsm := newFollower(t, conf, &publishingSnapshots{})
	if resp := leader.appendEntries(2, 0, 0, leader.entries(1, 1, 10), 10); !resp.Success {
		t.Fatalf("initial append refused: %+v", resp)
	}
	stop := make(chan struct{})
	snapshotted := make(chan int)
	go func() {
		n := 0
		defer func() { snapshotted <- n }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			_ = follower.Snapshot().Error() // overtaken or nothing new: fine
			n++
		}
	}()
	last := uint64(10)
	for i := range 400 {
		switch {
		case i%7 == 3:
			if resp := leader.installSnapshot(2, last+10); !resp.Success {
				t.Fatalf("install at %d refused: %+v", last+10, resp)
			}
			last += 10
			continue
		case i%11 == 5:
			if resp := leader.installSnapshot(2, last-3); !resp.Success {
				t.Fatalf("install at %d (applied) refused: %+v", last-3, resp)
			}
		}
		prev := last - uint64(i%4)
		if resp := leader.appendEntries(2, prev, 1, leader.entries(1, prev+1, last+5), last+5); !resp.Success {
			t.Fatalf("append %d..%d refused: %+v (applied %d, last index %d, last snapshot %d)", prev+1, last+5, resp,
				follower.AppliedIndex(), follower.LastIndex(), lastSnapshotIndex(t, follower))
		}
		last += 5
	}
	close(stop)
	t.Logf("%d own snapshots taken or refused meanwhile", <-snapshotted)
	waitApplied(t, follower, fsm, last, commands(1, 2, last))
}

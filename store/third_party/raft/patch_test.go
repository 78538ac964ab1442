// Copyright (c) ephemeral-store authors
// SPDX-License-Identifier: MPL-2.0

package raft

// Regression test for the ephemeral-store patch described in PATCH.md
// (hashicorp/raft issue #697): after InstallSnapshot on a MonotonicLogStore
// the follower's cached last log must be reset to the snapshot.

import (
	"bytes"
	"fmt"
	"testing"
	"time"
)

// monotonicInmem mirrors ephemeral-store's log store: raft's InmemStore
// declared monotonic.
type monotonicInmem struct{ *InmemStore }

func (monotonicInmem) IsMonotonic() bool { return true }

// bufferSink is a SnapshotSink that keeps the snapshot bytes in memory.
type bufferSink struct{ bytes.Buffer }

func (*bufferSink) ID() string    { return "buffer" }
func (*bufferSink) Cancel() error { return nil }
func (*bufferSink) Close() error  { return nil }

// TestInstallSnapshotMonotonicResetsLastLog drives one follower through a fake
// leader: entries 1..L (uncommitted), a snapshot at S < L, then an append
// whose PrevLogEntry is the old last entry L. Before the patch the follower
// accepted it against its stale cached last log and panicked with "log not
// found" at S+1 in processLogs. With the patch it must refuse (reporting S as
// its last log), then accept the entries after S and apply them.
func TestInstallSnapshotMonotonicResetsLastLog(t *testing.T) {
	const (
		term = uint64(1)
		L    = uint64(10) // last entry the follower holds before the snapshot
		S    = uint64(6)  // snapshot index, S < L
		last = L + 2      // last entry sent after the snapshot
	)

	leaderAddr, leaderTrans := NewInmemTransportWithTimeout("leader", 5*time.Second)
	followerAddr, followerTrans := NewInmemTransportWithTimeout("follower", 5*time.Second)
	leaderTrans.Connect(followerAddr, followerTrans)
	followerTrans.Connect(leaderAddr, leaderTrans)

	// The follower is a non-voter, so it never starts an election while the
	// fake leader is silent.
	configuration := Configuration{Servers: []Server{
		{Suffrage: Voter, ID: "leader", Address: leaderAddr},
		{Suffrage: Nonvoter, ID: "follower", Address: followerAddr},
	}}

	conf := DefaultConfig()
	conf.LocalID = "follower"
	conf.Logger = newTestLoggerWithPrefix(t, "follower")
	fsm := &MockFSM{}
	logs := monotonicInmem{NewInmemStore()}
	follower, err := NewRaft(conf, fsm, logs, NewInmemStore(), NewInmemSnapshotStore(), followerTrans)
	if err != nil {
		t.Fatalf("NewRaft: %v", err)
	}
	t.Cleanup(func() {
		if err := follower.Shutdown().Error(); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})

	// The leader's log: 1 is the configuration, 2.. are commands.
	entry := func(i uint64) *Log {
		if i == 1 {
			return &Log{Index: 1, Term: term, Type: LogConfiguration, Data: EncodeConfiguration(configuration)}
		}
		return &Log{Index: i, Term: term, Type: LogCommand, Data: []byte(fmt.Sprintf("cmd-%d", i))}
	}
	entries := func(from, to uint64) []*Log {
		var out []*Log
		for i := from; i <= to; i++ {
			out = append(out, entry(i))
		}
		return out
	}
	header := RPCHeader{
		ProtocolVersion: ProtocolVersionMax,
		ID:              []byte("leader"),
		Addr:            leaderTrans.EncodePeer("leader", leaderAddr),
	}
	appendEntries := func(prev uint64, es []*Log, commit uint64) *AppendEntriesResponse {
		t.Helper()
		req := &AppendEntriesRequest{
			RPCHeader:         header,
			Term:              term,
			PrevLogEntry:      prev,
			PrevLogTerm:       term,
			Entries:           es,
			LeaderCommitIndex: commit,
		}
		if prev == 0 {
			req.PrevLogTerm = 0
		}
		var resp AppendEntriesResponse
		if err := leaderTrans.AppendEntries("follower", followerAddr, req, &resp); err != nil {
			t.Fatalf("AppendEntries(prev=%d): %v", prev, err)
		}
		return &resp
	}

	// 1. Entries 1..L, nothing committed.
	if resp := appendEntries(0, entries(1, L), 0); !resp.Success {
		t.Fatalf("initial append refused: %+v", resp)
	}
	if got := follower.LastIndex(); got != L {
		t.Fatalf("LastIndex after initial append = %d, want %d", got, L)
	}

	// 2. InstallSnapshot at S: the state of a leader FSM that applied 2..S.
	leaderFSM := &MockFSM{}
	for _, l := range entries(2, S) {
		leaderFSM.Apply(l)
	}
	snap, err := leaderFSM.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	var sink bufferSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatalf("Persist: %v", err)
	}
	data := sink.Bytes()
	var snapResp InstallSnapshotResponse
	if err := leaderTrans.InstallSnapshot("follower", followerAddr, &InstallSnapshotRequest{
		RPCHeader:          header,
		SnapshotVersion:    SnapshotVersionMax,
		Term:               term,
		LastLogIndex:       S,
		LastLogTerm:        term,
		Configuration:      EncodeConfiguration(configuration),
		ConfigurationIndex: 1,
		Size:               int64(len(data)),
	}, &snapResp, bytes.NewReader(data)); err != nil {
		t.Fatalf("InstallSnapshot: %v", err)
	}
	if !snapResp.Success {
		t.Fatalf("InstallSnapshot refused: %+v", snapResp)
	}
	if n, err := logs.LastIndex(); err != nil || n != 0 {
		t.Fatalf("monotonic log store after snapshot: last index %d, err %v; want empty", n, err)
	}

	// 3. An append after the follower's pre-snapshot last entry L, committing
	// past S. Those entries are gone: the follower must refuse and report S.
	// Unpatched raft accepts this and panics in processLogs at S+1.
	stale := appendEntries(L, entries(L+1, L+1), L+1)
	if stale.Success {
		t.Fatalf("append with PrevLogEntry=%d after snapshot at %d accepted", L, S)
	}
	if stale.LastLog != S {
		t.Fatalf("refusal reports LastLog %d, want snapshot index %d", stale.LastLog, S)
	}
	if got := follower.LastIndex(); got != S {
		t.Fatalf("LastIndex after snapshot = %d, want %d", got, S)
	}

	// 4. The leader backs off to S and sends S+1..last, all committed.
	if resp := appendEntries(S, entries(S+1, last), last); !resp.Success {
		t.Fatalf("append from snapshot index refused: %+v", resp)
	}

	var want [][]byte
	for _, l := range entries(2, last) {
		want = append(want, l.Data)
	}
	start := time.Now()
	for follower.AppliedIndex() < last || len(fsm.Logs()) < len(want) {
		if time.Since(start) > 10*time.Second {
			t.Fatalf("follower applied %d (FSM %d entries), want %d (%d entries)",
				follower.AppliedIndex(), len(fsm.Logs()), last, len(want))
		}
		time.Sleep(5 * time.Millisecond)
	}
	got := fsm.Logs()
	if len(got) != len(want) {
		t.Fatalf("FSM holds %d entries, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("FSM entry %d = %q, want %q", i, got[i], want[i])
		}
	}
	if first, err := logs.FirstIndex(); err != nil || first != S+1 {
		t.Fatalf("log store first index %d, err %v; want %d", first, err, S+1)
	}
}

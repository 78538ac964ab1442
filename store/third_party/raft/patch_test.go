// Copyright (c) ephemeral-store authors
// SPDX-License-Identifier: MPL-2.0

package raft

// Regression test for the ephemeral-store patch described in PATCH.md
// (hashicorp/raft issue #697): after InstallSnapshot on a MonotonicLogStore
// the follower's cached last log must be reset to the snapshot.

import (
	"bytes"
	"testing"
)

// monotonicInmem is raft's InmemStore declared monotonic, as
// ephemeral-store's log store is (storeLikeLogs adds its DeleteRange).
type monotonicInmem struct{ *InmemStore }

func (monotonicInmem) IsMonotonic() bool { return true }

// bufferSink is a SnapshotSink that keeps the snapshot bytes in memory.
type bufferSink struct{ bytes.Buffer }

func (*bufferSink) ID() string    { return "buffer" }
func (*bufferSink) Cancel() error { return nil }
func (*bufferSink) Close() error  { return nil }

// TestInstallSnapshotMonotonicResetsLastLog drives one follower through a fake
// leader (newFollower, applied_prefix_patch_test.go): entries 1..L (uncommitted), a snapshot at S < L, then an append
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
	leader, follower, fsm := newFollower(t, DefaultConfig(), NewInmemSnapshotStore())
	logs := leader.followerLogs

	// 1. Entries 1..L, nothing committed.
	if resp := leader.appendEntries(term, 0, 0, leader.entries(term, 1, L), 0); !resp.Success {
		t.Fatalf("initial append refused: %+v", resp)
	}
	if got := follower.LastIndex(); got != L {
		t.Fatalf("LastIndex after initial append = %d, want %d", got, L)
	}

	// 2. InstallSnapshot at S: the state of a leader FSM that applied 2..S.
	if snapResp := leader.installSnapshot(term, S); !snapResp.Success {
		t.Fatalf("InstallSnapshot refused: %+v", snapResp)
	}
	if n, err := logs.LastIndex(); err != nil || n != 0 {
		t.Fatalf("monotonic log store after snapshot: last index %d, err %v; want empty", n, err)
	}

	// 3. An append after the follower's pre-snapshot last entry L, committing
	// past S. Those entries are gone: the follower must refuse and report S.
	// Unpatched raft accepts this and panics in processLogs at S+1.
	stale := leader.appendEntries(term, L, term, leader.entries(term, L+1, L+1), L+1)
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
	if resp := leader.appendEntries(term, S, term, leader.entries(term, S+1, last), last); !resp.Success {
		t.Fatalf("append from snapshot index refused: %+v", resp)
	}
	waitApplied(t, follower, fsm, last, commands(term, 2, last))
	if first, err := logs.FirstIndex(); err != nil || first != S+1 {
		t.Fatalf("log store first index %d, err %v; want %d", first, err, S+1)
	}
}

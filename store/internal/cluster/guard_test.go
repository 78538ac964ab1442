package cluster

import (
	"io"
	"testing"

	"github.com/hashicorp/raft"
)

// A fresh incarnation must neither vote nor take replication; a member
// replicates; only a voter of its own configuration votes.
func TestGuardRefusesWhatAnIncarnationMayNotDo(t *testing.T) {
	rpcs := map[string]any{
		"vote":      &raft.RequestVoteRequest{},
		"pre-vote":  &raft.RequestPreVoteRequest{},
		"timeout":   &raft.TimeoutNowRequest{},
		"append":    &raft.AppendEntriesRequest{RPCHeader: raft.RPCHeader{ID: []byte("n0/a")}},
		"snapshot":  &raft.InstallSnapshotRequest{RPCHeader: raft.RPCHeader{ID: []byte("n0/a")}},
		"stranger":  &raft.AppendEntriesRequest{RPCHeader: raft.RPCHeader{ID: []byte("n9/z")}},
		"unrelated": struct{}{},
	}
	tests := []struct {
		name            string
		voter, member   bool
		allowed, denied []string
	}{
		{"fresh incarnation", false, false, []string{"unrelated"}, []string{"vote", "pre-vote", "timeout", "append", "snapshot", "stranger"}},
		{"joined non-voter", false, true, []string{"append", "snapshot", "unrelated"}, []string{"vote", "pre-vote", "timeout", "stranger"}},
		{"voter", true, true, []string{"vote", "pre-vote", "timeout", "append", "snapshot", "unrelated"}, []string{"stranger"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			known := map[raft.ServerID]bool{"n0/a": true}
			g := &guardedTransport{
				canVote:      func() bool { return tt.voter },
				canReplicate: func(sender raft.ServerID, _ uint64) bool { return tt.member && known[sender] },
			}
			for _, name := range tt.allowed {
				if !g.allowed(raft.RPC{Command: rpcs[name]}) {
					t.Errorf("%s refused", name)
				}
			}
			for _, name := range tt.denied {
				if g.allowed(raft.RPC{Command: rpcs[name]}) {
					t.Errorf("%s allowed", name)
				}
			}
		})
	}
}

func TestFsmEntryBetweenSkipsNoOps(t *testing.T) {
	logs := &monotonicStore{raft.NewInmemStore()}
	_ = logs.StoreLogs([]*raft.Log{
		{Index: 1, Type: raft.LogCommand},
		{Index: 2, Type: raft.LogNoop},
		{Index: 3, Type: raft.LogBarrier},
		{Index: 4, Type: raft.LogConfiguration},
	})
	if fsmEntryBetween(logs, 1, 3) {
		t.Error("(1,3] holds only a no-op and a barrier: nothing for the FSM")
	}
	if !fsmEntryBetween(logs, 1, 4) {
		t.Error("(1,4] holds a configuration entry the FSM sees")
	}
	if !fsmEntryBetween(logs, 0, 2) {
		t.Error("(0,2] holds a command")
	}
	_ = logs.DeleteRange(1, 4)
	if fsmEntryBetween(logs, 0, 4) {
		t.Error("compacted entries were applied before compaction")
	}
}

// Replication is taken from servers of this node's own configuration, or,
// before the log has brought one, from the servers the leader named when it
// added this node.
func TestSenderKnownOnlyInOwnCluster(t *testing.T) {
	cfg := raft.Configuration{Servers: []raft.Server{voter("n0/a", "n0:8088"), voter("n1/b", "n1:8088")}}
	joined := map[raft.ServerID]bool{"n2/c": true}
	tests := []struct {
		sender raft.ServerID
		want   bool
	}{
		{"n0/a", true},
		{"n1/b", true},
		{"n2/c", true},
		{"n3/other-cluster", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := senderKnown(cfg, joined, tt.sender); got != tt.want {
			t.Errorf("senderKnown(%q) = %v, want %v", tt.sender, got, tt.want)
		}
	}
}

func TestDeleteRangeOnAnEmptyLogKeepsItsIndexes(t *testing.T) {
	logs := &monotonicStore{raft.NewInmemStore()}
	if err := logs.DeleteRange(0, 1000); err != nil {
		t.Fatal(err)
	}
	if last, _ := logs.LastIndex(); last != 0 {
		t.Fatalf("last index of an empty log after DeleteRange(0, 1000) = %d, want 0", last)
	}
	_ = logs.StoreLogs([]*raft.Log{{Index: 5}, {Index: 6}, {Index: 7}})
	if err := logs.DeleteRange(0, 6); err != nil {
		t.Fatal(err)
	}
	first, _ := logs.FirstIndex()
	last, _ := logs.LastIndex()
	if first != 7 || last != 7 {
		t.Fatalf("after DeleteRange(0, 6) of 5..7: first %d last %d, want 7 7", first, last)
	}
	if err := logs.DeleteRange(7, ^uint64(0)); err != nil {
		t.Fatal(err)
	}
	if last, _ := logs.LastIndex(); last != 0 {
		t.Fatalf("a range to 2^64-1 must empty the log, last index %d", last)
	}
}

// A node that joined through the leader of term 6 refuses appends and
// heartbeats of term 5 even from a server its join named: that is a leader
// frozen and deposed meanwhile, which must not count this node as its
// follower (a read it verifies through it would be stale).
func TestJoinedNodeRefusesReplicationFromAnOlderTerm(t *testing.T) {
	inc := &incarnation{id: "es-2/joined", r: unbootstrappedRaft(t, "es-2/joined"),
		joinedVia: map[raft.ServerID]bool{"es-0/old-leader": true, "es-1/new-leader": true}, joinTerm: 6}
	inc.member.Store(true)
	g := &guardedTransport{canVote: func() bool { return false }, canReplicate: inc.replicationAllowed}
	heartbeat := func(from string, term uint64) raft.RPC {
		return raft.RPC{Command: &raft.AppendEntriesRequest{RPCHeader: raft.RPCHeader{ID: []byte(from)}, Term: term}}
	}
	snapshot := func(from string, term uint64) raft.RPC {
		return raft.RPC{Command: &raft.InstallSnapshotRequest{RPCHeader: raft.RPCHeader{ID: []byte(from)}, Term: term}}
	}
	tests := []struct {
		name string
		rpc  raft.RPC
		want bool
	}{
		{"heartbeat of the deposed leader's older term", heartbeat("es-0/old-leader", 5), false},
		{"snapshot of the deposed leader's older term", snapshot("es-0/old-leader", 5), false},
		{"the joining term", heartbeat("es-1/new-leader", 6), true},
		{"a later term, even from the old leader re-elected", heartbeat("es-0/old-leader", 7), true},
		{"a stranger in a later term", heartbeat("es-9/other", 9), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := g.allowed(tt.rpc); got != tt.want {
				t.Errorf("allowed = %v, want %v", got, tt.want)
			}
		})
	}
}

// unbootstrappedRaft is a Raft with in-memory stores and transport and no
// configuration yet, as an incarnation has before its join brings one.
func unbootstrappedRaft(t *testing.T, id raft.ServerID) *raft.Raft {
	t.Helper()
	cfg := raft.DefaultConfig()
	cfg.LocalID = id
	cfg.LogOutput = io.Discard
	store := raft.NewInmemStore()
	_, trans := raft.NewInmemTransport(raft.ServerAddress(id))
	r, err := raft.NewRaft(cfg, &raftFSM{}, store, store, raft.NewInmemSnapshotStore(), trans)
	if err != nil {
		t.Fatalf("start raft: %v", err)
	}
	t.Cleanup(func() { _ = r.Shutdown().Error() })
	return r
}

package cluster

import (
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
		"append":    &raft.AppendEntriesRequest{},
		"snapshot":  &raft.InstallSnapshotRequest{},
		"unrelated": struct{}{},
	}
	tests := []struct {
		name            string
		voter, member   bool
		allowed, denied []string
	}{
		{"fresh incarnation", false, false, []string{"unrelated"}, []string{"vote", "pre-vote", "timeout", "append", "snapshot"}},
		{"joined non-voter", false, true, []string{"append", "snapshot", "unrelated"}, []string{"vote", "pre-vote", "timeout"}},
		{"voter", true, true, []string{"vote", "pre-vote", "timeout", "append", "snapshot", "unrelated"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := &guardedTransport{canVote: func() bool { return tt.voter }, canReplicate: func() bool { return tt.member }}
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

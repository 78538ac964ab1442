// Copyright (c) ephemeral-store authors
// SPDX-License-Identifier: MPL-2.0

package raft

// Regression test for the "vouched candidates" patch described in PATCH.md:
// a voter grants a vote and a pre-vote to a candidate its own configuration
// does not list only when Config.CandidateVouched vouches for it.

import (
	"testing"
	"time"
)

func TestVouchedCandidateGetsTheVote(t *testing.T) {
	for _, tt := range []struct {
		name    string
		vouched func(ServerID) bool
		want    bool
	}{
		{"no hook: upstream refuses a candidate outside the configuration", nil, false},
		{"a hook that does not vouch for it", func(ServerID) bool { return false }, false},
		{"vouched for", func(id ServerID) bool { return id == "x2" }, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			voterAddr, voterTrans := NewInmemTransportWithTimeout("s", 5*time.Second)
			candAddr, candTrans := NewInmemTransportWithTimeout("x2", 5*time.Second)
			candTrans.Connect(voterAddr, voterTrans)
			voterTrans.Connect(candAddr, candTrans)

			// The voter's stale configuration: x1 was replaced by x2 while
			// it was cut off. b and c are unreachable, so it never leads.
			conf := DefaultConfig()
			conf.LocalID = "s"
			conf.Logger = newTestLoggerWithPrefix(t, "s")
			conf.HeartbeatTimeout = time.Hour // stays a follower: no pre-vote of its own
			conf.ElectionTimeout = time.Hour
			conf.LeaderLeaseTimeout = time.Hour
			conf.CandidateVouched = tt.vouched
			store := NewInmemStore()
			configuration := Configuration{Servers: []Server{
				{Suffrage: Voter, ID: "s", Address: voterAddr},
				{Suffrage: Voter, ID: "x1", Address: "x1"},
				{Suffrage: Voter, ID: "b", Address: "b"},
			}}
			if err := BootstrapCluster(conf, store, store, NewInmemSnapshotStore(), voterTrans, configuration); err != nil {
				t.Fatalf("bootstrap: %v", err)
			}
			voter, err := NewRaft(conf, &MockFSM{}, store, store, NewInmemSnapshotStore(), voterTrans)
			if err != nil {
				t.Fatalf("NewRaft: %v", err)
			}
			t.Cleanup(func() { _ = voter.Shutdown().Error() })

			header := RPCHeader{ProtocolVersion: ProtocolVersionMax, ID: []byte("x2"), Addr: []byte(candAddr)}
			var pre RequestPreVoteResponse
			if err := candTrans.RequestPreVote("s", voterAddr, &RequestPreVoteRequest{RPCHeader: header, Term: 5, LastLogIndex: 100, LastLogTerm: 4}, &pre); err != nil {
				t.Fatalf("pre-vote: %v", err)
			}
			if pre.Granted != tt.want {
				t.Errorf("pre-vote granted = %v, want %v", pre.Granted, tt.want)
			}
			var vote RequestVoteResponse
			if err := candTrans.RequestVote("s", voterAddr, &RequestVoteRequest{RPCHeader: header, Term: 5, LastLogIndex: 100, LastLogTerm: 4}, &vote); err != nil {
				t.Fatalf("vote: %v", err)
			}
			if vote.Granted != tt.want {
				t.Errorf("vote granted = %v, want %v", vote.Granted, tt.want)
			}
		})
	}
}

// GetConfiguration's Index reports the log index of the latest
// configuration (ephemeral-store patch, configuration index: upstream
// v1.8.0 always answers 0).
func TestGetConfigurationReportsItsIndex(t *testing.T) {
	c := MakeCluster(3, t, nil)
	defer c.Close()
	leader := c.Leader()
	before := leader.GetConfiguration()
	if err := before.Error(); err != nil {
		t.Fatal(err)
	}
	if before.Index() == 0 {
		t.Fatalf("the bootstrapped configuration's index is 0")
	}
	follower := c.Followers()[0]
	if err := leader.RemoveServer(follower.localID, 0, 0).Error(); err != nil {
		t.Fatal(err)
	}
	after := leader.GetConfiguration()
	if after.Index() <= before.Index() {
		t.Fatalf("index after a configuration change = %d, want > %d", after.Index(), before.Index())
	}
}

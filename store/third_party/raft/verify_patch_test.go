// Copyright (c) ephemeral-store authors
// SPDX-License-Identifier: MPL-2.0

package raft

// Regression tests for the "verify freshness" patch described in PATCH.md:
// VerifyLeader may count only answers of voters to heartbeats sent after the
// verify was made. Each test drives a real leader whose followers are fakes
// the test answers by hand over InmemTransport.

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// fakeFollower answers one address's RPCs the way a test tells it to.
type fakeFollower struct {
	id    ServerID
	addr  ServerAddress
	trans *InmemTransport

	mu sync.Mutex
	// answer decides the response to an AppendEntries; nil answers success
	// in the request's term.
	answer func(req *AppendEntriesRequest, rpc RPC) (resp *AppendEntriesResponse, err error, hold bool)
}

// isHeartbeat tells the heartbeat goroutine's requests (term and leader only)
// from replication's, which carry the log position and commit index.
func isHeartbeat(req *AppendEntriesRequest) bool {
	return len(req.Entries) == 0 && req.PrevLogEntry == 0 && req.LeaderCommitIndex == 0
}

func (f *fakeFollower) setAnswer(a func(req *AppendEntriesRequest, rpc RPC) (*AppendEntriesResponse, error, bool)) {
	f.mu.Lock()
	f.answer = a
	f.mu.Unlock()
}

func (f *fakeFollower) serve(stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case rpc := <-f.trans.Consumer():
			switch req := rpc.Command.(type) {
			case *RequestPreVoteRequest:
				rpc.Respond(&RequestPreVoteResponse{Term: req.Term, Granted: true}, nil)
			case *RequestVoteRequest:
				rpc.Respond(&RequestVoteResponse{Term: req.Term, Granted: true}, nil)
			case *AppendEntriesRequest:
				f.mu.Lock()
				a := f.answer
				f.mu.Unlock()
				if a == nil {
					rpc.Respond(&AppendEntriesResponse{Term: req.Term, Success: true, LastLog: lastOf(req)}, nil)
					continue
				}
				resp, err, hold := a(req, rpc)
				if !hold {
					rpc.Respond(resp, err)
				}
			default:
				rpc.Respond(nil, fmt.Errorf("fake follower: unexpected %T", req))
			}
		}
	}
}

func lastOf(req *AppendEntriesRequest) uint64 {
	if n := len(req.Entries); n > 0 {
		return req.Entries[n-1].Index
	}
	return req.PrevLogEntry
}

// leaderWithFakes starts a real node that bootstraps servers (itself the
// voter "leader" plus the fakes) and waits until it leads and has committed
// an entry of its term. It replicates without a pipeline.
func leaderWithFakes(t *testing.T, fakes []*fakeFollower, suffrage map[ServerID]ServerSuffrage) *Raft {
	t.Helper()
	return leaderWithFakesOver(t, fakes, suffrage, func(trans *InmemTransport) Transport { return noPipeline{trans} })
}

// leaderWithFakesOver is leaderWithFakes with the leader's transport made by
// wrap from its InmemTransport. Its cleanup waits a bounded time for Shutdown
// and fails the test if Shutdown hangs, instead of hanging the test binary;
// the leader's log goes quiet once the test is over, since a hung node may
// still log then.
func leaderWithFakesOver(t *testing.T, fakes []*fakeFollower, suffrage map[ServerID]ServerSuffrage, wrap func(*InmemTransport) Transport) *Raft {
	t.Helper()
	addr, trans := NewInmemTransportWithTimeout("leader", 2*time.Second)
	servers := []Server{{Suffrage: Voter, ID: "leader", Address: addr}}
	stop := make(chan struct{})
	for _, f := range fakes {
		trans.Connect(f.addr, f.trans)
		f.trans.Connect(addr, trans)
		s, ok := suffrage[f.id]
		if !ok {
			s = Voter
		}
		servers = append(servers, Server{Suffrage: s, ID: f.id, Address: f.addr})
		go f.serve(stop)
	}
	conf := DefaultConfig()
	conf.LocalID = "leader"
	logOut := &untilOver{tb: t}
	conf.Logger = hclog.New(&hclog.LoggerOptions{Name: "leader", Output: logOut})
	conf.HeartbeatTimeout = 100 * time.Millisecond
	conf.ElectionTimeout = 100 * time.Millisecond
	conf.LeaderLeaseTimeout = 100 * time.Millisecond
	logs, stable, snaps := NewInmemStore(), NewInmemStore(), NewInmemSnapshotStore()
	leaderTrans := wrap(trans)
	if err := BootstrapCluster(conf, logs, stable, snaps, leaderTrans, Configuration{Servers: servers}); err != nil {
		t.Fatalf("BootstrapCluster: %v", err)
	}
	r, err := NewRaft(conf, &MockFSM{}, logs, stable, snaps, leaderTrans)
	if err != nil {
		t.Fatalf("NewRaft: %v", err)
	}
	t.Cleanup(func() {
		defer logOut.over()
		if !shutdownWithin(r, 10*time.Second) {
			t.Error("leader's Shutdown did not return within 10s")
		}
		close(stop)
	})
	deadline := time.Now().Add(10 * time.Second)
	for r.State() != Leader || r.Barrier(time.Second).Error() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("no leadership: state %v", r.State())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return r
}

// shutdownWithin shuts r down and reports whether Shutdown returned within d
// (measured on the monotonic clock). On false a goroutine stays blocked in
// Shutdown; the test has failed by then.
func shutdownWithin(r *Raft, d time.Duration) bool {
	done := make(chan struct{})
	go func() {
		_ = r.Shutdown().Error()
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

// untilOver writes log lines to the test's log until over is called, and
// drops them after: testing panics on a Log after the test completed.
type untilOver struct {
	mu   sync.Mutex
	tb   testing.TB
	done bool
}

func (u *untilOver) Write(p []byte) (int, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if !u.done {
		u.tb.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

func (u *untilOver) over() {
	u.mu.Lock()
	u.done = true
	u.mu.Unlock()
}

// noPipeline runs replication one append at a time, without a pipeline, so
// that each append's answer is in before the next is sent.
type noPipeline struct{ *InmemTransport }

func (noPipeline) AppendEntriesPipeline(ServerID, ServerAddress) (AppendPipeline, error) {
	return nil, ErrPipelineReplicationNotSupported
}

func newFake(id string) *fakeFollower {
	addr, trans := NewInmemTransportWithTimeout(ServerAddress(id), 2*time.Second)
	return &fakeFollower{id: ServerID(id), addr: addr, trans: trans}
}

var errCut = errors.New("cut off")

// cutOff answers every AppendEntries with a transport error.
func cutOff(*AppendEntriesRequest, RPC) (*AppendEntriesResponse, error, bool) {
	return &AppendEntriesResponse{}, errCut, false
}

// TestVerifyLeaderIgnoresAnswersToHeartbeatsSentBeforeIt: a heartbeat to A is
// in flight (its answer "yes, you lead" held back, as in the socket of a
// leader frozen by SIGSTOP), then a verify is made, then A follows a newer
// leader and the held answer arrives. Upstream hashicorp/raft counts the held
// answer for the verify, which succeeds with a quorum of 2 of 3 (itself and
// A) although A no longer follows it. With the patch that answer counts only
// for verifies made before it was sent; the verify's own heartbeat is refused
// and the verify fails.
func TestVerifyLeaderIgnoresAnswersToHeartbeatsSentBeforeIt(t *testing.T) {
	a, b := newFake("a"), newFake("b")
	r := leaderWithFakes(t, []*fakeFollower{a, b}, nil)
	b.setAnswer(cutOff)

	held := make(chan RPC, 1)
	release := make(chan struct{})
	var deposed sync.Once
	var newerTerm uint64
	a.setAnswer(func(req *AppendEntriesRequest, rpc RPC) (*AppendEntriesResponse, error, bool) {
		if isHeartbeat(req) {
			select {
			case held <- rpc:
				return nil, nil, true // answered below, after the verify was made
			default:
			}
			// A follows a newer leader now.
			deposed.Do(func() { newerTerm = req.Term + 1 })
			return &AppendEntriesResponse{Term: newerTerm, Success: false}, nil, false
		}
		// Replication answers wait until the verify is settled, so that
		// only heartbeats decide it.
		go func() {
			<-release
			rpc.Respond(&AppendEntriesResponse{Term: req.Term, Success: true, LastLog: lastOf(req)}, nil)
		}()
		return nil, nil, true
	})
	defer close(release)

	var stale RPC
	select {
	case stale = <-held:
	case <-time.After(10 * time.Second):
		t.Fatal("no heartbeat to a")
	}
	f := r.VerifyLeader()
	staleReq := stale.Command.(*AppendEntriesRequest)
	stale.Respond(&AppendEntriesResponse{Term: staleReq.Term, Success: true}, nil)

	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("VerifyLeader succeeded on an answer to a heartbeat sent before it; the follower follows a newer leader")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("VerifyLeader did not return")
	}
}

// TestVerifyLeaderCountsVotersOnly: both other voters are cut off and a
// non-voter still answers. Upstream counts the non-voter's answer towards
// the voters' quorum (2 of 3) and the verify succeeds; with the patch it
// fails once the leader's lease runs out.
func TestVerifyLeaderCountsVotersOnly(t *testing.T) {
	a, b, learner := newFake("a"), newFake("b"), newFake("learner")
	r := leaderWithFakes(t, []*fakeFollower{a, b, learner}, map[ServerID]ServerSuffrage{"learner": Nonvoter})
	a.setAnswer(cutOff)
	b.setAnswer(cutOff)

	done := make(chan error, 1)
	go func() { done <- r.VerifyLeader().Error() }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("VerifyLeader succeeded with one voter of three and a non-voter")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("VerifyLeader did not return")
	}
}

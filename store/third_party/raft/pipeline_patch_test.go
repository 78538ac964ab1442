// Copyright (c) ephemeral-store authors
// SPDX-License-Identifier: MPL-2.0

package raft

// Regression test for the "pipeline abort" patch described in PATCH.md: when
// a follower refuses a pipelined append, the leader must drop the pipeline
// and go back to one append at a time, even with more appends waiting to
// enter the pipeline.

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// scriptedPipeline is an AppendPipeline with the back-pressure of the
// NetworkTransport's netPipeline at its default MaxRPCsInFlight of 2: at most
// two appends are in flight, a third blocks in AppendEntries until the
// consumer has taken the oldest answer (or the pipeline is closed), and
// answers are handed over one by one on an unbuffered channel, in order.
// Until scripted is set it answers every append with success; after, each
// append is handed to the test on sent, and its answer is whatever the test
// sends on answers, in the order of the appends.
type scriptedPipeline struct {
	consumer chan AppendFuture
	slots    chan struct{} // one token per append in flight, freed when its answer is consumed
	inflight chan scriptedAppend
	sent     chan *AppendEntriesRequest
	answers  chan *AppendEntriesResponse
	closed   chan struct{}

	mu       sync.Mutex
	scripted bool
	isClosed bool
}

type scriptedAppend struct {
	future   *appendFuture
	scripted bool
}

func newScriptedPipeline() *scriptedPipeline {
	p := &scriptedPipeline{
		consumer: make(chan AppendFuture),
		slots:    make(chan struct{}, 2),
		inflight: make(chan scriptedAppend, 2),
		sent:     make(chan *AppendEntriesRequest, 16),
		answers:  make(chan *AppendEntriesResponse, 16),
		closed:   make(chan struct{}),
	}
	go p.deliver()
	return p
}

func (p *scriptedPipeline) script() {
	p.mu.Lock()
	p.scripted = true
	p.mu.Unlock()
}

// AppendEntries sends first and then waits for room, as netPipeline does.
func (p *scriptedPipeline) AppendEntries(args *AppendEntriesRequest, resp *AppendEntriesResponse) (AppendFuture, error) {
	f := &appendFuture{start: time.Now(), args: args, resp: resp}
	f.init()
	p.mu.Lock()
	scripted, closed := p.scripted, p.isClosed
	p.mu.Unlock()
	if closed {
		return nil, ErrPipelineShutdown
	}
	if scripted {
		p.sent <- args
	}
	select {
	case p.slots <- struct{}{}:
	case <-p.closed:
		return nil, ErrPipelineShutdown
	}
	p.inflight <- scriptedAppend{future: f, scripted: scripted}
	return f, nil
}

// deliver answers the appends in order and hands each answer to the consumer.
func (p *scriptedPipeline) deliver() {
	for {
		var a scriptedAppend
		select {
		case a = <-p.inflight:
		case <-p.closed:
			return
		}
		req := a.future.args
		if a.scripted {
			select {
			case resp := <-p.answers:
				*a.future.resp = *resp
			case <-p.closed:
				return
			}
		} else {
			*a.future.resp = AppendEntriesResponse{Term: req.Term, Success: true, LastLog: lastOf(req)}
		}
		a.future.respond(nil)
		select {
		case p.consumer <- a.future:
			<-p.slots
		case <-p.closed:
			return
		}
	}
}

func (p *scriptedPipeline) Consumer() <-chan AppendFuture { return p.consumer }

func (p *scriptedPipeline) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.isClosed {
		p.isClosed = true
		close(p.closed)
	}
	return nil
}

// onePipeline gives the leader's replication one scriptedPipeline (its first
// request for one) and refuses later ones, so that after the pipeline is
// dropped replication goes on one append at a time over InmemTransport.
type onePipeline struct {
	*InmemTransport
	pipe    *scriptedPipeline
	created chan struct{}
	once    sync.Once
}

func (o *onePipeline) AppendEntriesPipeline(ServerID, ServerAddress) (AppendPipeline, error) {
	given := false
	o.once.Do(func() {
		given = true
		close(o.created)
	})
	if !given {
		return nil, ErrPipelineReplicationNotSupported
	}
	return o.pipe, nil
}

// TestPipelineRefusedAppendFallsBack: the leader pipelines to follower f;
// appends A and B are in flight and C waits for room in the pipeline. f
// refuses A and answers B. Upstream v1.8.0 stops taking the pipeline's
// answers at A but leaves the pipeline open: B's answer is never taken, so C
// waits for room for ever, the replication goroutine never leaves the
// pipeline and Shutdown hangs (hashicorp/raft#612). With the patch the
// refusal closes the pipeline, C fails, and replication goes on one append
// at a time. Two refusals stop the pipeline: Success=false (a log that does
// not match, a follower whose disk stalled), after which f gets heartbeats
// but, upstream, never another entry; and a newer term, after which the
// leader steps down (and, f voting for it, is elected again).
func TestPipelineRefusedAppendFallsBack(t *testing.T) {
	for _, tc := range []struct {
		name   string
		refuse func(a *AppendEntriesRequest) *AppendEntriesResponse
	}{
		{"log mismatch", func(a *AppendEntriesRequest) *AppendEntriesResponse {
			return &AppendEntriesResponse{Term: a.Term, Success: false, LastLog: a.PrevLogEntry}
		}},
		{"newer term", func(a *AppendEntriesRequest) *AppendEntriesResponse {
			return &AppendEntriesResponse{Term: a.Term + 1, Success: false}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) { testPipelineRefusal(t, tc.refuse) })
	}
}

func testPipelineRefusal(t *testing.T, refuse func(a *AppendEntriesRequest) *AppendEntriesResponse) {
	f := newFake("f")
	var entries sync.Map // index -> struct{}: entries f got outside the pipeline
	f.setAnswer(func(req *AppendEntriesRequest, _ RPC) (*AppendEntriesResponse, error, bool) {
		for _, e := range req.Entries {
			entries.Store(e.Index, struct{}{})
		}
		return &AppendEntriesResponse{Term: req.Term, Success: true, LastLog: lastOf(req)}, nil, false
	})
	wrap := &onePipeline{pipe: newScriptedPipeline(), created: make(chan struct{})}
	r := leaderWithFakesOver(t, []*fakeFollower{f}, nil, func(trans *InmemTransport) Transport {
		wrap.InmemTransport = trans
		return wrap
	})
	const bound = 10 * time.Second
	select {
	case <-wrap.created:
	case <-time.After(bound):
		t.Fatal("replication to f never switched to the pipeline")
	}

	// From now on the test answers the pipeline's appends. The leader sends
	// one at least every CommitTimeout, entries or not.
	pipe := wrap.pipe
	pipe.script()
	next := func(what string) *AppendEntriesRequest {
		t.Helper()
		select {
		case req := <-pipe.sent:
			return req
		case <-time.After(bound):
			t.Fatalf("no pipelined append %s", what)
			return nil
		}
	}
	a := next("A")
	b := next("B")
	// C is sent and now waits for room: A and B hold both slots, and A's
	// answer has not been given.
	next("C")
	pipe.answers <- refuse(a)
	pipe.answers <- &AppendEntriesResponse{Term: b.Term, Success: true, LastLog: lastOf(b)}

	// Replication to f must go on: a new entry reaches f and commits (f is
	// half of the quorum). Until the leader leads again (newer term), Apply
	// fails at once and is retried.
	deadline := time.Now().Add(bound)
	for {
		applied := r.Apply([]byte("after the refusal"), time.Second)
		done := make(chan error, 1)
		go func() { done <- applied.Error() }()
		var err error
		select {
		case err = <-done:
		case <-time.After(time.Until(deadline)):
			t.Fatal("replication to f did not resume within 10s after f refused a pipelined append")
		}
		if err == nil {
			if _, ok := entries.Load(applied.Index()); !ok {
				t.Fatalf("entry %d committed but f never got it outside the pipeline", applied.Index())
			}
			break
		}
		if !errors.Is(err, ErrNotLeader) && !errors.Is(err, ErrLeadershipLost) || time.Now().After(deadline) {
			t.Fatalf("Apply after the refused append: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// leaderWithFakesOver's cleanup checks that Shutdown returns.
}

// TestNetPipelineSendWaitsForTakenAnswers shows, on the real NetworkTransport
// over TCP at the default MaxRPCsInFlight of 2, the back-pressure that
// scriptedPipeline models and the patch relies on: once the consumer stops
// taking answers (as pipelineDecode does after a refusal), the second send
// after that waits for ever, and only Close releases it.
func TestNetPipelineSendWaitsForTakenAnswers(t *testing.T) {
	newTrans := func() *NetworkTransport {
		trans, err := NewTCPTransportWithLogger("127.0.0.1:0", nil, 2, 10*time.Second, hclog.NewNullLogger())
		if err != nil {
			t.Fatalf("NewTCPTransport: %v", err)
		}
		t.Cleanup(func() { _ = trans.Close() })
		return trans
	}
	leader, follower := newTrans(), newTrans()
	p, err := leader.AppendEntriesPipeline("f", follower.LocalAddr())
	if err != nil {
		t.Fatalf("AppendEntriesPipeline: %v", err)
	}
	defer func() { _ = p.Close() }()

	const bound = 10 * time.Second
	type sent struct {
		f   AppendFuture
		err error
	}
	send := func(prev uint64) <-chan sent {
		ch := make(chan sent, 1)
		go func() {
			f, err := p.AppendEntries(&AppendEntriesRequest{RPCHeader: RPCHeader{ProtocolVersion: ProtocolVersionMax}, Term: 1, PrevLogEntry: prev}, new(AppendEntriesResponse))
			ch <- sent{f, err}
		}()
		return ch
	}
	wait := func(ch <-chan sent, what string) sent {
		t.Helper()
		select {
		case s := <-ch:
			return s
		case <-time.After(bound):
			t.Fatalf("%s did not return", what)
			return sent{}
		}
	}
	answer := func(ok bool) {
		t.Helper()
		select {
		case rpc := <-follower.Consumer():
			rpc.Respond(&AppendEntriesResponse{Term: 1, Success: ok}, nil)
		case <-time.After(bound):
			t.Fatal("the follower got no append")
		}
	}

	if s := wait(send(1), "send A"); s.err != nil {
		t.Fatalf("send A: %v", s.err)
	}
	b := send(2) // waits for room until A's answer is taken
	answer(false)
	select {
	case f := <-p.Consumer():
		if f.Response().Success {
			t.Fatal("A's answer: success, want the refusal")
		}
	case <-time.After(bound):
		t.Fatal("A's answer never reached the consumer")
	}
	// From here on nobody takes answers.
	if s := wait(b, "send B"); s.err != nil {
		t.Fatalf("send B: %v", s.err)
	}
	answer(true) // B's answer: decoded, then offered to a consumer that is gone
	c := send(3)
	answer(true)
	select {
	case s := <-c:
		t.Fatalf("send C returned (%v) with B's answer not taken; the back-pressure this test documents is gone", s.err)
	case <-time.After(time.Second):
	}
	_ = p.Close()
	if s := wait(c, "send C after Close"); !errors.Is(s.err, ErrPipelineShutdown) {
		t.Fatalf("send C after Close: %v, want %v", s.err, ErrPipelineShutdown)
	}
}

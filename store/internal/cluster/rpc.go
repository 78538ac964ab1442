package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/hashicorp/raft"

	"github.com/ephemeral-store/ephemeral-store/store/client/api"
	"github.com/ephemeral-store/ephemeral-store/store/internal/fsm"
	"github.com/ephemeral-store/ephemeral-store/store/internal/quota"
	"github.com/ephemeral-store/ephemeral-store/store/internal/transport"
)

// Peer RPCs travel as HTTP/1.1 over the mutual-TLS peer port. Only peers
// (certificates with the peer CN) get this far: the mux refuses the rest
// during the handshake.

var (
	errNotLeader       = errors.New("not the leader")
	errPeerUnreachable = errors.New("peer unreachable")
)

// statusResponse is what a node tells a peer about itself.
type statusResponse struct {
	ID         string   `json:"id"`
	Name       string   `json:"name"`
	Address    string   `json:"address"`
	Member     bool     `json:"member"`
	ClusterID  string   `json:"cluster_id,omitempty"`
	LeaderID   string   `json:"leader_id,omitempty"`
	LeaderAddr string   `json:"leader_address,omitempty"`
	Voters     []string `json:"voters,omitempty"`
	// Configuration is this member's latest Raft configuration (voters
	// only) and ConfigIndex the log index it was written at: a peer whose
	// own copy is older judges the cluster by the newest one a member of
	// its cluster reports (classifyVoters).
	Configuration []configServer `json:"configuration,omitempty"`
	ConfigIndex   uint64         `json:"config_index,omitempty"`
	Applied       uint64         `json:"applied"`
	// Vote is the candidate this non-member gave its bootstrap vote to.
	Vote string `json:"vote,omitempty"`
	// Answering is how many replicas (itself included) answered this
	// non-member's last discovery probe: a candidate needs a majority.
	Answering int `json:"answering,omitempty"`
	// HighestRevision and WallMicros raise a new cluster's base revision
	// (revisions.go): the highest revision this process has held, and its
	// wall clock in microseconds.
	HighestRevision int64 `json:"highest_revision,omitempty"`
	WallMicros      int64 `json:"wall_micros,omitempty"`
}

type joinRequest struct {
	ID      string `json:"id"`
	Address string `json:"address"`
	// Remove, in a leave, says the leaver was scaled away: its ordinal is
	// beyond the count its source reports, so it is removed, not replaced
	// by its placeholder.
	Remove bool `json:"remove,omitempty"`
}

type joinResponse struct {
	ClusterID   string `json:"cluster_id"`
	CommitIndex uint64 `json:"commit_index"`
	// Servers are the IDs of the leader's configuration, the leader among
	// them: the joiner takes replication from these until its log brings
	// it the configuration.
	Servers []string `json:"servers"`
	// Term is the leader's term when it added the joiner: the joiner takes
	// no replication from an older term (a deposed leader that was frozen
	// must not count it as a follower; replicationAllowed).
	Term uint64 `json:"term,omitempty"`
}

type applyResponse struct {
	Result fsm.Result `json:"result"`
	Error  string     `json:"error,omitempty"`
}

type rpcError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// deterministic refusals a forwarded write may carry back.
var fsmErrors = map[string]error{
	api.CodeKeyNotFound:      fsm.ErrKeyNotFound,
	api.CodeRevisionMismatch: fsm.ErrRevisionMismatch,
	"empty_key":              fsm.ErrEmptyKey,
	"unknown_op":             fsm.ErrUnknownOp,
	"negative_ttl":           fsm.ErrNegativeTTL,
	api.CodeQuotaExceeded:    quota.ErrExceeded,
}

func fsmErrorCode(err error) string {
	for code, e := range fsmErrors {
		if errors.Is(err, e) {
			return code
		}
	}
	return ""
}

// PeerRoutes are the patterns of the peer channel's routes ("METHOD
// /peer/..."), which only store nodes reach: they are not part of the
// client API, and docs/openapi.yaml says so (a test checks that it
// documents none of them).
func PeerRoutes() []string {
	var n Node
	out := make([]string, 0, len(n.rpcRoutes()))
	for _, r := range n.rpcRoutes() {
		out = append(out, r.pattern)
	}
	return out
}

type rpcRoute struct {
	pattern string
	handler http.HandlerFunc
}

// rpcRoutes is the one list rpcHandler registers and PeerRoutes reports.
func (n *Node) rpcRoutes() []rpcRoute {
	return []rpcRoute{
		{"GET /peer/status", func(w http.ResponseWriter, _ *http.Request) {
			writeJSON(w, http.StatusOK, n.status())
		}},
		{"POST /peer/join", n.handleJoin},
		{"POST /peer/promote", n.handlePromote},
		{"POST /peer/leave", n.handleLeave},
		{"POST /peer/apply", n.handleApply},
		{"POST /peer/apply/batch", n.handleApplyBatch},
		{"POST /peer/bootstrap/vote", n.handleVote},
		{"POST /peer/bootstrap/commit", n.handleCommit},
		{"POST /peer/reform", n.handleReform},
		{"GET /peer/readindex", func(w http.ResponseWriter, req *http.Request) {
			ctx, cancel := context.WithTimeout(req.Context(), n.opts.ApplyTimeout)
			defer cancel()
			idx, err := n.readIndex(ctx, n.inc())
			if err != nil {
				writeRPCError(w, http.StatusMisdirectedRequest, "not_leader", err)
				return
			}
			writeJSON(w, http.StatusOK, map[string]uint64{"index": idx})
		}},
	}
}

func (n *Node) rpcHandler() http.Handler {
	mux := http.NewServeMux()
	for _, r := range n.rpcRoutes() {
		mux.HandleFunc(r.pattern, r.handler)
	}
	return mux
}

func (n *Node) status() statusResponse {
	inc := n.inc()
	r := inc.r
	addr, lid := r.LeaderWithID()
	st := statusResponse{
		ID: string(inc.id), Name: n.opts.Name, Address: n.opts.Address,
		Member: inc.member.Load(), ClusterID: inc.cluster(),
		LeaderID: string(lid), LeaderAddr: string(addr),
		Applied: inc.fsm.applied.Load(),
	}
	if v := inc.vote.Load(); v != nil {
		st.Vote = string(v.candidate)
	}
	st.Answering = int(n.answering.Load())
	st.HighestRevision, st.WallMicros = n.revisionReport()
	if f := r.GetConfiguration(); f.Error() == nil {
		st.ConfigIndex = f.Index()
		for _, s := range f.Configuration().Servers {
			if s.Suffrage == raft.Voter {
				st.Voters = append(st.Voters, string(s.ID))
				st.Configuration = append(st.Configuration, configServer{ID: string(s.ID), Address: string(s.Address)})
			}
		}
	}
	return st
}

// configServer is one voter of a configuration as peers report it.
type configServer struct {
	ID      string `json:"id"`
	Address string `json:"address"`
}

// membershipRequest decodes a join, promote or leave request and checks that
// this node leads; on failure it has answered and returns ok=false.
func (n *Node) membershipRequest(w http.ResponseWriter, req *http.Request, what string, needAddress bool) (joinRequest, *incarnation, bool) {
	var j joinRequest
	if err := json.NewDecoder(req.Body).Decode(&j); err != nil || j.ID == "" || (needAddress && j.Address == "") {
		writeRPCError(w, http.StatusBadRequest, "bad_request", fmt.Errorf("%s needs id and address", what))
		return j, nil, false
	}
	inc := n.inc()
	if inc.r.State() != raft.Leader {
		writeRPCError(w, http.StatusMisdirectedRequest, "not_leader", errNotLeader)
		return j, nil, false
	}
	return j, inc, true
}

// handleJoin adds a new incarnation as a non-voter, first retiring any
// older incarnation of the same pod (same name or same address): that
// member has forgotten everything and must never vote again; a voter is
// replaced by its replica's placeholder until the new one is promoted.
func (n *Node) handleJoin(w http.ResponseWriter, req *http.Request) {
	j, inc, ok := n.membershipRequest(w, req, "join", true)
	if !ok {
		return
	}
	r := inc.r
	if !n.withinCount(req.Context(), inc, j.Address) {
		writeRPCError(w, http.StatusConflict, "beyond_replica_count", fmt.Errorf("%s is beyond the replica count %d", j.Address, n.replicas()))
		return
	}
	n.membershipMu.Lock()
	defer n.membershipMu.Unlock()
	cfg := r.GetConfiguration()
	if err := cfg.Error(); err != nil {
		writeRPCError(w, http.StatusServiceUnavailable, "no_configuration", err)
		return
	}
	id := raft.ServerID(j.ID)
	for _, s := range cfg.Configuration().Servers {
		if s.ID == id || isPlaceholder(s.ID) {
			continue
		}
		if nameOf(s.ID) == nameOf(id) || string(s.Address) == j.Address {
			n.log.Info("retiring old incarnation", "old", s.ID, "new", id)
			if err := n.retire(r, s); err != nil {
				writeRPCError(w, http.StatusServiceUnavailable, "remove_failed", err)
				return
			}
		}
	}
	if err := r.AddNonvoter(id, raft.ServerAddress(j.Address), 0, 0).Error(); err != nil {
		writeRPCError(w, http.StatusServiceUnavailable, "add_failed", err)
		return
	}
	n.log.Info("added non-voter", "id", id, "address", j.Address)
	resp := joinResponse{ClusterID: inc.cluster(), CommitIndex: r.CommitIndex(), Term: r.CurrentTerm()}
	if f := r.GetConfiguration(); f.Error() == nil {
		for _, s := range f.Configuration().Servers {
			resp.Servers = append(resp.Servers, string(s.ID))
		}
	}
	writeJSON(w, http.StatusOK, resp)
}

// handlePromote makes a caught-up non-voter a voter in its replica's
// placeholder's place.
func (n *Node) handlePromote(w http.ResponseWriter, req *http.Request) {
	j, inc, ok := n.membershipRequest(w, req, "promote", true)
	if !ok {
		return
	}
	r := inc.r
	if !n.withinCount(req.Context(), inc, j.Address) {
		writeRPCError(w, http.StatusConflict, "beyond_replica_count", fmt.Errorf("%s is beyond the replica count %d", j.Address, n.replicas()))
		return
	}
	n.membershipMu.Lock()
	defer n.membershipMu.Unlock()
	// Promote only a non-voter that is still in the configuration at that
	// address: a late request from a removed or leaving incarnation must not
	// bring a dead voter back.
	cfg := r.GetConfiguration()
	if err := cfg.Error(); err != nil {
		writeRPCError(w, http.StatusServiceUnavailable, "no_configuration", err)
		return
	}
	found, placeholder := false, false
	for _, s := range cfg.Configuration().Servers {
		if s.ID == raft.ServerID(j.ID) && string(s.Address) == j.Address && s.Suffrage == raft.Nonvoter {
			found = true
		}
		if s.ID == placeholderID(j.Address) {
			placeholder = true
		}
	}
	if !found {
		writeRPCError(w, http.StatusConflict, "not_a_nonvoter", fmt.Errorf("%s at %s is not a non-voter of the configuration", j.ID, j.Address))
		return
	}
	if placeholder {
		if err := r.RemoveServer(placeholderID(j.Address), 0, 0).Error(); err != nil {
			writeRPCError(w, http.StatusServiceUnavailable, "promote_failed", err)
			return
		}
	}
	if err := r.AddVoter(raft.ServerID(j.ID), raft.ServerAddress(j.Address), 0, 0).Error(); err != nil {
		writeRPCError(w, http.StatusServiceUnavailable, "promote_failed", err)
		return
	}
	n.log.Info("promoted to voter", "id", j.ID, "replaced_placeholder", placeholder)
	writeJSON(w, http.StatusOK, struct{}{})
}

// withinCount reports whether the replica at address may join or vote: its
// ordinal is below the replica count (an address without an ordinal is
// not subject to the count). Beyond it, the leader first reads its source
// and proposes a new count: a scale-up's new pod may ask before the
// leader's poll has seen the new count.
func (n *Node) withinCount(ctx context.Context, inc *incarnation, address string) bool {
	o := n.ordinalOf(address)
	if o < 0 || o < n.replicas() {
		return true
	}
	n.readSource(ctx)
	n.syncReplicaCount(inc)
	return o < n.replicas()
}

// handleLeave retires a member that is shutting down: a voter's place is
// kept by its replica's placeholder, unless its replica is scaled away.
func (n *Node) handleLeave(w http.ResponseWriter, req *http.Request) {
	j, inc, ok := n.membershipRequest(w, req, "leave", false)
	if !ok {
		return
	}
	if err := n.leaveByID(req.Context(), inc, raft.ServerID(j.ID), j.Address, j.Remove); err != nil {
		writeRPCError(w, http.StatusServiceUnavailable, "remove_failed", err)
		return
	}
	n.log.Info("member left", "id", j.ID)
	writeJSON(w, http.StatusOK, struct{}{})
}

// leaveByID takes a leaving server out of the configuration. A leaver
// whose replica is beyond the replica count is removed outright: no
// placeholder keeps a place that no incarnation will take again. When the
// leaver says it was scaled away (its source reports a count at or below
// its ordinal) and the replicated count still includes it, the leader
// reads its own source and proposes the new count first; if the count
// still includes the leaver, it is retired like a restarting pod.
func (n *Node) leaveByID(ctx context.Context, inc *incarnation, id raft.ServerID, address string, remove bool) error {
	r := inc.r
	ordinal := n.ordinalOf(address)
	if remove && ordinal >= 0 && ordinal < inc.replicatedCount() {
		n.readSource(ctx)
		n.syncReplicaCount(inc)
	}
	if count := inc.replicatedCount(); ordinal >= 0 && count > 0 && ordinal >= count {
		n.membershipMu.Lock()
		defer n.membershipMu.Unlock()
		for _, gone := range []raft.ServerID{id, placeholderID(address)} {
			if err := n.removeBeyond(r, gone, count); err != nil {
				return err
			}
		}
		return nil
	}
	return n.retireByID(r, id, address)
}

// retireByID retires the server with that ID, if it is in the
// configuration. When it is not, it was removed already: if the leaver gave
// its address and its replica was left without a voter, its placeholder is
// restored (restorePlaceholder).
func (n *Node) retireByID(r *raft.Raft, id raft.ServerID, address string) error {
	n.membershipMu.Lock()
	defer n.membershipMu.Unlock()
	f := r.GetConfiguration()
	if err := f.Error(); err != nil {
		return err
	}
	for _, s := range f.Configuration().Servers {
		if s.ID == id {
			return n.retire(r, s)
		}
	}
	if address == "" {
		return nil
	}
	return n.restorePlaceholder(r, address)
}

func (n *Node) handleApply(w http.ResponseWriter, req *http.Request) {
	var cmd fsm.Command
	if err := json.NewDecoder(req.Body).Decode(&cmd); err != nil {
		writeRPCError(w, http.StatusBadRequest, "bad_request", err)
		return
	}
	inc := n.inc()
	if inc.r.State() != raft.Leader {
		writeRPCError(w, http.StatusMisdirectedRequest, "not_leader", errNotLeader)
		return
	}
	// Classified as a batch's command is (forward.go): one set of rules.
	switch r := newBatchResult(n.applyLocal(inc, cmd)); r.Error {
	case batchNotLeader:
		writeJSON(w, http.StatusMisdirectedRequest, rpcError{Code: "not_leader", Message: r.Message}) // never appended
	case batchOutcomeUnknown:
		writeJSON(w, http.StatusServiceUnavailable, rpcError{Code: "outcome_unknown", Message: r.Message})
	default:
		writeJSON(w, http.StatusOK, applyResponse{Result: r.Result, Error: r.Error})
	}
}

func decodeJSON(req *http.Request, v any) error {
	return json.NewDecoder(io.LimitReader(req.Body, 1<<20)).Decode(v)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeRPCError(w http.ResponseWriter, code int, c string, err error) {
	writeJSON(w, code, rpcError{Code: c, Message: err.Error()})
}

// peerClient calls the RPCs of other nodes.
type peerClient struct{ hc *http.Client }

func newPeerClient(m *transport.Mux) *peerClient {
	return &peerClient{hc: &http.Client{
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
				c, err := m.DialRPC(ctx, addr)
				if err != nil {
					return nil, &dialError{err}
				}
				return c, nil
			},
			// HTTP/1.1 inside the mux's TLS: one connection per request in
			// flight. Every one beyond the idle limit was closed after its
			// request and the next forwarded write paid a new mutual TLS
			// handshake; with 64 clients that was 39% of the leader's CPU
			// (make bench, PUT c=64). Connections to a peer are kept for
			// as many requests as ever were in flight at once, then
			// dropped after IdleConnTimeout.
			MaxIdleConnsPerHost: 1024,
			IdleConnTimeout:     60 * time.Second,
		},
		Timeout: 15 * time.Second,
	}}
}

// dialError marks a failure before any byte of a request was sent.
type dialError struct{ err error }

func (e *dialError) Error() string { return e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// call sends one RPC. A failure to connect wraps errPeerUnreachable, a 421
// errNotLeader and a 404 errRouteUnknown: the request was not acted on,
// callers may retry (elsewhere, or another way). Any other failure after
// sending wraps ErrOutcomeUnknown.
func (p *peerClient) call(ctx context.Context, method, addr, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+addr+path, body)
	if err != nil {
		return err
	}
	resp, err := p.hc.Do(req)
	if err != nil {
		var de *dialError
		// The transport's error is text only (%v): callers branch on errPeerUnreachable or
		// ErrOutcomeUnknown, and a wrapped context error must not turn an unknown outcome
		// into a cancellation where httpapi maps errors to status codes.
		if errors.As(err, &de) {
			return fmt.Errorf("%w: %s %s: %v", errPeerUnreachable, path, addr, err) //nolint:errorlint // see above
		}
		return fmt.Errorf("%w: %s %s: %v", ErrOutcomeUnknown, path, addr, err) //nolint:errorlint // see above
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e rpcError
		_ = json.NewDecoder(resp.Body).Decode(&e)
		switch resp.StatusCode {
		case http.StatusMisdirectedRequest:
			return fmt.Errorf("%w: %s", errNotLeader, addr)
		case http.StatusNotFound:
			return fmt.Errorf("%w: %s %s", errRouteUnknown, addr, path)
		}
		if e.Code == "outcome_unknown" {
			return fmt.Errorf("%w: peer %s: %s", ErrOutcomeUnknown, addr, e.Message)
		}
		return fmt.Errorf("peer %s %s: %d %s: %s", addr, path, resp.StatusCode, e.Code, e.Message)
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return fmt.Errorf("peer %s %s: decode: %w", addr, path, err)
		}
	}
	return nil
}

func (p *peerClient) status(ctx context.Context, addr string) (statusResponse, error) {
	var st statusResponse
	err := p.call(ctx, http.MethodGet, addr, "/peer/status", nil, &st)
	return st, err
}

func (p *peerClient) apply(ctx context.Context, addr string, cmd fsm.Command) (fsm.Result, error) {
	var out applyResponse
	if err := p.call(ctx, http.MethodPost, addr, "/peer/apply", cmd, &out); err != nil {
		return fsm.Result{}, err
	}
	// Mapped as a batched write's result is: an error code this version
	// does not know (a newer leader's, during a rolling update) is an
	// unknown outcome. It used to map to no error, so a write the leader
	// refused was reported as done.
	o := batchResult{Result: out.Result, Error: out.Error}.outcome(addr)
	return o.res, o.err
}

func (p *peerClient) readIndex(ctx context.Context, addr string) (uint64, error) {
	var out map[string]uint64
	if err := p.call(ctx, http.MethodGet, addr, "/peer/readindex", nil, &out); err != nil {
		return 0, err
	}
	return out["index"], nil
}

// leave asks the node at addr, if it leads, to retire incarnation id of the
// replica at self (its peer address), or to remove it when remove is set
// (scaled away).
func (p *peerClient) leave(ctx context.Context, addr string, id raft.ServerID, self string, remove bool) error {
	return p.call(ctx, http.MethodPost, addr, "/peer/leave", joinRequest{ID: string(id), Address: self, Remove: remove}, nil)
}

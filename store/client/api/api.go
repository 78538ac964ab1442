// Package api is the wire contract of ephemeral-store's HTTP API: the
// JSON bodies its answers carry and the stable error codes in them.
// docs/openapi.yaml is the document (docs/interfaces.md tells it in
// prose); the server encodes these very types and the Go client decodes
// them, so the two cannot drift apart, and tests of the server hold them
// to the document: each type's fields are the properties of its schema,
// required exactly when always sent, and real answers decode into them
// with no field left over.
//
// It sits in the Go client's module (store/client), not beside the
// server, because that module imports the standard library only and the
// server's module requires it: the server and the client both import
// this one package, and a program that imports the client still
// resolves nothing but the client's module. A package of the server's
// module would be out of the client's reach; a module of its own would
// be one more for every client user to resolve.
//
// Only what travels is here: the types, with their JSON names, and the
// values of their enumerations. A field or a value is part of the API:
// once released, it keeps its name and meaning.
package api

// ErrorBody is the body of every error answer (a non-2xx status):
// {"error":{"code":...,"message":...}}. Schema Error.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail says what went wrong. Schema ErrorDetail.
type ErrorDetail struct {
	// Code is one of the Code... constants; compare it, never Message.
	Code string `json:"code"`
	// Message is for people and may change.
	Message string `json:"message"`
}

// PutResult answers PUT /v1/kv/{key} once the write is committed.
// Schema PutResult.
type PutResult struct {
	Key string `json:"key"`
	// Revision is the store revision of this write.
	Revision       int64 `json:"revision"`
	CreateRevision int64 `json:"create_revision"`
	// ModifyRevision equals Revision: the prev_revision of the next
	// compare-and-swap.
	ModifyRevision int64 `json:"modify_revision"`
}

// DeleteResult answers DELETE /v1/kv/{key}. Schema DeleteResult.
type DeleteResult struct {
	Key      string `json:"key"`
	Revision int64  `json:"revision"`
}

// ListPage answers GET /v1/kv/?prefix=: one page of keys, in key order.
// Schema ListPage.
type ListPage struct {
	// Revision is the store revision the page was read at; a watch from
	// Revision+1 follows on.
	Revision int64      `json:"revision"`
	Items    []ListItem `json:"items"`
	More     bool       `json:"more"`
	// Next is the last key of the page when More: the after of the next.
	Next string `json:"next,omitempty"`
}

// ListItem is one key of a ListPage. Schema ListItem.
type ListItem struct {
	Key string `json:"key"`
	// Value is absent with keys_only (and when empty).
	Value          []byte `json:"value,omitempty"`
	CreateRevision int64  `json:"create_revision"`
	ModifyRevision int64  `json:"modify_revision"`
	// TTLRemainingMS is the time left, for a key with a TTL only.
	TTLRemainingMS int64 `json:"ttl_remaining_ms,omitempty"`
}

// The types of Event.Type, and of the last line of a watch stream that
// ends with an error.
const (
	EventPut    = "put"
	EventDelete = "delete"
	// EventExpire is a key removed by its TTL.
	EventExpire = "expire"
	// EventError is no change: the stream's last line, with
	// WatchEvent.Error saying why it ends.
	EventError = "error"
)

// Event is one change under a watched prefix.
type Event struct {
	// Type is EventPut, EventDelete or EventExpire.
	Type string `json:"type"`
	Key  string `json:"key,omitempty"` // never empty in a change
	// Value is the new value of a put (absent when empty).
	Value []byte `json:"value,omitempty"`
	// Revision is the store revision of the change; events arrive in
	// revision order, one event per revision.
	Revision int64 `json:"revision,omitempty"` // never 0 in a change
}

// WatchEvent is one line of a GET /v1/watch/ stream (application/x-ndjson):
// an Event, or, as the last line, Type EventError with Error.
// Schema WatchEvent.
type WatchEvent struct {
	Event
	Error *ErrorDetail `json:"error,omitempty"`
}

// The states of QuorumReport.State.
const (
	// QuorumOK: a leader is known.
	QuorumOK = "ok"
	// QuorumElecting: no leader yet, but not for longer than the
	// quorum-loss timeout.
	QuorumElecting = "electing"
	// QuorumWaiting: no leader for longer than the quorum-loss timeout,
	// and voters are silent: they may be alive behind a partition or a
	// pause, so the node waits. An operator who knows they are dead may
	// force a reform (POST /v1/cluster/reform).
	QuorumWaiting = "waiting_for_silent_voters"
)

// The values of Member.Suffrage.
const (
	SuffrageVoter    = "voter"
	SuffrageNonvoter = "nonvoter"
)

// ClusterStatus answers GET /v1/cluster and POST /v1/cluster/reform:
// the cluster as the answering node sees it. Schema ClusterStatus.
type ClusterStatus struct {
	Self string `json:"self"`
	// Leader is the leader's ID; empty without a leader.
	Leader string `json:"leader"`
	// State is the node's Raft state: Leader, Follower, Candidate...
	State        string `json:"state"`
	ClusterID    string `json:"cluster_id"`
	Revision     int64  `json:"revision"`
	CommitIndex  uint64 `json:"commit_index"`
	AppliedIndex uint64 `json:"applied_index"`
	// SnapshotIndex is the last log index the node's latest snapshot
	// covers.
	SnapshotIndex uint64 `json:"snapshot_index"`
	// Replicas is the replica count the node acts on: the replicated one
	// (the leader proposes what the platform reports), else its source's.
	Replicas int      `json:"replicas"`
	Members  []Member `json:"members"`
	// Quorum says why there is no leader, when there is none.
	Quorum QuorumReport `json:"quorum"`
	// Forks lists peers found in another cluster; it should stay empty.
	Forks []Fork `json:"forks,omitempty"`
}

// Member is one server of the Raft configuration. Schema Member.
type Member struct {
	// ID is the incarnation, "<pod>/<random>", new at every process
	// start; one ending in "/placeholder" holds the vote of a replica
	// whose live incarnation is not promoted yet.
	ID      string `json:"id"`
	Name    string `json:"name"`
	Address string `json:"address"`
	// Suffrage is SuffrageVoter or SuffrageNonvoter.
	Suffrage string `json:"suffrage"`
	Leader   bool   `json:"leader"`
}

// QuorumReport tells why a member has no leader. Schema QuorumReport.
type QuorumReport struct {
	// State is QuorumOK, QuorumElecting or QuorumWaiting.
	State string `json:"state"`
	// Silent voters did not answer; Gone voters' addresses answered with
	// another incarnation or as non-members: they can never vote again.
	Silent []string `json:"silent,omitempty"`
	Gone   []string `json:"gone,omitempty"`
	// WithoutLeaderSeconds is measured on the monotonic clock.
	WithoutLeaderSeconds float64 `json:"without_leader_seconds,omitempty"`
}

// Fork is a peer found in another cluster than the answering node's.
// Schema Fork.
type Fork struct {
	Peer      string `json:"peer"`
	ClusterID string `json:"cluster_id"`
	Voters    int    `json:"voters"`
}

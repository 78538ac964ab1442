package cluster

import "github.com/ephemeral-store/ephemeral-store/store/internal/fsm"

// Admitter decides whether a write may be proposed (store/internal/quota).
// The leader asks it just before a command enters its log, for its own
// clients' writes and for those forwarded to it: a refusal means nothing
// was proposed, and it travels back over the peer channel as the code
// quota_exceeded. It is never asked while applying the log: replicas must
// apply the same log the same way whatever their own quotas.
type Admitter interface {
	// Admit refuses cmd, or admits it until release is called (once the
	// command is applied or has failed). release is never nil.
	Admit(cmd fsm.Command) (release func(), err error)
}

func (n *Node) admit(cmd fsm.Command) (release func(), err error) {
	if n.opts.Quota == nil {
		return func() {}, nil
	}
	return n.opts.Quota.Admit(cmd)
}

package cluster

import "github.com/ephemeral-store/ephemeral-store/store/internal/fsm"

// Revisions across a data loss (DESIGN.md): a new cluster's revisions must
// start above every revision a lost cluster handed out, or a client's
// stale prev_revision could match an unrelated new version. The first
// leader proposes a base revision that is the largest of
//
//   - its own wall clock in microseconds,
//   - the wall clocks of the replicas the candidate heard from before
//     bootstrapping (one clock stepped back does not decide it), and
//   - the highest revision any of them held before it emptied itself,
//     plus unappliedMargin.
//
// The floor is computed by the candidate from the status answers it
// bootstraps with (revisionFloor) and handed to every voter with the
// commit, so whichever of them leads first proposes it.

// unappliedMargin covers revisions a node had in its log but had not
// applied when it emptied itself: the old leader acknowledged them and
// died before telling it they were committed. That is at most the
// entries of the leader's last rounds of appends (up to 64 entries each,
// an expiry entry up to 512 revisions); a million revisions leave room for
// far more, and cost nothing (revisions are 63 bits, the base ~2^51).
const unappliedMargin = 1 << 20

// revisionReport is what this node tells a bootstrap candidate (in its
// status): the highest revision it has held and its wall clock.
func (n *Node) revisionReport() (highest, wallMicros int64) {
	return n.opts.State.HighestRevision(), n.opts.Wall().UnixMicro()
}

// floorFromReport is the lowest base revision that covers one report.
func floorFromReport(highest, wallMicros int64) int64 {
	floor := wallMicros
	if highest > 0 {
		floor = max(floor, highest+unappliedMargin)
	}
	return floor
}

// revisionFloor is the base floor a candidate computes from its own report
// and its voters' statuses.
func (n *Node) revisionFloor(voters map[Peer]statusResponse) int64 {
	floor := floorFromReport(n.revisionReport())
	for _, st := range voters {
		floor = max(floor, floorFromReport(st.HighestRevision, st.WallMicros))
	}
	return floor
}

// newBase is the base revision command of the first leader of a cluster
// bootstrapped here: above the floor the bootstrap carried and above this
// node's own report (it may have emptied itself after it answered).
func (n *Node) newBase(inc *incarnation) fsm.Command {
	return fsm.NewBase(n.opts.Wall(), max(inc.baseFloor.Load(), floorFromReport(n.revisionReport())))
}

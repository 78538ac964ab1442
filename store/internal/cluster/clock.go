package cluster

import "time"

// Cluster time: what TTLs are measured on (DESIGN.md, "TTL"). The state
// machine holds the replicated clock; the leader advances it by stamping
// every command it proposes with its own cluster time, which is
//
//	the replica's estimate when it took over (fsm.State.ClockNow: the
//	replicated clock plus the monotonic time since it rose here)
//	+ the time elapsed on this process's monotonic clock since.
//
// Each leader thus continues the cluster time it inherited, at the rate of
// its monotonic clock, from a value a previous leader stamped before this
// node saw it: from leader to leader the cluster time never runs ahead of
// real time, so a key expires no earlier than its TTL after the leader took
// the write, whatever any wall clock says. It can only run behind (by the
// time an entry takes to reach the next leader, or a clockTick on a node
// that restored a snapshot), and a TTL then runs that much longer.

// clockTick is how far the replicated clock may fall behind the leader's
// cluster time before the leader proposes an fsm.OpClock, when nothing
// else it proposes carries the time. A node that restores a snapshot or
// replays the log of an idle cluster then learns a cluster time at most
// about this old, and would lead with it.
const clockTick = time.Second

// takeover is when an incarnation became a usable leader in term, and the
// cluster time it took over with.
type takeover struct {
	term uint64
	base time.Duration // cluster time at that moment
	at   time.Time     // monotonic reading of that moment
}

// takeOver makes inc's leadership in term usable (incarnation.ready) and
// starts its cluster time: called once the barrier of the term has applied
// every earlier entry, so the estimate it starts from includes the
// previous leader's last stamp.
func (n *Node) takeOver(inc *incarnation, term uint64) {
	inc.lead.Store(&takeover{term: term, base: n.opts.State.ClockNow(), at: time.Now()})
}

// clusterTime is the cluster time this incarnation stamps on what it
// proposes and decides expiry by (at least 1: zero means unstamped), and
// false before its takeover in its Raft's current term. A write taken between the
// election and the barrier goes unstamped: the previous leader's last
// stamps may not be applied here yet, and a stamp continued from an older
// one would be as late as this node applied that, so a key could fall due
// early by as much on a node that applied it sooner. Its TTL starts at the
// next stamp instead (fsm: pending), which is this leader's, after takeover.
// The state's estimate is not followed after the takeover: it restarts from
// each of this leader's stamps as it applies them, a little late each
// time, and following it would slow the leader's clock by every write's
// latency.
func (inc *incarnation) clusterTime() (time.Duration, bool) {
	t := inc.lead.Load()
	if t == nil || t.term != inc.r.CurrentTerm() {
		return 0, false
	}
	return max(t.base+time.Since(t.at), 1), true
}

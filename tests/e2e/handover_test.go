//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gruntwork-io/terratest/modules/retry"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
)

const (
	// storeContainerName is the store's container in the StatefulSet.
	storeContainerName = "ephemeral-store"
)

// The evidence of the handover comes from the store pods' own logs,
// followed (kubectl logs -f, through the API) from before the first upgrade
// for every incarnation of every pod, since a replaced pod's log is gone
// (kubectl logs --previous only covers a restarted container). A poll of
// /v1/cluster or of ephemeral_store_is_leader would only sample the
// leadership, and through the very port-forwards the roll breaks; the logs
// record every step, written by the process that took it:
//
//   - on SIGTERM an incarnation logs "signal received" (cli/serve.go); then
//     server.Server.Close reports not ready and keeps serving for the drain
//     delay (2 s), closes the client API, and cluster.Node.Close transfers
//     leadership if it leads (raft LeadershipTransfer; a failure logs
//     "leadership transfer failed"), then leaves: a follower asks the
//     leader, which retires it and logs "member left" with its id
//     (cluster/rpc.go handleLeave, which only a leader serves), while a
//     node still leading retires itself and no other node logs that line;
//     then it logs "raft stopped" and "stopped";
//   - every incarnation logs "leading" once it leads and may serve reads
//     (cluster/node.go watchLeadership), so the leader at an instant is the
//     author of the latest "leading" line before it (the pods share the
//     host's clock in kind).
//
// So "member left id=X" written by another incarnation Y proves, without
// comparing clocks, that when X left, Y led and X did not. For an X that led
// at its SIGTERM, that is the handover, and it happened before X's Raft
// stopped: the leader was a terminating pod only for its drain and the
// transfer. The timeline logged says how long that took, from the SIGTERM
// to the new leader's "leading".

// upgradeWindow is when an upgrade ran, to attribute each SIGTERM to one.
type upgradeWindow struct {
	name       string
	start, end time.Time
}

// storeLogEvent is one JSON line of a store's log (slog).
type storeLogEvent struct {
	At    time.Time `json:"time"`
	Level string    `json:"level"`
	Msg   string    `json:"msg"`
	ID    string    `json:"id"`
	Err   string    `json:"err"`
	// Raw is the line as logged.
	Raw string `json:"-"`
}

// storeIncarnation is one process of a store pod, named by its Raft ID.
type storeIncarnation struct {
	pod    string
	id     string
	events []storeLogEvent
}

func (inc *storeIncarnation) first(msg string) (storeLogEvent, bool) {
	for _, ev := range inc.events {
		if ev.Msg == msg {
			return ev, true
		}
	}
	return storeLogEvent{}, false
}

// storeLogs follows the logs of every incarnation of every store pod.
type storeLogs struct {
	mu    sync.Mutex
	byID  map[string]*storeIncarnation
	order []*storeIncarnation // by the start of their stream
}

// followStoreLogs starts one follower per pod name; each follows the pod of
// that name that exists, one incarnation after the other, until the test ends.
func followStoreLogs(t *testing.T, kube *kubeAccess, r *release) *storeLogs {
	t.Helper()
	l := &storeLogs{byID: map[string]*storeIncarnation{}}
	var wg sync.WaitGroup
	for i := range r.replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.follow(t.Context(), kube, r.pod(i))
		}()
	}
	t.Cleanup(wg.Wait)
	// Wait until the current incarnations are known, so that nothing of
	// the upgrades can be missed.
	_, err := retry.DoWithRetryContextE(t, t.Context(), "the logs of every store pod are followed", 60, time.Second,
		func() (string, error) {
			l.mu.Lock()
			defer l.mu.Unlock()
			pods := map[string]bool{}
			for _, inc := range l.order {
				pods[inc.pod] = true
			}
			if len(pods) < r.replicas {
				return "", fmt.Errorf("following %d of %d pods", len(pods), r.replicas)
			}
			return "", nil
		})
	require.NoError(t, err)
	return l
}

func (l *storeLogs) follow(ctx context.Context, kube *kubeAccess, pod string) {
	pods := kube.clientset.CoreV1().Pods(kube.ns)
	finished := map[types.UID]bool{}
	pause := func() {
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
	for ctx.Err() == nil {
		p, err := pods.Get(ctx, pod, metav1.GetOptions{})
		if err != nil || finished[p.UID] || !containerStarted(p) {
			pause()
			continue
		}
		uid := p.UID
		if err := l.stream(ctx, pods.GetLogs(pod, &corev1.PodLogOptions{Container: storeContainerName, Follow: true}), pod); err != nil {
			pause()
			continue
		}
		// The stream ended: the container stopped, or only the stream
		// broke (then it is followed again, its lines deduplicated).
		p, err = pods.Get(ctx, pod, metav1.GetOptions{})
		if apierrors.IsNotFound(err) || (err == nil && (p.UID != uid || !containerRunning(p))) {
			finished[uid] = true
		}
		pause()
	}
}

func containerStarted(p *corev1.Pod) bool {
	for _, cs := range p.Status.ContainerStatuses {
		if cs.Name == storeContainerName && (cs.State.Running != nil || cs.State.Terminated != nil) {
			return true
		}
	}
	return false
}

func containerRunning(p *corev1.Pod) bool {
	for _, cs := range p.Status.ContainerStatuses {
		if cs.Name == storeContainerName && cs.State.Running != nil {
			return true
		}
	}
	return false
}

// stream reads one log stream to its end. Its lines belong to the
// incarnation named by its "raft started" line; lines already recorded
// from an earlier stream of the same incarnation are skipped.
func (l *storeLogs) stream(ctx context.Context, req *rest.Request, pod string) error {
	rc, err := req.Stream(ctx)
	if err != nil {
		return err
	}
	defer rc.Close()
	var (
		inc     *storeIncarnation
		pending []storeLogEvent
		n       int // events of inc in this stream
	)
	sc := bufio.NewScanner(rc)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var ev storeLogEvent
		if json.Unmarshal(sc.Bytes(), &ev) != nil || ev.Msg == "" {
			continue
		}
		ev.Raw = sc.Text()
		if ev.Msg == "raft started" && ev.ID != "" && (inc == nil || inc.id != ev.ID) {
			// A new incarnation (the first of the stream, or one that
			// rejoined under a new ID in the same process).
			inc, n = l.incarnation(pod, ev.ID), 0
		}
		if inc == nil {
			pending = append(pending, ev)
			continue
		}
		for _, e := range append(pending, ev) {
			l.mu.Lock()
			if n >= len(inc.events) {
				inc.events = append(inc.events, e)
			}
			l.mu.Unlock()
			n++
		}
		pending = nil
	}
	return sc.Err()
}

func (l *storeLogs) incarnation(pod, id string) *storeIncarnation {
	l.mu.Lock()
	defer l.mu.Unlock()
	if inc, ok := l.byID[id]; ok {
		return inc
	}
	inc := &storeIncarnation{pod: pod, id: id}
	l.byID[id] = inc
	l.order = append(l.order, inc)
	return inc
}

// snapshot copies the incarnations and their events.
func (l *storeLogs) snapshot() []storeIncarnation {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]storeIncarnation, len(l.order))
	for i, inc := range l.order {
		out[i] = storeIncarnation{pod: inc.pod, id: inc.id, events: slices.Clone(inc.events)}
	}
	return out
}

// requireHandovers checks the logs as the comment above says: want
// incarnations ended on SIGTERM within the upgrades, each one handing
// leadership over if it led, leaving through another leader, and exiting
// before the grace period ran out; at least one of them led at its SIGTERM.
func (l *storeLogs) requireHandovers(t *testing.T, windows []upgradeWindow, want int) {
	t.Helper()
	// The last lines of the current leader (a "member left") may still be
	// on their way: wait until every ended incarnation is accounted for.
	var incs []storeIncarnation
	var problems []handoverProblem
	_, err := retry.DoWithRetryContextE(t, t.Context(), "the store logs show every SIGTERM's handover", 15, pollEvery,
		func() (string, error) {
			incs = l.snapshot()
			var ended int
			ended, problems = handoverProblems(incs)
			if ended < want {
				return "", fmt.Errorf("%d incarnations ended on SIGTERM in the logs, want %d", ended, want)
			}
			if len(problems) > 0 {
				return "", fmt.Errorf("%d problems", len(problems))
			}
			return "", nil
		})
	for _, line := range handoverTimeline(incs, windows) {
		t.Log(line)
	}
	for _, p := range problems {
		t.Errorf("handover: %s", p.what)
		if p.id == "" {
			continue
		}
		// The evidence: the incarnation's lines from its SIGTERM on, and
		// every warning of the others meanwhile.
		var lines []string
		for _, inc := range incs {
			for _, ev := range inc.events {
				if ev.At.Before(p.from) || ev.At.After(p.to) || (inc.id != p.id && ev.Level != "WARN" && ev.Level != "ERROR" && ev.Msg != "leading" && ev.Msg != "member left") {
					continue
				}
				lines = append(lines, ev.At.Format("15:04:05.000000")+" "+inc.id+" "+ev.Raw)
			}
		}
		sort.Strings(lines)
		if len(lines) > 80 {
			lines = lines[:80]
		}
		t.Logf("the logs of every store pod from %s's SIGTERM to its exit (its own lines, the others' warnings):\n  %s", p.id, strings.Join(lines, "\n  "))
	}
	require.NoError(t, err)
}

// handoverProblem is what the logs show wrong with one SIGTERM, and the
// span of the logs that shows it.
type handoverProblem struct {
	id       string
	what     string
	from, to time.Time
}

// leaderAt is the incarnation whose "leading" line is the latest at or
// before at ("" when none).
func leaderAt(incs []storeIncarnation, at time.Time) string {
	var best time.Time
	leader := ""
	for _, inc := range incs {
		for _, ev := range inc.events {
			if ev.Msg == "leading" && !ev.At.After(at) && !ev.At.Before(best) {
				best, leader = ev.At, inc.id
			}
		}
	}
	return leader
}

// leftThrough is the incarnation that logged "member left" for id, and when.
func leftThrough(incs []storeIncarnation, id string) (string, time.Time) {
	for _, inc := range incs {
		for _, ev := range inc.events {
			if ev.Msg == "member left" && ev.ID == id {
				return inc.id, ev.At
			}
		}
	}
	return "", time.Time{}
}

// successor is the first incarnation other than id that logged "leading"
// after from, and when.
func successor(incs []storeIncarnation, id string, from time.Time) (string, time.Time) {
	var next string
	var at time.Time
	for _, inc := range incs {
		for _, ev := range inc.events {
			if inc.id != id && ev.Msg == "leading" && ev.At.After(from) && (next == "" || ev.At.Before(at)) {
				next, at = inc.id, ev.At
			}
		}
	}
	return next, at
}

// handoverProblems counts the incarnations that ended on SIGTERM and lists
// what the logs show wrong with any of them: a leader that did not hand
// over before its Raft stopped, or led again; a failed transfer; a leave
// that no other leader confirmed; an exit that never came.
func handoverProblems(incs []storeIncarnation) (int, []handoverProblem) {
	var problems []handoverProblem
	ended, leaders := 0, 0
	for _, inc := range incs {
		sig, ok := inc.first("signal received, leaving the cluster")
		if !ok {
			continue
		}
		ended++
		end := inc.events[len(inc.events)-1].At
		stop, stopped := inc.first("raft stopped")
		if !stopped {
			stop.At = end
		}
		problem := func(format string, args ...any) {
			problems = append(problems, handoverProblem{id: inc.id, what: inc.id + " " + fmt.Sprintf(format, args...), from: sig.At, to: end})
		}
		if leaderAt(incs, sig.At) == inc.id {
			leaders++
			if next, at := successor(incs, inc.id, sig.At); next == "" || at.After(stop.At) {
				problem("led at its SIGTERM (%s) and no other incarnation took over before its Raft stopped", sig.At.Format(time.StampMilli))
			}
		}
		for _, ev := range inc.events {
			switch {
			case ev.At.After(sig.At) && ev.Msg == "leading":
				problem("led again after its SIGTERM, at %s", ev.At.Format(time.StampMilli))
			case ev.Msg == "leadership transfer failed":
				problem("logged %q: %s", ev.Msg, ev.Err)
			}
		}
		_, leftLogged := inc.first("left the cluster")
		by, _ := leftThrough(incs, inc.id)
		switch {
		case by == "" && !leftLogged:
			why := "never logged \"left the cluster\""
			if ev, ok := inc.first("could not leave the cluster before the deadline"); ok {
				why = fmt.Sprintf("gave up leaving at %s (\"%s\": its shutdown timeout ran out)", ev.At.Format(time.StampMilli), ev.Msg)
			}
			problem("could not leave the cluster after its SIGTERM: no leader confirmed it (no \"member left\" for it in another incarnation's log) and it %s", why)
		case by == "" || by == inc.id:
			problem("left the cluster as its own leader (no \"member left\" for it in another incarnation's log)")
		}
		if _, ok := inc.first("stopped"); !ok {
			problem("got SIGTERM at %s but its log ends before \"stopped\" (killed before its graceful exit ended?)", sig.At.Format(time.StampMilli))
		}
	}
	if ended > 0 && leaders == 0 {
		problems = append(problems, handoverProblem{what: fmt.Sprintf("none of the %d incarnations ended on SIGTERM led at its SIGTERM: the logs show no handover at all", ended)})
	}
	return ended, problems
}

// handoverTimeline describes every SIGTERM, in order, for the test log.
func handoverTimeline(incs []storeIncarnation, windows []upgradeWindow) []string {
	type term struct {
		inc storeIncarnation
		sig time.Time
	}
	var terms []term
	for _, inc := range incs {
		if sig, ok := inc.first("signal received, leaving the cluster"); ok {
			terms = append(terms, term{inc, sig.At})
		}
	}
	sort.Slice(terms, func(i, j int) bool { return terms[i].sig.Before(terms[j].sig) })
	var lines []string
	for _, tm := range terms {
		window := "outside the upgrades"
		for _, w := range windows {
			if !tm.sig.Before(w.start) && !tm.sig.After(w.end) {
				window = w.name
			}
		}
		rel := func(at time.Time) string { return "+" + at.Sub(tm.sig).Round(time.Millisecond).String() }
		line := fmt.Sprintf("%s: %s SIGTERM at %s", window, tm.inc.id, tm.sig.Format("15:04:05.000"))
		if leaderAt(incs, tm.sig) == tm.inc.id {
			line += " as the leader"
			if next, at := successor(incs, tm.inc.id, tm.sig); next != "" {
				line += fmt.Sprintf("; %s leading %s", next, rel(at))
			} else {
				line += "; no new leader in the logs"
			}
		} else {
			line += fmt.Sprintf(" as a follower of %s", leaderAt(incs, tm.sig))
		}
		if by, at := leftThrough(incs, tm.inc.id); by != "" {
			line += fmt.Sprintf("; left through %s %s", by, rel(at))
		} else {
			line += "; no leader confirmed its leave"
		}
		if ev, ok := tm.inc.first("raft stopped"); ok {
			line += fmt.Sprintf("; raft stopped %s", rel(ev.At))
		}
		if ev, ok := tm.inc.first("stopped"); ok {
			line += fmt.Sprintf("; exited %s", rel(ev.At))
		}
		lines = append(lines, line)
	}
	return lines
}

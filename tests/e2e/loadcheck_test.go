//go:build e2e

package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/ephemeral-store/ephemeral-store/store/kvhistory"
)

// newLoadClients are the clients of an upgradeLoad: one through the client
// Service (a ready, non-terminating endpoint picked at each connection, as
// kube-proxy would), the others through pods 0 to pods-1 in turn, each
// starting at another pod.
func newLoadClients(t *testing.T, r *release, tunnels *podTunnels, pods int) []*loadClient {
	t.Helper()
	clients := []*loadClient{{name: "svc", cl: tunnels.client(t, r.fullname)}}
	for i := range loadClients - 1 {
		var targets []string
		for j := range pods {
			targets = append(targets, r.pod((i+j)%pods))
		}
		clients = append(clients, &loadClient{name: "pods-" + strings.Join(podOrdinals(targets), ""), cl: tunnels.client(t, targets...)})
	}
	return clients
}

// finalReads reads every key linearizably through each pod alone (the
// reads join the history, as clients numbered from len(l.clients)) and
// fails the test when two pods disagree.
func (l *upgradeLoad) finalReads(t *testing.T, r *release, tunnels *podTunnels) map[string]kvhistory.Output {
	t.Helper()
	final := map[string]kvhistory.Output{}
	for i := range r.replicas {
		got := l.readAll(t, len(l.clients)+i, &loadClient{name: "final-" + r.pod(i), cl: tunnels.client(t, r.pod(i))})
		for key, out := range got {
			if prev, ok := final[key]; ok && prev != out {
				t.Errorf("final read of %s: %s answered %+v, an earlier pod %+v", key, r.pod(i), out, prev)
			}
			final[key] = out
		}
	}
	return final
}

// verdicts fails the test for every request that failed after its
// retries, every acknowledged write that final lost, and a history that is
// not linearizable (porcupine's visualization is written to a file named
// by the pattern visualization).
func (l *upgradeLoad) verdicts(t *testing.T, final map[string]kvhistory.Output, visualization string) {
	t.Helper()
	for _, f := range l.failuresList() {
		t.Errorf("request failed after its retries: %s", f)
	}
	lost := l.lostWrites(final)
	for _, w := range lost {
		t.Errorf("acknowledged write lost: %s", w)
	}
	ops := l.h.Operations()
	res := kvhistory.Check(ops, 10*time.Minute, visualization)
	t.Logf("porcupine: %s on %d operations in %s; %d acknowledged writes lost", res.Result, len(ops), res.Duration.Round(time.Millisecond), len(lost))
	if res.Result != porcupine.Ok {
		t.Errorf("the history is not linearizable: porcupine says %s; visualization: %s", res.Result, res.Visualization)
	}
}

// reportWithGap logs the load's numbers and the longest time between from
// and to (recorder timestamps) without an acknowledged write, during names
// what happened then.
func (l *upgradeLoad) reportWithGap(t *testing.T, from, to int64, during string) {
	t.Helper()
	l.report(t)
	gap, gapAt := l.longestWriteGap(from, to)
	t.Logf("load: the longest time without any acknowledged write %s was %s (from %s)",
		during, gap.Round(time.Millisecond), gapAt.Format("15:04:05.000"))
}

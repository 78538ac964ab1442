//go:build e2e

package e2e

import (
	"context"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gruntwork-io/terratest/modules/random"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"

	"github.com/ephemeral-store/ephemeral-store/tests/internal/kindcluster"
)

const (
	// upgradeTag is the second tag of the store image the image upgrade
	// rolls to: the same image, so only the pod template changes.
	upgradeTag = "e2e-upgrade"
)

// TestE2ERollingUpgradeUnderLoad: two `helm upgrade`s roll every store pod
// (an annotation, then the image tag) while four clients write and read
// continuously through per-connection port-forwards, retrying what fails.
// Every request succeeds within its retries, the recorded history is
// linearizable (porcupine), no acknowledged write is lost, every pod was
// replaced, and the pods' own logs show that each pod that led when it got
// SIGTERM handed leadership over and left through the new leader before it
// stopped.
func TestE2ERollingUpgradeUnderLoad(t *testing.T) {
	c := suite(t, "rolling upgrade under load")
	r := install(t, c, installOptions{Label: "upgrade"})
	run := strings.ToLower(random.UniqueID())

	kube := r.kube
	logs := followStoreLogs(t, kube, r)
	tunnels := &podTunnels{kube: kube, r: r, tls: r.tls.Clone()}
	tunnels.tls.NextProtos = []string{"h2", "http/1.1"}
	admin := tunnels.client(t, r.fullname)
	r.members(t, admin)

	// The image the second upgrade rolls to, loaded into the nodes before
	// any traffic (kind load is not free on two CPUs).
	oldImage := r.storeImage(t)
	newImage := loadUpgradeImage(t, c, oldImage)

	load := newUpgradeLoad(run)
	clients := newLoadClients(t, r, tunnels, r.replicas)
	stopLoad := load.start(t, clients)
	t.Logf("load: %d clients on %d keys under %s, one operation per client every %s at most, each retried for up to %s",
		len(clients), loadKeys, load.prefix, loadPace, opBound)
	load.waitOps(t, opsBeforeAndAfter, "before the first upgrade")

	// Upgrade 1: a pod annotation rolls every pod on the same image.
	before := r.storePods(t)
	rollFrom := load.h.Now()
	start1 := time.Now()
	r.upgrade(t, map[string]string{"podAnnotations.e2e-roll": run})
	took1 := time.Since(start1)
	end1 := time.Now()
	after1 := requireRolled(t, r, before, "upgrade 1 (podAnnotations)")
	for name, p := range after1 {
		require.Equal(t, run, p.Annotations["e2e-roll"], "pod %s lacks the annotation of upgrade 1", name)
	}
	r.members(t, admin)
	t.Logf("upgrade 1 (podAnnotations.e2e-roll=%s) rolled every pod in %s (helm upgrade --wait, readiness, helm test)",
		run, took1.Round(time.Second))

	// Upgrade 2: the image tag.
	start2 := time.Now()
	r.upgrade(t, map[string]string{"image.tag": upgradeTag})
	took2 := time.Since(start2)
	end2 := time.Now()
	rollTo := load.h.Now()
	after2 := requireRolled(t, r, after1, "upgrade 2 (image.tag)")
	require.Equal(t, newImage, r.storeImage(t), "the StatefulSet's image after upgrade 2")
	for name, p := range after2 {
		require.Equal(t, newImage, p.Spec.Containers[0].Image, "pod %s runs the old image", name)
	}
	r.members(t, admin)
	t.Logf("upgrade 2 (image %s -> %s) rolled every pod in %s (helm upgrade --wait, readiness, helm test)",
		oldImage, newImage, took2.Round(time.Second))

	load.waitOps(t, opsBeforeAndAfter, "after the second upgrade")
	stopLoad()

	final := load.finalReads(t, r, tunnels)

	// Numbers first, then the verdicts.
	load.reportWithGap(t, rollFrom, rollTo, "during the upgrades")
	t.Logf("upgrades: 1 (annotation) %s, 2 (image) %s; tunnels: %d connections opened, %d refused",
		took1.Round(time.Second), took2.Round(time.Second), tunnels.dials.Load(), tunnels.refused.Load())
	load.verdicts(t, final, "e2e-upgrade-linearizability-*.html")

	logs.requireHandovers(t, []upgradeWindow{{"upgrade 1", start1, end1}, {"upgrade 2", start2, end2}}, 2*r.replicas)
}

// loadUpgradeImage tags the image the release runs as upgradeTag and loads
// it into the kind nodes; it returns the new reference.
func loadUpgradeImage(t *testing.T, c *kindcluster.Cluster, current string) string {
	t.Helper()
	i := strings.LastIndex(current, ":")
	require.True(t, i > 0 && !strings.Contains(current[i:], "/") && !strings.Contains(current, "@"),
		"the StatefulSet's image %q is not repository:tag", current)
	target := current[:i] + ":" + upgradeTag
	runHostTool(t, "docker", "tag", current, target)
	runHostTool(t, filepath.Join(c.RepoRoot, "bin", "kind"), "load", "docker-image", target, "--name", c.Name)
	t.Logf("image %s tagged %s and loaded into kind cluster %s", current, target, c.Name)
	return target
}

func runHostTool(t *testing.T, name string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	require.NoError(t, err, "%s %s:\n%s", name, strings.Join(args, " "), out)
}

// requireRolled fails unless every store pod of before was replaced (a new
// UID) and none of the new ones restarted; it returns the new pods.
func requireRolled(t *testing.T, r *release, before map[string]corev1.Pod, what string) map[string]corev1.Pod {
	t.Helper()
	after := r.storePods(t)
	require.Len(t, after, r.replicas, "store pods after %s", what)
	for i := range r.replicas {
		name := r.pod(i)
		old, now := before[name], after[name]
		require.NotEqual(t, old.UID, now.UID, "%s did not replace pod %s (%s)", what, name, podIdentity(now))
		for _, cs := range now.Status.ContainerStatuses {
			require.Zero(t, cs.RestartCount, "pod %s restarted after %s", name, what)
		}
		t.Logf("%s: %s %s -> %s", what, name, old.UID, now.UID)
	}
	return after
}

// TestE2ERollingUpgradeUnderLoadVerdictsCanFail is the teeth check of the suite's
// verdicts, without a cluster: the log analysis flags a leader that did not
// hand over, while accepting the histories a correct roll produces. (The
// lost-write check's teeth are kvhistory's own test.)
func TestE2ERollingUpgradeUnderLoadVerdictsCanFail(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	ev := func(ms int, msg, id string) storeLogEvent {
		return storeLogEvent{At: at(ms), Level: "INFO", Msg: msg, ID: id}
	}
	// a led from the start and got SIGTERM at 1000; b took over.
	leaver := func(extra ...storeLogEvent) storeIncarnation {
		evs := []storeLogEvent{ev(0, "raft started", "a"), ev(10, "leading", "a"), ev(1000, "signal received, leaving the cluster", "")}
		evs = append(evs, extra...)
		return storeIncarnation{pod: "p-0", id: "a", events: evs}
	}
	graceful := []storeLogEvent{ev(4000, "left the cluster", "a"), ev(4010, "raft stopped", "a"), ev(4020, "stopped", "")}
	successor := storeIncarnation{pod: "p-1", id: "b", events: []storeLogEvent{
		ev(0, "raft started", "b"), ev(3900, "leading", "b"), ev(3990, "member left", "a")}}
	selfRetired := storeIncarnation{pod: "p-1", id: "b", events: []storeLogEvent{ev(0, "raft started", "b"), ev(4100, "leading", "b")}}
	transferFailed := storeLogEvent{At: at(3500), Level: "WARN", Msg: "leadership transfer failed", Err: "timeout"}
	gaveUp := storeLogEvent{At: at(11000), Level: "WARN", Msg: "could not leave the cluster before the deadline", ID: "a"}
	unconfirmed := storeIncarnation{pod: "p-1", id: "b", events: []storeLogEvent{ev(0, "raft started", "b"), ev(3900, "leading", "b")}}

	tests := []struct {
		name  string
		incs  []storeIncarnation
		wants string // a substring of a problem; "" for none
	}{
		{"leader handed over and left through its successor", []storeIncarnation{leaver(graceful...), successor}, ""},
		{"leader left as the leader", []storeIncarnation{leaver(graceful...), selfRetired}, "left the cluster as its own leader"},
		{"nobody took over before the leader stopped", []storeIncarnation{leaver(graceful...), selfRetired}, "no other incarnation took over"},
		{"leadership transfer failed", []storeIncarnation{leaver(append([]storeLogEvent{transferFailed}, graceful...)...), successor}, "leadership transfer failed"},
		{"leave never confirmed", []storeIncarnation{leaver(gaveUp, ev(11001, "raft stopped", "a"), ev(11002, "stopped", "")), unconfirmed}, "could not leave the cluster"},
		{"led again after SIGTERM", []storeIncarnation{leaver(append([]storeLogEvent{ev(3950, "leading", "a")}, graceful...)...), successor}, "led again"},
		{"killed before the graceful exit ended", []storeIncarnation{leaver(graceful[0]), successor}, "ends before \"stopped\""},
		{"no terminated pod ever led", []storeIncarnation{
			{pod: "p-0", id: "a", events: append([]storeLogEvent{ev(0, "raft started", "a"), ev(1000, "signal received, leaving the cluster", "")}, graceful...)},
			{pod: "p-1", id: "b", events: []storeLogEvent{ev(0, "raft started", "b"), ev(10, "leading", "b"), ev(3990, "member left", "a")}},
		}, "no handover at all"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ended, problems := handoverProblems(tt.incs)
			require.Equal(t, 1, ended)
			var whats []string
			for _, p := range problems {
				whats = append(whats, p.what)
			}
			if tt.wants == "" {
				require.Empty(t, whats)
				return
			}
			require.True(t, slices.ContainsFunc(whats, func(w string) bool { return strings.Contains(w, tt.wants) }),
				"no problem says %q: %v", tt.wants, whats)
		})
	}
}

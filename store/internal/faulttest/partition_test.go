package faulttest

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/stretchr/testify/assert"

	"github.com/ephemeral-store/ephemeral-store/store/client"
	"github.com/ephemeral-store/ephemeral-store/store/internal/faulttest/netlab"
	"github.com/ephemeral-store/ephemeral-store/store/kvhistory"
)

// The partition tier (docs/architecture.md, "Test tiers"): five real processes,
// each in its own network namespace of a netlab.Lab, cut apart by silent
// iptables drops, frozen with SIGSTOP and killed with SIGKILL, along a
// seeded random schedule of faults with healing in between. Clients write
// unique values throughout, through every node (half of them pinned to one
// node, so both sides of a partition take requests) and record a history.
// At the end of a run:
//
//   - porcupine checks the history (linearizable reads through every node
//     are part of it);
//   - every acknowledged write is read back through every node's own
//     endpoint with a linearizable read: the unique keys one by one (a
//     list), and the last acknowledged write of each contended key;
//   - every node reports the same cluster_id in /v1/cluster.
//
// Each run prints one summary line; TestPartitionSchedules prints the
// totals last. FAULT_RUNS sets the number of runs, FAULT_SEED replays one
// seed, FAULT_FAULTS sets the number of faults per run (3), FAULT_KINDS
// limits the kinds drawn (comma-separated names, e.g.
// partition-restarts). Without
// FAULT_RUNS or FAULT_SEED the test skips, saying so: a run takes about
// half a minute and root, so the tier runs as its own target,
// `make test-faults RUNS=<n>` (make test runs it with RUNS=3). A failing
// run keeps its history, porcupine's visualization, the schedule and the
// node logs in a directory that outlives the test, and prints its path.

// partitionQuorumLoss is --quorum-loss-timeout in these runs: short, so
// that faults longer than three of them fit in a test.
const partitionQuorumLoss = 2 * time.Second

// readyAfterHeal bounds the wait for every node to be ready after a fault
// healed; beyond it the run fails.
const readyAfterHeal = 90 * time.Second

// partitionFault is one kind of fault: run injects it, holds it, undoes
// what it did and returns a label naming the nodes it hit.
type partitionFault struct {
	name string
	run  func(r *scheduleRun) string
}

var partitionFaults = []partitionFault{
	{"leader-isolated", func(r *scheduleRun) string {
		l := r.leader()
		r.partition([]int{l}, r.others(l))
		r.hold(3 * time.Second)
		return fmt.Sprintf("leader-isolated(n%d)", l)
	}},
	{"leader-minority", func(r *scheduleRun) string {
		l := r.leader()
		rest := r.shuffled(r.others(l))
		minority := []int{l, rest[0]}
		r.partition(minority, rest[1:])
		r.hold(3 * time.Second)
		return fmt.Sprintf("leader-minority(%s|%s)", nodeList(minority), nodeList(rest[1:]))
	}},
	{"bridge", func(r *scheduleRun) string {
		all := r.shuffled(r.all())
		b, rest := all[0], all[1:]
		half := len(rest) / 2
		a, c := append([]int{b}, rest[:half]...), append([]int{b}, rest[half:]...)
		r.partition(a, c)
		r.hold(4 * time.Second)
		return fmt.Sprintf("bridge(n%d sees %s|%s)", b, nodeList(rest[:half]), nodeList(rest[half:]))
	}},
	{"long-partition", func(r *scheduleRun) string {
		all := r.shuffled(r.all())
		minority, majority := all[:len(all)/2], all[len(all)/2:]
		r.partition(minority, majority)
		// Six to ten quorum-loss timeouts: long enough for a side that
		// counts silence as death to give up on the other and re-form.
		qlt := r.c.Options().QuorumLossTimeout
		hold := 6*qlt + time.Duration(r.rng.Int64N(int64(4*qlt)))
		hold = hold.Round(100 * time.Millisecond)
		r.hold(hold)
		return fmt.Sprintf("long-partition(%s|%s %s)", nodeList(minority), nodeList(majority), hold)
	}},
	{"pause-all", func(r *scheduleRun) string {
		hold := 4 * r.c.Options().QuorumLossTimeout
		for i := range r.c.Nodes {
			r.c.Pause(i)
		}
		r.hold(hold)
		for i := range r.c.Nodes {
			r.c.Resume(i)
		}
		return fmt.Sprintf("pause-all(%s)", hold)
	}},
	{"kill-1", func(r *scheduleRun) string {
		n := r.rng.IntN(len(r.c.Nodes))
		r.c.Kill(n)
		r.hold(2 * time.Second)
		r.c.Start(n)
		return fmt.Sprintf("kill-1(n%d)", n)
	}},
	{"kill-2", func(r *scheduleRun) string {
		two := r.shuffled(r.all())[:2]
		sort.Ints(two)
		r.c.KillAll(two...)
		r.hold(2 * time.Second)
		for _, n := range two {
			r.c.Start(n)
		}
		return fmt.Sprintf("kill-2(%s)", nodeList(two))
	}},
	{"pause-leader", func(r *scheduleRun) string {
		l := r.leader()
		hold := 2 * r.c.Options().QuorumLossTimeout
		r.c.Pause(l)
		r.hold(hold)
		r.c.Resume(l)
		return fmt.Sprintf("pause-leader(n%d %s)", l, hold)
	}},
	{"pause-follower", func(r *scheduleRun) string {
		l := r.leader()
		f := r.shuffled(r.others(l))[0]
		hold := 2 * r.c.Options().QuorumLossTimeout
		r.c.Pause(f)
		r.hold(hold)
		r.c.Resume(f)
		return fmt.Sprintf("pause-follower(n%d %s)", f, hold)
	}},
}

// composedFaults inject several faults in one schedule, as operations and
// outages compose in a real cluster: a node judged by a configuration that
// changed while it was cut off, and a drain that takes two pods at once.
var composedFaults = []partitionFault{
	{"partition-restarts", func(r *scheduleRun) string {
		// S is cut off for several quorum-loss timeouts; inside the
		// partition X restarts and its new incarnation is promoted, then B
		// and C restart together, which leaves the majority side without a
		// leader ({S, A, X', placeholder B, placeholder C} needs S). On
		// heal, S's own configuration names X, B and C, all answering as
		// other incarnations: only the newest configuration, which A and X'
		// report, shows that S, A and X' still hold every write.
		all := r.shuffled(r.all())
		s, x, b, c := all[0], all[1], all[2], all[3]
		qlt := r.c.Options().QuorumLossTimeout
		r.partition([]int{s}, r.others(s))
		r.hold(qlt)
		r.c.Kill(x)
		r.c.Start(x)
		if err := r.c.WaitReadyErr([]int{x}, readyAfterHeal); err != nil {
			r.logf("n%d not promoted inside the partition: %v", x, err)
		}
		r.c.KillAll(b, c)
		r.c.Start(b)
		r.c.Start(c)
		r.hold(3 * qlt)
		return fmt.Sprintf("partition-restarts(n%d cut off; n%d restarted, then n%d,n%d)", s, x, b, c)
	}},
	{"drain-2", func(r *scheduleRun) string {
		// Two pods drained at once (a PodDisruptionBudget allowing two, or
		// two nodes drained in parallel): both leave gracefully together,
		// their placeholders keep quorum at a majority of the replicas,
		// and they come back as new incarnations.
		two := r.shuffled(r.all())[:2]
		sort.Ints(two)
		var wg sync.WaitGroup
		for _, n := range two {
			wg.Add(1)
			go func() { defer wg.Done(); r.c.Stop(n) }()
		}
		wg.Wait()
		r.hold(2 * time.Second)
		for _, n := range two {
			r.c.Start(n)
		}
		return fmt.Sprintf("drain-2(%s)", nodeList(two))
	}},
	{"scale-down-up", func(r *scheduleRun) string {
		// A StatefulSet scaled from 5 to 3 while one of the three that stay
		// is cut off, then back to 5 once it healed: the count changes in
		// the file the nodes read (as in spec.replicas), the pods beyond it
		// stop together (SIGTERM) and later start again as new incarnations.
		all := len(r.c.Nodes)
		small := all/2 + 1
		cut := r.rng.IntN(small)
		qlt := r.c.Options().QuorumLossTimeout
		r.partition([]int{cut}, r.others(cut))
		r.setReplicas(small)
		var wg sync.WaitGroup
		for i := small; i < all; i++ {
			wg.Add(1)
			go func() { defer wg.Done(); r.c.Stop(i) }()
		}
		wg.Wait()
		r.hold(2 * qlt)
		if err := r.lab.Heal(); err != nil {
			r.t.Fatalf("heal: %v", err)
		}
		stay := r.all()[:small]
		if err := r.c.WaitReadyErr(stay, readyAfterHeal); err != nil {
			r.fail("scaled down to %d: %v", small, err)
		}
		r.setReplicas(all)
		for i := small; i < all; i++ {
			r.c.Start(i)
		}
		return fmt.Sprintf("scale-down-up(%d->%d->%d, n%d cut off during the scale-down)", all, small, all, cut)
	}},
}

// setReplicas writes the replica count the nodes read
// (--replicas-from=file:), as Kubernetes changes a StatefulSet's
// spec.replicas.
func (r *scheduleRun) setReplicas(n int) {
	r.t.Helper()
	writeReplicaCount(r.t, r.countFile, n)
	r.logf("replica count: %d", n)
}

func writeReplicaCount(t *testing.T, path string, n int) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(fmt.Sprintln(n)), 0o644); err != nil {
		t.Fatalf("replica count: %v", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatalf("replica count: %v", err)
	}
}

func nodeList(idx []int) string {
	parts := make([]string, len(idx))
	for k, i := range idx {
		parts[k] = fmt.Sprintf("n%d", i)
	}
	return strings.Join(parts, ",")
}

// partitionTotals adds up the runs of one TestPartitionSchedules.
type partitionTotals struct {
	mu          sync.Mutex
	runs        int
	violations  int // runs that failed
	lost        int
	longest     time.Duration
	longestSeed uint64
	byKind      map[string]time.Duration
	failed      []string // seeds and where their files are
}

func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}

func TestPartitionSchedules(t *testing.T) {
	if os.Getenv("FAULT_RUNS") == "" && os.Getenv("FAULT_SEED") == "" {
		t.Skip("the partition tier runs with FAULT_RUNS=<n> or FAULT_SEED=<seed>: make test-faults RUNS=<n>")
	}
	runs := envInt(t, "FAULT_RUNS", 1)
	faults := envInt(t, "FAULT_FAULTS", 3)
	var seeds []uint64
	if v := os.Getenv("FAULT_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("FAULT_SEED=%q: %v", v, err)
		}
		seeds = append(seeds, s)
		if os.Getenv("FAULT_RUNS") == "" {
			runs = 1
		}
	}
	for len(seeds) < runs {
		seeds = append(seeds, rand.Uint64N(1_000_000_000))
	}
	tot := &partitionTotals{}
	start := time.Now()
	t.Cleanup(func() {
		tot.mu.Lock()
		defer tot.mu.Unlock()
		for _, f := range tot.failed {
			t.Logf("failed run: %s", f)
		}
		t.Logf("PARTITION TIER SUMMARY: runs=%d violations=%d lost-writes=%d longest-unavailability=%s (seed %d) elapsed=%s",
			tot.runs, tot.violations, tot.lost, tot.longest.Round(10*time.Millisecond), tot.longestSeed,
			time.Since(start).Round(time.Second))
		kinds := make([]string, 0, len(tot.byKind))
		for k := range tot.byKind {
			kinds = append(kinds, k)
		}
		sort.Strings(kinds)
		for _, k := range kinds {
			t.Logf("PARTITION TIER longest unavailability during %s: %s", k, tot.byKind[k].Round(10*time.Millisecond))
		}
	})
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			runSchedule(t, seed, faults, tot)
		})
	}
}

// scheduleRun is the state of one seeded run.
type scheduleRun struct {
	t    *testing.T
	seed uint64
	rng  *rand.Rand
	c    *Cluster
	lab  *netlab.Lab
	w    *workload

	spans  []faultSpan
	events []string // timeline, for the files of a failed run
	errs   []string // why the run failed, in the words of the summary
	dead   map[int]bool
	// countFile holds the replica count the nodes read.
	countFile string
}

// reportDeaths fails the run for every node whose process ended and was
// not reported yet.
func (r *scheduleRun) reportDeaths() {
	r.t.Helper()
	for i := range r.c.Nodes {
		if !r.c.Running(i) && !r.dead[i] {
			if r.dead == nil {
				r.dead = map[int]bool{}
			}
			r.dead[i] = true
			r.fail("n%d is not running at the end: %s", i, r.deathReason(i))
		}
	}
}

// faultSpan is when one fault was in force (history timestamps), from its
// injection to the moment every node was ready again.
type faultSpan struct {
	kind, label string
	start, end  int64
}

func (r *scheduleRun) logf(format string, args ...any) {
	r.t.Helper()
	msg := fmt.Sprintf(format, args...)
	r.events = append(r.events, fmt.Sprintf("%9.3fs %s", float64(r.w.h.Now())/1e9, msg))
	r.t.Log(msg)
}

// fail marks the run failed with a reason that also goes to its files.
func (r *scheduleRun) fail(format string, args ...any) {
	r.t.Helper()
	msg := fmt.Sprintf(format, args...)
	r.errs = append(r.errs, msg)
	r.events = append(r.events, fmt.Sprintf("%9.3fs FAIL %s", float64(r.w.h.Now())/1e9, msg))
	r.t.Error(msg)
}

func (r *scheduleRun) all() []int {
	idx := make([]int, len(r.c.Nodes))
	for i := range idx {
		idx[i] = i
	}
	return idx
}

func (r *scheduleRun) others(n int) []int {
	var idx []int
	for i := range r.c.Nodes {
		if i != n {
			idx = append(idx, i)
		}
	}
	return idx
}

func (r *scheduleRun) shuffled(idx []int) []int {
	out := append([]int(nil), idx...)
	r.rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// poll waits with testify's EventuallyWithT until check holds or within
// passes, and returns whether it held and the last explanation check gave.
// It never fails the test itself: a run reports its failures through
// scheduleRun.fail, into its summary line and files. Whatever check writes
// besides its explanation must be safe to write from another goroutine
// (check runs on one) and must be read only once poll returned true.
func poll(within time.Duration, check func() (bool, string)) (bool, string) {
	var (
		mu   sync.Mutex
		last string
	)
	ok := assert.EventuallyWithT(discardT{}, func(ct *assert.CollectT) {
		done, why := check()
		mu.Lock()
		last = why
		mu.Unlock()
		if !done {
			ct.Errorf("%s", why)
		}
	}, within, 100*time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	return ok, last
}

// leader is the node that says it leads, asked for up to 20s; when none
// does (an election that does not settle is itself reported by the ready
// checks), a random node stands in.
func (r *scheduleRun) leader() int {
	r.t.Helper()
	var l atomic.Int64
	if ok, _ := poll(20*time.Second, func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		l.Store(int64(r.c.Leader(ctx)))
		return l.Load() >= 0, "no leader"
	}); ok {
		return int(l.Load())
	}
	n := r.rng.IntN(len(r.c.Nodes))
	r.logf("no node says it leads after 20s; n%d stands in for the leader", n)
	return n
}

func (r *scheduleRun) partition(groups ...[]int) {
	r.t.Helper()
	if err := r.lab.Partition(groups...); err != nil {
		r.t.Fatalf("partition: %v", err)
	}
	r.logf("network: %s", r.lab.Cuts())
}

// hold lets the clients run against the cluster as it is for d: the length
// of a fault or of healthy traffic, not a wait for a condition.
func (r *scheduleRun) hold(d time.Duration) { time.Sleep(d) }

// settle removes every cut, resumes every paused process, starts every
// stopped one and waits until every node is ready.
func (r *scheduleRun) settle(after string) bool {
	r.t.Helper()
	if err := r.lab.Heal(); err != nil {
		r.t.Fatalf("heal: %v", err)
	}
	for i := range r.c.Nodes {
		switch {
		case !r.c.Running(i):
			r.logf("n%d is not running after %s: starting it", i, after)
			r.c.Start(i)
		case r.c.isPaused(i):
			r.c.Resume(i)
		}
	}
	start := time.Now()
	if err := r.c.WaitReadyErr(r.all(), readyAfterHeal); err != nil {
		r.fail("after %s healed: %v", after, err)
		return false
	}
	r.logf("healed after %s: every node ready in %s", after, time.Since(start).Round(10*time.Millisecond))
	return true
}

func runSchedule(t *testing.T, seed uint64, nfaults int, tot *partitionTotals) {
	opts := DefaultOptions()
	opts.Network = true
	opts.QuorumLossTimeout = partitionQuorumLoss
	countFile := filepath.Join(t.TempDir(), "replicas")
	writeReplicaCount(t, countFile, opts.withDefaults().Nodes)
	opts.ExtraArgs = append(opts.ExtraArgs, "--replicas-from", "file:"+countFile)
	t.Logf("seed %d: replay with FAULT_SEED=%d", seed, seed)
	counted := false
	defer func() {
		if !counted { // the cluster never started
			t.Logf("RUN seed=%d did not start a cluster", seed)
			tot.mu.Lock()
			tot.runs++
			tot.violations++
			tot.failed = append(tot.failed, fmt.Sprintf("seed %d: the cluster did not start", seed))
			tot.mu.Unlock()
		}
	}()
	c := NewCluster(t, bin, opts)
	r := &scheduleRun{t: t, seed: seed, rng: rand.New(rand.NewPCG(seed, 0x5eed)), c: c, lab: c.Lab(), countFile: countFile}
	r.w = newWorkload(c, 10, "k0", "k1", "k2", "k3", "k4", "k5")
	r.w.unique, r.w.pinned, r.w.seed, r.w.resp = "u/", true, seed, true
	// A client on the cut-off side gets quick no_quorum answers, each an
	// unknown outcome that porcupine must place; fewer of them keep the
	// check fast.
	r.w.backoff = 250 * time.Millisecond

	var labels []string
	sum := runSummary{seed: seed, nodes: opts.Nodes}
	var info *porcupine.LinearizationInfo
	counted = true
	defer func() {
		sum.faults = labels
		sum.ops = len(r.w.h.Operations())
		line := sum.String()
		if t.Failed() {
			dir := r.keep(line, info)
			line += " files=" + dir
			tot.mu.Lock()
			tot.failed = append(tot.failed, fmt.Sprintf("seed %d: %s", seed, dir))
			tot.mu.Unlock()
		}
		t.Log(line)
		tot.mu.Lock()
		tot.runs++
		if t.Failed() {
			tot.violations++
		}
		tot.lost += sum.lost
		if sum.longest > tot.longest {
			tot.longest, tot.longestSeed = sum.longest, seed
		}
		if tot.byKind == nil {
			tot.byKind = map[string]time.Duration{}
		}
		for k, d := range sum.byKind {
			tot.byKind[k] = max(tot.byKind[k], d)
		}
		tot.mu.Unlock()
	}()

	ctx, stop := context.WithCancel(context.Background())
	wait := r.w.run(ctx)
	stopped := false
	stopTraffic := func() {
		if !stopped {
			stopped = true
			stop()
			wait()
		}
	}
	t.Cleanup(stopTraffic) // before the processes are killed
	trafficStart := r.w.h.Now()
	r.hold(time.Second)

	// Draw the faults without repeating one within a run (while there
	// are kinds left).
	kinds := append(append([]partitionFault(nil), partitionFaults...), composedFaults...)
	if only := os.Getenv("FAULT_KINDS"); only != "" {
		kinds = faultKinds(t, kinds, only)
	}
	order := r.rng.Perm(len(kinds))
	for k := 0; k < nfaults; k++ {
		f := kinds[order[k%len(order)]]
		span := faultSpan{kind: f.name, start: r.w.h.Now()}
		r.logf("fault %d/%d: %s", k+1, nfaults, f.name)
		span.label = f.run(r)
		labels = append(labels, span.label)
		ok := r.settle(span.label)
		span.end = r.w.h.Now()
		r.spans = append(r.spans, span)
		if !ok {
			break
		}
		r.hold(1500 * time.Millisecond) // healthy traffic between faults
	}
	stopTraffic()
	trafficEnd := r.w.h.Now()
	sum.longest, sum.longestDuring, sum.byKind = r.longestUnavailability(trafficStart, trafficEnd)
	r.logf("traffic stopped: %d acknowledged writes, %d unknown outcomes, %d reads",
		r.w.acked.Load(), r.w.unknown.Load(), r.w.reads.Load())

	r.reportDeaths()
	r.writeAfterHeal()
	sum.clusterIDs, sum.answering = r.checkClusterIDs()
	lost := r.checkContendedKeys()
	lost += r.checkUniqueWrites()
	sum.lost = lost
	r.reportDeaths()

	r.w.mu.Lock()
	for _, u := range r.w.unexpected {
		r.fail("unexpected answer: %s", u)
	}
	r.w.mu.Unlock()

	ops := r.w.h.Operations()
	checkStart := time.Now()
	res := porcupine.CheckOperationsTimeout(kvhistory.Model, ops, 90*time.Second)
	sum.linearizable = res
	respOps := countRESP(ops)
	r.logf("porcupine: %s on %d operations (%d over RESP) in %s", res, len(ops), respOps, time.Since(checkStart).Round(time.Millisecond))
	if respOps == 0 {
		r.fail("no operation of the RESP clients is in the history")
	}
	if res != porcupine.Ok {
		r.fail("history is not linearizable: porcupine says %s", res)
	}
	if t.Failed() {
		_, li := porcupine.CheckOperationsVerbose(kvhistory.Model, ops, 90*time.Second)
		info = &li
	}
}

// faultKinds keeps the kinds named in FAULT_KINDS (comma-separated), to
// replay one kind of fault many times.
func faultKinds(t *testing.T, kinds []partitionFault, only string) []partitionFault {
	var out []partitionFault
	for _, name := range strings.Split(only, ",") {
		found := false
		for _, k := range kinds {
			if k.name == name {
				out, found = append(out, k), true
			}
		}
		if !found {
			t.Fatalf("FAULT_KINDS=%q: no fault kind %q", only, name)
		}
	}
	return out
}

// runSummary is one run's line.
type runSummary struct {
	seed          uint64
	faults        []string
	ops           int
	linearizable  porcupine.CheckResult
	lost          int
	longest       time.Duration
	longestDuring string
	byKind        map[string]time.Duration // longest gap attributed to each kind of fault
	clusterIDs    int
	answering     int
	nodes         int
}

func (s runSummary) String() string {
	lin := "not-checked"
	switch s.linearizable {
	case porcupine.Ok:
		lin = "yes"
	case porcupine.Illegal:
		lin = "NO"
	case porcupine.Unknown:
		lin = "unknown(timeout)"
	}
	during := ""
	if s.longestDuring != "" {
		during = " during " + s.longestDuring
	}
	return fmt.Sprintf("RUN seed=%d faults=[%s] ops=%d linearizable=%s lost=%d longest-unavailability=%s%s cluster-ids=%d (of %d/%d nodes answering)",
		s.seed, strings.Join(s.faults, " "), s.ops, lin, s.lost, s.longest.Round(10*time.Millisecond), during,
		s.clusterIDs, s.answering, s.nodes)
}

// longestUnavailability is the longest interval of the traffic in which no
// client's write was acknowledged and the fault that overlaps it most, and
// for each kind of fault the longest such interval it overlaps most.
func (r *scheduleRun) longestUnavailability(from, to int64) (time.Duration, string, map[string]time.Duration) {
	times := []int64{from}
	for _, op := range r.w.h.Operations() {
		in, out := op.Input.(kvhistory.Input), op.Output.(kvhistory.Output)
		if in.Op == kvhistory.Get || out.Unknown || op.Return < from || op.Return > to {
			continue
		}
		times = append(times, op.Return)
	}
	times = append(times, to)
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	var longest, at int64
	byKind := map[string]time.Duration{}
	for k := 1; k < len(times); k++ {
		gap := times[k] - times[k-1]
		if gap > longest {
			longest, at = gap, times[k-1]
		}
		if s, ok := r.spanOverlapping(times[k-1], gap); ok && time.Duration(gap) > byKind[s.kind] {
			byKind[s.kind] = time.Duration(gap)
		}
	}
	during := "healthy traffic"
	if s, ok := r.spanOverlapping(at, longest); ok {
		during = s.label
	}
	return time.Duration(longest), during, byKind
}

// spanOverlapping is the fault whose span overlaps [at, at+d) most.
func (r *scheduleRun) spanOverlapping(at, d int64) (faultSpan, bool) {
	var best faultSpan
	most := int64(0)
	for _, s := range r.spans {
		if o := min(at+d, s.end) - max(at, s.start); o > most {
			best, most = s, o
		}
	}
	return best, most > 0
}

// deathReason is how node i's last process ended: its wait status and
// the panic or the last line of its log.
func (r *scheduleRun) deathReason(i int) string {
	n := r.c.Nodes[i]
	n.mu.Lock()
	exit := n.exit
	n.mu.Unlock()
	last := ""
	if b, err := os.ReadFile(n.LogPath); err == nil {
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		last = lines[len(lines)-1]
		for _, l := range lines {
			if strings.HasPrefix(l, "panic:") || strings.HasPrefix(l, "fatal error:") {
				last = l
				break
			}
		}
	}
	return fmt.Sprintf("%v: %s (log %s)", exit, last, n.LogPath)
}

// writeAfterHeal proves the healed cluster takes writes again: one unique
// put through each running node must be acknowledged within 30s
// (retrying while an election settles). The puts join the history and
// are read back like the others.
func (r *scheduleRun) writeAfterHeal() {
	r.t.Helper()
	for i := range r.c.Nodes {
		if !r.c.Running(i) {
			continue
		}
		cl := r.c.NodeClient(i, 5*time.Second)
		id := 2000 + i
		var seq atomic.Int64
		if ok, last := poll(30*time.Second, func() (bool, string) {
			if !r.c.Running(i) {
				return true, "the process ended" // reported by reportDeaths
			}
			k := fmt.Sprintf("%shealed-n%d-%d", r.w.unique, i, seq.Add(1))
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			call := r.w.h.Now()
			res, err := cl.Put(ctx, k, []byte(k))
			op := porcupine.Operation{ClientId: id, Input: kvhistory.Input{Op: kvhistory.Put, Key: k, Value: k}, Call: call,
				Return: r.w.h.Now(), Metadata: opMeta{Node: i}}
			if err != nil {
				op.Output, op.Return, op.Metadata = kvhistory.Output{Unknown: true}, kvhistory.EndOfTime, opMeta{Node: i, Err: err.Error()}
				r.w.h.Add(op)
				return false, err.Error()
			}
			op.Output = kvhistory.Output{Rev: res.ModifyRevision}
			r.w.h.Add(op)
			return true, ""
		}); !ok {
			r.fail("the healed cluster does not take a write through n%d within 30s: %s", i, last)
		}
	}
}

// checkClusterIDs asks every node for /v1/cluster until each answers and
// they agree, for up to 30s; it returns how many cluster IDs it saw last.
func (r *scheduleRun) checkClusterIDs() (distinct, answering int) {
	r.t.Helper()
	var mu sync.Mutex // check runs on its own goroutine
	ok, last := poll(30*time.Second, func() (bool, string) {
		ids := map[string][]int{}
		var silent []string
		for i := range r.c.Nodes {
			if !r.c.Running(i) {
				silent = append(silent, fmt.Sprintf("n%d (not running)", i))
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			st, err := r.c.Status(ctx, i)
			cancel()
			if err != nil {
				silent = append(silent, fmt.Sprintf("n%d (%v)", i, err))
				continue
			}
			ids[st.ClusterID] = append(ids[st.ClusterID], i)
		}
		var parts []string
		for id, nodes := range ids {
			parts = append(parts, fmt.Sprintf("%q on %s", id, nodeList(nodes)))
		}
		sort.Strings(parts)
		if len(silent) > 0 {
			parts = append(parts, "no answer from "+strings.Join(silent, ", "))
		}
		mu.Lock()
		distinct, answering = len(ids), len(r.c.Nodes)-len(silent)
		mu.Unlock()
		return len(ids) == 1 && len(silent) == 0, strings.Join(parts, "; ")
	})
	mu.Lock()
	defer mu.Unlock()
	switch {
	case distinct > 1:
		r.fail("SPLIT BRAIN: %d cluster_ids after 30s: %s", distinct, last)
	case !ok:
		r.fail("not every node reports its cluster_id after 30s: %s", last)
	default:
		r.logf("every node reports cluster_id %s", last)
	}
	return distinct, answering
}

// checkContendedKeys reads the contended keys through each node with
// linearizable reads (they join the history) and returns how many keys
// lost their last acknowledged write on some node.
func (r *scheduleRun) checkContendedKeys() int {
	r.t.Helper()
	lostKeys := map[string]bool{}
	for i := range r.c.Nodes {
		if !r.c.Running(i) {
			continue
		}
		cl := r.c.NodeClient(i, 5*time.Second)
		var (
			mu   sync.Mutex // check runs on its own goroutine
			read map[string]readState
		)
		if ok, why := poll(20*time.Second, func() (bool, string) {
			got, err := r.w.readAll(context.Background(), cl, i, 1000+i, false)
			if err != nil {
				return false, err.Error()
			}
			mu.Lock()
			read = got
			mu.Unlock()
			return true, ""
		}); !ok {
			r.fail("final linearizable reads through n%d: %s", i, why)
			continue
		}
		mu.Lock()
		st := read
		mu.Unlock()
		for _, l := range r.w.lostWrites(st) {
			r.fail("acknowledged write lost on n%d: %s", i, l)
			lostKeys[strings.SplitN(l, ":", 2)[0]] = true
		}
	}
	return len(lostKeys)
}

// checkUniqueWrites lists the unique keys through every node (a
// linearizable list, page by page) and returns how many acknowledged
// unique writes some node lacks.
func (r *scheduleRun) checkUniqueWrites() int {
	r.t.Helper()
	acked := map[string]string{}
	for _, op := range r.w.h.Operations() {
		in, out := op.Input.(kvhistory.Input), op.Output.(kvhistory.Output)
		if in.Op == kvhistory.Put && !out.Unknown && strings.HasPrefix(in.Key, r.w.unique) {
			acked[in.Key] = in.Value
		}
	}
	missing := map[string][]string{}
	for i := range r.c.Nodes {
		if !r.c.Running(i) {
			continue
		}
		cl := r.c.NodeClient(i, 10*time.Second)
		var (
			mu     sync.Mutex // check runs on its own goroutine
			listed []client.KeyValue
		)
		if ok, why := poll(30*time.Second, func() (bool, string) {
			got, err := cl.ListAll(context.Background(), r.w.unique, client.WithLimit(1000))
			if err != nil {
				return false, err.Error()
			}
			mu.Lock()
			listed = got
			mu.Unlock()
			return true, ""
		}); !ok {
			r.fail("listing %s through n%d: %s", r.w.unique, i, why)
			continue
		}
		mu.Lock()
		items := listed
		mu.Unlock()
		have := make(map[string]string, len(items))
		for _, kv := range items {
			have[kv.Key] = string(kv.Value)
		}
		for k, v := range acked {
			if got, ok := have[k]; !ok || got != v {
				missing[k] = append(missing[k], fmt.Sprintf("n%d", i))
			}
		}
	}
	if len(missing) > 0 {
		keys := make([]string, 0, len(missing))
		for k := range missing {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var ex []string
		for _, k := range keys[:min(10, len(keys))] {
			ex = append(ex, fmt.Sprintf("%s missing on %s", k, strings.Join(missing[k], ",")))
		}
		r.fail("%d of %d acknowledged unique writes lost on some node, e.g.:\n  %s", len(missing), len(acked), strings.Join(ex, "\n  "))
	} else {
		r.logf("all %d acknowledged unique writes read back through every node", len(acked))
	}
	return len(missing)
}

// keep writes the files of a failed run to a directory that outlives the
// test and returns its path.
func (r *scheduleRun) keep(line string, info *porcupine.LinearizationInfo) string {
	dir, err := os.MkdirTemp("", fmt.Sprintf("faulttest-partition-seed%d-", r.seed))
	if err != nil {
		return fmt.Sprintf("(cannot keep the files: %v)", err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\nreplay: FAULT_SEED=%d go test -count=1 -run 'TestPartitionSchedules' -v ./store/internal/faulttest/\n\n", line, r.seed)
	fmt.Fprintf(&b, "failures:\n  %s\n\ntimeline (seconds since the history began):\n", strings.Join(r.errs, "\n  "))
	for _, e := range r.events {
		fmt.Fprintf(&b, "  %s\n", e)
	}
	_ = os.WriteFile(filepath.Join(dir, "summary.txt"), []byte(b.String()), 0o644)

	ops := r.w.h.Operations()
	sort.Slice(ops, func(i, j int) bool { return ops[i].Call < ops[j].Call })
	var h strings.Builder
	for _, op := range ops {
		ret := "never"
		if op.Return != kvhistory.EndOfTime {
			ret = fmt.Sprintf("%.6f", float64(op.Return)/1e9)
		}
		fmt.Fprintf(&h, "%.6f %s client=%d %s %v\n", float64(op.Call)/1e9, ret, op.ClientId,
			kvhistory.Model.DescribeOperation(op.Input, op.Output), op.Metadata)
	}
	_ = os.WriteFile(filepath.Join(dir, "history.txt"), []byte(h.String()), 0o644)
	if js, err := json.MarshalIndent(ops, "", " "); err == nil {
		_ = os.WriteFile(filepath.Join(dir, "history.json"), js, 0o644)
	}
	if info == nil {
		_, li := porcupine.CheckOperationsVerbose(kvhistory.Model, ops, time.Minute)
		info = &li
	}
	{
		if err := porcupine.VisualizePath(kvhistory.Model, *info, filepath.Join(dir, "visualization.html")); err != nil {
			_ = os.WriteFile(filepath.Join(dir, "visualization-error.txt"), []byte(err.Error()), 0o644)
		}
	}
	for _, n := range r.c.Nodes {
		if data, err := os.ReadFile(n.LogPath); err == nil {
			_ = os.WriteFile(filepath.Join(dir, filepath.Base(n.LogPath)), data, 0o644)
		}
	}
	return dir
}

package faulttest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ephemeral-store/ephemeral-store/store/client"
	"github.com/ephemeral-store/ephemeral-store/store/internal/config"
)

// The benchmarks run against a five-node cluster of real processes on
// loopback, clients spread over the nodes (client g talks to node g mod 5,
// so most writes are forwarded to the leader as in production). Each
// reports throughput and latency percentiles; run them bounded, e.g.
//
//	go test -run '^$' -bench Cluster -benchtime 2000x ./store/internal/faulttest

var concurrencies = []int{1, 8, 32}

// ProfileDirEnv names an environment variable: when set, the benchmarks'
// clusters serve pprof and measure saves a CPU profile of the leader and of
// one follower taken during each measured load, as
// <dir>/<benchmark>-<leader|follower>-n<i>.pprof. Size the load to last
// longer than the profile (-benchtime), e.g.
//
//	FAULTTEST_PROFILE_DIR=/tmp/prof go test -run '^$' -bench 'ClusterPut/conc=32' -benchtime 20000x ./store/internal/faulttest
const ProfileDirEnv = "FAULTTEST_PROFILE_DIR"

// benchOptions are the cluster options of the benchmarks: the defaults,
// with pprof served when profiles are wanted.
func benchOptions() Options {
	o := DefaultOptions()
	if os.Getenv(ProfileDirEnv) != "" {
		o.ExtraArgs = append(o.ExtraArgs, "--pprof")
	}
	return o
}

// profileDuringLoad starts CPU profiles of the leader and a follower if
// ProfileDirEnv is set; the returned function waits for them.
func profileDuringLoad(b *testing.B, c *Cluster) func() {
	dir := os.Getenv(ProfileDirEnv)
	if dir == "" {
		return func() {}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatalf("profile dir: %v", err)
	}
	l := c.WaitLeader(10 * time.Second)
	name := strings.NewReplacer("/", "_", "=", "").Replace(b.Name())
	var wg sync.WaitGroup
	for role, i := range map[string]int{"leader": l, "follower": follower(c, l)} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=3", c.Nodes[i].ProbeAddr)
			resp, err := http.Get(url)
			if err != nil {
				b.Logf("profile of n%d: %v", i, err)
				return
			}
			defer resp.Body.Close()
			out := filepath.Join(dir, fmt.Sprintf("%s-%s-n%d.pprof", name, role, i))
			f, err := os.Create(out)
			if err != nil {
				b.Logf("profile of n%d: %v", i, err)
				return
			}
			defer f.Close()
			if _, err := io.Copy(f, resp.Body); err != nil {
				b.Logf("profile of n%d: %v", i, err)
			}
		}()
	}
	return wg.Wait
}

// clientsFor returns n clients, the g-th talking to node g mod 5 first.
func clientsFor(c *Cluster, n int) []*client.Client {
	out := make([]*client.Client, n)
	for g := range out {
		out[g] = c.Client(g%len(c.Nodes), 10*time.Second)
	}
	return out
}

// measure runs b.N calls of op on cluster c, spread over len(clients)
// goroutines, and reports throughput and latency percentiles.
func measure(b *testing.B, c *Cluster, clients []*client.Client, op func(ctx context.Context, cl *client.Client, i int) error) {
	b.Helper()
	var (
		next   atomic.Int64
		wg     sync.WaitGroup
		mu     sync.Mutex
		lat    = make([]time.Duration, 0, b.N)
		errCnt atomic.Int64
		first  atomic.Value
	)
	b.ResetTimer()
	stopProfiles := profileDuringLoad(b, c)
	defer stopProfiles()
	start := time.Now()
	for _, cl := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, b.N/len(clients)+1)
			for {
				i := int(next.Add(1)) - 1
				if i >= b.N {
					break
				}
				t0 := time.Now()
				if err := op(context.Background(), cl, i); err != nil {
					errCnt.Add(1)
					first.CompareAndSwap(nil, err.Error())
					continue
				}
				local = append(local, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if n := errCnt.Load(); n > 0 {
		b.Fatalf("%d of %d operations failed; first: %v", n, b.N, first.Load())
	}
	reportLatencies(b, lat, elapsed)
}

func reportLatencies(b *testing.B, lat []time.Duration, elapsed time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	pct := func(p float64) float64 {
		i := int(float64(len(lat)-1) * p)
		return float64(lat[i]) / float64(time.Millisecond)
	}
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "ops/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.90), "p90-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}

var benchValue = bytes.Repeat([]byte("v"), 100)

// BenchmarkClusterPut: replicated writes of 100-byte values over 1000 keys.
func BenchmarkClusterPut(b *testing.B) {
	c := NewCluster(b, bin, benchOptions())
	for _, conc := range concurrencies {
		clients := clientsFor(c, conc)
		b.Run(fmt.Sprintf("conc=%d", conc), func(b *testing.B) {
			measure(b, c, clients, func(ctx context.Context, cl *client.Client, i int) error {
				_, err := cl.Put(ctx, fmt.Sprintf("bench/%04d", i%1000), benchValue)
				return err
			})
		})
	}
}

// BenchmarkClusterGet: linearizable reads (read index through the leader)
// and stale reads (local copy) of 1000 keys.
func BenchmarkClusterGet(b *testing.B) {
	c := NewCluster(b, bin, benchOptions())
	load(b, c, "bench/%04d", 1000)
	for _, mode := range []string{"linearizable", "stale"} {
		var opts []client.GetOption
		if mode == "stale" {
			opts = append(opts, client.Stale())
		}
		for _, conc := range concurrencies {
			clients := clientsFor(c, conc)
			b.Run(fmt.Sprintf("%s/conc=%d", mode, conc), func(b *testing.B) {
				measure(b, c, clients, func(ctx context.Context, cl *client.Client, i int) error {
					_, err := cl.Get(ctx, fmt.Sprintf("bench/%04d", i%1000), opts...)
					return err
				})
			})
		}
	}
}

// load writes n keys named by format with 32 concurrent clients.
func load(tb testing.TB, c *Cluster, format string, n int) time.Duration {
	tb.Helper()
	clients := clientsFor(c, 32)
	var (
		next atomic.Int64
		wg   sync.WaitGroup
		fail atomic.Value
	)
	start := time.Now()
	for _, cl := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n || fail.Load() != nil {
					return
				}
				if _, err := cl.Put(context.Background(), fmt.Sprintf(format, i), benchValue); err != nil {
					fail.CompareAndSwap(nil, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, _ := fail.Load().(error); err != nil {
		tb.Fatalf("loading %d keys: %v", n, err)
	}
	return time.Since(start)
}

// BenchmarkClusterFailover: SIGKILL the leader and time until a write
// succeeds again through the survivors. At most five failovers per run
// of the function, whatever b.N; ns/op is the mean failover time.
func BenchmarkClusterFailover(b *testing.B) {
	benchmarkFailover(b, DefaultOptions())
}

// BenchmarkClusterFailoverDefaultTimings is the same with the Raft timings
// `serve` uses by default (config.DefaultRaftTimeout), the ones operators
// run.
func BenchmarkClusterFailoverDefaultTimings(b *testing.B) {
	opts := DefaultOptions()
	opts.HeartbeatTimeout, opts.ElectionTimeout = config.DefaultRaftTimeout, config.DefaultRaftTimeout
	benchmarkFailover(b, opts)
}

func benchmarkFailover(b *testing.B, opts Options) {
	c := NewCluster(b, bin, opts)
	rounds := min(b.N, 5)
	var times []time.Duration
	for r := 0; r < rounds; r++ {
		l := c.WaitLeader(10 * time.Second)
		cl := c.Client(follower(c, l), time.Second)
		if _, err := cl.Put(context.Background(), "failover", []byte("warm")); err != nil {
			b.Fatalf("put before the kill: %v", err)
		}
		start := time.Now()
		c.Kill(l)
		for {
			if _, err := cl.Put(context.Background(), "failover", []byte(fmt.Sprint(r))); err == nil {
				break
			}
			if time.Since(start) > 30*time.Second {
				b.Fatalf("no write succeeded within 30s of killing leader n%d", l)
			}
		}
		times = append(times, time.Since(start))
		c.Start(l)
		c.WaitAllReady(60 * time.Second)
	}
	b.StopTimer()
	var sum, worst time.Duration
	for _, d := range times {
		sum += d
		worst = max(worst, d)
	}
	mean := sum / time.Duration(len(times))
	b.ReportMetric(float64(mean.Nanoseconds()), "ns/op")
	b.ReportMetric(float64(mean)/float64(time.Millisecond), "failover-ms")
	b.ReportMetric(float64(worst)/float64(time.Millisecond), "max-failover-ms")
	b.Logf("failover times: %v", times)
}

// BenchmarkClusterCatchUp: with 100k keys stored (10k under -short), kill
// a follower, restart it empty, and time until it is ready and until its
// local copy lists every key. One restart per run of the function; ns/op
// is the time until every key is there.
func BenchmarkClusterCatchUp(b *testing.B) {
	n := 100_000
	if testing.Short() {
		n = 10_000
	}
	c := NewCluster(b, bin, DefaultOptions())
	took := load(b, c, "load/%06d", n)
	b.Logf("loaded %d keys in %s (%.0f puts/s)", n, took.Round(time.Millisecond), float64(n)/took.Seconds())
	b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
		l := c.WaitLeader(10 * time.Second)
		f := follower(c, l)
		c.Kill(f)
		start := time.Now()
		c.Start(f)
		c.WaitReady(f, 2*time.Minute)
		ready := time.Since(start)
		cl := c.NodeClient(f, 30*time.Second)
		require.EventuallyWithT(b, func(ct *assert.CollectT) {
			items, err := cl.ListAll(context.Background(), "load/", client.Stale(), client.KeysOnly(), client.WithLimit(1000))
			if assert.NoError(ct, err) {
				assert.Equal(ct, n, len(items), "keys listed by n%d", f)
			}
		}, 2*time.Minute-time.Since(start), 50*time.Millisecond, "n%d lists every key within 2 minutes of its restart", f)
		all := time.Since(start)
		b.StopTimer()
		b.ReportMetric(float64(all.Nanoseconds()), "ns/op")
		b.ReportMetric(float64(ready)/float64(time.Millisecond), "ready-ms")
		b.ReportMetric(float64(all)/float64(time.Millisecond), "all-keys-ms")
		c.WaitAllReady(time.Minute)
	})
}

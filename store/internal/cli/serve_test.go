package cli

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/ephemeral-store/ephemeral-store/store/internal/config"
	"github.com/ephemeral-store/ephemeral-store/store/internal/kvtable"
	"github.com/ephemeral-store/ephemeral-store/store/internal/pki"
)

// serveFails runs `serve` with args and returns its exit code and stderr;
// a serve that starts is stopped after a while and fails the test.
func serveFails(t *testing.T, args ...string) (int, string) {
	t.Helper()
	withEnv(t, map[string]string{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	start := time.Now()
	code := execute(ctx, append([]string{"serve"}, args...), strings.NewReader(""), &out, &errb)
	if time.Since(start) > 10*time.Second {
		t.Fatalf("serve started and ran until stopped (exit %d); stderr:\n%s", code, errb.String())
	}
	return code, errb.String()
}

func TestServeRefusesToStartWithABadPeerSetup(t *testing.T) {
	dir := t.TempDir()
	if _, err := pki.WriteBundle(dir, pki.BundleOptions{Users: []string{"myuser"}}); err != nil {
		t.Fatal(err)
	}
	ca, err := pki.LoadCA(filepath.Join(dir, pki.CACertFile), filepath.Join(dir, pki.CAKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	// One serving certificate, as an operator might have for the client
	// Service, given to every node: its CN is not the peer CN.
	certPEM, keyPEM, err := ca.Issue(pki.IssueRequest{
		CommonName: "store.example.com", DNSNames: []string{"store.example.com"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ServerAuth: true, ClientAuth: true, Validity: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	storeCert, storeKey := filepath.Join(dir, "store.crt"), filepath.Join(dir, "store.key")
	if err := os.WriteFile(storeCert, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(storeKey, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	common := []string{
		"--listen", "127.0.0.1:0", "--peer-listen", "127.0.0.1:18088", "--probe-listen", "127.0.0.1:0",
		"--tls-ca", filepath.Join(dir, pki.CACertFile), "--users-dir", dir,
	}
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"a serving certificate with another CN as the peer certificate",
			[]string{"--node-name", "store-0", "--advertise", "store-0.info", "--peers", "store-0.info:18088,store-1.info:18088",
				"--tls-cert", storeCert, "--tls-key", storeKey},
			[]string{"ephemeral-store: peer certificate " + storeCert, `CN "store.example.com"`, `--peer-cn is "ephemeral-store-peer"`,
				"CN=ephemeral-store-peer", "ephemeral-store certs"}},
		{"advertise not in peers",
			[]string{"--node-name", "store-0", "--advertise", "store-9.info", "--peers", "store-0.info:18088,store-1.info:18088",
				"--tls-cert", filepath.Join(dir, "peer.crt"), "--tls-key", filepath.Join(dir, "peer.key")},
			[]string{"--advertise", `"store-9.info:18088" is not in --peers`}},
		{"node name contradicts the position in peers",
			[]string{"--node-name", "store-1", "--advertise", "store-0.info", "--peers", "store-0.info:18088,store-1.info:18088",
				"--tls-cert", filepath.Join(dir, "peer.crt"), "--tls-key", filepath.Join(dir, "peer.key")},
			[]string{"--node-name", `"store-1" ends in -1`, "position 0 of --peers"}},
		{"advertise with a bad port",
			[]string{"--advertise", "store-0.info:http", "--tls-cert", filepath.Join(dir, "peer.crt"), "--tls-key", filepath.Join(dir, "peer.key")},
			[]string{"--advertise", `port "http"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stderr := serveFails(t, append(tt.args, common...)...)
			if code != exitError {
				t.Errorf("exit code %d, want %d", code, exitError)
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
		})
	}
}

func TestApplyMemoryLimit(t *testing.T) {
	tests := []struct {
		name       string
		limit      int64
		ratio      float64
		gomemlimit string
		want       int64 // -1: not set
	}{
		{"the chart's limit at the default ratio", 1 << 30, 0.9, "", 966367641}, // 0.9 GiB, rounded down
		{"the whole limit", 256 << 20, 1, "", 256 << 20},
		{"no limit known", 0, 0.9, "", -1},
		{"ratio 0: Go's default", 1 << 30, 0, "", -1},
		{"GOMEMLIMIT wins", 1 << 30, 0.9, "800MiB", -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Default()
			cfg.MemoryLimit, cfg.MemoryLimitRatio = tc.limit, tc.ratio
			var logs bytes.Buffer
			got := int64(-1)
			lookup := func(k string) (string, bool) { return tc.gomemlimit, k == "GOMEMLIMIT" && tc.gomemlimit != "" }
			const fromEnv = 800 << 20 // what the runtime read from GOMEMLIMIT
			followed, _ := applyMemoryLimit(cfg, slog.New(slog.NewTextHandler(&logs, nil)), lookup, func(n int64) int64 {
				if n >= 0 {
					got = n
				}
				return fromEnv
			})
			if got != tc.want {
				t.Errorf("soft limit %d, want %d", got, tc.want)
			}
			switch {
			case tc.gomemlimit != "" && followed != fromEnv:
				t.Errorf("followed %d, want GOMEMLIMIT's %d", followed, fromEnv)
			case tc.gomemlimit == "" && followed != max(tc.want, 0):
				t.Errorf("followed %d, want the limit set, %d", followed, max(tc.want, 0))
			}
			if tc.gomemlimit != "" && !strings.Contains(logs.String(), "GOMEMLIMIT is set") {
				t.Errorf("log %q does not say why the flag was not applied", logs.String())
			}
		})
	}
}

// TestSoftLimitFollowsOffHeapMemory: Go's soft limit makes room for the
// table's memory outside the heap as it grows and shrinks, never below an
// eighth of the configured limit, and moves only by a MiB or more.
func TestSoftLimitFollowsOffHeapMemory(t *testing.T) {
	const soft = 800 << 20
	var offHeap atomic.Int64
	set := make(chan int64, 16)
	tick := make(chan time.Time)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		followOffHeap(ctx, soft, offHeap.Load, func(n int64) int64 { set <- n; return 0 }, tick)
	}()
	for _, step := range []struct {
		offHeap int64
		want    int64 // -1: left as it was
	}{
		{300 << 20, 500 << 20},
		{300<<20 + 4096, -1},
		{600 << 20, 200 << 20},
		{790 << 20, soft / 8},
		{0, soft},
	} {
		offHeap.Store(step.offHeap)
		tick <- time.Now()
		tick <- time.Now() // the first tick's work is done once the loop takes a second
		select {
		case got := <-set:
			require.Equal(t, step.want, got, "off-heap %d", step.offHeap)
		default:
			require.EqualValues(t, -1, step.want, "off-heap %d: the limit was not set", step.offHeap)
		}
	}
	cancel()
	<-done
}

// TestOffHeapGaugeReportsTheTables: the gauge follows the memory tables map.
func TestOffHeapGaugeReportsTheTables(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(offHeapGauge())
	read := func() float64 {
		mfs, err := reg.Gather()
		require.NoError(t, err)
		require.Len(t, mfs, 1)
		require.Equal(t, "ephemeral_store_data_offheap_bytes", mfs[0].GetName())
		return mfs[0].GetMetric()[0].GetGauge().GetValue()
	}
	before := read()
	table := kvtable.New()
	table.Put("k", make([]byte, 100), kvtable.Meta{})
	require.Equal(t, float64(kvtable.HeldBytes()), read())
	require.Greater(t, read(), before)
	table.Retire()
}

func TestApplyGCPercent(t *testing.T) {
	tests := []struct {
		name    string
		flag    int
		limit   int64
		gogc    string
		env     map[string]string
		want    int // -2: not set
		wantLog string
	}{
		{name: "the chart's limit: the lower default", limit: 1 << 30, want: config.GCPercentWithLimit, wantLog: "gc_percent=50"},
		{name: "no limit: Go's default", want: -2},
		{name: "GOMEMLIMIT is a limit too", env: map[string]string{"GOMEMLIMIT": "800MiB"}, want: config.GCPercentWithLimit},
		{name: "GOMEMLIMIT=off is none", limit: 1 << 30, env: map[string]string{"GOMEMLIMIT": "off"}, want: -2},
		{name: "explicit percent", flag: 25, want: 25},
		{name: "GOGC wins", limit: 1 << 30, env: map[string]string{"GOGC": "100"}, want: -2, wantLog: "GOGC is set"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Default()
			cfg.MemoryLimit, cfg.GCPercent = tc.limit, tc.flag
			var logs bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logs, nil))
			lookup := func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok }
			_, limited := applyMemoryLimit(cfg, log, lookup, func(int64) int64 { return 0 })
			got := -2
			applyGCPercent(cfg, limited, log, lookup, func(n int) int { got = n; return 100 })
			if got != tc.want {
				t.Errorf("GC percent %d, want %d (-2: left alone)", got, tc.want)
			}
			if tc.wantLog != "" && !strings.Contains(logs.String(), tc.wantLog) {
				t.Errorf("log %q does not contain %q", logs.String(), tc.wantLog)
			}
		})
	}
}

package cli

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
)

func TestEnvName(t *testing.T) {
	for flag, want := range map[string]string{
		"endpoints": "ES_ENDPOINTS", "cacert": "ES_CACERT", "peers-dns": "ES_PEERS_DNS", "max-value-bytes": "ES_MAX_VALUE_BYTES",
	} {
		if got := envName(flag); got != want {
			t.Errorf("envName(%q) = %q, want %q", flag, got, want)
		}
	}
}

// envCommand is a command with flags of several kinds, run through the
// root's PersistentPreRunE path: bindEnv on the command that runs.
func envCommand(t *testing.T, args ...string) (map[string]any, error) {
	t.Helper()
	var (
		s     string
		n     int
		d     time.Duration
		b     bool
		list  []string
		ttl   time.Duration
		inher string
	)
	root := &cobra.Command{Use: "root", PersistentPreRunE: func(cmd *cobra.Command, _ []string) error { return bindEnv(cmd) }}
	root.PersistentFlags().StringVar(&inher, "log-level", "info", "")
	mid := &cobra.Command{Use: "mid"}
	leaf := &cobra.Command{Use: "leaf", RunE: func(*cobra.Command, []string) error { return nil }}
	f := leaf.Flags()
	f.StringVar(&s, "peers-dns", "default", "")
	f.IntVar(&n, "replicas", 3, "")
	f.DurationVar(&d, "quorum-loss-timeout", time.Second, "")
	f.BoolVar(&b, "verbose", false, "")
	f.StringSliceVar(&list, "peers", nil, "")
	f.DurationVar(&ttl, "ttl", 0, "")
	noEnv(leaf, "ttl")
	mid.AddCommand(leaf)
	root.AddCommand(mid)
	root.SetArgs(append([]string{"mid", "leaf"}, args...))
	root.SilenceErrors, root.SilenceUsage = true, true
	err := root.Execute()
	return map[string]any{"peers-dns": s, "replicas": n, "quorum-loss-timeout": d, "verbose": b, "peers": list, "ttl": ttl, "log-level": inher}, err
}

func TestBindEnvFillsFlagsNotGivenOnTheCommandLine(t *testing.T) {
	withEnv(t, map[string]string{
		"ES_PEERS_DNS":           "info.ns.svc",
		"ES_REPLICAS":            "5",
		"ES_QUORUM_LOSS_TIMEOUT": "45s",
		"ES_VERBOSE":             "true",
		"ES_PEERS":               "a:8088,b:8088",
		"ES_TTL":                 "30s",   // annotated noEnv: ignored
		"ES_LOG_LEVEL":           "debug", // inherited persistent flag of the root
		"ES_HELP":                "true",  // never read
	})
	got, err := envCommand(t, "--replicas", "7")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"peers-dns": "info.ns.svc", "replicas": 7, "quorum-loss-timeout": 45 * time.Second, "verbose": true,
		"ttl": time.Duration(0), "log-level": "debug",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("--%s = %v, want %v", k, got[k], v)
		}
	}
	if p := got["peers"].([]string); len(p) != 2 || p[0] != "a:8088" || p[1] != "b:8088" {
		t.Errorf("--peers = %q, want the comma-separated list", p)
	}
}

func TestBindEnvIgnoresEmptyVariables(t *testing.T) {
	withEnv(t, map[string]string{"ES_REPLICAS": ""})
	got, err := envCommand(t)
	if err != nil || got["replicas"] != 3 {
		t.Fatalf("replicas %v, err %v: an empty variable must leave the default", got["replicas"], err)
	}
}

func TestBindEnvRejectsValuesTheFlagRefuses(t *testing.T) {
	withEnv(t, map[string]string{"ES_REPLICAS": "five", "ES_QUORUM_LOSS_TIMEOUT": "soon"})
	_, err := envCommand(t)
	var ue usageError
	if !errors.As(err, &ue) {
		t.Fatalf("got %v, want a usage error", err)
	}
	for _, s := range []string{`ES_REPLICAS="five"`, "--replicas", `ES_QUORUM_LOSS_TIMEOUT="soon"`} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not name %s", err, s)
		}
	}
}

func TestEnvWarningsNameWhatIsNotRead(t *testing.T) {
	withEnv(t, map[string]string{
		"ES_QUORUM_LOSS_TIMOUT": "45s",      // misspelt: no flag reads it
		"ES_REPLICAS":           "5",        // shadowed by --replicas below
		"ES_TTL":                "30s",      // never read from the environment
		"ES_PEERS_DNS":          "info.svc", // read: no warning
		"ES_ENDPOINTS":          "https://a:8087",
		"ES_EMPTY":              "", // empty counts as unset
		"HOME":                  "/root",
	})
	root := newRootCommand()
	var errb strings.Builder
	root.SetErr(&errb)
	root.SetOut(&strings.Builder{})
	serve, _, err := root.Find([]string{"serve"})
	if err != nil {
		t.Fatal(err)
	}
	if err := serve.ParseFlags([]string{"--replicas", "3"}); err != nil {
		t.Fatal(err)
	}
	got := envWarnings(serve)
	want := []string{
		"ES_QUORUM_LOSS_TIMOUT is set, but no flag of any command reads it (a flag --x-y is read from ES_X_Y)",
		"ES_REPLICAS is ignored: --replicas is given on the command line",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("serve warnings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	put, _, err := root.Find([]string{"put"})
	if err != nil {
		t.Fatal(err)
	}
	got = envWarnings(put)
	if !slices.Contains(got, "ES_TTL is ignored: --ttl is never read from the environment, give it on the command line") {
		t.Errorf("put warnings %q do not name ES_TTL", got)
	}
}

func TestEnvWarningsReachStderr(t *testing.T) {
	withEnv(t, map[string]string{"ES_NO_SUCH_FLAG": "1"})
	code, _, errOut := run(t, "", "version")
	if code != 0 || !strings.Contains(errOut, "ephemeral-store: warning: ES_NO_SUCH_FLAG is set, but no flag") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
}

package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ephemeral-store/ephemeral-store/store/internal/buildinfo"
)

// cluster is a test server with its certificates and connection flags.
type cluster struct {
	certs *testCerts
	store *memStore
	url   string
}

func newCluster(t *testing.T) *cluster {
	c := newTestCerts(t)
	m := newMemStore(t)
	return &cluster{certs: c, store: m, url: c.serve(t, m)}
}

// cmd is args followed by the connection flags.
func (c *cluster) cmd(args ...string) []string { return append(args, c.certs.flags(c.url)...) }

func deadURL(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return "https://" + l.Addr().String()
}

func TestPutThenGetPrintsTheRawValue(t *testing.T) {
	c := newCluster(t)
	code, out, errOut := run(t, "", c.cmd("put", "pools/web-1", "healthy")...)
	if code != 0 || out != "1\n" {
		t.Fatalf("put: exit %d, stdout %q, stderr %q; want 0 and the revision", code, out, errOut)
	}
	code, out, errOut = run(t, "", c.cmd("get", "pools/web-1")...)
	if code != 0 || out != "healthy" {
		t.Fatalf("get: exit %d, stdout %q, stderr %q; want the raw value and no newline", code, out, errOut)
	}
}

func TestGetExpectFailsOnADifferentValue(t *testing.T) {
	c := newCluster(t)
	if code, _, errOut := run(t, "", c.cmd("put", "k", "v1")...); code != 0 {
		t.Fatalf("put: exit %d: %s", code, errOut)
	}
	if code, _, errOut := run(t, "", c.cmd("get", "k", "--expect", "v1")...); code != 0 {
		t.Fatalf("get --expect with the stored value: exit %d: %s", code, errOut)
	}
	code, _, errOut := run(t, "", c.cmd("get", "k", "--expect", "v2")...)
	if code != 1 || !strings.Contains(errOut, `value "v1" is not the expected "v2"`) {
		t.Fatalf("get --expect with another value: exit %d, stderr %q; want 1 naming both values", code, errOut)
	}
}

func TestPutReadsTheValueFromStdinOrAFile(t *testing.T) {
	c := newCluster(t)
	binary := "line 1\nline 2\x00\xff"
	if code, _, errOut := run(t, binary, c.cmd("put", "blob", "-")...); code != 0 {
		t.Fatalf("put from stdin: exit %d: %s", code, errOut)
	}
	if _, out, _ := run(t, "", c.cmd("get", "blob")...); out != binary {
		t.Fatalf("stdin value came back as %q", out)
	}
	file := filepath.Join(t.TempDir(), "v.json")
	if err := os.WriteFile(file, []byte(`{"a":1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := run(t, "", c.cmd("put", "cfg", "--file", file)...); code != 0 {
		t.Fatalf("put --file: exit %d: %s", code, errOut)
	}
	if _, out, _ := run(t, "", c.cmd("get", "cfg")...); out != `{"a":1}` {
		t.Fatalf("file value came back as %q", out)
	}
}

func TestPutSendsTTLAndPrevRevision(t *testing.T) {
	c := newCluster(t)
	run(t, "", c.cmd("put", "k", "v", "--ttl", "30s", "--prev-revision", "0")...)
	code, out, _ := run(t, "", c.cmd("get", "k", "-w", "json")...)
	if code != 0 {
		t.Fatalf("get -w json: exit %d", code)
	}
	var kv struct {
		Key            string `json:"key"`
		Value          []byte `json:"value"`
		CreateRevision int64  `json:"create_revision"`
		ModifyRevision int64  `json:"modify_revision"`
		Revision       int64  `json:"revision"`
		TTLRemainingMS int64  `json:"ttl_remaining_ms"`
	}
	if err := json.Unmarshal([]byte(out), &kv); err != nil {
		t.Fatalf("get -w json printed %q: %v", out, err)
	}
	if kv.Key != "k" || string(kv.Value) != "v" || kv.ModifyRevision != 1 || kv.Revision != 1 || kv.TTLRemainingMS != 30000 {
		t.Fatalf("get -w json: %+v", kv)
	}
	if q := c.store.seen()[0]; q != "PUT /v1/kv/k?prev_revision=0&ttl=30s" {
		t.Fatalf("put sent %q", q)
	}
}

func TestCompareAndSwapAndDelete(t *testing.T) {
	c := newCluster(t)
	run(t, "", c.cmd("put", "k", "v1")...)
	code, _, errOut := run(t, "", c.cmd("put", "k", "v2", "--prev-revision", "7")...)
	if code != 1 || !strings.Contains(errOut, "412 revision_mismatch") {
		t.Fatalf("stale compare-and-swap: exit %d, stderr %q", code, errOut)
	}
	if code, out, _ := run(t, "", c.cmd("put", "k", "v2", "--prev-revision", "1")...); code != 0 || out != "2\n" {
		t.Fatalf("matching compare-and-swap: exit %d, stdout %q", code, out)
	}
	if code, _, _ := run(t, "", c.cmd("del", "k", "--prev-revision", "1")...); code != 1 {
		t.Fatalf("stale conditional delete: exit %d, want 1", code)
	}
	if code, out, _ := run(t, "", c.cmd("del", "k")...); code != 0 || out != "3\n" {
		t.Fatalf("del: exit %d, stdout %q", code, out)
	}
}

func TestErrorsNameTheProblemAndSetTheExitCode(t *testing.T) {
	c := newCluster(t)
	noFile := filepath.Join(t.TempDir(), "missing.crt")
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"missing key", c.cmd("get", "pools/a"), 1, `ephemeral-store: get pools/a: "pools/a": key not found (404 key_not_found)`},
		{"delete of a missing key", c.cmd("del", "nope"), 1, "(404 key_not_found)"},
		{"unreachable endpoint", append([]string{"get", "k"}, c.certs.flags(deadURL(t))...), 1, "connection refused"},
		{"certificate file missing", []string{"get", "k", "--cert", noFile, "--key", noFile}, 1, "missing.crt"},
		{"unknown command", []string{"gett", "k"}, 2, `unknown command "gett" (did you mean get?)`},
		{"unknown flag", c.cmd("get", "k", "--nope"), 2, "unknown flag: --nope"},
		{"missing argument", c.cmd("get"), 2, "accepts 1 arg(s), received 0"},
		{"too many arguments", c.cmd("get", "a", "b"), 2, "accepts 1 arg(s), received 2"},
		{"put without a value", c.cmd("put", "k"), 2, "no value for k"},
		{"put with value and file", c.cmd("put", "k", "v", "--file", "f"), 2, "not both"},
		{"negative ttl", c.cmd("put", "k", "v", "--ttl", "-1s"), 2, "--ttl -1s"},
		{"bad duration", c.cmd("put", "k", "v", "--ttl", "soon"), 2, `invalid argument "soon"`},
		{"no certificate", []string{"get", "k", "--endpoints", c.url}, 2, "a client certificate is required"},
		{"bad output format", c.cmd("get", "k", "-w", "yaml"), 2, `--output "yaml"`},
		{"bad endpoint", []string{"get", "k", "--endpoints", "ftp://x", "--cert", c.certs.certFile, "--key", c.certs.keyFile}, 2, "scheme must be https"},
		{"certs without --out", []string{"certs"}, 2, "--out DIR is required"},
		{"reform without --confirm", c.cmd("cluster", "reform"), 2, "--confirm <cluster-id> is required"},
		{"reform through two endpoints", append([]string{"cluster", "reform", "--confirm", "x", "--endpoints", c.url + "," + c.url}, c.certs.flags("")[2:]...), 2, "exactly one --endpoints"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := run(t, "", tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d (stderr %q)", code, tt.wantCode, errOut)
			}
			if !strings.Contains(errOut, tt.wantErr) {
				t.Errorf("stderr %q does not contain %q", errOut, tt.wantErr)
			}
			if !strings.HasPrefix(errOut, "ephemeral-store: ") {
				t.Errorf("stderr %q does not start with the program name", errOut)
			}
			if tt.wantCode == 2 && !strings.Contains(errOut, "--help' for usage") {
				t.Errorf("a usage error must point to --help: %q", errOut)
			}
			if out != "" {
				t.Errorf("a failed command printed %q to stdout", out)
			}
		})
	}
}

func TestConnectionFlagsComeFromTheEnvironment(t *testing.T) {
	c := newCluster(t)
	run(t, "", c.cmd("put", "k", "from-env")...)
	withEnv(t, map[string]string{
		"ES_ENDPOINTS": deadURL(t) + "," + c.url, // the first is down: failover
		"ES_CERT":      c.certs.certFile,
		"ES_KEY":       c.certs.keyFile,
		"ES_CACERT":    c.certs.caFile,
		"ES_TTL":       "5s", // per-call flags are never read from the environment
	})
	code, out, errOut := run(t, "", "get", "k")
	if code != 0 || out != "from-env" {
		t.Fatalf("get with ES_ variables: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, _, errOut = run(t, "", "get", "k", "--endpoints", deadURL(t))
	if code != 1 || !strings.Contains(errOut, "refused") {
		t.Fatalf("a flag must win over ES_ENDPOINTS: exit %d, stderr %q", code, errOut)
	}
	run(t, "", "put", "k2", "v")
	if q := c.store.seen(); !strings.HasSuffix(q[len(q)-1], "/v1/kv/k2?") {
		t.Fatalf("ES_TTL leaked into put: %q", q[len(q)-1])
	}
}

func TestABadEnvironmentValueIsAUsageError(t *testing.T) {
	c := newCluster(t)
	withEnv(t, map[string]string{"ES_TIMEOUT": "soon"})
	code, _, errOut := run(t, "", c.cmd("get", "k")...)
	if code != 2 || !strings.Contains(errOut, `ES_TIMEOUT="soon"`) {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
}

func TestListPagesThroughEveryKey(t *testing.T) {
	c := newCluster(t)
	for i := 0; i < 230; i++ { // more than two of the server's default pages
		c.store.kvs[fmt.Sprintf("pools/m%03d", i)] = memKV{value: []byte(fmt.Sprint(i)), create: 1, modify: 1}
	}
	c.store.kvs["pools/odd"] = memKV{value: []byte("two\nlines")}
	c.store.kvs["other"] = memKV{value: []byte("x")}

	code, out, errOut := run(t, "", c.cmd("list", "pools/")...)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if code != 0 || len(lines) != 231 {
		t.Fatalf("list: exit %d, %d lines, stderr %q", code, len(lines), errOut)
	}
	if lines[0] != "pools/m000\t0" || lines[230] != `pools/odd	"two\nlines"` {
		t.Fatalf("lines: %q ... %q", lines[0], lines[230])
	}

	_, out, _ = run(t, "", c.cmd("list", "pools/", "--limit", "3", "--keys-only")...)
	if out != "pools/m000\npools/m001\npools/m002\n" {
		t.Fatalf("--limit 3 --keys-only: %q", out)
	}

	_, out, _ = run(t, "", c.cmd("list", "-w", "json")...)
	var items []struct {
		Key   string `json:"key"`
		Value []byte `json:"value"`
	}
	if err := json.Unmarshal([]byte(out), &items); err != nil || len(items) != 232 || items[0].Key != "other" {
		t.Fatalf("list -w json: %d items, %v", len(items), err)
	}
}

func TestWatchPrintsEventsUntilInterrupted(t *testing.T) {
	c := newCluster(t)
	run(t, "", c.cmd("put", "pools/a", "1")...)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut syncBuffer
	done := make(chan int)
	go func() {
		done <- execute(ctx, c.cmd("watch", "pools/", "--from", "1"), strings.NewReader(""), &out, &errOut)
	}()
	run(t, "", c.cmd("put", "other", "x")...)
	run(t, "", c.cmd("put", "pools/b", "two words")...)
	run(t, "", c.cmd("del", "pools/a")...)
	want := "1 put pools/a 1\n3 put pools/b two words\n4 delete pools/a\n"
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.Equal(ct, want, out.String(), "stderr: %s", errOut.String())
	}, 10*time.Second, 10*time.Millisecond, "the watch prints every event")
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("an interrupted watch exits %d, want 0 (stderr %q)", code, errOut.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("watch did not stop when interrupted")
	}
}

func TestWatchResumesAfterTheServerCutsItOff(t *testing.T) {
	c := newCluster(t)
	c.store.cutAfter = 2
	for i := 1; i <= 5; i++ {
		run(t, "", c.cmd("put", fmt.Sprintf("k%d", i), "v")...)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut syncBuffer
	done := make(chan int)
	go func() {
		done <- execute(ctx, c.cmd("watch", "--from", "1", "-w", "json"), strings.NewReader(""), &out, &errOut)
	}()
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		assert.Equal(ct, 5, strings.Count(out.String(), "\n"), "output:\n%s%s", out.String(), errOut.String())
	}, 10*time.Second, 10*time.Millisecond, "the watch prints five events across the cut")
	cancel()
	<-done
	for i, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var ev struct {
			Type     string `json:"type"`
			Key      string `json:"key"`
			Revision int64  `json:"revision"`
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil || ev.Revision != int64(i+1) || ev.Key != fmt.Sprintf("k%d", i+1) {
			t.Fatalf("line %d: %q (%v): every event once, in order", i, line, err)
		}
	}
	if !strings.Contains(errOut.String(), "resuming from revision 3") {
		t.Fatalf("stderr %q should tell where the watch resumed", errOut.String())
	}
}

func TestWatchFromACompactedRevisionFails(t *testing.T) {
	c := newTestCerts(t)
	url := c.serve(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		apiError(w, 410, "revision_compacted", "revision 1 is compacted")
	}))
	code, _, errOut := run(t, "", append([]string{"watch", "--from", "1"}, c.flags(url)...)...)
	if code != 1 || !strings.Contains(errOut, "410 revision_compacted") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
}

func TestPutRefusedByTheQuotaSaysTheStoreIsFull(t *testing.T) {
	c := newTestCerts(t)
	url := c.serve(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		apiError(w, 507, "quota_exceeded", "quota exceeded: the write needs 1200 bytes")
	}))
	code, _, errOut := run(t, "", append([]string{"put", "k", "v"}, c.flags(url)...)...)
	if code != 1 || !strings.Contains(errOut, "the store is full, nothing was written") || !strings.Contains(errOut, "507 quota_exceeded") {
		t.Fatalf("exit %d, stderr %q; want 1, what happened and the code", code, errOut)
	}
}

func TestClusterPrintsMembers(t *testing.T) {
	c := newCluster(t)
	code, out, _ := run(t, "", c.cmd("cluster")...)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, s := range []string{"answered by pod-1/b2 (Follower); leader pod-0/a1", "NAME", "pod-0/a1", "pod-1.info:8088", "voter"} {
		if !strings.Contains(out, s) {
			t.Errorf("output lacks %q:\n%s", s, out)
		}
	}
	_, out, _ = run(t, "", c.cmd("cluster", "-w", "json")...)
	var st struct {
		Members []struct{ ID string }
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil || len(st.Members) != 2 {
		t.Fatalf("cluster -w json: %q %v", out, err)
	}
}

func TestCertsWritesTheBundle(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	code, out, errOut := run(t, "", "certs", "--out", dir, "--user", "alice,bob", "--namespace", "store")
	if code != 0 {
		t.Fatalf("certs: exit %d, stderr %q", code, errOut)
	}
	for _, name := range []string{"rootCA.crt", "rootCA.key", "server.crt", "server.key", "alice.crt", "bob.key"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("%s was not written: %v", name, err)
		}
		if !strings.Contains(out, name) {
			t.Errorf("the list of written files lacks %s: %q", name, out)
		}
	}
	if code, _, _ := run(t, "", "certs", "--out", dir); code != 1 {
		t.Errorf("certs over existing files without --force: exit %d, want 1", code)
	}
	if code, _, errOut := run(t, "", "certs", "--out", dir, "--force"); code != 0 {
		t.Errorf("certs --force: exit %d, stderr %q", code, errOut)
	}
}

func TestVersionAndHelp(t *testing.T) {
	code, out, _ := run(t, "", "version")
	if code != 0 || !strings.HasPrefix(out, "ephemeral-store "+buildinfo.Version()+" commit "+buildinfo.Commit()+" ") {
		t.Fatalf("version: exit %d, %q", code, out)
	}
	code, out, _ = run(t, "")
	if code != 0 || !strings.Contains(out, "Available Commands") {
		t.Fatalf("no command: exit %d, %q", code, out)
	}
	for _, sub := range []string{"get", "put", "del", "list", "watch", "cluster", "certs", "version", "serve", "dev"} {
		if !strings.Contains(out, "  "+sub+" ") {
			t.Errorf("help does not list %s", sub)
		}
	}
}

// The certificates of `certs` work as they are: the server certificate for
// 127.0.0.1, the user's for the client commands.
func TestCertsBundleServesTheClientCommands(t *testing.T) {
	dir := t.TempDir()
	if code, _, errOut := run(t, "", "certs", "--out", dir); code != 0 {
		t.Fatalf("certs: exit %d, stderr %q", code, errOut)
	}
	serverCert, err := tls.LoadX509KeyPair(filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key"))
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, "rootCA.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	users := make(chan string, 1)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		users <- r.TLS.VerifiedChains[0][0].Subject.CommonName
		_, _ = w.Write([]byte("hello"))
	}))
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool, Certificates: []tls.Certificate{serverCert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	code, out, errOut := run(t, "", "get", "k", "--endpoints", srv.URL,
		"--cert", filepath.Join(dir, "myuser.crt"), "--key", filepath.Join(dir, "myuser.key"), "--cacert", filepath.Join(dir, "rootCA.crt"))
	if code != 0 || out != "hello" {
		t.Fatalf("get with the bundle: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if user := <-users; user != "myuser" {
		t.Fatalf("the server saw user %q, want myuser", user)
	}
}

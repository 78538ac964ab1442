package cli

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ephemeral-store/ephemeral-store/store/internal/mtls"
)

// TestDevClusterKeepsTheTerminalForInstructions runs `dev` with one node,
// uses it through the client commands, and checks that the node logs went
// to the printed file and nothing to stderr.
func TestDevClusterKeepsTheTerminalForInstructions(t *testing.T) {
	dir := t.TempDir()
	port := freePortRange(t)
	ctx, cancel := context.WithCancel(context.Background())
	out, errb := &syncBuffer{}, &syncBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- execute(ctx, []string{"dev", "--nodes", "1", "--base-port", port, "--dir", dir}, strings.NewReader(""), out, errb)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(2 * time.Minute):
			t.Error("dev did not stop within 2 minutes of its context ending")
		}
	})

	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Contains(c, out.String(), "Press Ctrl-C to stop")
	}, 3*time.Minute, 100*time.Millisecond, "dev never printed its instructions; stdout %q stderr %q", out, errb)

	logPath := filepath.Join(dir, "dev-0.log")
	for _, want := range []string{"export ES_ENDPOINTS=https://127.0.0.1:" + port, "Node logs:    " + logPath, "ES_CACERT=" + filepath.Join(dir, "rootCA.crt")} {
		assert.Contains(t, out.String(), want)
	}
	conn := []string{"--endpoints", "https://127.0.0.1:" + port, "--cert", filepath.Join(dir, "myuser.crt"),
		"--key", filepath.Join(dir, "myuser.key"), "--cacert", filepath.Join(dir, "rootCA.crt")}
	code, _, stderr := run(t, "", append([]string{"put", "pools/web-1", "healthy"}, conn...)...)
	require.Equal(t, 0, code, stderr)
	code, got, stderr := run(t, "", append([]string{"get", "pools/web-1"}, conn...)...)
	require.Equal(t, 0, code, stderr)
	assert.Equal(t, "healthy", strings.TrimSpace(got))

	// The same key over the Redis protocol, on the port the instructions name.
	base, err := strconv.Atoi(port)
	require.NoError(t, err)
	respAddr := fmt.Sprintf("localhost:%d", base+3)
	assert.Contains(t, out.String(), fmt.Sprintf("-h localhost -p %d GET pools/web-1", base+3))
	tlsCfg, err := mtls.ClientConfig(filepath.Join(dir, "myuser.crt"), filepath.Join(dir, "myuser.key"), filepath.Join(dir, "rootCA.crt"))
	require.NoError(t, err)
	rc, err := tls.Dial("tcp", respAddr, tlsCfg)
	require.NoError(t, err)
	defer rc.Close()
	require.NoError(t, rc.SetDeadline(time.Now().Add(30*time.Second)))
	_, err = rc.Write([]byte("*2\r\n$3\r\nGET\r\n$11\r\npools/web-1\r\n"))
	require.NoError(t, err)
	reply := make([]byte, len("$7\r\nhealthy\r\n"))
	_, err = io.ReadFull(rc, reply)
	require.NoError(t, err)
	assert.Equal(t, "$7\r\nhealthy\r\n", string(reply))

	assert.Empty(t, errb.String(), "the node logs belong in %s", logPath)
	logs, err := os.ReadFile(logPath)
	require.NoError(t, err)
	assert.Contains(t, string(logs), "leading", "the node's own records")
	assert.Contains(t, string(logs), "logger=raft", "Raft's records, structured")
	assert.NotContains(t, string(logs), "level=WARN", "a cluster forming alone is nothing to warn about")
}

// freePortRange is a client port whose peer (+1), probe (+2) and Redis
// protocol (+3) ports were free a moment ago.
func freePortRange(t *testing.T) string {
	t.Helper()
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		_, p, _ := net.SplitHostPort(l.Addr().String())
		base := l.Addr().(*net.TCPAddr).Port
		ok := base+3 < 65536
		var held []net.Listener
		for off := 1; ok && off <= 3; off++ {
			h, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", base+off))
			if err != nil {
				ok = false
				break
			}
			held = append(held, h)
		}
		for _, h := range held {
			h.Close()
		}
		l.Close()
		if ok {
			return p
		}
	}
	t.Fatal("no three consecutive free ports on 127.0.0.1")
	return ""
}

package netlab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// The lab needs root. It does not skip without it: the multi-process tier
// is meant to run (CI runs as root), and a silent skip would hide that it
// did not. The failure names the command the kernel refused.
func newLab(t *testing.T, n int) *Lab {
	t.Helper()
	l, err := New(n)
	if err != nil {
		t.Fatalf("netlab.New(%d) (needs root and network namespaces; scripts/ensure-netlab.sh installs ip and iptables): %v", n, err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return l
}

// inNamespace runs fn on an OS thread moved into namespace ns.
func inNamespace(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		target, err := unix.Open("/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return // the thread dies locked
		}
		defer unix.Close(target)
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return
		}
		defer unix.Close(orig)
		if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		err = fn()
		if unix.Setns(orig, unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// echo listens on node i's address inside its namespace and answers every
// connection with the node's name.
func echo(t *testing.T, l *Lab, i int) string {
	t.Helper()
	addr := net.JoinHostPort(l.IP(i), "7000")
	var ln net.Listener
	if err := inNamespace(l.Namespace(i), func() error {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	}); err != nil {
		t.Fatalf("listen on %s in %s: %v", addr, l.Namespace(i), err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = fmt.Fprintf(c, "n%d", i)
			_ = c.Close()
		}
	}()
	return addr
}

// talk opens a connection with dial and expects node want's name.
func talk(dial func(ctx context.Context, network, addr string) (net.Conn, error), addr string, want int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	c, err := dial(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil {
		return err
	}
	if got := string(b); got != fmt.Sprintf("n%d", want) {
		return fmt.Errorf("answer %q, want n%d", got, want)
	}
	return nil
}

// fromNode dials from inside node i's namespace.
func fromNode(l *Lab, i int) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := inNamespace(l.Namespace(i), func() error {
			var err error
			c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
}

func TestLab(t *testing.T) {
	l := newLab(t, 3)
	t.Logf("lab %s: hub %s, nodes %s %s %s", l.Prefix(), l.HubIP(), l.IP(0), l.IP(1), l.IP(2))
	for _, ns := range []string{l.HubNamespace(), l.Namespace(0), l.Namespace(1), l.Namespace(2)} {
		if !strings.HasPrefix(ns, l.Prefix()) {
			t.Errorf("namespace %s lacks the lab prefix %s", ns, l.Prefix())
		}
		if _, err := os.Stat(filepath.Join("/run/netns", ns)); err != nil {
			t.Fatalf("namespace %s: %v", ns, err)
		}
	}
	addrs := make([]string, 3)
	for i := range addrs {
		addrs[i] = echo(t, l, i)
	}

	// expect checks every hub->node and node->node connection; blocked
	// lists the directed node pairs that must time out.
	expect := func(stage string, blocked map[[2]int]bool) {
		t.Helper()
		for to := range addrs {
			if err := talk(l.DialContext, addrs[to], to); err != nil {
				t.Errorf("%s: hub -> n%d: %v", stage, to, err)
			}
			for from := range addrs {
				if from == to {
					continue
				}
				err := talk(fromNode(l, from), addrs[to], to)
				switch {
				case blocked[[2]int{from, to}] && err == nil:
					t.Errorf("%s: n%d -> n%d connects through a cut", stage, from, to)
				case blocked[[2]int{from, to}]:
					// A silent drop: the dial times out, nothing refuses it.
					var ne net.Error
					if !errors.As(err, &ne) || !ne.Timeout() {
						t.Errorf("%s: n%d -> n%d: want a timeout, got %v", stage, from, to, err)
					}
				case err != nil:
					t.Errorf("%s: n%d -> n%d: %v", stage, from, to, err)
				}
			}
		}
	}

	expect("fresh lab", nil)

	if err := l.Cut(0, 1); err != nil {
		t.Fatal(err)
	}
	if got := l.Cuts(); got != "n0-x-n1" {
		t.Errorf("Cuts() = %q", got)
	}
	rules, err := l.Rules(0)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"-A INPUT -s " + l.IP(1) + "/32 -j DROP", "-A OUTPUT -d " + l.IP(1) + "/32 -j DROP"} {
		if !strings.Contains(rules, want) {
			t.Errorf("rules of n0 lack %q:\n%s", want, rules)
		}
	}
	expect("cut n0|n1", map[[2]int]bool{{0, 1}: true, {1, 0}: true})

	// A bridge: n1 sees both sides, n0 and n2 do not see each other.
	if err := l.Partition([]int{0, 1}, []int{1, 2}); err != nil {
		t.Fatal(err)
	}
	expect("bridge n0,n1 | n1,n2", map[[2]int]bool{{0, 2}: true, {2, 0}: true})

	if err := l.Heal(); err != nil {
		t.Fatal(err)
	}
	expect("healed", nil)

	if err := l.CutOneWay(2, 0); err != nil {
		t.Fatal(err)
	}
	if got := l.Cuts(); got != "n2->x-n0" {
		t.Errorf("Cuts() = %q", got)
	}
	// Packets from n2 to n0 are dropped: n2 cannot connect, and n0's
	// connection to n2 gets no answer either.
	expect("one way n2 -> n0", map[[2]int]bool{{2, 0}: true, {0, 2}: true})
	if err := l.Heal(); err != nil {
		t.Fatal(err)
	}
	expect("healed again", nil)
}

// TestCommandRunsInNodeNamespace: the process Command starts is the
// program itself (signals to its PID reach it) and lives in the node's
// namespace.
func TestCommandRunsInNodeNamespace(t *testing.T) {
	l := newLab(t, 2)
	path, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	cmd := l.Command(1, path, "60")
	if err := cmd.Start(); err != nil {
		t.Fatalf("%v: %v", cmd.Args, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	waited := false
	defer func() {
		if !waited {
			_ = cmd.Process.Kill()
			_ = <-done // the error of a killed process says nothing
		}
	}()
	pid := cmd.Process.Pid
	var want unix.Stat_t
	if err := unix.Stat("/run/netns/"+l.Namespace(1), &want); err != nil {
		t.Fatal(err)
	}
	// ip execs the program after entering the namespace; wait for that.
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		var got unix.Stat_t
		serr := unix.Stat(fmt.Sprintf("/proc/%d/ns/net", pid), &got)
		real, _ := filepath.EvalSymlinks(path)
		if assert.NoError(ct, serr, "netns of pid %d", pid) {
			assert.True(ct, (exe == path || exe == real) && got.Ino == want.Ino && got.Dev == want.Dev,
				"pid %d: exe %q (want %s), netns inode %d (want %d of %s)", pid, exe, path, got.Ino, want.Ino, l.Namespace(1))
		}
	}, 30*time.Second, 20*time.Millisecond, "pid %d runs %s in %s", pid, path, l.Namespace(1))
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		waited = true
		if err == nil || !strings.Contains(err.Error(), "killed") {
			t.Errorf("after SIGKILL to pid %d: %v, want killed", pid, err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("pid %d did not die of SIGKILL", pid)
	}
}

// TestCloseRemovesNamespaces: Close deletes exactly the lab's namespaces.
func TestCloseRemovesNamespaces(t *testing.T) {
	l, err := New(2)
	if err != nil {
		t.Fatalf("netlab.New: %v", err)
	}
	names := []string{l.HubNamespace(), l.Namespace(0), l.Namespace(1)}
	other := newLab(t, 1) // another lab stays
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for _, ns := range names {
		if _, err := os.Stat(filepath.Join("/run/netns", ns)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("namespace %s after Close: %v", ns, err)
		}
	}
	if _, err := os.Stat(filepath.Join("/run/netns", other.Namespace(0))); err != nil {
		t.Errorf("another lab's namespace went too: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

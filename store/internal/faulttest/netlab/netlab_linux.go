package netlab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// commandTimeout bounds every ip and iptables command the lab runs; the
// machine may freeze for a while, so it is generous.
const commandTimeout = 2 * time.Minute

// Lab is a hub namespace with a bridge and one namespace per node.
type Lab struct {
	prefix string
	hub    string   // hub namespace
	nodes  []string // node namespaces
	hubIP  string
	ips    []string

	hubFD int // open /run/netns/<hub>, for DialContext

	mu      sync.Mutex
	made    []string      // namespaces created, in order
	drops   map[link]bool // directed cuts in force
	applied map[int]string
	closed  bool
}

// link is a directed pair of nodes: packets from From to To.
type link struct{ From, To int }

// New creates a lab of n nodes. On error nothing it made is left behind;
// the error names the command that failed and its output.
func New(n int) (*Lab, error) {
	if n < 1 || n > 200 {
		return nil, fmt.Errorf("netlab: %d nodes: want 1 to 200", n)
	}
	if _, err := RemoveStale(); err != nil {
		return nil, err
	}
	subnet := fmt.Sprintf("10.213.%d", rand.IntN(256))
	l := &Lab{
		prefix:  fmt.Sprintf("esft%dx%04x", os.Getpid(), rand.IntN(1<<16)),
		hubIP:   subnet + ".1",
		hubFD:   -1,
		drops:   map[link]bool{},
		applied: map[int]string{},
	}
	l.hub = l.prefix + "h"
	for i := 0; i < n; i++ {
		l.nodes = append(l.nodes, fmt.Sprintf("%sn%d", l.prefix, i))
		l.ips = append(l.ips, fmt.Sprintf("%s.%d", subnet, 10+i))
	}
	if err := l.build(); err != nil {
		if cerr := l.Close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
		return nil, err
	}
	return l, nil
}

func (l *Lab) build() error {
	if err := l.addNamespace(l.hub); err != nil {
		return err
	}
	hub := []string{"-n", l.hub}
	steps := [][]string{
		append(hub, "link", "set", "lo", "up"),
		append(hub, "link", "add", "br0", "type", "bridge", "forward_delay", "0"),
		append(hub, "addr", "add", l.hubIP+"/24", "dev", "br0"),
		append(hub, "link", "set", "br0", "up"),
	}
	for _, s := range steps {
		if err := run("ip", s...); err != nil {
			return err
		}
	}
	for i, ns := range l.nodes {
		if err := l.addNamespace(ns); err != nil {
			return err
		}
		veth := fmt.Sprintf("vh%d", i)
		node := []string{"-n", ns}
		steps := [][]string{
			// Both ends are made inside the lab's namespaces: the
			// machine's own namespace never sees them.
			append(hub, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns),
			append(hub, "link", "set", veth, "master", "br0"),
			append(hub, "link", "set", veth, "up"),
			append(node, "link", "set", "lo", "up"),
			append(node, "addr", "add", l.ips[i]+"/24", "dev", "eth0"),
			append(node, "link", "set", "eth0", "up"),
		}
		for _, s := range steps {
			if err := run("ip", s...); err != nil {
				return err
			}
		}
	}
	fd, err := unix.Open("/run/netns/"+l.hub, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("netlab: open /run/netns/%s: %w", l.hub, err)
	}
	l.hubFD = fd
	return nil
}

func (l *Lab) addNamespace(ns string) error {
	if err := run("ip", "netns", "add", ns); err != nil {
		return err
	}
	l.mu.Lock()
	l.made = append(l.made, ns)
	l.mu.Unlock()
	return nil
}

// run runs one command; the error quotes the command line and its output.
func run(name string, args ...string) error {
	return runInput(nil, name, args...)
}

func runInput(stdin []byte, name string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("netlab: `%s %s`: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Close deletes every namespace the lab made (their links, bridge and
// rules go with them). Processes still running in a node namespace keep
// it alive until they exit, unreachable. Close may be called again.
func (l *Lab) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	if l.hubFD >= 0 {
		_ = unix.Close(l.hubFD)
		l.hubFD = -1
	}
	var errs []error
	for k := len(l.made) - 1; k >= 0; k-- {
		if err := run("ip", "netns", "del", l.made[k]); err != nil {
			errs = append(errs, err)
		}
	}
	l.made = nil
	return errors.Join(errs...)
}

// N is the number of nodes.
func (l *Lab) N() int { return len(l.nodes) }

// Prefix is the prefix of every namespace name of the lab.
func (l *Lab) Prefix() string { return l.prefix }

// IP is node i's address.
func (l *Lab) IP(i int) string { return l.ips[i] }

// HubIP is the address of the hub, where the test's clients come from.
func (l *Lab) HubIP() string { return l.hubIP }

// Namespace is the name of node i's namespace.
func (l *Lab) Namespace(i int) string { return l.nodes[i] }

// HubNamespace is the name of the hub namespace.
func (l *Lab) HubNamespace() string { return l.hub }

// Command runs path inside node i's namespace. `ip netns exec` enters the
// namespace and then executes path in its own process, so the PID of the
// started command is the program's own: signals sent to it reach the
// program. The returned Cmd may be adjusted (output, environment,
// SysProcAttr) before it is started.
func (l *Lab) Command(i int, path string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", l.nodes[i], path}, args...)...)
}

// HubCommand runs path inside the hub namespace, like Command.
func (l *Lab) HubCommand(path string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", l.hub, path}, args...)...)
}

// DialContext opens a connection from inside the hub namespace. A socket
// belongs to the namespace it was created in for its whole life, so only
// the creation happens on an OS thread moved into the hub: a goroutine
// locked to its thread enters the namespace, dials, and moves back. A
// thread that cannot move back is never reused (the goroutine exits
// locked, and the runtime ends the thread).
func (l *Lab) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	l.mu.Lock()
	fd := l.hubFD
	l.mu.Unlock()
	if fd < 0 {
		return nil, errors.New("netlab: dial: the lab is closed")
	}
	type result struct {
		conn net.Conn
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, fmt.Errorf("netlab: dial: open own namespace: %w", err)}
			return
		}
		defer unix.Close(orig)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, fmt.Errorf("netlab: dial: setns into %s: %w", l.hub, err)}
			return
		}
		d := net.Dialer{Timeout: 5 * time.Second, KeepAlive: 15 * time.Second}
		conn, err := d.DialContext(ctx, network, addr)
		if unix.Setns(orig, unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		ch <- result{conn, err}
	}()
	r := <-ch
	return r.conn, r.err
}

// Cut stops every packet between nodes a and b, both ways; the hub still
// reaches both.
func (l *Lab) Cut(a, b int) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.drops[link{a, b}] = true
	l.drops[link{b, a}] = true
	return l.apply()
}

// CutOneWay stops the packets from node from to node to; the other
// direction still flows (so TCP connects neither way, but datagrams and
// the replies of established flows do in one direction).
func (l *Lab) CutOneWay(from, to int) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.drops[link{from, to}] = true
	return l.apply()
}

// Partition replaces every cut with this one: two nodes reach each other
// when some group holds both. A node in several groups is a bridge that
// sees every side it belongs to; a node in no group is cut from all the
// others. The hub reaches every node.
func (l *Lab) Partition(groups ...[]int) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	together := map[link]bool{}
	for _, g := range groups {
		for _, a := range g {
			if a < 0 || a >= len(l.nodes) {
				return fmt.Errorf("netlab: partition: no node %d", a)
			}
			for _, b := range g {
				together[link{a, b}] = true
			}
		}
	}
	l.drops = map[link]bool{}
	for a := range l.nodes {
		for b := range l.nodes {
			if a != b && !together[link{a, b}] {
				l.drops[link{a, b}] = true
			}
		}
	}
	return l.apply()
}

// Heal removes every cut.
func (l *Lab) Heal() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.drops = map[link]bool{}
	return l.apply()
}

// Cuts describes the cuts in force, such as "n0-x-n1 n2->x-n3" (a
// symmetric cut between n0 and n1, and one way from n2 to n3).
func (l *Lab) Cuts() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var parts []string
	for d := range l.drops {
		switch {
		case l.drops[link{d.To, d.From}] && d.From < d.To:
			parts = append(parts, fmt.Sprintf("n%d-x-n%d", d.From, d.To))
		case !l.drops[link{d.To, d.From}]:
			parts = append(parts, fmt.Sprintf("n%d->x-n%d", d.From, d.To))
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

// apply installs each node's filter table with iptables-restore, which
// replaces the table in one step; namespaces whose rules did not change
// are left alone. Callers hold l.mu.
func (l *Lab) apply() error {
	if l.closed {
		return errors.New("netlab: the lab is closed")
	}
	var errs []error
	for i, ns := range l.nodes {
		var rules []string
		for d := range l.drops {
			if d.From == i {
				rules = append(rules, fmt.Sprintf("-A OUTPUT -d %s/32 -j DROP", l.ips[d.To]))
			}
			if d.To == i {
				rules = append(rules, fmt.Sprintf("-A INPUT -s %s/32 -j DROP", l.ips[d.From]))
			}
		}
		sort.Strings(rules)
		table := "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
		for _, r := range rules {
			table += r + "\n"
		}
		table += "COMMIT\n"
		prev, had := l.applied[i]
		if (had && prev == table) || (!had && len(rules) == 0) {
			continue
		}
		if err := runInput([]byte(table), "ip", "netns", "exec", ns, "iptables-restore", "-w"); err != nil {
			errs = append(errs, fmt.Errorf("%w\ninput:\n%s", err, table))
			delete(l.applied, i)
			continue
		}
		l.applied[i] = table
	}
	return errors.Join(errs...)
}

// Rules lists the filter rules iptables reports inside node i's namespace
// (for tests and diagnostics).
func (l *Lab) Rules(i int) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", "netns", "exec", l.nodes[i], "iptables", "-w", "-S").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("netlab: `ip netns exec %s iptables -w -S`: %w: %s", l.nodes[i], err, out)
	}
	return string(out), nil
}

var labName = regexp.MustCompile(`^esft([0-9]+)x[0-9a-f]{4}(h|n[0-9]+)$`)

// RemoveStale deletes the namespaces of labs whose process is gone (a test
// binary killed before its Close ran) and returns their names. It only
// touches names of the lab's own pattern whose creator PID is not alive.
func RemoveStale() ([]string, error) {
	entries, err := os.ReadDir("/run/netns")
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("netlab: %w", err)
	}
	var removed []string
	var errs []error
	for _, e := range entries {
		m := labName.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		pid, err := strconv.Atoi(m[1])
		if err != nil || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); err == nil || errors.Is(err, syscall.EPERM) {
			continue // its creator still runs
		}
		if err := run("ip", "netns", "del", e.Name()); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, e.Name())
	}
	return removed, errors.Join(errs...)
}

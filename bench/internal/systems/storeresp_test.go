package systems

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// respRecorder is a RESP2 server on loopback that records each connection's
// commands. It answers GET from its map ($-1 for a missing key), SET key
// value into it with +OK (or with the error line setErrs holds for the key,
// writing nothing), READONLY/READWRITE with +OK (or -ERR while failMode is
// set) and everything else, HELLO included, with -ERR as an old Redis would.
type respRecorder struct {
	ln       net.Listener
	mu       sync.Mutex
	conns    [][]string // commands per connection, in arrival order
	live     []net.Conn
	failMode bool
	values   map[string]string
	setErrs  map[string]string
	// slots is the CLUSTER SLOTS reply, whole; empty: refused, as by a
	// Redis without cluster mode.
	slots string
	// pipelined counts the commands read while the next one had already
	// arrived: a client that waits for each answer leaves it at 0.
	pipelined int
}

func newRESPRecorder(t *testing.T) *respRecorder {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &respRecorder{ln: ln, values: map[string]string{"k": "v"}, setErrs: map[string]string{}}
	t.Cleanup(func() {
		ln.Close()
		r.drop()
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			r.mu.Lock()
			r.conns = append(r.conns, nil)
			r.live = append(r.live, c)
			idx := len(r.conns) - 1
			r.mu.Unlock()
			go r.serve(c, idx)
		}
	}()
	return r
}

func (r *respRecorder) serve(c net.Conn, idx int) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		args, err := readRESPArray(br)
		if err != nil {
			return
		}
		r.mu.Lock()
		r.conns[idx] = append(r.conns[idx], strings.Join(args, " "))
		if br.Buffered() > 0 {
			r.pipelined++
		}
		fail, slots := r.failMode, r.slots
		v, found := r.values[args[len(args)-1]]
		var reply string
		if strings.EqualFold(args[0], "SET") && len(args) == 3 {
			reply = "+OK\r\n"
			if e, ok := r.setErrs[args[1]]; ok {
				reply = "-" + e + "\r\n"
			} else {
				r.values[args[1]] = args[2]
			}
		}
		r.mu.Unlock()
		switch strings.ToUpper(args[0]) {
		case "SET":
			if reply == "" {
				reply = "-ERR syntax error\r\n"
			}
		case "GET":
			reply = "$-1\r\n"
			if found {
				reply = fmt.Sprintf("$%d\r\n%s\r\n", len(v), v)
			}
		case "READONLY", "READWRITE":
			reply = "+OK\r\n"
			if fail {
				reply = "-ERR mode refused\r\n"
			}
		case "PING":
			reply = "+PONG\r\n"
		case "CLUSTER":
			reply = "-ERR This instance has cluster support disabled\r\n"
			if slots != "" && len(args) == 2 && strings.EqualFold(args[1], "SLOTS") {
				reply = slots
			}
		default:
			reply = "-ERR unknown command '" + args[0] + "'\r\n"
		}
		if _, err := c.Write([]byte(reply)); err != nil {
			return
		}
	}
}

func readRESPArray(br *bufio.Reader) ([]string, error) {
	line, err := br.ReadString('\n')
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(line, "*") {
		return nil, fmt.Errorf("not an array: %q", line)
	}
	n, err := strconv.Atoi(strings.TrimSpace(line[1:]))
	if err != nil || n < 1 {
		return nil, fmt.Errorf("array length %q", line)
	}
	args := make([]string, n)
	for i := range args {
		hdr, err := br.ReadString('\n')
		if err != nil {
			return nil, err
		}
		size, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(hdr, "$")))
		if err != nil {
			return nil, fmt.Errorf("bulk length %q", hdr)
		}
		buf := make([]byte, size+2)
		if _, err := io.ReadFull(br, buf); err != nil {
			return nil, err
		}
		args[i] = string(buf[:size])
	}
	return args, nil
}

// drop closes every connection the server holds, as a restarted node would.
func (r *respRecorder) drop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.live {
		c.Close()
	}
	r.live = nil
}

// take returns the commands recorded since the last take, per connection,
// without the handshake's HELLO.
func (r *respRecorder) take() [][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out [][]string
	for i, cmds := range r.conns {
		var kept []string
		for _, c := range cmds {
			if !strings.HasPrefix(c, "hello") {
				kept = append(kept, c)
			}
		}
		if len(kept) > 0 {
			out = append(out, kept)
		}
		r.conns[i] = nil
	}
	return out
}

func TestRESPClientSwitchesReadModeOnlyWhenItChanges(t *testing.T) {
	srv := newRESPRecorder(t)
	c := newRESPClient(srv.ln.Addr().String(), nil)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	get := func(stale bool) {
		t.Helper()
		b, err := c.Get(ctx, "k", stale)
		if err != nil || string(b) != "v" {
			t.Fatalf("Get(k, stale %v) = %q, %v", stale, b, err)
		}
	}
	expect := func(step string, want ...[]string) {
		t.Helper()
		if got := srv.take(); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: commands per connection %q, want %q", step, got, want)
		}
	}

	get(false)
	expect("linearizable on a new connection", []string{"get k"})
	get(true)
	get(true)
	expect("two stale reads", []string{"readonly", "get k", "get k"})

	// A node restart drops the connection: the new one is put back in
	// READONLY before the read.
	srv.drop()
	get(true)
	if got := srv.take(); len(got) == 0 || !reflect.DeepEqual(got[len(got)-1], []string{"readonly", "get k"}) {
		t.Errorf("after reconnecting: commands per connection %q, want the last to be [readonly, get k]", got)
	}

	get(false)
	expect("back to linearizable", []string{"readwrite", "get k"})

	// A refused switch is an error, and the next read tries it again.
	srv.mu.Lock()
	srv.failMode = true
	srv.mu.Unlock()
	if _, err := c.Get(ctx, "k", true); err == nil || !strings.Contains(err.Error(), "mode refused") {
		t.Errorf("Get with a refused READONLY: err %v", err)
	}
	srv.mu.Lock()
	srv.failMode = false
	srv.mu.Unlock()
	get(true)
	expect("refused then retried", []string{"readonly", "readonly", "get k"})

	if _, err := c.Get(ctx, "missing", true); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(missing) err %v, want ErrNotFound", err)
	}
}

func TestRESPClientWritesWithSET(t *testing.T) {
	srv := newRESPRecorder(t)
	c := newRESPClient(srv.ln.Addr().String(), nil)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	expect := func(step string, want ...[]string) {
		t.Helper()
		if got := srv.take(); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: commands per connection %q, want %q", step, got, want)
		}
	}

	if err := c.Put(ctx, "a", []byte("1")); err != nil {
		t.Fatalf("Put(a): %v", err)
	}
	if b, err := c.Get(ctx, "a", false); err != nil || string(b) != "1" {
		t.Errorf("Get(a) after Put = %q, %v", b, err)
	}
	expect("a write then a linearizable read", []string{"set a 1", "get a"})

	// A write leaves the connection's read mode alone: no READWRITE
	// before the SET, no READONLY again after it.
	if _, err := c.Get(ctx, "k", true); err != nil {
		t.Fatal(err)
	}
	if err := c.Put(ctx, "k", []byte("2")); err != nil {
		t.Fatalf("Put(k) on a READONLY connection: %v", err)
	}
	if b, err := c.Get(ctx, "k", true); err != nil || string(b) != "2" {
		t.Errorf("stale Get(k) after Put = %q, %v", b, err)
	}
	expect("a write between stale reads", []string{"readonly", "get k", "set k 2", "get k"})

	// A batch is one pipeline of SETs, in order.
	srv.mu.Lock()
	srv.pipelined = 0
	srv.mu.Unlock()
	if err := c.PutBatch(ctx, []string{"b1", "b2", "b3"}, []byte("x")); err != nil {
		t.Fatalf("PutBatch: %v", err)
	}
	expect("a batch", []string{"set b1 x", "set b2 x", "set b3 x"})
	srv.mu.Lock()
	pipelined, b3 := srv.pipelined, srv.values["b3"]
	srv.mu.Unlock()
	if pipelined == 0 || b3 != "x" {
		t.Errorf("PutBatch: %d SETs read with the next one already sent, b3 = %q; want a pipeline that wrote b3", pipelined, b3)
	}
	if err := c.PutBatch(ctx, nil, []byte("x")); err != nil {
		t.Errorf("PutBatch of no keys: %v", err)
	}
	expect("an empty batch")

	// The node's error line reaches the caller whole, with the command.
	noQuorum := "NOQUORUM the write may or may not have been applied (test)"
	srv.mu.Lock()
	srv.setErrs["bad"] = noQuorum
	srv.mu.Unlock()
	err := c.Put(ctx, "bad", []byte("1"))
	if err == nil || !strings.Contains(err.Error(), noQuorum) || !strings.Contains(err.Error(), `SET "bad"`) {
		t.Errorf("Put(bad) err %v, want the SET and %q", err, noQuorum)
	}
	err = c.PutBatch(ctx, []string{"c1", "bad", "c3"}, []byte("y"))
	if err == nil || !strings.Contains(err.Error(), noQuorum) || !strings.Contains(err.Error(), `SET "bad"`) {
		t.Errorf("PutBatch with a refused key: err %v, want the SET of bad and %q", err, noQuorum)
	}
	expect("refused writes", []string{"set bad 1", "set c1 y", "set bad y", "set c3 y"})
}

// TestRESPClientWritesToTheSlotsOwner: with a cluster writer, the client
// asks CLUSTER SLOTS once, connects to the owner (the leader) before any
// workload, sends every SET there, single or pipelined, and still reads
// on its own node.
func TestRESPClientWritesToTheSlotsOwner(t *testing.T) {
	follower, leader := newRESPRecorder(t), newRESPRecorder(t)
	host, port, err := net.SplitHostPort(leader.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	follower.slots = fmt.Sprintf("*1\r\n*3\r\n:0\r\n:16383\r\n*3\r\n$%d\r\n%s\r\n:%s\r\n$2\r\nid\r\n", len(host), host, port)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	c := newRESPClient(follower.ln.Addr().String(), nil)
	c.withClusterWriter([]string{follower.ln.Addr().String()}, nil)
	defer c.Close()
	if err := c.connectWriter(ctx); err != nil {
		t.Fatalf("connectWriter: %v", err)
	}
	if got, want := follower.take(), [][]string{{"cluster slots"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("seed node: commands %q, want %q", got, want)
	}
	if got, want := leader.take(), [][]string{{"ping"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("leader before any write: commands %q, want %q (connected ahead of the clock)", got, want)
	}
	if err := c.Put(ctx, "a", []byte("1")); err != nil {
		t.Fatalf("Put(a): %v", err)
	}
	if err := c.PutBatch(ctx, []string{"b1", "b2"}, []byte("x")); err != nil {
		t.Fatalf("PutBatch: %v", err)
	}
	if _, err := c.Get(ctx, "k", false); err != nil {
		t.Fatalf("Get(k): %v", err)
	}
	if got, want := leader.take(), [][]string{{"set a 1", "set b1 x", "set b2 x"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("leader: commands %q, want %q", got, want)
	}
	if got, want := follower.take(), [][]string{{"get k"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("the client's own node: commands %q, want %q (reads only)", got, want)
	}

	// A node that refuses CLUSTER SLOTS (a store without the command)
	// is asked again until the context ends, then said plainly, before
	// any workload starts.
	plain := newRESPClient(leader.ln.Addr().String(), nil)
	plain.withClusterWriter([]string{leader.ln.Addr().String()}, nil)
	defer plain.Close()
	short, cancelShort := context.WithTimeout(ctx, time.Second)
	defer cancelShort()
	if err := plain.connectWriter(short); err == nil || !strings.Contains(err.Error(), "CLUSTER SLOTS") {
		t.Errorf("connectWriter to a node without cluster support = %v, want an error naming CLUSTER SLOTS", err)
	}
}

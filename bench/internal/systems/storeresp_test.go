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
// commands. It answers GET from its map ($-1 for a missing key),
// READONLY/READWRITE with +OK (or -ERR while failMode is set) and
// everything else, HELLO included, with -ERR as an old Redis would.
type respRecorder struct {
	ln       net.Listener
	mu       sync.Mutex
	conns    [][]string // commands per connection, in arrival order
	live     []net.Conn
	failMode bool
	values   map[string]string
}

func newRESPRecorder(t *testing.T) *respRecorder {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &respRecorder{ln: ln, values: map[string]string{"k": "v"}}
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
		fail := r.failMode
		v, found := r.values[args[len(args)-1]]
		r.mu.Unlock()
		var reply string
		switch strings.ToUpper(args[0]) {
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
	if err := c.Put(ctx, "k", []byte("v")); err == nil {
		t.Error("Put over the RESP client succeeded; the port is read-only")
	}
}

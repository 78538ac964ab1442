package resp

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ephemeral-store/ephemeral-store/store/internal/auth"
	"github.com/ephemeral-store/ephemeral-store/store/internal/buildinfo"
	"github.com/ephemeral-store/ephemeral-store/store/internal/fsm"
)

// unsupportedWrites are Redis's other writing commands: they need a value
// model (numbers, appends, renames) that opaque values do not have, and
// the error says which commands write instead of "unknown command".
var unsupportedWrites = map[string]bool{
	"MSET": true, "MSETNX": true, "GETSET": true, "GETDEL": true, "GETEX": true,
	"APPEND": true, "INCR": true, "INCRBY": true, "INCRBYFLOAT": true, "DECR": true, "DECRBY": true,
	"EXPIRE": true, "PEXPIRE": true, "EXPIREAT": true, "PEXPIREAT": true, "PERSIST": true,
	"RENAME": true, "RENAMENX": true, "SETRANGE": true, "FLUSHDB": true, "FLUSHALL": true,
}

const servedCommands = "GET, MGET, EXISTS, SET, SETNX, SETEX, PSETEX, DEL, UNLINK, PING, ECHO, READONLY, READWRITE, HELLO, CLIENT, CLUSTER, SELECT, QUIT"

// commandNames are the metric labels; anything else counts as "other", so
// that clients cannot grow the label set.
var commandNames = []string{"GET", "MGET", "EXISTS", "SET", "SETNX", "SETEX", "PSETEX", "DEL", "UNLINK",
	"PING", "ECHO", "READONLY", "READWRITE", "HELLO", "CLIENT", "CLUSTER", "SELECT", "QUIT", "COMMAND", "AUTH",
	"unsupported", "other", "protocol_error", "too_large"}

// upper returns the command name in upper case, in b's space when short.
func upper(name []byte, b *[16]byte) string {
	if len(name) > len(b) {
		return strings.ToUpper(string(name))
	}
	for i, ch := range name {
		if 'a' <= ch && ch <= 'z' {
			ch -= 'a' - 'A'
		}
		b[i] = ch
	}
	return string(b[:len(name)])
}

// run executes one command and writes its reply; true means close the
// connection.
func (c *conn) run(args [][]byte) (quit bool) {
	start := time.Now()
	var nb [16]byte
	name := upper(args[0], &nb)
	var label string
	var ok bool
	if c.stranger && name != "QUIT" {
		c.w.err(fmt.Sprintf("NOAUTH user %q is not allowed in", c.user))
	} else {
		label, ok = c.dispatch(name, args[1:])
	}
	if label == "" {
		label = name
	}
	c.s.o.Metrics.command(label, ok, time.Since(start))
	return name == "QUIT"
}

// dispatch returns the metric label ("" for the name) and whether the
// reply was a success.
func (c *conn) dispatch(name string, args [][]byte) (string, bool) {
	w := &c.w
	arity := func(min, max int) bool {
		if len(args) < min || (max >= 0 && len(args) > max) {
			w.err(fmt.Sprintf("ERR wrong number of arguments for '%s' command", strings.ToLower(name)))
			return false
		}
		return true
	}
	switch name {
	case "GET":
		if !arity(1, 1) {
			return "", false
		}
		return "", c.get(args, replyValue)
	case "MGET":
		if !arity(1, -1) {
			return "", false
		}
		return "", c.get(args, replyValues)
	case "EXISTS":
		if !arity(1, -1) {
			return "", false
		}
		return "", c.get(args, replyCount)
	case "SET":
		if !arity(2, -1) {
			return "", false
		}
		return "", c.set(args[0], args[1], args[2:], replyOK)
	case "SETNX":
		if !arity(2, 2) {
			return "", false
		}
		return "", c.set(args[0], args[1], [][]byte{[]byte("NX")}, replyWritten)
	case "SETEX", "PSETEX":
		if !arity(3, 3) {
			return "", false
		}
		unit := "EX"
		if name == "PSETEX" {
			unit = "PX"
		}
		return "", c.set(args[0], args[2], [][]byte{[]byte(unit), args[1]}, replyOK)
	case "DEL", "UNLINK":
		if !arity(1, -1) {
			return "", false
		}
		return "", c.del(args)
	case "PING":
		if !arity(0, 1) {
			return "", false
		}
		if len(args) == 1 {
			w.bulk(args[0])
		} else {
			w.simple("PONG")
		}
	case "ECHO":
		if !arity(1, 1) {
			return "", false
		}
		w.bulk(args[0])
	case "READONLY", "READWRITE":
		if !arity(0, 0) {
			return "", false
		}
		c.stale = name == "READONLY"
		w.simple("OK")
	case "HELLO":
		return "", c.hello(args)
	case "CLIENT":
		return "", c.client(args)
	case "CLUSTER":
		return "", c.cluster(args)
	case "SELECT":
		if !arity(1, 1) {
			return "", false
		}
		if string(args[0]) != "0" {
			w.err("ERR DB index is out of range: the store has one keyspace, 0")
			return "", false
		}
		w.simple("OK")
	case "QUIT":
		w.simple("OK")
	case "COMMAND":
		c.command(args)
	case "AUTH":
		w.err("ERR this port authenticates by the client certificate; there is no password to give")
		return "", false
	default:
		if unsupportedWrites[name] {
			w.err(fmt.Sprintf("ERR '%s' is not supported: this port writes with SET, SETNX, SETEX, PSETEX, DEL; anything else goes through the HTTP API", name))
			return "unsupported", false
		}
		w.err(fmt.Sprintf("ERR unknown command '%s': this port serves %s", truncate([]byte(name)), servedCommands))
		return "other", false
	}
	return "", true
}

// readForm is the form of a read's answer.
type readForm int

const (
	replyValue  readForm = iota // GET: the value or nil
	replyValues                 // MGET: an array of values or nils
	replyCount                  // EXISTS: how many keys exist
)

// get serves GET, MGET and EXISTS. Every key is checked and authorized
// before any is read.
func (c *conn) get(keys [][]byte, form readForm) bool {
	w := &c.w
	if !c.authorize(keys, auth.AccessRead) {
		return false
	}
	if !c.stale {
		ctx, cancel := context.WithTimeout(context.Background(), c.s.o.ReadTimeout)
		err := c.s.o.Barrier.LinearizableRead(ctx)
		cancel()
		if err != nil {
			c.s.o.Logger.Debug("linearizable read failed", "remote", c.remote, "err", err)
			w.err(barrierError(err))
			return false
		}
	}
	st := c.s.o.State
	switch form {
	case replyValue:
		if kv, _, ok := st.Get(string(keys[0])); ok {
			w.bulk(kv.Value)
		} else {
			w.null()
		}
	case replyCount:
		n := 0
		for _, k := range keys {
			if _, _, ok := st.Get(string(k)); ok {
				n++
			}
		}
		w.integer(int64(n))
	case replyValues:
		w.arrayHeader(len(keys))
		for _, k := range keys {
			if kv, _, ok := st.Get(string(k)); ok {
				w.bulk(kv.Value)
			} else {
				w.null()
			}
		}
	}
	return true
}

// authorize checks every key and the user's right to it, and answers the
// first refusal: a refused key refuses the whole command, as a Redis ACL
// does.
func (c *conn) authorize(keys [][]byte, need auth.Access) bool {
	w := &c.w
	u, err := c.s.o.Users.Authenticate(c.user)
	if err != nil {
		c.s.o.Metrics.authFailure("unknown_user")
		c.s.o.Logger.Warn("authentication failed: unknown user", "user", c.user, "remote", c.remote)
		w.err(fmt.Sprintf("NOAUTH user %q is not allowed in", c.user))
		return false
	}
	for _, k := range keys {
		key := string(k)
		if err := fsm.CheckKey(key, c.s.o.MaxKeyBytes); err != nil {
			w.err("ERR " + err.Error())
			return false
		}
		if key == "" {
			w.err("ERR invalid key: empty key")
			return false
		}
		if err := auth.Authorize(u, key, need); err != nil {
			c.s.o.Metrics.authFailure("forbidden")
			w.err(fmt.Sprintf("NOPERM user %q may not %s %q", u.Name, verb(need), key))
			return false
		}
	}
	return true
}

func verb(need auth.Access) string {
	if need == auth.AccessReadWrite {
		return "write"
	}
	return "read"
}

// barrierError tells a client why a linearizable read was not served and
// what it can do: retry (the cluster is electing or this node is cut off)
// or read stale data.
func barrierError(err error) string {
	if errors.Is(err, context.DeadlineExceeded) {
		err = errors.New("timed out waiting for the leader")
	}
	return "TRYAGAIN linearizable read not served (" + err.Error() + "); retry, or send READONLY to read this node's possibly stale copy"
}

// hello answers HELLO [2] with the server's description; RESP3 is not
// spoken, and clients fall back to RESP2 on -NOPROTO.
func (c *conn) hello(args [][]byte) bool {
	w := &c.w
	if len(args) > 0 {
		if v, err := strconv.Atoi(string(args[0])); err != nil || v != 2 {
			w.err("NOPROTO unsupported protocol version: this port speaks RESP2")
			return false
		}
		for i := 1; i < len(args); i++ {
			if strings.EqualFold(string(args[i]), "AUTH") {
				w.err("ERR this port authenticates by the client certificate; HELLO takes no AUTH")
				return false
			}
		}
	}
	w.arrayHeader(14)
	w.bulkString("server")
	w.bulkString("ephemeral-store")
	w.bulkString("version")
	w.bulkString(buildinfo.Version())
	w.bulkString("proto")
	w.integer(2)
	w.bulkString("id")
	w.integer(c.id)
	w.bulkString("mode")
	if c.s.o.Topology != nil {
		w.bulkString("cluster") // CLUSTER SLOTS names the leader
	} else {
		w.bulkString("standalone")
	}
	w.bulkString("role")
	w.bulkString("master") // every node takes writes (a follower forwards them)
	w.bulkString("modules")
	w.arrayHeader(0)
	return true
}

// client answers the CLIENT subcommands libraries send when they connect.
func (c *conn) client(args [][]byte) bool {
	w := &c.w
	if len(args) == 0 {
		w.err("ERR wrong number of arguments for 'client' command")
		return false
	}
	switch strings.ToUpper(string(args[0])) {
	case "SETNAME":
		if len(args) != 2 {
			w.err("ERR wrong number of arguments for 'client|setname' command")
			return false
		}
		c.name = string(args[1])
		w.simple("OK")
	case "SETINFO":
		w.simple("OK")
	case "GETNAME":
		if c.name == "" {
			w.null()
		} else {
			w.bulkString(c.name)
		}
	case "ID":
		w.integer(c.id)
	default:
		w.err(fmt.Sprintf("ERR unknown CLIENT subcommand '%s': this port serves CLIENT SETINFO, SETNAME, GETNAME, ID", truncate(args[0])))
		return false
	}
	return true
}

package resp

import "strings"

// commandInfo is one entry of COMMAND's reply in Redis 5's form: name,
// arity (negative: at least that many words), flags, and the positions
// of the first and last key and the step between keys. Cluster clients
// read it to tell reads from writes: go-redis's ClusterClient sends a
// command flagged readonly to a replica when asked to (ReadOnly), and
// finds its keys' slot from the positions.
type commandInfo struct {
	name              string
	arity             int
	flags             []string
	first, last, step int
}

// commandTable lists every command this port serves.
var commandTable = []commandInfo{
	{"get", 2, []string{"readonly", "fast"}, 1, 1, 1},
	{"mget", -2, []string{"readonly", "fast"}, 1, -1, 1},
	{"exists", -2, []string{"readonly", "fast"}, 1, -1, 1},
	{"set", -3, []string{"write", "denyoom"}, 1, 1, 1},
	{"setnx", 3, []string{"write", "denyoom", "fast"}, 1, 1, 1},
	{"setex", 4, []string{"write", "denyoom"}, 1, 1, 1},
	{"psetex", 4, []string{"write", "denyoom"}, 1, 1, 1},
	{"del", -2, []string{"write"}, 1, -1, 1},
	{"unlink", -2, []string{"write", "fast"}, 1, -1, 1},
	{"ping", -1, []string{"fast", "stale"}, 0, 0, 0},
	{"echo", 2, []string{"fast"}, 0, 0, 0},
	{"readonly", 1, []string{"fast", "loading", "stale"}, 0, 0, 0},
	{"readwrite", 1, []string{"fast", "loading", "stale"}, 0, 0, 0},
	{"hello", -1, []string{"noscript", "loading", "stale", "fast"}, 0, 0, 0},
	{"client", -2, []string{"loading", "stale"}, 0, 0, 0},
	{"cluster", -2, []string{"loading", "stale"}, 0, 0, 0},
	{"select", 2, []string{"loading", "stale", "fast"}, 0, 0, 0},
	{"quit", -1, []string{"fast"}, 0, 0, 0},
	{"command", -1, []string{"loading", "stale"}, 0, 0, 0},
}

func (w *replyWriter) commandEntry(ci commandInfo) {
	w.arrayHeader(6)
	w.bulkString(ci.name)
	w.integer(int64(ci.arity))
	w.arrayHeader(len(ci.flags))
	for _, f := range ci.flags {
		w.simple(f)
	}
	w.integer(int64(ci.first))
	w.integer(int64(ci.last))
	w.integer(int64(ci.step))
}

// command answers COMMAND (every entry), COMMAND COUNT, COMMAND INFO
// name... (nil for a name not served) and COMMAND DOCS (empty: redis-cli
// asks for it at start and falls back to plain input).
func (c *conn) command(args [][]byte) {
	w := &c.w
	if len(args) == 0 {
		w.arrayHeader(len(commandTable))
		for _, ci := range commandTable {
			w.commandEntry(ci)
		}
		return
	}
	switch strings.ToUpper(string(args[0])) {
	case "COUNT":
		w.integer(int64(len(commandTable)))
	case "INFO":
		w.arrayHeader(len(args) - 1)
		for _, name := range args[1:] {
			found := false
			for _, ci := range commandTable {
				if strings.EqualFold(ci.name, string(name)) {
					w.commandEntry(ci)
					found = true
					break
				}
			}
			if !found {
				w.null()
			}
		}
	default:
		w.arrayHeader(0)
	}
}

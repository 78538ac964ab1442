package resp

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// The CLUSTER commands let a Redis Cluster client (go-redis's
// ClusterClient, redis-py's RedisCluster, Jedis, Lettuce) find the leader
// and send writes to it directly, saving the forwarded write's extra hop.
// The store is one shard: every hash slot, 0 to 16383, belongs to the
// leader, and the other voters are its replicas. Reads such a client sends
// to the leader stay linearizable; reads it routes to replicas (those
// COMMAND flags readonly, when the client is asked to) come after
// READONLY, so they are the replica's local, possibly stale copy, as in
// Redis Cluster. A write that reaches a follower (a client whose topology
// predates an election) is still forwarded to the leader, never answered
// -MOVED: plain clients, which do not follow redirects, keep working.

// lastSlot is Redis Cluster's highest hash slot.
const lastSlot = 16383

// noLeader answers CLUSTER SLOTS and NODES while no leader is known.
const noLeader = "CLUSTERDOWN no leader is known to this node; retry shortly"

// Member is one voter as a cluster-aware client reaches its RESP port.
type Member struct {
	// Name is the member's stable name (the pod name); its node ID is
	// derived from it.
	Name string
	// Addr is host:port of its RESP port.
	Addr string
	// Self marks the node answering.
	Self bool
}

// Topology reports the cluster's voters for CLUSTER SLOTS and NODES.
type Topology interface {
	// Members returns the leader's and the other voters' RESP addresses;
	// ok is false while there is no known leader.
	Members() (leader Member, replicas []Member, ok bool)
}

// nodeID is the 40-hex-digit ID Redis Cluster gives a node, derived from
// the member's name so it stays the same across restarts of a pod: the
// first 20 bytes of a SHA-256 (a name, not a secret).
func nodeID(name string) string {
	sum := sha256.Sum256([]byte("ephemeral-store/" + name))
	return hex.EncodeToString(sum[:20])
}

// cluster answers CLUSTER SLOTS, NODES, INFO, MYID and KEYSLOT.
func (c *conn) cluster(args [][]byte) bool {
	w := &c.w
	if len(args) == 0 {
		w.err("ERR wrong number of arguments for 'cluster' command")
		return false
	}
	topo := c.s.o.Topology
	sub := strings.ToUpper(string(args[0]))
	if topo == nil && sub != "KEYSLOT" {
		w.err("ERR This instance has cluster support disabled")
		return false
	}
	switch sub {
	case "SLOTS":
		leader, replicas, ok := topo.Members()
		if !ok {
			w.err(noLeader)
			return false
		}
		type entry struct {
			host, id string
			port     int
		}
		var entries []entry
		// Every address is checked before the first header is written:
		// an error in the middle of the array would leave it short.
		for _, m := range append([]Member{leader}, replicas...) {
			host, port, err := splitAddr(m.Addr)
			if err != nil {
				// --resp-peers is validated at start: a bad address
				// here is a bug, said plainly.
				w.err(fmt.Sprintf("ERR member %s has no usable RESP address %q: %v", m.Name, m.Addr, err))
				return false
			}
			entries = append(entries, entry{host: host, id: nodeID(m.Name), port: port})
		}
		w.arrayHeader(1)
		w.arrayHeader(2 + len(entries))
		w.integer(0)
		w.integer(lastSlot)
		for _, e := range entries {
			w.arrayHeader(3)
			w.bulkString(e.host)
			w.integer(int64(e.port))
			w.bulkString(e.id)
		}
	case "NODES":
		leader, replicas, ok := topo.Members()
		if !ok {
			w.err(noLeader)
			return false
		}
		var b strings.Builder
		line := func(m Member, role, master, slots string) {
			flags := role
			if m.Self {
				flags = "myself," + role
			}
			// <id> <ip:port@cport> <flags> <master> <ping> <pong> <epoch> <link> [slots]
			fmt.Fprintf(&b, "%s %s@0 %s %s 0 0 1 connected%s\n", nodeID(m.Name), m.Addr, flags, master, slots)
		}
		line(leader, "master", "-", fmt.Sprintf(" 0-%d", lastSlot))
		for _, m := range replicas {
			line(m, "slave", nodeID(leader.Name), "")
		}
		w.bulkString(b.String())
	case "INFO":
		_, replicas, ok := topo.Members()
		state, slotsOK, slotsFail, known := "ok", lastSlot+1, 0, 1+len(replicas)
		if !ok {
			state, slotsOK, slotsFail, known = "fail", 0, lastSlot+1, len(replicas)
		}
		w.bulkString(fmt.Sprintf("cluster_enabled:1\r\ncluster_state:%s\r\ncluster_slots_assigned:%d\r\ncluster_slots_ok:%d\r\n"+
			"cluster_slots_pfail:0\r\ncluster_slots_fail:%d\r\ncluster_known_nodes:%d\r\ncluster_size:1\r\n",
			state, lastSlot+1, slotsOK, slotsFail, known))
	case "MYID":
		leader, replicas, _ := topo.Members()
		for _, m := range append([]Member{leader}, replicas...) {
			if m.Self {
				w.bulkString(nodeID(m.Name))
				return true
			}
		}
		w.err("CLUSTERDOWN this node is not a voter yet; retry shortly")
		return false
	case "KEYSLOT":
		if len(args) != 2 {
			w.err("ERR wrong number of arguments for 'cluster|keyslot' command")
			return false
		}
		w.integer(int64(keySlot(args[1])))
	default:
		w.err(fmt.Sprintf("ERR unknown CLUSTER subcommand '%s': this port serves CLUSTER SLOTS, NODES, INFO, MYID, KEYSLOT", truncate(args[0])))
		return false
	}
	return true
}

func splitAddr(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port <= 0 || port > 65535 {
		return "", 0, fmt.Errorf("port %q out of range", p)
	}
	return host, port, nil
}

// keySlot is Redis Cluster's hash slot of a key: CRC16 (XMODEM) of the
// key, or of its {hash tag} when it has a non-empty one, modulo 16384.
func keySlot(key []byte) int {
	if i := bytes.IndexByte(key, '{'); i >= 0 {
		if j := bytes.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	return int(crc16(key) & lastSlot)
}

// crc16 is CRC-16/XMODEM (polynomial 0x1021, initial 0), as Redis
// Cluster hashes keys.
func crc16(b []byte) uint16 {
	var crc uint16
	for _, x := range b {
		crc ^= uint16(x) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

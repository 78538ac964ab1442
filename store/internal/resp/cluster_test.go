package resp

import (
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
)

// fakeTopology is a cluster whose leader the test sets.
type fakeTopology struct {
	mu       sync.Mutex
	leader   Member
	replicas []Member
	ok       bool
}

func (f *fakeTopology) Members() (Member, []Member, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.leader, f.replicas, f.ok
}

func TestClusterCommands(t *testing.T) {
	topo := &fakeTopology{
		leader:   Member{Name: "es-1", Addr: "es-1.es-headless.ns.svc.cluster.local:6379"},
		replicas: []Member{{Name: "es-0", Addr: "es-0.es-headless.ns.svc.cluster.local:6379", Self: true}, {Name: "es-2", Addr: "10.0.0.7:6380"}},
		ok:       true,
	}
	f := newFixture(t, func(o *Options) { o.Topology = topo })
	c := f.dial("all")
	id := nodeID
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"CLUSTER", "SLOTS"}, "[[:0 :16383 [es-1.es-headless.ns.svc.cluster.local :6379 " + id("es-1") + "] " +
			"[es-0.es-headless.ns.svc.cluster.local :6379 " + id("es-0") + "] [10.0.0.7 :6380 " + id("es-2") + "]]]"},
		{[]string{"cluster", "myid"}, "$" + id("es-0")},
		{[]string{"CLUSTER", "KEYSLOT", "foo"}, ":12182"},
		{[]string{"CLUSTER", "KEYSLOT", "{user1000}.following"}, ":3443"},
		{[]string{"CLUSTER", "KEYSLOT", "{}x"}, fmt.Sprintf(":%d", crc16([]byte("{}x"))&lastSlot)}, // an empty tag: the whole key
		{[]string{"CLUSTER", "RESET"}, "-ERR unknown CLUSTER subcommand 'RESET': this port serves CLUSTER SLOTS, NODES, INFO, MYID, KEYSLOT"},
		{[]string{"CLUSTER"}, "-ERR wrong number of arguments for 'cluster' command"},
	}
	for _, tc := range tests {
		assert.Equal(t, tc.want, c.do(tc.args...), "%q", tc.args)
	}
	nodes := c.do("CLUSTER", "NODES")
	assert.Contains(t, nodes, id("es-1")+" es-1.es-headless.ns.svc.cluster.local:6379@0 master - 0 0 1 connected 0-16383\n")
	assert.Contains(t, nodes, id("es-0")+" es-0.es-headless.ns.svc.cluster.local:6379@0 myself,slave "+id("es-1")+" 0 0 1 connected\n")
	assert.Contains(t, c.do("CLUSTER", "INFO"), "cluster_state:ok\r\ncluster_slots_assigned:16384\r\n")
	assert.Contains(t, c.do("HELLO", "2"), "mode cluster")

	// Without a leader the client is told to retry, never handed a
	// table without an owner.
	topo.mu.Lock()
	topo.ok = false
	topo.mu.Unlock()
	assert.Equal(t, "-CLUSTERDOWN no leader is known to this node; retry shortly", c.do("CLUSTER", "SLOTS"))
	assert.Contains(t, c.do("CLUSTER", "INFO"), "cluster_state:fail\r\ncluster_slots_assigned:16384\r\ncluster_slots_ok:0\r\n")

	// A member whose address does not parse: one error line, never a
	// half-written array (the next reply would be read as its element).
	topo.mu.Lock()
	topo.ok = true
	topo.replicas = append(topo.replicas, Member{Name: "es-3", Addr: "es-3:99999"})
	topo.mu.Unlock()
	assert.Equal(t, `-ERR member es-3 has no usable RESP address "es-3:99999": port "99999" out of range`, c.do("CLUSTER", "SLOTS"))
	assert.Equal(t, "+PONG", c.do("PING"), "the connection stays in step")
}

func TestClusterDisabledWithoutTopology(t *testing.T) {
	c := newFixture(t).dial("all")
	assert.Equal(t, "-ERR This instance has cluster support disabled", c.do("CLUSTER", "SLOTS"))
	assert.Contains(t, c.do("HELLO", "2"), "mode standalone")
}

// TestKeySlot checks Redis's CRC16 against its documented check value
// and slots redis-cli reports.
func TestKeySlot(t *testing.T) {
	assert.Equal(t, uint16(0x31C3), crc16([]byte("123456789")))
	// Slots as Redis documents them (CLUSTER KEYSLOT's examples).
	for key, slot := range map[string]int{"foo": 12182, "somekey": 11058, "foo{hash_tag}": 2515, "hash_tag": 2515, "{user1000}.following": 3443} {
		assert.Equal(t, slot, keySlot([]byte(key)), key)
	}
	// An unclosed or empty tag hashes the whole key.
	assert.NotEqual(t, keySlot([]byte("b")), keySlot([]byte("{b")))
	assert.NotEqual(t, keySlot([]byte("x")), keySlot([]byte("{}x")))
}

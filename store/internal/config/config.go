// Package config holds the settings of one store node, their defaults and
// their validation. Flags and environment variables are mapped onto Config
// by the CLI; everything else receives a validated Config.
package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Config is one node's configuration.
type Config struct {
	// Listen is the client API address (TLS, client certificates required).
	Listen string
	// PeerListen carries Raft and the peer RPCs (mutual TLS, peers only).
	PeerListen string
	// ProbeListen serves /healthz, /readyz and /metrics: plain HTTP, no data.
	ProbeListen string
	// RESPListen, when set, serves the keys over the Redis protocol
	// (RESP2) with the client port's TLS and users; empty: off.
	RESPListen string
	// RESPPeers, in the order of Peers, is the host:port at which clients
	// reach each node's RESP port: CLUSTER SLOTS names the leader by it.
	// Empty: each member's peer host with this node's RESPListen port (a
	// StatefulSet, where every pod listens on the same port).
	RESPPeers []string

	// NodeName is the stable name of this node (the pod name). With PeersDNS
	// its trailing "-<ordinal>" is the ordinal that decides who bootstraps;
	// with Peers a "-<n>" suffix must agree with the position (see Ordinal).
	NodeName string
	// Advertise is the address (a DNS name, never an IP in Kubernetes) peers
	// reach this node by: host or host:port; without a port, Validate adds
	// the port of PeerListen.
	Advertise string
	// PeersDNS + Replicas: Kubernetes discovery through the headless Service.
	PeersDNS string
	Replicas int
	// ReplicasFrom names where the replica count comes from while the node
	// runs: "" (Replicas, or the length of Peers, fixed), "statefulset" (the
	// pod's own StatefulSet's spec.replicas, through the Kubernetes API) or
	// "file:PATH" (a number in a file). With Peers, the count takes the
	// first entries of the list.
	ReplicasFrom string
	// Peers: static discovery, host:port of every node in ordinal order; a
	// node's ordinal is the position of its Advertise in the list.
	Peers []string

	TLSCert, TLSKey, TLSCA string
	// TLSCAKey turns on mint mode: with TLSCA and no TLSCert, the node issues
	// its own serving and peer certificate in memory at start.
	TLSCAKey string
	// SANs are extra DNS names for a minted certificate.
	SANs     []string
	ClientCA string
	PeerCert string
	PeerKey  string
	PeerCA   string
	// PeerCN is the Common Name every peer certificate must carry; user
	// certificates (CN = user name) are therefore refused on the peer port.
	PeerCN string
	// CARotationGrace is how long a CA certificate that left a CA bundle
	// (TLSCA, ClientCA, PeerCA) stays trusted after the file changed, so
	// that peers and users holding certificates of the old CA keep working
	// while a rotation reaches every pod. Kept in memory only; 0: none.
	CARotationGrace time.Duration

	UsersDir string
	// ReloadInterval is how often the users directory and certificate files
	// are re-read by hash, in addition to file system events.
	ReloadInterval time.Duration

	MaxKeyBytes   int
	MaxValueBytes int

	// QuorumLossTimeout is how long a member waits without a leader, with a
	// majority of the configuration's incarnations confirmed gone, before it
	// re-forms the cluster empty.
	QuorumLossTimeout time.Duration
	// JoinRetry is the pause between discovery rounds.
	JoinRetry time.Duration
	// ShutdownTimeout bounds the graceful exit (drain, leadership transfer,
	// leave).
	ShutdownTimeout time.Duration
	// DrainDelay is how long a stopping node reports not ready while still
	// serving, before its API closes.
	DrainDelay time.Duration

	// Raft timing (DefaultRaftTimeout). The leader's lease is the heartbeat
	// timeout too.
	HeartbeatTimeout time.Duration
	ElectionTimeout  time.Duration
	// SnapshotThreshold is how many log entries trigger a snapshot, which
	// bounds the in-memory log.
	SnapshotThreshold uint64
	TrailingLogs      uint64
	// SnapshotBytes triggers a snapshot by the bytes of commands applied
	// since the last one, whatever their count. 0 (the default): 64 MiB,
	// or MemoryLimit/MemoryShareDivisor when that is smaller.
	SnapshotBytes uint64

	// MemoryLimit is the container's memory limit in bytes (0: none known);
	// serve sets Go's soft memory limit to MemoryLimitRatio of it, so the
	// collector works harder near the limit instead of the kernel killing
	// the pod (which would rejoin empty and catch up).
	MemoryLimit      int64
	MemoryLimitRatio float64
	// GCPercent is the collector's GOGC: how far the heap may grow past
	// the live data before a collection. 0 (the default): GCPercentWithLimit
	// when a memory limit is known and applied, Go's own otherwise (GOGC,
	// or 100); -1: off, collecting only near the soft memory limit (needs
	// one). A GOGC environment variable wins, as GOMEMLIMIT does.
	GCPercent int

	// QuotaBytes bounds the estimated memory of the data (store/internal/quota):
	// a write that would grow it further is refused with 507 quota_exceeded.
	// 0: QuotaRatio of MemoryLimit, or no quota when no limit is known;
	// negative: no quota (as etcd's --quota-backend-bytes).
	QuotaBytes int64
	// QuotaRatio is the share of MemoryLimit the data may take when
	// QuotaBytes is 0 (DefaultQuotaRatio).
	QuotaRatio float64

	LogLevel string
	// Pprof serves Go's runtime profiles under /debug/pprof/ on the probe
	// listener. Off by default: profiles name code, not data, but a
	// goroutine dump is more than a probe port should show unasked.
	Pprof bool

	// WallClock replaces time.Now as the node's wall clock; no flag sets
	// it. Tests step it to show that no expiry depends on it (the node
	// reads it only for a new cluster's base revision and for what older
	// replicas expect in a command). Nil: time.Now.
	WallClock func() time.Time
}

// DefaultRaftTimeout is the default heartbeat and election timeout.
//
// A follower campaigns after 1 to 2 of them without hearing from the
// leader, so a SIGKILLed leader is replaced and a write acknowledged again
// in about 0.6 s (make bench: median 572 ms over 7 kills; 1 s timeouts took
// about 1.9 s, 400 ms about 0.85 s). The leader sends a heartbeat every
// tenth of it (30 ms), so only a node that hears nothing for ten heartbeats
// in a row campaigns, and pre-vote keeps a node whose own process stalled
// from deposing a leader the others still hear. A leader steps down after
// one of them without a majority's answers. On a busy 2-core machine
// running five nodes and the load generator at 64 clients, make bench
// counted no leader change during any workload.
const DefaultRaftTimeout = 300 * time.Millisecond

// Defaults the cluster package also falls back to when its caller leaves a
// setting zero: written here only.
const (
	// DefaultQuorumLossTimeout is the default --quorum-loss-timeout.
	DefaultQuorumLossTimeout = 30 * time.Second
	// DefaultJoinRetry is the default pause between discovery rounds.
	DefaultJoinRetry = time.Second
	// DefaultSnapshotBytes is the default --raft-snapshot-bytes (64 MiB).
	DefaultSnapshotBytes = 64 << 20
)

// DefaultCARotationGrace is the default --ca-rotation-grace: far longer
// than kubelet takes to update a mounted Secret in every pod (about a
// minute) and than a rolling restart, short enough that a CA taken out of
// the bundle is not trusted for long by a node that keeps running.
const DefaultCARotationGrace = time.Hour

// DefaultMemoryLimitRatio leaves a tenth of the container's memory limit
// to what Go's soft limit does not count (stacks of the runtime aside, the
// kernel's page cache of the binary) and to the heap's overshoot between
// two collections.
const DefaultMemoryLimitRatio = 0.9

// DefaultQuotaRatio is the default --quota-ratio: the data of a pod at its
// quota takes a fifth of the memory limit, by its estimate (key and value
// bytes plus quota.PerKeyOverhead per key). The rest is what the estimate
// does not count: the Raft log, which keeps TrailingLogs (256) entries
// after each snapshot (with values of 1 MiB as many bytes again as the
// data), the Raft log between snapshots and the watch history (each at
// most MemoryLimit/MemoryShareDivisor), a restarted pod's catch-up, the
// runtime, and the collector's room under Go's soft limit
// (--memory-limit-ratio). BenchmarkMemoryAtQuota (store/internal/server)
// measured, with a 256 MiB limit and its 51 MiB quota, live memory per
// node at the quota (the heap and the off-heap table) of 83 MiB with 1 KiB
// values, 104 MiB with 64 KiB and 138 MiB with 1 MiB (0.54 of the limit),
// and a peak held while filling of 0.55, 0.68 and 0.75 of the limit. With
// the data on the heap it was 74, 95 and 122 MiB: the watch history now
// holds its own copy of the values (at most MemoryLimit/16) where it
// shared the state's. At 0.3 (data on the heap) the 1 MiB case reached
// 181 MiB and the memory Go held while filling 225 MiB (0.88).
// docs/operations.md, "Memory and the data quota", has the figures on kind.
const DefaultQuotaRatio = 0.2

// GCPercentWithLimit is the GOGC a node runs with when it knows its memory
// limit and --gc-percent is 0. Go's default of 100 lets the heap reach
// twice the live data before each collection, and the resident memory
// follows the heap's high-water mark: at a million keys of 256 bytes a
// node held about 3 times the raw bytes. Half the slack costs a little CPU
// on writes (docs/operations.md, "Memory and the data quota", has the
// figures); Go's soft limit still bounds the heap near the container's.
const GCPercentWithLimit = 50

// MemoryShareDivisor: with a memory limit known, the Raft log between
// snapshots (--raft-snapshot-bytes left at 0) and the watch history are
// each bounded by this share of it, at most their 64 MiB defaults, so
// that what the data does not account for shrinks with small pods too.
const MemoryShareDivisor = 16

// Default returns a configuration that runs a single node on the standard
// ports.
func Default() Config {
	host, _ := os.Hostname()
	return Config{
		Listen:            ":8087",
		PeerListen:        ":8088",
		ProbeListen:       ":8089",
		NodeName:          host,
		Replicas:          1,
		PeerCN:            "ephemeral-store-peer",
		CARotationGrace:   DefaultCARotationGrace,
		UsersDir:          "/etc/ephemeral-store/users",
		ReloadInterval:    5 * time.Second,
		MaxKeyBytes:       1024,
		MaxValueBytes:     1 << 20,
		QuorumLossTimeout: DefaultQuorumLossTimeout,
		JoinRetry:         DefaultJoinRetry,
		ShutdownTimeout:   10 * time.Second,
		DrainDelay:        2 * time.Second,
		HeartbeatTimeout:  DefaultRaftTimeout,
		ElectionTimeout:   DefaultRaftTimeout,
		SnapshotThreshold: 1024,
		TrailingLogs:      256,
		MemoryLimitRatio:  DefaultMemoryLimitRatio,
		QuotaRatio:        DefaultQuotaRatio,
		LogLevel:          "info",
	}
}

// LogLevels are the values --log-level takes (any case).
var LogLevels = []string{"debug", "info", "warn", "error"}

// ErrInvalid wraps every validation failure.
var ErrInvalid = errors.New("invalid configuration")

func invalid(field, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalid, field, fmt.Sprintf(format, args...))
}

// Validate makes c ready to use, in three steps: check each setting as
// given (checkSettings), fill the values derived from others (complete),
// then check what only the derived values tell (checkDerived). It reports
// the first problem, naming the flag; the order of the checks is fixed, so
// the same configuration always gets the same answer.
func (c *Config) Validate() error {
	if err := c.checkSettings(); err != nil {
		return err
	}
	if err := c.complete(); err != nil {
		return err
	}
	return c.checkDerived()
}

// checkSettings checks the settings as given, in the order of the flags
// of serve: listeners, logging, identity and discovery, TLS, limits,
// timing. It changes nothing.
func (c *Config) checkSettings() error {
	// A slice, not a map: the first problem reported is the same every run.
	for _, l := range []struct{ name, addr string }{
		{"--listen", c.Listen}, {"--peer-listen", c.PeerListen}, {"--probe-listen", c.ProbeListen},
	} {
		if _, _, err := net.SplitHostPort(l.addr); err != nil {
			return invalid(l.name, "%q is not host:port: %v", l.addr, err)
		}
	}
	if c.RESPListen != "" {
		if _, _, err := net.SplitHostPort(c.RESPListen); err != nil {
			return invalid("--resp-listen", "%q is not host:port: %v", c.RESPListen, err)
		}
	}
	if len(c.RESPPeers) > 0 {
		if c.RESPListen == "" {
			return invalid("--resp-peers", "needs --resp-listen: this node serves no RESP port")
		}
		if len(c.Peers) == 0 {
			return invalid("--resp-peers", "needs --peers: it names each peer's RESP port in --peers order (with --peers-dns every pod listens on the same port, which is the default)")
		}
		if len(c.RESPPeers) != len(c.Peers) {
			return invalid("--resp-peers", "%d addresses for %d --peers: give one per peer, in the same order", len(c.RESPPeers), len(c.Peers))
		}
		for _, a := range c.RESPPeers {
			// Clients dial these names: each needs a host and a port.
			if err := checkDialable(a); err != nil {
				return invalid("--resp-peers", "%q is not host:port: %v", a, err)
			}
		}
	}
	if !slices.Contains(LogLevels, strings.ToLower(c.LogLevel)) {
		return invalid("--log-level", "%q is not one of %s", c.LogLevel, strings.Join(LogLevels, ", "))
	}
	if c.NodeName == "" {
		return invalid("--node-name", "empty (and the host name is unknown)")
	}
	if strings.Contains(c.NodeName, "/") {
		return invalid("--node-name", "%q must not contain '/'", c.NodeName)
	}
	if c.PeersDNS != "" && len(c.Peers) > 0 {
		return invalid("--peers", "use either --peers-dns or --peers, not both")
	}
	if c.PeersDNS != "" {
		if c.Replicas < 1 {
			return invalid("--replicas", "%d: must be at least 1", c.Replicas)
		}
		if _, err := ordinalOf(c.NodeName); err != nil {
			return invalid("--node-name", "%v (with --peers-dns the name must end in -<ordinal>, as StatefulSet pods do)", err)
		}
	}
	if c.ReplicasFrom != "" {
		if c.PeersDNS == "" && len(c.Peers) == 0 {
			return invalid("--replicas-from", "needs --peers-dns or --peers (a single node has no replicas to count)")
		}
		if c.ReplicasFrom != "statefulset" && (!strings.HasPrefix(c.ReplicasFrom, "file:") || c.ReplicasFrom == "file:") {
			return invalid("--replicas-from", "%q: want statefulset or file:PATH", c.ReplicasFrom)
		}
		if c.ReplicasFrom == "statefulset" && c.PeersDNS == "" {
			return invalid("--replicas-from", "statefulset needs --peers-dns (the pods of a StatefulSet)")
		}
	}
	if len(c.Peers) > 0 && c.Advertise == "" {
		return invalid("--advertise", "required with --peers: this node's address as the list gives it")
	}
	if c.TLSCert == "" && c.TLSCAKey == "" {
		return invalid("--tls-cert", "required (or --tls-ca with --tls-ca-key to mint one)")
	}
	if c.TLSCert != "" && c.TLSKey == "" {
		return invalid("--tls-key", "required with --tls-cert")
	}
	if c.TLSCA == "" {
		return invalid("--tls-ca", "required: the CA that signed the serving certificate")
	}
	if (c.PeerCert == "") != (c.PeerKey == "") {
		return invalid("--peer-cert", "--peer-cert and --peer-key go together")
	}
	if c.PeerCN == "" {
		return invalid("--peer-cn", "empty")
	}
	if c.CARotationGrace < 0 {
		return invalid("--ca-rotation-grace", "%s: must be at least 0 (0: stop trusting a CA as soon as it leaves the bundle)", c.CARotationGrace)
	}
	if c.MaxKeyBytes < 1 || c.MaxKeyBytes > 64<<10 {
		return invalid("--max-key-bytes", "%d: must be between 1 and 65536", c.MaxKeyBytes)
	}
	if c.MaxValueBytes < 0 || c.MaxValueBytes > 64<<20 {
		return invalid("--max-value-bytes", "%d: must be between 0 and 64 MiB", c.MaxValueBytes)
	}
	if c.QuorumLossTimeout < time.Second {
		return invalid("--quorum-loss-timeout", "%s: at least 1s, or healthy elections would count as quorum loss", c.QuorumLossTimeout)
	}
	if c.DrainDelay < 0 || c.DrainDelay >= c.ShutdownTimeout {
		return invalid("--drain-delay", "%s: must be at least 0 and below --shutdown-timeout %s", c.DrainDelay, c.ShutdownTimeout)
	}
	if c.ReloadInterval <= 0 {
		return invalid("--reload-interval", "must be positive")
	}
	if c.MemoryLimit < 0 {
		return invalid("--memory-limit", "%d: bytes, at least 0 (0: no limit known)", c.MemoryLimit)
	}
	if !(c.MemoryLimitRatio >= 0 && c.MemoryLimitRatio <= 1) {
		return invalid("--memory-limit-ratio", "%v: must be between 0 (Go's default) and 1", c.MemoryLimitRatio)
	}
	if c.GCPercent < -1 {
		return invalid("--gc-percent", "%d: a percentage, 0 (chosen from --memory-limit) or -1 (off)", c.GCPercent)
	}
	if c.GCPercent == -1 && (c.MemoryLimit == 0 || c.MemoryLimitRatio == 0) {
		return invalid("--gc-percent", "-1 (off) needs --memory-limit and a --memory-limit-ratio above 0: without a soft limit the heap would grow until the pod is killed")
	}
	if !(c.QuotaRatio > 0 && c.QuotaRatio <= 1) {
		return invalid("--quota-ratio", "%v: must be above 0 and at most 1 (--quota-bytes=-1 turns the quota off)", c.QuotaRatio)
	}
	return nil
}

// complete fills the values that default to others: the advertised
// address (<node-name>.<peers-dns>, or 127.0.0.1 for a single node, with
// the --peer-listen port when it has none) and the client and peer CAs
// (--tls-ca). It fails only when --advertise cannot be made host:port.
func (c *Config) complete() error {
	if c.Advertise == "" && c.PeersDNS != "" {
		c.Advertise = c.NodeName + "." + c.PeersDNS
	}
	if c.Advertise == "" {
		c.Advertise = "127.0.0.1"
	}
	adv, err := advertiseAddress(c.Advertise, c.PeerListen)
	if err != nil {
		return invalid("--advertise", "%v", err)
	}
	c.Advertise = adv
	if c.ClientCA == "" {
		c.ClientCA = c.TLSCA
	}
	if c.PeerCA == "" {
		c.PeerCA = c.TLSCA
	}
	if c.SnapshotBytes == 0 {
		c.SnapshotBytes = uint64(c.MemoryShare(DefaultSnapshotBytes))
	}
	return nil
}

// GCPercentFor is the GOGC --gc-percent asks for, given whether a soft
// memory limit was applied; 0: leave Go's.
func (c *Config) GCPercentFor(limitApplied bool) int {
	switch {
	case c.GCPercent != 0:
		return c.GCPercent
	case limitApplied:
		return GCPercentWithLimit
	}
	return 0
}

// MemoryShare is def, or MemoryLimit/MemoryShareDivisor when a limit is
// known and that is smaller: the bound of a memory use that the data's
// quota does not count (the Raft log between snapshots, the watch history).
func (c *Config) MemoryShare(def int64) int64 {
	if c.MemoryLimit > 0 {
		return min(def, c.MemoryLimit/MemoryShareDivisor)
	}
	return def
}

// Quota is the data's quota in bytes: --quota-bytes when positive,
// --quota-ratio of --memory-limit when it is 0 and a limit is known, and
// 0 (no quota) otherwise.
func (c *Config) Quota() int64 {
	switch {
	case c.QuotaBytes > 0:
		return c.QuotaBytes
	case c.QuotaBytes == 0 && c.MemoryLimit > 0:
		return int64(float64(c.MemoryLimit) * c.QuotaRatio)
	default:
		return 0
	}
}

// checkDerived checks what needs the completed values: with --peers, the
// advertised address (now with its port) must be in the list.
func (c *Config) checkDerived() error {
	if len(c.Peers) > 0 {
		return c.checkStaticPeers()
	}
	return nil
}

// PeerAddress is the Raft address of this node: the advertised host and
// port. After Validate, Advertise always carries a port.
func (c *Config) PeerAddress() string {
	if _, _, err := net.SplitHostPort(c.Advertise); err == nil {
		return c.Advertise
	}
	_, port, _ := net.SplitHostPort(c.PeerListen)
	return net.JoinHostPort(strings.Trim(c.Advertise, "[]"), port)
}

// advertiseAddress is --advertise as host:port: a value without a port
// takes the port of --peer-listen ("pod-0.info.ns.svc" with --peer-listen
// :8088 is "pod-0.info.ns.svc:8088"); a value with a port keeps it. A bare
// IPv6 address ("::1", "[::1]") counts as a host without a port.
func advertiseAddress(adv, peerListen string) (string, error) {
	host, port, err := net.SplitHostPort(adv)
	switch {
	case err == nil:
		if err := checkPort(port); err != nil {
			return "", fmt.Errorf("%q: %w", adv, err)
		}
	case net.ParseIP(strings.Trim(adv, "[]")) != nil:
		host = strings.Trim(adv, "[]")
	case strings.Contains(adv, ":"):
		return "", fmt.Errorf("%q is neither a host nor host:port", adv)
	default:
		host = adv
	}
	if host == "" {
		return "", fmt.Errorf("%q has an empty host", adv)
	}
	if strings.ContainsAny(host, "/ \t\n") {
		return "", fmt.Errorf("%q: host %q is not a DNS name or IP address", adv, host)
	}
	if err == nil {
		return adv, nil
	}
	_, port, _ = net.SplitHostPort(peerListen)
	if checkPort(port) != nil {
		return "", fmt.Errorf("%q has no port, and --peer-listen %q has none to lend: give --advertise as host:port", adv, peerListen)
	}
	return net.JoinHostPort(host, port), nil
}

// checkDialable checks that addr names a host and a port a client can
// dial (--peers, --resp-peers).
func checkDialable(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if host == "" {
		return errors.New("no host")
	}
	return checkPort(port)
}

func checkPort(port string) error {
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 || !allDigits(port) {
		return fmt.Errorf("port %q is not a number between 1 and 65535", port)
	}
	return nil
}

func allDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}

// checkStaticPeers validates --peers against --advertise and --node-name.
//
// With --peers, a node's ordinal is the position of its --advertise address
// in the list (0 first); the list is therefore the same, in the same order,
// on every node. --node-name does not decide the ordinal, but when it ends
// in -<n> (StatefulSet style) n must equal that position: a contradiction is
// refused rather than silently resolved, since it means the lists differ
// between nodes or a node advertises another node's address. (With
// --peers-dns the ordinal is the -<n> suffix of --node-name instead.)
func (c *Config) checkStaticPeers() error {
	seen := map[string]bool{}
	for _, p := range c.Peers {
		if checkDialable(p) != nil {
			return invalid("--peers", "%q is not host:port", p)
		}
		if seen[p] {
			return invalid("--peers", "%q is listed twice", p)
		}
		seen[p] = true
	}
	pos, err := c.Ordinal()
	if err != nil {
		return invalid("--advertise", "%v: with --peers, --advertise must be this node's entry in the list (its position is the node's ordinal)", err)
	}
	if n, err := ordinalOf(c.NodeName); err == nil && n != pos {
		return invalid("--node-name", "%q ends in -%d, but --advertise %q is at position %d of --peers %v, and with --peers the position is the ordinal: "+
			"list the peers in ordinal order on every node, or fix --advertise", c.NodeName, n, c.Advertise, pos, c.Peers)
	}
	return nil
}

// Ordinal is this node's rank for bootstrapping (0 bootstraps first).
// With --peers it is the position of --advertise in the list; with
// --peers-dns it is the number after the last '-' of --node-name (the
// StatefulSet pod ordinal); a single node is 0. Call it after Validate, which
// gives Advertise its port.
func (c *Config) Ordinal() (int, error) {
	if len(c.Peers) > 0 {
		for i, p := range c.Peers {
			if p == c.Advertise {
				return i, nil
			}
		}
		return 0, fmt.Errorf("%q is not in --peers %v", c.Advertise, c.Peers)
	}
	if c.PeersDNS == "" {
		return 0, nil
	}
	return ordinalOf(c.NodeName)
}

func ordinalOf(name string) (int, error) {
	i := strings.LastIndex(name, "-")
	if i < 0 {
		return 0, fmt.Errorf("%q has no -<ordinal> suffix", name)
	}
	n, err := strconv.Atoi(name[i+1:])
	if err != nil || n < 0 || !allDigits(name[i+1:]) {
		return 0, fmt.Errorf("%q has no -<ordinal> suffix", name)
	}
	return n, nil
}

// Peer is one node that discovery knows of.
type Peer struct {
	Ordinal int
	Address string // host:port of its peer listener
}

// PeerAt is the peer address of the replica with that ordinal: with
// --peers-dns any ordinal has one, with --peers the ordinals of the list.
func (c *Config) PeerAt(ordinal int) (string, bool) {
	switch {
	case ordinal < 0:
		return "", false
	case len(c.Peers) > 0:
		if ordinal < len(c.Peers) {
			return c.Peers[ordinal], true
		}
		return "", false
	case c.PeersDNS != "":
		_, port, _ := net.SplitHostPort(c.PeerListen)
		return net.JoinHostPort(fmt.Sprintf("%s-%d.%s", c.statefulSetName(), ordinal, c.PeersDNS), port), true
	}
	if ordinal == 0 {
		return c.PeerAddress(), true
	}
	return "", false
}

// OrdinalOfPeer is the inverse of PeerAt.
func (c *Config) OrdinalOfPeer(address string) (int, bool) {
	switch {
	case len(c.Peers) > 0:
		i := slices.Index(c.Peers, address)
		return i, i >= 0
	case c.PeersDNS != "":
		host, _, err := net.SplitHostPort(address)
		prefix := c.statefulSetName() + "-"
		name, ok := strings.CutSuffix(host, "."+c.PeersDNS)
		if err != nil || !ok || !strings.HasPrefix(name, prefix) {
			return 0, false
		}
		o, err := ordinalOf(name)
		if err != nil || name != fmt.Sprintf("%s%d", prefix, o) {
			return 0, false
		}
		if a, _ := c.PeerAt(o); a != address {
			return 0, false
		}
		return o, true
	}
	return 0, address == c.PeerAddress()
}

// statefulSetName is the node name without its -<ordinal>.
func (c *Config) statefulSetName() string {
	if i := strings.LastIndex(c.NodeName, "-"); i >= 0 {
		return c.NodeName[:i]
	}
	return c.NodeName
}

// DiscoveredPeers lists every node of the cluster, this one included, by
// ordinal, for the replica count the flags give (--replicas, or the length
// of --peers). Single-node mode lists only this node.
func (c *Config) DiscoveredPeers() []Peer {
	switch {
	case len(c.Peers) > 0:
		out := make([]Peer, len(c.Peers))
		for i, p := range c.Peers {
			out[i] = Peer{Ordinal: i, Address: p}
		}
		return out
	case c.PeersDNS != "":
		base := c.NodeName[:strings.LastIndex(c.NodeName, "-")]
		_, port, _ := net.SplitHostPort(c.PeerListen)
		out := make([]Peer, c.Replicas)
		for i := range out {
			out[i] = Peer{Ordinal: i, Address: net.JoinHostPort(fmt.Sprintf("%s-%d.%s", base, i, c.PeersDNS), port)}
		}
		return out
	default:
		return []Peer{{Ordinal: 0, Address: c.PeerAddress()}}
	}
}

// Package config holds the settings of one store node, their defaults and
// their validation. Flags and environment variables are mapped onto Config
// by the CLI; everything else receives a validated Config.
package config

import (
	"errors"
	"fmt"
	"net"
	"os"
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

	// NodeName is the stable name of this node (the pod name). Its trailing
	// "-<ordinal>" (or its position in Peers) decides who bootstraps.
	NodeName string
	// Advertise is the DNS name (never an IP in Kubernetes) peers reach
	// this node by; the peer port is appended.
	Advertise string
	// PeersDNS + Replicas: Kubernetes discovery through the headless Service.
	PeersDNS string
	Replicas int
	// Peers: static discovery, host:port of every node; the first is ordinal 0.
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

	// Raft timing. The defaults suit a LAN; tests shorten them.
	HeartbeatTimeout time.Duration
	ElectionTimeout  time.Duration
	// SnapshotThreshold is how many log entries trigger a snapshot, which
	// bounds the in-memory log.
	SnapshotThreshold uint64
	TrailingLogs      uint64
	// SnapshotBytes triggers a snapshot by the bytes of commands applied
	// since the last one, whatever their count.
	SnapshotBytes uint64

	LogLevel string
}

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
		UsersDir:          "/etc/ephemeral-store/users",
		ReloadInterval:    5 * time.Second,
		MaxKeyBytes:       1024,
		MaxValueBytes:     1 << 20,
		QuorumLossTimeout: 30 * time.Second,
		JoinRetry:         time.Second,
		ShutdownTimeout:   10 * time.Second,
		DrainDelay:        2 * time.Second,
		HeartbeatTimeout:  time.Second,
		ElectionTimeout:   time.Second,
		SnapshotThreshold: 1024,
		TrailingLogs:      256,
		SnapshotBytes:     64 << 20,
		LogLevel:          "info",
	}
}

// ErrInvalid wraps every validation failure.
var ErrInvalid = errors.New("invalid configuration")

func invalid(field, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalid, field, fmt.Sprintf(format, args...))
}

// Validate fills derived defaults and reports the first setting that cannot
// work, naming the flag.
func (c *Config) Validate() error {
	for name, addr := range map[string]string{"--listen": c.Listen, "--peer-listen": c.PeerListen, "--probe-listen": c.ProbeListen} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return invalid(name, "%q is not host:port: %v", addr, err)
		}
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
		if _, err := c.Ordinal(); err != nil {
			return invalid("--node-name", "%v (with --peers-dns the name must end in -<ordinal>, as StatefulSet pods do)", err)
		}
		if c.Advertise == "" {
			c.Advertise = c.NodeName + "." + c.PeersDNS
		}
	}
	if len(c.Peers) > 0 {
		for _, p := range c.Peers {
			if _, _, err := net.SplitHostPort(p); err != nil {
				return invalid("--peers", "%q is not host:port", p)
			}
		}
		if c.Advertise == "" {
			return invalid("--advertise", "required with --peers: the name this node has in the list")
		}
		if _, err := c.Ordinal(); err != nil {
			return invalid("--advertise", "%v", err)
		}
	}
	if c.Advertise == "" {
		c.Advertise = "127.0.0.1"
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
	if c.ClientCA == "" {
		c.ClientCA = c.TLSCA
	}
	if c.PeerCA == "" {
		c.PeerCA = c.TLSCA
	}
	if (c.PeerCert == "") != (c.PeerKey == "") {
		return invalid("--peer-cert", "--peer-cert and --peer-key go together")
	}
	if c.PeerCN == "" {
		return invalid("--peer-cn", "empty")
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
	return nil
}

// PeerAddress is the Raft address of this node: advertised name and peer port.
func (c *Config) PeerAddress() string {
	if len(c.Peers) > 0 {
		return c.Advertise // already host:port in the static list
	}
	_, port, _ := net.SplitHostPort(c.PeerListen)
	return net.JoinHostPort(c.Advertise, port)
}

// Ordinal is this node's rank for bootstrapping: its position in Peers, or
// the number after the last '-' of its name with DNS discovery, or 0 alone.
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
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q has no -<ordinal> suffix", name)
	}
	return n, nil
}

// Peer is one node that discovery knows of.
type Peer struct {
	Ordinal int
	Address string // host:port of its peer listener
}

// DiscoveredPeers lists every node of the cluster, this one included, by
// ordinal. Single-node mode lists only this node.
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

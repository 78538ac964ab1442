package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func valid() Config {
	c := Default()
	c.NodeName = "ephemeral-store-2"
	c.TLSCert, c.TLSKey, c.TLSCA = "s.crt", "s.key", "ca.crt"
	return c
}

func TestValidateNamesTheBadFlag(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Config)
		flag   string
	}{
		{"listen without port", func(c *Config) { c.Listen = "localhost" }, "--listen"},
		{"no serving certificate", func(c *Config) { c.TLSCert = "" }, "--tls-cert"},
		{"certificate without key", func(c *Config) { c.TLSKey = "" }, "--tls-key"},
		{"no CA", func(c *Config) { c.TLSCA = "" }, "--tls-ca"},
		{"both discoveries", func(c *Config) { c.PeersDNS = "x.svc"; c.Peers = []string{"a:1"} }, "--peers"},
		{"dns discovery needs an ordinal", func(c *Config) { c.PeersDNS = "x.svc"; c.NodeName = "pod" }, "--node-name"},
		{"static discovery needs advertise", func(c *Config) { c.Peers = []string{"a:1", "b:1"} }, "--advertise"},
		{"advertise not in peers", func(c *Config) { c.Peers = []string{"a:1"}; c.Advertise = "c:1" }, "--advertise"},
		{"resp peers without a resp port", func(c *Config) { c.Peers = []string{"a:1"}; c.Advertise = "a:1"; c.RESPPeers = []string{"a:6379"} }, "--resp-peers"},
		{"resp peers of another length", func(c *Config) {
			c.Peers, c.Advertise, c.RESPListen, c.RESPPeers = []string{"a:1", "b:1"}, "a:1", ":6379", []string{"a:6379"}
		}, "--resp-peers"},
		{"resp peer without a port", func(c *Config) {
			c.Peers, c.Advertise, c.RESPListen, c.RESPPeers = []string{"a:1"}, "a:1", ":6379", []string{"a"}
		}, "--resp-peers"},
		{"resp peer without a host", func(c *Config) {
			c.Peers, c.Advertise, c.RESPListen, c.RESPPeers = []string{"a:1"}, "a:1", ":6379", []string{":6379"}
		}, "--resp-peers"},
		{"resp peer port out of range", func(c *Config) {
			c.Peers, c.Advertise, c.RESPListen, c.RESPPeers = []string{"a:1"}, "a:1", ":6379", []string{"a:99999"}
		}, "--resp-peers"},
		{"resp peer port not a number", func(c *Config) {
			c.Peers, c.Advertise, c.RESPListen, c.RESPPeers = []string{"a:1"}, "a:1", ":6379", []string{"a:x"}
		}, "--resp-peers"},
		{"resp peers with dns discovery", func(c *Config) {
			c.PeersDNS, c.NodeName, c.RESPListen, c.RESPPeers = "x.svc", "es-0", ":6379", []string{"a:6379"}
		}, "--resp-peers"},
		{"key limit", func(c *Config) { c.MaxKeyBytes = 0 }, "--max-key-bytes"},
		{"value limit", func(c *Config) { c.MaxValueBytes = 65<<20 + 1 }, "--max-value-bytes"},
		{"quorum loss timeout too short", func(c *Config) { c.QuorumLossTimeout = 100 * time.Millisecond }, "--quorum-loss-timeout"},
		{"peer cert without key", func(c *Config) { c.PeerCert = "p.crt" }, "--peer-cert"},
		{"slash in node name", func(c *Config) { c.NodeName = "a/b" }, "--node-name"},
		{"log level typo", func(c *Config) { c.LogLevel = "infoo" }, "--log-level"},
		{"replica source for a single node", func(c *Config) { c.ReplicasFrom = "file:/n" }, "--replicas-from"},
		{"replica source typo", func(c *Config) { c.PeersDNS = "x.svc"; c.ReplicasFrom = "statefulsets" }, "--replicas-from"},
		{"replica file without a path", func(c *Config) { c.PeersDNS = "x.svc"; c.ReplicasFrom = "file:" }, "--replicas-from"},
		{"statefulset source without dns discovery", func(c *Config) {
			c.Peers, c.Advertise, c.ReplicasFrom = []string{"a:1", "b:1"}, "a:1", "statefulset"
		}, "--replicas-from"},
		{"empty log level", func(c *Config) { c.LogLevel = "" }, "--log-level"},
		// Every listener wrong: the first in a fixed order is named, every run.
		{"first bad listener", func(c *Config) { c.Listen, c.PeerListen, c.ProbeListen = "a", "b", "c" }, "--listen: \"a\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.change(&c)
			err := c.Validate()
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.flag) {
				t.Fatalf("Validate() = %v, want an ErrInvalid naming %s", err, tt.flag)
			}
		})
	}
	for _, level := range []string{"debug", "INFO", "Warn", "error"} {
		c := valid()
		c.LogLevel = level
		if err := c.Validate(); err != nil {
			t.Fatalf("--log-level %s refused: %v", level, err)
		}
	}
	c := valid()
	if err := c.Validate(); err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
	if c.ClientCA != "ca.crt" || c.PeerCA != "ca.crt" {
		t.Fatalf("client and peer CA default to --tls-ca, got %q %q", c.ClientCA, c.PeerCA)
	}
}

func TestMintModeNeedsNoServingCertificate(t *testing.T) {
	c := valid()
	c.TLSCert, c.TLSKey, c.TLSCAKey = "", "", "ca.key"
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestKubernetesDiscoveryUsesStableDNSNames(t *testing.T) {
	c := valid()
	c.PeersDNS = "ephemeral-store-info.prod.svc.cluster.local"
	c.Replicas = 5
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if got, want := c.PeerAddress(), "ephemeral-store-2.ephemeral-store-info.prod.svc.cluster.local:8088"; got != want {
		t.Fatalf("PeerAddress = %q, want %q", got, want)
	}
	if n, _ := c.Ordinal(); n != 2 {
		t.Fatalf("Ordinal = %d, want 2", n)
	}
	peers := c.DiscoveredPeers()
	if len(peers) != 5 || peers[0].Address != "ephemeral-store-0.ephemeral-store-info.prod.svc.cluster.local:8088" || peers[4].Ordinal != 4 {
		t.Fatalf("DiscoveredPeers = %+v", peers)
	}
}

// TestPeerAtNamesAnyOrdinal: the replica count changes while a node runs,
// so discovery names the replica of any ordinal, and back.
func TestPeerAtNamesAnyOrdinal(t *testing.T) {
	dns := valid()
	dns.PeersDNS = "ephemeral-store-info.prod.svc.cluster.local"
	dns.ReplicasFrom = "statefulset"
	static := valid()
	static.NodeName = "n1"
	static.Peers = []string{"127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9003"}
	static.Advertise = "127.0.0.1:9002"
	static.ReplicasFrom = "file:/run/replicas"
	for _, c := range []*Config{&dns, &static} {
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		c       *Config
		ordinal int
		address string
	}{
		{&dns, 0, "ephemeral-store-0.ephemeral-store-info.prod.svc.cluster.local:8088"},
		{&dns, 6, "ephemeral-store-6.ephemeral-store-info.prod.svc.cluster.local:8088"},
		{&dns, -1, ""},
		{&static, 2, "127.0.0.1:9003"},
		{&static, 3, ""},
	} {
		got, ok := tc.c.PeerAt(tc.ordinal)
		if got != tc.address || ok != (tc.address != "") {
			t.Errorf("PeerAt(%d) = %q, %v; want %q", tc.ordinal, got, ok, tc.address)
		}
		if tc.address == "" {
			continue
		}
		if o, ok := tc.c.OrdinalOfPeer(tc.address); !ok || o != tc.ordinal {
			t.Errorf("OrdinalOfPeer(%q) = %d, %v; want %d", tc.address, o, ok, tc.ordinal)
		}
	}
	for _, addr := range []string{
		"other-1.ephemeral-store-info.prod.svc.cluster.local:8088",          // another StatefulSet
		"ephemeral-store-1.ephemeral-store-info.dev.svc.cluster.local:8088", // another namespace
		"ephemeral-store-01.ephemeral-store-info.prod.svc.cluster.local:8088",
		"ephemeral-store-1.ephemeral-store-info.prod.svc.cluster.local:9000",
		"placeholder-x.invalid:1",
	} {
		if o, ok := dns.OrdinalOfPeer(addr); ok {
			t.Errorf("OrdinalOfPeer(%q) = %d, want none", addr, o)
		}
	}
}

func TestStaticDiscoveryOrdinalIsThePositionInPeers(t *testing.T) {
	c := valid()
	c.Peers = []string{"127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9003"}
	c.Advertise = "127.0.0.1:9003"
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if n, _ := c.Ordinal(); n != 2 {
		t.Fatalf("Ordinal = %d, want 2", n)
	}
	if c.PeerAddress() != "127.0.0.1:9003" {
		t.Fatalf("PeerAddress = %q", c.PeerAddress())
	}
}

func TestSingleNodeByDefault(t *testing.T) {
	c := valid()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if p := c.DiscoveredPeers(); len(p) != 1 || p[0].Address != c.PeerAddress() {
		t.Fatalf("without discovery flags the node is alone, got %+v", p)
	}
}

func TestValidateRefusalsNameTheFlagAndTheValues(t *testing.T) {
	peers := []string{"store-0.info:8088", "store-1.info:8088", "store-2.info:8088"}
	tests := []struct {
		name   string
		change func(*Config)
		want   []string // substrings of the message, the flag first
	}{
		{"advertise with an empty host", func(c *Config) { c.Advertise = ":8088" }, []string{"--advertise", `":8088"`, "empty host"}},
		{"negative memory limit", func(c *Config) { c.MemoryLimit = -1 }, []string{"--memory-limit", "-1"}},
		{"memory limit ratio below 0", func(c *Config) { c.MemoryLimitRatio = -0.5 }, []string{"--memory-limit-ratio", "-0.5", "between 0"}},
		{"memory limit ratio above 1", func(c *Config) { c.MemoryLimitRatio = 1.5 }, []string{"--memory-limit-ratio", "1.5"}},
		{"gc percent below -1", func(c *Config) { c.GCPercent = -5 }, []string{"--gc-percent", "-5", "-1 (off)"}},
		{"gc off without a memory limit", func(c *Config) { c.GCPercent = -1 }, []string{"--gc-percent", "needs --memory-limit"}},
		{"gc off with ratio 0", func(c *Config) { c.GCPercent, c.MemoryLimit, c.MemoryLimitRatio = -1, 1<<30, 0 }, []string{"--gc-percent", "--memory-limit-ratio"}},
		{"quota ratio 0", func(c *Config) { c.QuotaRatio = 0 }, []string{"--quota-ratio", "above 0", "--quota-bytes=-1"}},
		{"quota ratio above 1", func(c *Config) { c.QuotaRatio = 2 }, []string{"--quota-ratio", "2"}},
		{"advertise with a non-numeric port", func(c *Config) { c.Advertise = "pod-0.info:peer" }, []string{"--advertise", `port "peer"`}},
		{"advertise with port 0", func(c *Config) { c.Advertise = "pod-0.info:0" }, []string{"--advertise", `port "0"`}},
		{"advertise with a port too large", func(c *Config) { c.Advertise = "pod-0.info:70000" }, []string{"--advertise", `port "70000"`}},
		{"advertise with an empty port", func(c *Config) { c.Advertise = "pod-0.info:" }, []string{"--advertise", `port ""`}},
		{"advertise that is not an address", func(c *Config) { c.Advertise = "a:b:c" }, []string{"--advertise", `"a:b:c"`}},
		{"advertise that is a URL", func(c *Config) { c.Advertise = "https://pod-0.info" }, []string{"--advertise", "https://pod-0.info"}},
		{"advertise without a port and no peer port to lend", func(c *Config) { c.Advertise = "pod-0.info"; c.PeerListen = ":0" },
			[]string{"--advertise", `"pod-0.info" has no port`, "--peer-listen"}},
		{"peer without a numeric port", func(c *Config) { c.Peers = []string{"a:x", "b:1"}; c.Advertise = "b:1" }, []string{"--peers", `"a:x"`}},
		{"peer without a host", func(c *Config) { c.Peers = []string{":8088"}; c.Advertise = "a:8088" }, []string{"--peers", `":8088"`}},
		{"peer listed twice", func(c *Config) { c.Peers = []string{"a:1", "b:1", "a:1"}; c.Advertise = "a:1" }, []string{"--peers", `"a:1" is listed twice`}},
		{"advertise not in peers", func(c *Config) { c.Peers = peers; c.NodeName = "n0"; c.Advertise = "store-9.info:8088" },
			[]string{"--advertise", `"store-9.info:8088" is not in --peers`}},
		{"advertise host not in peers with the peer port", func(c *Config) {
			c.Peers = peers
			c.NodeName = "n0"
			c.Advertise = "store-1.info"
			c.PeerListen = ":9000"
		},
			[]string{"--advertise", `"store-1.info:9000" is not in --peers`}},
		{"node name contradicts the position in peers", func(c *Config) { c.Peers = peers; c.NodeName = "store-2"; c.Advertise = "store-1.info:8088" },
			[]string{"--node-name", `"store-2" ends in -2`, `"store-1.info:8088" is at position 1 of --peers`}},
		{"node name contradicts the position, advertise without port", func(c *Config) { c.Peers = peers; c.NodeName = "store-0"; c.Advertise = "store-2.info" },
			[]string{"--node-name", `"store-0" ends in -0`, "position 2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.change(&c)
			err := c.Validate()
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Validate() = %v, want an ErrInvalid", err)
			}
			if !strings.HasPrefix(err.Error(), "invalid configuration: "+tt.want[0]+":") {
				t.Errorf("Validate() = %q, want it to be about %s", err, tt.want[0])
			}
			for _, w := range tt.want[1:] {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestAdvertiseTakesThePeerPortWhenItHasNone(t *testing.T) {
	tests := []struct {
		advertise, peerListen, want string
	}{
		{"pod-0.info.ns.svc", ":8088", "pod-0.info.ns.svc:8088"},
		{"pod-0.info.ns.svc", "0.0.0.0:9000", "pod-0.info.ns.svc:9000"},
		{"pod-0.info.ns.svc:7000", ":8088", "pod-0.info.ns.svc:7000"},
		{"10.1.2.3", ":8088", "10.1.2.3:8088"},
		{"::1", ":8088", "[::1]:8088"},
		{"[::1]", ":8088", "[::1]:8088"},
		{"[::1]:7000", ":8088", "[::1]:7000"},
		{"", ":8088", "127.0.0.1:8088"}, // single node default
	}
	for _, tt := range tests {
		c := valid()
		c.Advertise, c.PeerListen = tt.advertise, tt.peerListen
		if err := c.Validate(); err != nil {
			t.Fatalf("--advertise %q --peer-listen %q: %v", tt.advertise, tt.peerListen, err)
		}
		if got := c.PeerAddress(); got != tt.want {
			t.Errorf("--advertise %q --peer-listen %q: PeerAddress = %q, want %q", tt.advertise, tt.peerListen, got, tt.want)
		}
		if c.Advertise != tt.want {
			t.Errorf("--advertise %q: Advertise after Validate = %q, want %q", tt.advertise, c.Advertise, tt.want)
		}
	}
}

func TestStaticOrdinalIsThePositionOfAdvertise(t *testing.T) {
	peers := []string{"store-0.info:8088", "store-1.info:8088", "store-2.info:8088"}
	tests := []struct {
		name, nodeName, advertise string
		want                      int
	}{
		{"advertise with port, name agrees", "store-1", "store-1.info:8088", 1},
		{"advertise without port, name agrees", "store-2", "store-2.info", 2},
		{"name without -<n> (the fault harness's n0..n4)", "n1", "store-1.info:8088", 1},
		{"name whose suffix is not a number", "my-host", "store-0.info:8088", 0},
		{"name with a signed suffix is no ordinal", "store-+1", "store-0.info:8088", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			c.Peers, c.NodeName, c.Advertise = peers, tt.nodeName, tt.advertise
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
			if n, err := c.Ordinal(); err != nil || n != tt.want {
				t.Fatalf("Ordinal = %d, %v; want %d", n, err, tt.want)
			}
			if got := c.PeerAddress(); got != peers[tt.want] {
				t.Fatalf("PeerAddress = %q, want %q", got, peers[tt.want])
			}
		})
	}
}

func TestDNSDiscoveryOrdinalIsTheNameSuffix(t *testing.T) {
	c := valid()
	c.NodeName, c.PeersDNS, c.Replicas = "store-3", "store-info.ns.svc", 5
	c.Advertise = "store-3.store-info.ns.svc" // given without port: the peer port is added
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if n, _ := c.Ordinal(); n != 3 {
		t.Fatalf("Ordinal = %d, want 3", n)
	}
	if got, want := c.PeerAddress(), c.DiscoveredPeers()[3].Address; got != want {
		t.Fatalf("PeerAddress = %q, discovery lists this node as %q", got, want)
	}
}

// TestValidateChecksBeforeItDerives: a configuration with several problems
// is refused for the first in flag order, and the settings as given are
// checked before any value is derived from them, so a refused Config is
// left as it was given.
func TestValidateChecksBeforeItDerives(t *testing.T) {
	c := Default()
	c.PeersDNS = "info.ns.svc"
	c.NodeName = "es-0"
	c.TLSCert, c.TLSKey = "", "" // --tls-cert missing ...
	c.MaxKeyBytes = 0            // ... and --max-key-bytes out of range
	given := c
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "--tls-cert") {
		t.Fatalf("got %v, want the first problem in flag order (--tls-cert)", err)
	}
	if c.Advertise != given.Advertise || c.ClientCA != given.ClientCA || c.PeerCA != given.PeerCA {
		t.Errorf("a refused configuration was completed: advertise %q, client CA %q, peer CA %q", c.Advertise, c.ClientCA, c.PeerCA)
	}

	c = given
	c.TLSCert, c.TLSKey, c.TLSCA, c.MaxKeyBytes = "s.crt", "s.key", "ca.crt", 1024
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Advertise != "es-0.info.ns.svc:8088" || c.ClientCA != "ca.crt" || c.PeerCA != "ca.crt" {
		t.Errorf("completed: advertise %q, client CA %q, peer CA %q", c.Advertise, c.ClientCA, c.PeerCA)
	}
}

// TestQuotaDerivesFromTheMemoryLimit: the data's quota is --quota-bytes
// when given, else a share of the container's memory limit, and the Raft
// log between snapshots and the watch history shrink with small limits.
func TestQuotaDerivesFromTheMemoryLimit(t *testing.T) {
	const mi = 1 << 20
	ratioOf := func(limit int64) int64 { return int64(float64(limit) * DefaultQuotaRatio) }
	tests := []struct {
		name          string
		quota, limit  int64
		snapshotBytes uint64
		wantQuota     int64
		wantSnapshot  uint64
		wantShare     int64 // MemoryShare(64 MiB): the watch history's bound
	}{
		{"no limit, no quota", 0, 0, 0, 0, DefaultSnapshotBytes, 64 * mi},
		{"256Mi pod", 0, 256 * mi, 0, ratioOf(256 * mi), 16 * mi, 16 * mi},
		{"1Gi pod", 0, 1024 * mi, 0, ratioOf(1024 * mi), 64 * mi, 64 * mi},
		{"4Gi pod keeps the 64 MiB bounds", 0, 4096 * mi, 0, ratioOf(4096 * mi), 64 * mi, 64 * mi},
		{"explicit quota wins", 100 * mi, 256 * mi, 0, 100 * mi, 16 * mi, 16 * mi},
		{"explicit quota without a limit", 100 * mi, 0, 0, 100 * mi, DefaultSnapshotBytes, 64 * mi},
		{"negative: no quota", -1, 256 * mi, 0, 0, 16 * mi, 16 * mi},
		{"explicit snapshot bytes win", 0, 256 * mi, 1 * mi, ratioOf(256 * mi), 1 * mi, 16 * mi},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := valid()
			c.QuotaBytes, c.MemoryLimit, c.SnapshotBytes = tc.quota, tc.limit, tc.snapshotBytes
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
			if got := c.Quota(); got != tc.wantQuota {
				t.Errorf("Quota() = %d, want %d", got, tc.wantQuota)
			}
			if c.SnapshotBytes != tc.wantSnapshot {
				t.Errorf("SnapshotBytes = %d, want %d", c.SnapshotBytes, tc.wantSnapshot)
			}
			if got := c.MemoryShare(64 * mi); got != tc.wantShare {
				t.Errorf("MemoryShare(64 MiB) = %d, want %d", got, tc.wantShare)
			}
		})
	}
}

func TestGCPercentFollowsTheMemoryLimit(t *testing.T) {
	tests := []struct {
		name    string
		flag    int
		limited bool
		want    int
	}{
		{"default without a soft limit: Go's", 0, false, 0},
		{"default with a soft limit", 0, true, GCPercentWithLimit},
		{"explicit wins over the limit", 200, true, 200},
		{"explicit without a limit", 30, false, 30},
		{"off", -1, true, -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := Config{GCPercent: tc.flag}
			if got := c.GCPercentFor(tc.limited); got != tc.want {
				t.Errorf("GCPercentFor(%v) with --gc-percent %d = %d, want %d", tc.limited, tc.flag, got, tc.want)
			}
		})
	}
}

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
		{"key limit", func(c *Config) { c.MaxKeyBytes = 0 }, "--max-key-bytes"},
		{"value limit", func(c *Config) { c.MaxValueBytes = 65<<20 + 1 }, "--max-value-bytes"},
		{"quorum loss timeout too short", func(c *Config) { c.QuorumLossTimeout = 100 * time.Millisecond }, "--quorum-loss-timeout"},
		{"peer cert without key", func(c *Config) { c.PeerCert = "p.crt" }, "--peer-cert"},
		{"slash in node name", func(c *Config) { c.NodeName = "a/b" }, "--node-name"},
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

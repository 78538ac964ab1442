package server

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/ephemeral-store/ephemeral-store/store/certnames"
	"github.com/ephemeral-store/ephemeral-store/store/internal/config"
)

// A minted certificate carries the pod's names from certnames, read back
// from --peers-dns, and the Services' names the chart passes with --san.
func TestMintedNamesAreThePodsAndTheSANs(t *testing.T) {
	rel := certnames.Release{StatefulSet: "es", Headless: "es-info", Namespace: "ns", ClusterDomain: "corp.example"}
	cfg := config.Default()
	cfg.NodeName = "es-3"
	cfg.PeersDNS = "es-info.ns.svc.corp.example"
	cfg.Advertise = "es-3.es-info.ns.svc.corp.example:8088"
	cfg.SANs = rel.ServiceDNSNames()

	want := append([]string{"es-3"}, rel.PodDNSNames(3)...)
	want = append(want, rel.ServiceDNSNames()...) // localhost among them
	assert.ElementsMatch(t, want, mintedNames(&cfg))
}

package chart

import (
	"fmt"
	"net"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ephemeral-store/ephemeral-store/store/certnames"
)

// The chart builds its certificates' DNS names in templates
// (ephemeral-store.serviceSANs and .serverSANs in _helpers.tpl); the Go
// side (`ephemeral-store certs`, the server's minted certificate) takes
// them from store/certnames. These tests render the chart with a cluster
// domain and a namespace other than the defaults and check that each TLS
// mode's certificates carry exactly the names certnames returns.

const (
	namesRelease  = "shop" // fullname shop-ephemeral-store
	namesDomain   = "corp.example"
	namesReplicas = 3
)

// namesOf is the certnames view of the release rendered below.
var namesOf = certnames.Release{
	StatefulSet:   "shop-ephemeral-store",
	Headless:      "shop-ephemeral-store-info",
	Namespace:     namespace,
	ClusterDomain: namesDomain,
}

func renderNames(t *testing.T, mode string) *manifests {
	t.Helper()
	require.NotEqual(t, "default", namespace, "the test needs a namespace other than the default")
	require.NotEqual(t, certnames.DefaultClusterDomain, namesDomain)
	return render(t, opts{release: namesRelease, set: map[string]string{
		"tls.mode":      mode,
		"clusterDomain": namesDomain,
		"replicaCount":  fmt.Sprint(namesReplicas),
	}})
}

// assertNames checks a certificate's names: exactly want, each once.
func assertNames(t *testing.T, want, got []string, what string) {
	t.Helper()
	assert.ElementsMatch(t, want, got, "%s: DNS names", what)
	seen := map[string]bool{}
	for _, n := range got {
		assert.False(t, seen[n], "%s: %q twice", what, n)
		seen[n] = true
	}
}

func TestGeneratedSecretCarriesTheCertnames(t *testing.T) {
	t.Parallel()
	m := renderNames(t, "generate")
	cert := parseCert(t, m.secret(t, namesOf.StatefulSet+"-tls").Data["tls.crt"])
	assertNames(t, namesOf.ServerDNSNames(namesReplicas), cert.DNSNames, "generated server Secret")
	require.Len(t, cert.IPAddresses, 1)
	assert.True(t, cert.IPAddresses[0].Equal(net.IPv4(127, 0, 0, 1)))
	// Teeth: the fully qualified names are under the chosen domain.
	assert.Contains(t, cert.DNSNames, "shop-ephemeral-store-2.shop-ephemeral-store-info."+namespace+".svc."+namesDomain)
	assert.NotContains(t, cert.DNSNames, "shop-ephemeral-store."+namespace+".svc.cluster.local")
}

func TestCertManagerCertificateCarriesTheCertnames(t *testing.T) {
	t.Parallel()
	m := renderNames(t, "certManager")
	var server struct {
		Spec struct {
			DNSNames    []string `json:"dnsNames"`
			IPAddresses []string `json:"ipAddresses"`
		} `json:"spec"`
	}
	m.get(t, "Certificate", namesOf.StatefulSet+"-server", &server)
	assertNames(t, namesOf.ServerDNSNames(namesReplicas), server.Spec.DNSNames, "cert-manager server Certificate")
	assert.Equal(t, []string{"127.0.0.1"}, server.Spec.IPAddresses)
}

// In mint mode each pod issues its own certificate: the chart hands it the
// Services' names with --san and the headless domain with --peers-dns,
// from which the server adds the pod's own names (certnames.PodDNSNames).
func TestMintModeFlagsAreTheCertnames(t *testing.T) {
	t.Parallel()
	m := renderNames(t, "caSecret")
	f := flags(storeContainer(t, m.statefulSet(t)).Args)
	assertNames(t, namesOf.ServiceDNSNames(), f["san"], "--san of mint mode")
	require.Len(t, f["peers-dns"], 1)
	fromPeersDNS := certnames.FromHeadlessDomain(f["peers-dns"][0])
	fromPeersDNS.StatefulSet = namesOf.StatefulSet
	assert.Equal(t, namesOf, fromPeersDNS, "--peers-dns %s", f["peers-dns"][0])
}

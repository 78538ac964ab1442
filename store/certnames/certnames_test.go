package certnames

import (
	"crypto/x509"
	"encoding/pem"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ephemeral-store/ephemeral-store/store/internal/pki"
)

var es = Release{StatefulSet: "es", Headless: "es-info", Namespace: "ns", ClusterDomain: "example.org"}

func TestNames(t *testing.T) {
	tests := []struct {
		name string
		got  []string
		want []string
	}{
		{"services", es.ServiceDNSNames(), []string{
			"es", "es.ns", "es.ns.svc", "es.ns.svc.example.org",
			"es-info", "es-info.ns", "es-info.ns.svc", "es-info.ns.svc.example.org",
			"localhost",
		}},
		{"pod", es.PodDNSNames(3), []string{
			"es-3.es-info", "es-3.es-info.ns", "es-3.es-info.ns.svc", "es-3.es-info.ns.svc.example.org",
		}},
		{"shared server certificate", es.ServerDNSNames(2), []string{
			"es", "es.ns", "es.ns.svc", "es.ns.svc.example.org",
			"es-info", "es-info.ns", "es-info.ns.svc", "es-info.ns.svc.example.org",
			"localhost",
			"es-0.es-info", "es-0.es-info.ns", "es-0.es-info.ns.svc", "es-0.es-info.ns.svc.example.org",
			"es-1.es-info", "es-1.es-info.ns", "es-1.es-info.ns.svc", "es-1.es-info.ns.svc.example.org",
			"*.es-info", "*.es-info.ns", "*.es-info.ns.svc", "*.es-info.ns.svc.example.org",
		}},
		{"no cluster domain", Release{StatefulSet: "es", Headless: "es-info", Namespace: "ns"}.PodDNSNames(0), []string{
			"es-0.es-info", "es-0.es-info.ns", "es-0.es-info.ns.svc",
		}},
		{"no namespace: short names only", Release{StatefulSet: "es", Headless: "es-info", ClusterDomain: "x"}.ServerDNSNames(1), []string{
			"es", "es-info", "localhost", "es-0.es-info", "*.es-info",
		}},
		{"no headless Service: no pod names", Release{StatefulSet: "es", Namespace: "ns"}.ServerDNSNames(2), []string{
			"es", "es.ns", "es.ns.svc", "localhost",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.got)
		})
	}
}

func TestFromHeadlessDomain(t *testing.T) {
	tests := []struct {
		domain string
		want   Release
	}{
		{"es-info.ns.svc.example.org", Release{Headless: "es-info", Namespace: "ns", ClusterDomain: "example.org"}},
		{"es-info.ns.svc.cluster.local", Release{Headless: "es-info", Namespace: "ns", ClusterDomain: "cluster.local"}},
		{"es-info.ns.svc", Release{Headless: "es-info", Namespace: "ns"}},
		{"es-info.ns", Release{Headless: "es-info.ns"}},
		{"store.example.com", Release{Headless: "store.example.com"}},
		{"localhost", Release{Headless: "localhost"}},
	}
	for _, tt := range tests {
		t.Run(tt.domain, func(t *testing.T) {
			assert.Equal(t, tt.want, FromHeadlessDomain(tt.domain))
		})
	}
	// The pod names of a node come back from its --peers-dns.
	rel := FromHeadlessDomain("es-info.ns.svc.example.org")
	rel.StatefulSet = "es"
	assert.Equal(t, es.PodDNSNames(4), rel.PodDNSNames(4))
}

// A certificate with these names verifies for every way a pod is reached,
// including pods beyond the listed replicas (wildcard), and for no other
// headless Service.
func TestServerNamesVerify(t *testing.T) {
	ca, err := pki.NewCA("ca", time.Hour)
	require.NoError(t, err)
	certPEM, _, err := ca.Issue(pki.IssueRequest{CommonName: pki.PeerCommonName, DNSNames: es.ServerDNSNames(2), ServerAuth: true, ClientAuth: true})
	require.NoError(t, err)
	block, _ := pem.Decode(certPEM)
	require.NotNil(t, block)
	leaf, err := x509.ParseCertificate(block.Bytes)
	require.NoError(t, err)
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)

	for host, ok := range map[string]bool{
		"es":                                true,
		"es.ns.svc":                         true,
		"es-1.es-info.ns.svc":               true,
		"es-7.es-info.ns.svc.example.org":   true,
		"es-info.ns.svc.example.org":        true,
		"localhost":                         true,
		"es-0.other.ns.svc":                 false,
		"es-0.es-info.ns.svc.cluster.local": false,
	} {
		_, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: host})
		assert.Equal(t, ok, err == nil, "%s: %v", host, err)
	}
}

package cli

import (
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ephemeral-store/ephemeral-store/store/certnames"
)

// The server certificate of `certs` names what the chart's own do, from
// the same certnames function, in any namespace and cluster domain.
func TestCertsServerCertificateNamesTheRelease(t *testing.T) {
	dir := t.TempDir()
	code, _, errOut := run(t, "", "certs", "--out", dir, "--k8s-release", "shop", "--namespace", "store",
		"--cluster-domain", "corp.example", "--replicas", "2", "--dns", "store.example.com")
	require.Equal(t, 0, code, "stderr: %s", errOut)

	for _, name := range []string{"server.crt", "peer.crt"} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		require.NoError(t, err)
		block, _ := pem.Decode(data)
		require.NotNil(t, block, name)
		cert, err := x509.ParseCertificate(block.Bytes)
		require.NoError(t, err)

		rel := certnames.Release{StatefulSet: "shop-ephemeral-store", Headless: "shop-ephemeral-store-info", Namespace: "store", ClusterDomain: "corp.example"}
		assert.ElementsMatch(t, append([]string{"store.example.com"}, rel.ServerDNSNames(2)...), cert.DNSNames, name)
		assert.Contains(t, cert.DNSNames, "shop-ephemeral-store-1.shop-ephemeral-store-info.store.svc.corp.example", name)
		assert.True(t, cert.IPAddresses[0].Equal(net.IPv4(127, 0, 0, 1)), name)
	}
}

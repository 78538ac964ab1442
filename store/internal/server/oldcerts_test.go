package server_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ephemeral-store/ephemeral-store/store/client"
	"github.com/ephemeral-store/ephemeral-store/store/internal/config"
	"github.com/ephemeral-store/ephemeral-store/store/internal/testcluster"
)

// opensslDir holds a root CA and user certificates made with the old
// documentation's openssl steps (X.509 v1 user certificates without
// extensions); scripts/gen-openssl-testdata.sh regenerates them.
var opensslDir, _ = filepath.Abs("../mtls/testdata/openssl")

// The old system's Secret held only rootCA.crt and rootCA.key: the server
// mints its own serving certificate from them, and the old users'
// certificates work unchanged.
func TestOldDocsCertificatesWorkWithMintMode(t *testing.T) {
	c := testcluster.New(t, 1, testcluster.WithConfig(func(_ int, cfg *config.Config) {
		cfg.TLSCert, cfg.TLSKey = "", ""
		cfg.TLSCA = filepath.Join(opensslDir, "rootCA.crt")
		cfg.TLSCAKey = filepath.Join(opensslDir, "rootCA.key")
	}))
	c.WaitReady(readyTimeout)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	endpoint := []string{"https://" + c.Node(0).Client}

	cl, err := client.NewFromFiles(endpoint,
		filepath.Join(opensslDir, "myuser.crt"), filepath.Join(opensslDir, "myuser.key"), filepath.Join(opensslDir, "rootCA.crt"))
	require.NoError(t, err)
	_, err = cl.Put(ctx, "pools/web-1", []byte("healthy"))
	require.NoError(t, err, "an openssl v1 user certificate must be accepted")
	kv, err := cl.Get(ctx, "pools/web-1")
	require.NoError(t, err)
	require.Equal(t, "healthy", string(kv.Value))

	// otheruser is signed by the same CA but has no users entry: 401.
	other, err := client.NewFromFiles(endpoint,
		filepath.Join(opensslDir, "otheruser.crt"), filepath.Join(opensslDir, "otheruser.key"), filepath.Join(opensslDir, "rootCA.crt"))
	require.NoError(t, err)
	_, err = other.Get(ctx, "pools/web-1")
	require.ErrorIs(t, err, client.ErrUnauthenticated)

	// intruder is signed by an unrelated CA: the handshake fails.
	intruder, err := client.NewFromFiles(endpoint,
		filepath.Join(opensslDir, "intruder.crt"), filepath.Join(opensslDir, "intruder.key"), filepath.Join(opensslDir, "rootCA.crt"))
	require.NoError(t, err)
	_, err = intruder.Get(ctx, "pools/web-1")
	require.Error(t, err)
	var apiErr *client.APIError
	require.False(t, errors.As(err, &apiErr), "a foreign certificate must not reach the API: %v", err)
}

func TestServingCertificateRotatesWithoutRestart(t *testing.T) {
	c := testcluster.New(t, 1)
	c.WaitReady(readyTimeout)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := c.Client(testcluster.UserAll)
	_, err := cl.Put(ctx, "k", []byte("v"))
	require.NoError(t, err)

	// Replace the serving certificate and CA with a new, unrelated pair
	// the way an operator rotates a Secret; clients trusting only the old
	// CA must start failing, clients trusting the new one succeed.
	fresh := testcluster.New(t, 1) // only for its freshly generated PKI files
	for _, f := range []string{"server.crt", "server.key", "rootCA.crt"} {
		b, err := os.ReadFile(filepath.Join(fresh.Dir, f))
		require.NoError(t, err)
		tmp := filepath.Join(c.Dir, f+".tmp")
		require.NoError(t, os.WriteFile(tmp, b, 0o600))
		require.NoError(t, os.Rename(tmp, filepath.Join(c.Dir, f)))
	}
	freshClient, err := client.NewFromFiles([]string{"https://" + c.Node(0).Client},
		filepath.Join(fresh.Dir, "myuser.crt"), filepath.Join(fresh.Dir, "myuser.key"), filepath.Join(fresh.Dir, "rootCA.crt"))
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		kv, err := freshClient.Get(ctx, "k")
		return err == nil && string(kv.Value) == "v"
	}, 15*time.Second, 100*time.Millisecond, "the rotated certificate and CA must be served without a restart")
}

package pki

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func loadPool(t *testing.T, file string) *x509.CertPool {
	t.Helper()
	data, err := os.ReadFile(file)
	require.NoError(t, err)
	p := x509.NewCertPool()
	require.True(t, p.AppendCertsFromPEM(data))
	return p
}

func loadLeaf(t *testing.T, dir, stem string) *x509.Certificate {
	t.Helper()
	kp, err := tls.LoadX509KeyPair(filepath.Join(dir, stem+".crt"), filepath.Join(dir, stem+".key"))
	require.NoError(t, err, "%s.crt and %s.key must pair", stem, stem)
	return kp.Leaf
}

func TestWriteBundleWritesAVerifyingSet(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	files, err := WriteBundle(dir, BundleOptions{
		DNSNames: []string{"store.example.com", "10.1.2.3", "localhost"},
		Users:    []string{"myuser", "reader"},
	})
	require.NoError(t, err)

	var names []string
	for _, f := range files {
		names = append(names, filepath.Base(f))
	}
	assert.Equal(t, []string{"rootCA.crt", "rootCA.key", "server.crt", "server.key", "peer.crt", "peer.key",
		"myuser.crt", "myuser.key", "reader.crt", "reader.key"}, names)
	for _, f := range files {
		st, err := os.Stat(f)
		require.NoError(t, err)
		want := os.FileMode(0o644)
		if filepath.Ext(f) == ".key" {
			want = 0o600
		}
		assert.Equal(t, want, st.Mode().Perm(), f)
	}

	roots := loadPool(t, filepath.Join(dir, "rootCA.crt"))
	_, err = LoadCA(filepath.Join(dir, "rootCA.crt"), filepath.Join(dir, "rootCA.key"))
	require.NoError(t, err)

	for _, stem := range []string{"server", "peer"} {
		leaf := loadLeaf(t, dir, stem)
		assert.Equal(t, PeerCommonName, leaf.Subject.CommonName)
		assert.Equal(t, []string{"localhost", "store.example.com"}, leaf.DNSNames)
		var ips []string
		for _, ip := range leaf.IPAddresses {
			ips = append(ips, ip.String())
		}
		assert.Equal(t, []string{"127.0.0.1", "::1", "10.1.2.3"}, ips)
		for _, host := range []string{"localhost", "127.0.0.1", "::1", "store.example.com", "10.1.2.3"} {
			_, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: host, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
			assert.NoError(t, err, "%s as server for %s", stem, host)
		}
		_, err := leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
		assert.NoError(t, err, "%s as client", stem)
	}
	for _, u := range []string{"myuser", "reader"} {
		leaf := loadLeaf(t, dir, u)
		assert.Equal(t, u, leaf.Subject.CommonName)
		_, err := leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
		assert.NoError(t, err)
	}
}

func TestWriteBundleRefusesToOverwrite(t *testing.T) {
	dir := t.TempDir()
	_, err := WriteBundle(dir, BundleOptions{Users: []string{"myuser"}})
	require.NoError(t, err)
	before, err := os.ReadFile(filepath.Join(dir, "rootCA.crt"))
	require.NoError(t, err)

	// Only the user file exists: still refused, and nothing is written.
	other := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(other, "newuser.key"), []byte("mine"), 0o600))
	_, err = WriteBundle(other, BundleOptions{Users: []string{"newuser"}})
	require.ErrorContains(t, err, "refusing to overwrite")
	entries, err := os.ReadDir(other)
	require.NoError(t, err)
	assert.Len(t, entries, 1)

	_, err = WriteBundle(dir, BundleOptions{Users: []string{"myuser"}})
	require.ErrorContains(t, err, "refusing to overwrite")
	after, err := os.ReadFile(filepath.Join(dir, "rootCA.crt"))
	require.NoError(t, err)
	assert.Equal(t, before, after)

	// Force replaces, and fixes the mode of a key that was too open.
	require.NoError(t, os.Chmod(filepath.Join(dir, "myuser.key"), 0o644))
	_, err = WriteBundle(dir, BundleOptions{Users: []string{"myuser"}, Force: true})
	require.NoError(t, err)
	after, err = os.ReadFile(filepath.Join(dir, "rootCA.crt"))
	require.NoError(t, err)
	assert.NotEqual(t, before, after)
	st, err := os.Stat(filepath.Join(dir, "myuser.key"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
}

func TestWriteBundleWithExistingCA(t *testing.T) {
	caDir := t.TempDir()
	_, err := WriteBundle(caDir, BundleOptions{})
	require.NoError(t, err)
	caCert, caKey := filepath.Join(caDir, "rootCA.crt"), filepath.Join(caDir, "rootCA.key")

	t.Run("other directory gets the CA certificate but not its key", func(t *testing.T) {
		dir := t.TempDir()
		files, err := WriteBundle(dir, BundleOptions{CACertFile: caCert, CAKeyFile: caKey, Users: []string{"newuser"}})
		require.NoError(t, err)
		assert.Equal(t, filepath.Join(dir, "rootCA.crt"), files[0])
		assert.NoFileExists(t, filepath.Join(dir, "rootCA.key"))
		roots := loadPool(t, caCert)
		_, err = loadLeaf(t, dir, "newuser").Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
		assert.NoError(t, err)
	})
	t.Run("same directory keeps rootCA.crt", func(t *testing.T) {
		dir := t.TempDir()
		for _, f := range []string{"rootCA.crt", "rootCA.key"} {
			data, err := os.ReadFile(filepath.Join(caDir, f))
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(filepath.Join(dir, f), data, 0o600))
		}
		files, err := WriteBundle(dir, BundleOptions{CACertFile: filepath.Join(dir, "rootCA.crt"), CAKeyFile: filepath.Join(dir, "rootCA.key")})
		require.NoError(t, err)
		assert.Equal(t, filepath.Join(dir, "server.crt"), files[0])
	})
	t.Run("openssl CA of the old documentation", func(t *testing.T) {
		o := filepath.Join("..", "mtls", "testdata", "openssl")
		dir := t.TempDir()
		_, err := WriteBundle(dir, BundleOptions{CACertFile: filepath.Join(o, "rootCA.crt"), CAKeyFile: filepath.Join(o, "rootCA.key"), Users: []string{"myuser"}})
		require.NoError(t, err)
		_, err = loadLeaf(t, dir, "server").Verify(x509.VerifyOptions{Roots: loadPool(t, filepath.Join(o, "rootCA.crt")), DNSName: "localhost"})
		assert.NoError(t, err)
	})
}

func TestWriteBundleRejectsBadOptions(t *testing.T) {
	tests := map[string]BundleOptions{
		"CA cert without key":        {CACertFile: "rootCA.crt"},
		"user named like the server": {Users: []string{"server"}},
		"user with a slash":          {Users: []string{"../escape"}},
		"user starting with a dot":   {Users: []string{".hidden"}},
		"empty user":                 {Users: []string{""}},
		"user given twice":           {Users: []string{"a", "a"}},
		"user with a newline":        {Users: []string{"a\nb"}},
		"missing CA files":           {CACertFile: "/nonexistent/ca.crt", CAKeyFile: "/nonexistent/ca.key"},
	}
	for name, opts := range tests {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			_, err := WriteBundle(dir, opts)
			require.Error(t, err)
			entries, err := os.ReadDir(dir)
			require.NoError(t, err)
			assert.Empty(t, entries, "nothing written")
		})
	}
}

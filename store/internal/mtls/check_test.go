package mtls

import (
	"crypto/tls"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ephemeral-store/ephemeral-store/store/internal/filewatch/filewatchtest"
	"github.com/ephemeral-store/ephemeral-store/store/internal/pki"
)

// cnMustBe is a WithCertificateCheck function refusing any other CN.
func cnMustBe(want string) func(*tls.Certificate) error {
	return func(c *tls.Certificate) error {
		if cn := c.Leaf.Subject.CommonName; cn != want {
			return fmt.Errorf("CN %q is not %q", cn, want)
		}
		return nil
	}
}

func TestCertificateCheckRefusesAtConstructionUnwrapped(t *testing.T) {
	ca, err := pki.NewCA("ca", time.Hour)
	require.NoError(t, err)
	dir := t.TempDir()
	cert, key := issueServer(t, ca, "wrong")
	filewatchtest.NewAtomicDir(t, dir, map[string][]byte{"tls.crt": cert, "tls.key": key})

	_, err = NewKeyPairReloader(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"), polling, nil,
		WithCertificateCheck(cnMustBe("right")))
	require.Error(t, err)
	assert.Equal(t, `CN "wrong" is not "right"`, err.Error(), "the check's own message, not wrapped")

	// A pair that does not load is still reported as before, and the check
	// never sees it.
	_, err = NewKeyPairReloader(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "nope.key"), polling, nil,
		WithCertificateCheck(func(*tls.Certificate) error { return errors.New("must not be called") }))
	require.ErrorContains(t, err, "load key pair")
	assert.NotContains(t, err.Error(), "must not be called")
}

// A rotated certificate the check refuses is logged and not used; the
// previous one stays until an acceptable one arrives.
func TestCertificateCheckRefusesARotationAndKeepsThePrevious(t *testing.T) {
	ca, err := pki.NewCA("ca", time.Hour)
	require.NoError(t, err)
	dir := t.TempDir()
	certA, keyA := issueServer(t, ca, "right")
	a := filewatchtest.NewAtomicDir(t, dir, map[string][]byte{"tls.crt": certA, "tls.key": keyA})

	log, logs := newLog()
	k, err := NewKeyPairReloader(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"), polling, log,
		WithCertificateCheck(cnMustBe("right")))
	require.NoError(t, err)
	defer k.Close()

	certB, keyB := issueServer(t, ca, "wrong")
	a.Update(map[string][]byte{"tls.crt": certB, "tls.key": keyB})
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Equal(c, 1, logs.Count(`CN \"wrong\" is not \"right\"`))
	}, waitFor, tick, "log:\n%s", logs)
	assert.Equal(t, 1, logs.Count("keeping the previous one"), "log:\n%s", logs)
	assert.Equal(t, leafSerial(t, certA), serial(k))
	assert.Zero(t, k.Reloads())

	certC, keyC := issueServer(t, ca, "right")
	a.Update(map[string][]byte{"tls.crt": certC, "tls.key": keyC})
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Equal(c, leafSerial(t, certC).String(), serial(k).String())
	}, waitFor, tick, "log:\n%s", logs)
	assert.EqualValues(t, 1, k.Reloads())
}

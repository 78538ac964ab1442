package client

import (
	"crypto/tls"
	"fmt"
	"os"
	"sync"
	"time"
)

// keyPairReloader serves a client certificate read from files, reading them
// again when their size or modification time changes. Connections are
// long-lived, so this runs only on handshakes and its stat calls are cheap.
type keyPairReloader struct {
	certFile, keyFile string

	mu    sync.Mutex
	stamp [2]fileStamp
	cert  *tls.Certificate
}

type fileStamp struct {
	size int64
	mod  time.Time
}

func newKeyPairReloader(certFile, keyFile string) (*keyPairReloader, error) {
	r := &keyPairReloader{certFile: certFile, keyFile: keyFile}
	if err := r.reload(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *keyPairReloader) stamps() ([2]fileStamp, error) {
	var s [2]fileStamp
	for i, name := range []string{r.certFile, r.keyFile} {
		fi, err := os.Stat(name)
		if err != nil {
			return s, err
		}
		s[i] = fileStamp{size: fi.Size(), mod: fi.ModTime()}
	}
	return s, nil
}

// reload reads both files; the caller holds mu or owns r.
func (r *keyPairReloader) reload() error {
	st, err := r.stamps()
	if err != nil {
		return fmt.Errorf("client: reading the client certificate: %w", err)
	}
	kp, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("client: certificate %s, key %s: %w", r.certFile, r.keyFile, err)
	}
	r.cert, r.stamp = &kp, st
	return nil
}

// getClientCertificate is tls.Config.GetClientCertificate. When the files
// changed but cannot be loaded (a rotation half written), the previous
// certificate is kept.
func (r *keyPairReloader) getClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if st, err := r.stamps(); err == nil && st != r.stamp {
		_ = r.reload()
	}
	return r.cert, nil
}

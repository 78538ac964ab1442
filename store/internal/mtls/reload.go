package mtls

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"

	"github.com/ephemeral-store/ephemeral-store/store/internal/filewatch"
)

// CertSource hands out the current certificate for TLS handshakes, as a
// server (GetCertificate) or as a client (GetClientCertificate). It must be
// safe for concurrent use; the certificate it returns must not be modified.
type CertSource interface {
	GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error)
	GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error)
}

// PoolSource hands out the current CA pool. It must be safe for concurrent
// use and never return nil; the pool it returns must not be modified.
type PoolSource interface {
	Pool() *x509.CertPool
}

// Option adjusts a reloader.
type Option func(*options)

type options struct {
	onReload  func()
	checkCert func(*tls.Certificate) error
}

func newOptions(opts []Option) options {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// WithOnReload calls f after each successful reload (not after the initial
// load), from the reloader's goroutine. f must not block.
func WithOnReload(f func()) Option { return func(o *options) { o.onReload = f } }

// WithCertificateCheck makes a KeyPairReloader refuse a certificate that f
// returns an error for (f sees it parsed, Leaf set): at construction
// NewKeyPairReloader fails with f's error as it is; on a reload the refusal
// is logged as a warning and the previous certificate stays in use, as for
// a pair that does not load. PoolReloader ignores it.
func WithCertificateCheck(f func(*tls.Certificate) error) Option {
	return func(o *options) { o.checkCert = f }
}

// refusedError marks an error of a WithCertificateCheck function, which the
// constructor returns without wrapping: it describes the files itself.
type refusedError struct{ err error }

func (e *refusedError) Error() string { return e.err.Error() }
func (e *refusedError) Unwrap() error { return e.err }

// files is the reloader of both kinds: the content of a list of files,
// built into a T.
type files[T any] = filewatch.Reloader[[][]byte, T]

// watchFiles loads the files and watches their directories.
func watchFiles[T any](what string, paths []string, build func([][]byte) (*T, error), w filewatch.Config, log *slog.Logger, o options) (*files[T], error) {
	if log != nil {
		log = log.With("files", paths)
	}
	src := filewatch.Source[[][]byte, T]{
		What:  what,
		Read:  func() ([][]byte, string, error) { return filewatch.ReadFiles(paths...) },
		Build: build,
		Log:   log,
	}
	if o.onReload != nil {
		src.OnReload = func(*T) { o.onReload() }
	}
	r, err := filewatch.Load(src)
	if err != nil {
		return nil, err
	}
	r.Watch(filewatch.ParentDirs(paths...), w)
	return r, nil
}

// KeyPairReloader is a CertSource backed by a certificate and key file pair,
// reloaded when their content changes (see NewKeyPairReloader), or by
// in-memory PEM that never changes (NewStaticKeyPair).
type KeyPairReloader struct {
	r *files[tls.Certificate]
}

var _ CertSource = (*KeyPairReloader)(nil)

// NewKeyPairReloader loads a PEM certificate (chain) and its private key,
// failing when they are unreadable, invalid or do not match. It then checks
// the files as w says (the zero Config: every filewatch.DefaultInterval and
// shortly after any filesystem event in their directories), and swaps in
// the new pair when the content has changed and is valid. A change that
// does not load (for example a certificate written before its key) is
// logged as a warning on log and the previous pair stays in use. Close
// stops the watching.
//
// Watching directories rather than files is what makes Kubernetes Secret
// volumes work: kubelet swaps a ..data symlink and never writes the files
// that certFile and keyFile name.
func NewKeyPairReloader(certFile, keyFile string, w filewatch.Config, log *slog.Logger, opts ...Option) (*KeyPairReloader, error) {
	o := newOptions(opts)
	build := func(c [][]byte) (*tls.Certificate, error) {
		kp, err := parseKeyPair(c[0], c[1])
		if err != nil {
			return nil, err
		}
		if o.checkCert != nil {
			if err := o.checkCert(kp); err != nil {
				return nil, &refusedError{err}
			}
		}
		return kp, nil
	}
	r, err := watchFiles("certificate", []string{certFile, keyFile}, build, w, log, o)
	if err != nil {
		if refused := (*refusedError)(nil); errors.As(err, &refused) {
			return nil, refused.err
		}
		return nil, fmt.Errorf("load key pair %s, %s: %w", certFile, keyFile, err)
	}
	return &KeyPairReloader{r: r}, nil
}

// NewStaticKeyPair is a KeyPairReloader for PEM in memory (mint mode): it
// never reloads.
func NewStaticKeyPair(certPEM, keyPEM []byte) (*KeyPairReloader, error) {
	c, err := parseKeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("load key pair: %w", err)
	}
	return &KeyPairReloader{r: filewatch.Fixed[[][]byte](c)}, nil
}

func parseKeyPair(certPEM, keyPEM []byte) (*tls.Certificate, error) {
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	if c.Leaf == nil {
		if c.Leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return nil, err
		}
	}
	return &c, nil
}

// Certificate returns the current certificate; its Leaf is set.
func (k *KeyPairReloader) Certificate() *tls.Certificate { return k.r.Value() }

// GetCertificate implements CertSource for tls.Config.GetCertificate.
func (k *KeyPairReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return k.r.Value(), nil
}

// GetClientCertificate implements CertSource for
// tls.Config.GetClientCertificate: the current certificate, whatever the
// server asks for.
func (k *KeyPairReloader) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return k.r.Value(), nil
}

// Reloads counts the successful reloads since construction.
func (k *KeyPairReloader) Reloads() uint64 { return k.r.Reloads() }

// Close stops watching the files; the last certificate stays available.
func (k *KeyPairReloader) Close() error {
	k.r.Close()
	return nil
}

// PoolReloader is a PoolSource backed by a PEM CA bundle file, reloaded
// when its content changes (see NewPoolReloader), or by in-memory PEM that
// never changes (NewStaticPool).
type PoolReloader struct {
	r *files[x509.CertPool]
}

var _ PoolSource = (*PoolReloader)(nil)

// NewPoolReloader loads a PEM bundle of one or more CA certificates,
// failing when the file is unreadable, holds no certificate or holds one
// that does not parse. It then reloads on content change exactly as
// NewKeyPairReloader does.
func NewPoolReloader(caFile string, w filewatch.Config, log *slog.Logger, opts ...Option) (*PoolReloader, error) {
	build := func(c [][]byte) (*x509.CertPool, error) { return ParsePool(c[0]) }
	r, err := watchFiles("CA bundle", []string{caFile}, build, w, log, newOptions(opts))
	if err != nil {
		return nil, fmt.Errorf("load CA bundle %s: %w", caFile, err)
	}
	return &PoolReloader{r: r}, nil
}

// NewStaticPool is a PoolReloader for PEM in memory: it never reloads.
func NewStaticPool(caPEM []byte) (*PoolReloader, error) {
	pool, err := ParsePool(caPEM)
	if err != nil {
		return nil, fmt.Errorf("load CA bundle: %w", err)
	}
	return &PoolReloader{r: filewatch.Fixed[[][]byte](pool)}, nil
}

// ParsePool parses every CERTIFICATE block of a PEM bundle into a pool.
// Unlike x509.CertPool.AppendCertsFromPEM it fails on a block that does not
// parse, and when there is no certificate at all.
func ParsePool(data []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	n := 0
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", n+1, err)
		}
		pool.AddCert(c)
		n++
	}
	if n == 0 {
		return nil, errors.New("no CERTIFICATE found in PEM data")
	}
	return pool, nil
}

// Pool implements PoolSource.
func (p *PoolReloader) Pool() *x509.CertPool { return p.r.Value() }

// Reloads counts the successful reloads since construction.
func (p *PoolReloader) Reloads() uint64 { return p.r.Reloads() }

// Close stops watching the file; the last pool stays available.
func (p *PoolReloader) Close() error {
	p.r.Close()
	return nil
}

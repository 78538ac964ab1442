package mtls

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ephemeral-store/ephemeral-store/store/internal/filewatch"
)

// DefaultReloadInterval is the poll period of a reloader given a zero
// interval.
const DefaultReloadInterval = 5 * time.Second

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
	events, polling bool
	onReload        func()
	checkCert       func(*tls.Certificate) error
}

func newOptions(opts []Option) options {
	o := options{events: true, polling: true}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// WithoutEvents turns off filesystem events: changes are seen by polling
// only.
func WithoutEvents() Option { return func(o *options) { o.events = false } }

// WithoutPolling turns off polling: changes are seen by filesystem events
// only. Meant for tests; production wants both.
func WithoutPolling() Option { return func(o *options) { o.polling = false } }

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

// reloader holds a value parsed from files and replaces it when the
// files' content changes and parses; a failed parse keeps the old value.
type reloader[T any] struct {
	what     string // for logs: "certificate", "CA bundle"
	files    []string
	parse    func(contents [][]byte) (*T, error)
	log      *slog.Logger
	onReload func()

	cur     atomic.Pointer[T]
	reloads atomic.Uint64

	mu      sync.Mutex // serializes check
	hash    string     // content hash of cur
	failure string     // hash or error of the last failed attempt, logged once
	watcher *filewatch.Watcher
}

// start loads the files once (an error here is returned) and then watches
// them. Static material never calls it.
func (r *reloader[T]) start(interval time.Duration, log *slog.Logger, o options) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r.log, r.onReload = log, o.onReload
	contents, hash, err := r.read()
	if err != nil {
		return err
	}
	v, err := r.parse(contents)
	if err != nil {
		return err
	}
	r.cur.Store(v)
	r.hash = hash

	if interval == 0 {
		interval = DefaultReloadInterval
	}
	if !o.polling {
		interval = 0
	}
	var dirs []string
	for _, f := range r.files {
		d := filepath.Dir(f)
		if abs, err := filepath.Abs(d); err == nil {
			d = abs
		}
		dirs = append(dirs, d)
	}
	r.watcher = filewatch.Start(filewatch.Config{
		Dirs: dirs, Interval: interval, Events: o.events, Logger: log,
	}, r.check)
	return nil
}

func (r *reloader[T]) read() ([][]byte, string, error) {
	h := sha256.New()
	contents := make([][]byte, len(r.files))
	for i, f := range r.files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, "", fmt.Errorf("read %s: %w", f, err)
		}
		contents[i] = data
		_ = binary.Write(h, binary.BigEndian, uint64(len(data)))
		h.Write(data)
	}
	return contents, hex.EncodeToString(h.Sum(nil)), nil
}

// check reloads when the content differs from what is loaded. A failure is
// logged once per distinct content (or error) and keeps the old value.
func (r *reloader[T]) check() {
	r.mu.Lock()
	defer r.mu.Unlock()
	contents, hash, err := r.read()
	if err != nil {
		r.failed(err.Error(), err)
		return
	}
	if hash == r.hash {
		r.failure = ""
		return
	}
	v, err := r.parse(contents)
	if err != nil {
		r.failed(hash, err)
		return
	}
	r.cur.Store(v)
	r.hash, r.failure = hash, ""
	n := r.reloads.Add(1)
	r.log.Info("reloaded "+r.what, "files", r.files, "reloads", n)
	if r.onReload != nil {
		r.onReload()
	}
}

func (r *reloader[T]) failed(key string, err error) {
	if r.failure == key {
		return
	}
	r.failure = key
	r.log.Warn("reloading "+r.what+" failed; keeping the previous one", "files", r.files, "err", err)
}

func (r *reloader[T]) close() {
	if r.watcher != nil {
		r.watcher.Close()
	}
}

// KeyPairReloader is a CertSource backed by a certificate and key file pair,
// reloaded when their content changes (see NewKeyPairReloader), or by
// in-memory PEM that never changes (NewStaticKeyPair).
type KeyPairReloader struct {
	r reloader[tls.Certificate]
}

var _ CertSource = (*KeyPairReloader)(nil)

// NewKeyPairReloader loads a PEM certificate (chain) and its private key,
// failing when they are unreadable, invalid or do not match. It then checks
// the files every interval (zero: DefaultReloadInterval) and shortly after
// any filesystem event in their directories, and swaps in the new pair when
// the content has changed and is valid. A change that does not load (for
// example a certificate written before its key) is logged as a warning on
// log and the previous pair stays in use. Close stops the watching.
//
// Watching directories rather than files is what makes Kubernetes Secret
// volumes work: kubelet swaps a ..data symlink and never writes the files
// that certFile and keyFile name.
func NewKeyPairReloader(certFile, keyFile string, interval time.Duration, log *slog.Logger, opts ...Option) (*KeyPairReloader, error) {
	o := newOptions(opts)
	k := &KeyPairReloader{r: reloader[tls.Certificate]{
		what:  "certificate",
		files: []string{certFile, keyFile},
		parse: func(c [][]byte) (*tls.Certificate, error) {
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
		},
	}}
	if err := k.r.start(interval, log, o); err != nil {
		if refused := (*refusedError)(nil); errors.As(err, &refused) {
			return nil, refused.err
		}
		return nil, fmt.Errorf("load key pair %s, %s: %w", certFile, keyFile, err)
	}
	return k, nil
}

// NewStaticKeyPair is a KeyPairReloader for PEM in memory (mint mode): it
// never reloads.
func NewStaticKeyPair(certPEM, keyPEM []byte) (*KeyPairReloader, error) {
	c, err := parseKeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("load key pair: %w", err)
	}
	k := &KeyPairReloader{}
	k.r.cur.Store(c)
	return k, nil
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
func (k *KeyPairReloader) Certificate() *tls.Certificate { return k.r.cur.Load() }

// GetCertificate implements CertSource for tls.Config.GetCertificate.
func (k *KeyPairReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return k.r.cur.Load(), nil
}

// GetClientCertificate implements CertSource for
// tls.Config.GetClientCertificate: the current certificate, whatever the
// server asks for.
func (k *KeyPairReloader) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return k.r.cur.Load(), nil
}

// Reloads counts the successful reloads since construction.
func (k *KeyPairReloader) Reloads() uint64 { return k.r.reloads.Load() }

// Close stops watching the files; the last certificate stays available.
func (k *KeyPairReloader) Close() error {
	k.r.close()
	return nil
}

// PoolReloader is a PoolSource backed by a PEM CA bundle file, reloaded
// when its content changes (see NewPoolReloader), or by in-memory PEM that
// never changes (NewStaticPool).
type PoolReloader struct {
	r reloader[x509.CertPool]
}

var _ PoolSource = (*PoolReloader)(nil)

// NewPoolReloader loads a PEM bundle of one or more CA certificates,
// failing when the file is unreadable, holds no certificate or holds one
// that does not parse. It then reloads on content change exactly as
// NewKeyPairReloader does.
func NewPoolReloader(caFile string, interval time.Duration, log *slog.Logger, opts ...Option) (*PoolReloader, error) {
	p := &PoolReloader{r: reloader[x509.CertPool]{
		what:  "CA bundle",
		files: []string{caFile},
		parse: func(c [][]byte) (*x509.CertPool, error) { return ParsePool(c[0]) },
	}}
	if err := p.r.start(interval, log, newOptions(opts)); err != nil {
		return nil, fmt.Errorf("load CA bundle %s: %w", caFile, err)
	}
	return p, nil
}

// NewStaticPool is a PoolReloader for PEM in memory: it never reloads.
func NewStaticPool(caPEM []byte) (*PoolReloader, error) {
	pool, err := ParsePool(caPEM)
	if err != nil {
		return nil, fmt.Errorf("load CA bundle: %w", err)
	}
	p := &PoolReloader{}
	p.r.cur.Store(pool)
	return p, nil
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
func (p *PoolReloader) Pool() *x509.CertPool { return p.r.cur.Load() }

// Reloads counts the successful reloads since construction.
func (p *PoolReloader) Reloads() uint64 { return p.r.reloads.Load() }

// Close stops watching the file; the last pool stays available.
func (p *PoolReloader) Close() error {
	p.r.close()
	return nil
}

package mtls

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/ephemeral-store/ephemeral-store/store/internal/filewatch"
	"github.com/ephemeral-store/ephemeral-store/store/internal/pki"
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
	grace     time.Duration
	now       func() time.Time // the clock of the grace period; tests set it
}

func newOptions(opts []Option) options {
	o := options{now: time.Now}
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

// WithGrace makes a PoolReloader keep trusting, for d after a reload, the
// CA certificates that the reload removed from the bundle: during a CA
// rotation, certificates of the old CA (peers that have not re-minted yet,
// users not yet given new certificates) keep working with this node while
// the new CA's already do. The old CAs live only in memory: a restarted
// node trusts what its files say. Zero or less: no grace.
// NewMintedKeyPair keeps its previous certificate as long (see there);
// NewKeyPairReloader ignores it.
func WithGrace(d time.Duration) Option { return func(o *options) { o.grace = d } }

// refusedError marks an error of a WithCertificateCheck function, which the
// constructor returns without wrapping: it describes the files itself.
type refusedError struct{ err error }

func (e *refusedError) Error() string { return e.err.Error() }
func (e *refusedError) Unwrap() error { return e.err }

// checkedKeyPair parses a key pair and has WithCertificateCheck's
// function, if any, refuse it.
func (o options) checkedKeyPair(certPEM, keyPEM []byte) (*tls.Certificate, error) {
	kp, err := parseKeyPair(certPEM, keyPEM)
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

// loadError is a key pair constructor's error: a WithCertificateCheck
// refusal as it is, anything else prefixed with what was loaded.
func loadError(err error, format string, args ...any) error {
	if refused := (*refusedError)(nil); errors.As(err, &refused) {
		return refused.err
	}
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), err)
}

// files is the reloader of every kind: the content of a list of files,
// built into a T.
type files[T any] = filewatch.Reloader[[][]byte, T]

// watchFiles loads the files and watches their directories. src says what
// is built (What, Build, and optionally Describe and OnReload); Read and
// Log are filled in here, and o's onReload runs after src's.
func watchFiles[T any](src filewatch.Source[[][]byte, T], paths []string, w filewatch.Config, log *slog.Logger, o options) (*files[T], error) {
	if log != nil {
		log = log.With("files", paths)
	}
	src.Read = func() ([][]byte, string, error) { return filewatch.ReadFiles(paths...) }
	src.Log = log
	if hook, user := src.OnReload, o.onReload; user != nil {
		src.OnReload = func(v *T) {
			if hook != nil {
				hook(v)
			}
			user()
		}
	}
	r, err := filewatch.Load(src)
	if err != nil {
		return nil, err
	}
	r.Watch(filewatch.ParentDirs(paths...), w)
	return r, nil
}

// KeyPairReloader is a CertSource backed by a certificate and key file pair,
// reloaded when their content changes (see NewKeyPairReloader), by a CA
// it mints from, minting again when the CA files change
// (NewMintedKeyPair), or by in-memory PEM that never changes
// (NewStaticKeyPair).
type KeyPairReloader struct {
	r *files[tls.Certificate]
	// prev is the certificate a minted pair replaced, for its grace
	// period (NewMintedKeyPair with WithGrace); nil otherwise.
	prev *previousCert
}

// previousCert keeps, for a grace period after a minted certificate was
// issued again from a new CA, the one it replaced: presented as a client
// to a peer that asks only for the old CA (a pod whose files still hold
// it), so that connections from a pod that saw the rotation to one that
// has not yet keep working.
type previousCert struct {
	grace time.Duration
	now   func() time.Time

	mu    sync.Mutex
	last  *tls.Certificate // the current certificate, as the hooks saw it
	cert  *tls.Certificate // the one before, until until
	until time.Time
}

// first notes the certificate of the initial load (the watching may start
// before the constructor returns).
func (p *previousCert) first(v *tls.Certificate) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.last == nil {
		p.last = v
	}
}

// record notes v as the current certificate; the one it replaces becomes
// the previous one.
func (p *previousCert) record(v *tls.Certificate) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.last != nil && p.last != v {
		p.cert, p.until = p.last, p.now().Add(p.grace)
	}
	p.last = v
}

// forClient is the previous certificate when the server that sent cri
// accepts it but not cur, and its grace period runs; nil otherwise.
func (p *previousCert) forClient(cri *tls.CertificateRequestInfo, cur *tls.Certificate) *tls.Certificate {
	if p == nil || cri == nil || len(cri.AcceptableCAs) == 0 {
		return nil
	}
	p.mu.Lock()
	prev, until := p.cert, p.until
	p.mu.Unlock()
	if prev == nil || !p.now().Before(until) || cri.SupportsCertificate(cur) == nil || cri.SupportsCertificate(prev) != nil {
		return nil
	}
	return prev
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
	build := func(c [][]byte) (*tls.Certificate, error) { return o.checkedKeyPair(c[0], c[1]) }
	r, err := watchFiles(filewatch.Source[[][]byte, tls.Certificate]{What: "certificate", Build: build}, []string{certFile, keyFile}, w, log, o)
	if err != nil {
		return nil, loadError(err, "load key pair %s, %s", certFile, keyFile)
	}
	return &KeyPairReloader{r: r}, nil
}

// NewStaticKeyPair is a KeyPairReloader for PEM in memory: it never
// reloads.
func NewStaticKeyPair(certPEM, keyPEM []byte) (*KeyPairReloader, error) {
	c, err := parseKeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("load key pair: %w", err)
	}
	return &KeyPairReloader{r: filewatch.Fixed[[][]byte](c)}, nil
}

// NewMintedKeyPair is a KeyPairReloader whose certificate is issued in
// memory (mint mode) by issue from the CA in caFile (its first
// certificate) and caKeyFile, and issued again from the new CA whenever
// those files change. So a node whose CA Secret is rotated serves and
// presents a certificate of the new CA, which nodes started after the
// rotation, trusting only the new CA, accept. The files are watched as
// NewKeyPairReloader's; a CA that does not load (a certificate written
// before its key) or a certificate that WithCertificateCheck refuses keeps
// the previous certificate, with a warning.
//
// With WithGrace, the certificate it replaced is kept for the grace period
// and presented as a client certificate to a server whose acceptable CAs
// name the old CA and not the new one (a peer whose files still hold the
// old CA): this tells the two apart only when the CAs' subjects differ.
func NewMintedKeyPair(caFile, caKeyFile string, issue func(*pki.CA) (certPEM, keyPEM []byte, err error), w filewatch.Config, log *slog.Logger, opts ...Option) (*KeyPairReloader, error) {
	o := newOptions(opts)
	k := &KeyPairReloader{}
	var onReload func(*tls.Certificate)
	if o.grace > 0 {
		k.prev = &previousCert{grace: o.grace, now: o.now}
		onReload = k.prev.record
	}
	build := func(c [][]byte) (*tls.Certificate, error) {
		ca, err := pki.ParseCA(c[0], c[1])
		if err != nil {
			return nil, err
		}
		certPEM, keyPEM, err := issue(ca)
		if err != nil {
			return nil, fmt.Errorf("mint a certificate from CA %q: %w", ca.Cert.Subject.CommonName, err)
		}
		kp, err := o.checkedKeyPair(certPEM, keyPEM)
		if err == nil && k.prev != nil {
			k.prev.first(kp)
		}
		return kp, err
	}
	r, err := watchFiles(filewatch.Source[[][]byte, tls.Certificate]{
		What: "minted certificate", Build: build, OnReload: onReload,
		Describe: func(c *tls.Certificate) []any {
			return []any{"issuer", c.Leaf.Issuer.String(), "serial", fmt.Sprintf("%x", c.Leaf.SerialNumber), "not_after", c.Leaf.NotAfter.UTC().Format(time.RFC3339)}
		},
	}, []string{caFile, caKeyFile}, w, log, o)
	if err != nil {
		return nil, loadError(err, "mint from CA %s (key %s)", caFile, caKeyFile)
	}
	k.r = r
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
func (k *KeyPairReloader) Certificate() *tls.Certificate { return k.r.Value() }

// GetCertificate implements CertSource for tls.Config.GetCertificate.
func (k *KeyPairReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return k.r.Value(), nil
}

// GetClientCertificate implements CertSource for
// tls.Config.GetClientCertificate: the current certificate, whatever the
// server asks for; only a minted pair in its grace period presents the
// certificate it replaced to a server that accepts only that one.
func (k *KeyPairReloader) GetClientCertificate(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
	cur := k.r.Value()
	if prev := k.prev.forClient(cri, cur); prev != nil {
		return prev, nil
	}
	return cur, nil
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
	r *files[caBundle]
	// grace, now and log: WithGrace; zero grace keeps nothing retired.
	grace time.Duration
	now   func() time.Time
	log   *slog.Logger

	mu sync.Mutex
	// seen is the bundle retired was last brought up to date with.
	seen    *caBundle
	retired []retiredCA
	// pool is seen's pool plus the retired CAs, built when either changes.
	pool *x509.CertPool
}

// caBundle is a parsed CA bundle: its certificates and their pool.
type caBundle struct {
	certs []*x509.Certificate
	pool  *x509.CertPool
}

// retiredCA is a CA certificate a reload removed, trusted until until.
type retiredCA struct {
	cert  *x509.Certificate
	until time.Time
}

var _ PoolSource = (*PoolReloader)(nil)

// NewPoolReloader loads a PEM bundle of one or more CA certificates,
// failing when the file is unreadable, holds no certificate or holds one
// that does not parse. It then reloads on content change exactly as
// NewKeyPairReloader does. With WithGrace, the CAs a reload removes stay
// in the pool for the grace period.
func NewPoolReloader(caFile string, w filewatch.Config, log *slog.Logger, opts ...Option) (*PoolReloader, error) {
	o := newOptions(opts)
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &PoolReloader{grace: o.grace, now: o.now, log: log.With("files", []string{caFile})}
	// Every reload passes through observe, from the reloader's goroutine,
	// so that a CA removed by one reload and a second reload soon after is
	// still retired even if no handshake asked for the pool in between.
	r, err := watchFiles(filewatch.Source[[][]byte, caBundle]{
		What: "CA bundle",
		Build: func(c [][]byte) (*caBundle, error) {
			b, err := parseBundle(c[0])
			if err == nil {
				p.first(b)
			}
			return b, err
		},
		Describe: func(b *caBundle) []any { return []any{"cas", subjects(b.certs)} },
		OnReload: p.observe,
	}, []string{caFile}, w, log, o)
	if err != nil {
		return nil, fmt.Errorf("load CA bundle %s: %w", caFile, err)
	}
	p.r = r
	return p, nil
}

// NewStaticPool is a PoolReloader for PEM in memory: it never reloads.
func NewStaticPool(caPEM []byte) (*PoolReloader, error) {
	b, err := parseBundle(caPEM)
	if err != nil {
		return nil, fmt.Errorf("load CA bundle: %w", err)
	}
	return &PoolReloader{r: filewatch.Fixed[[][]byte](b)}, nil
}

func parseBundle(data []byte) (*caBundle, error) {
	certs, err := parseCerts(data)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return &caBundle{certs: certs, pool: pool}, nil
}

// first records the bundle of the initial load, which the first reload's
// observe compares with (the watching may start before the constructor
// returns).
func (p *PoolReloader) first(b *caBundle) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.seen == nil {
		p.seen, p.pool = b, b.pool
	}
}

// observe brings the retired CAs up to date with bundle b and drops those
// whose grace has ended; it rebuilds the pool when anything changed.
func (p *PoolReloader) observe(b *caBundle) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.observeLocked(b)
}

// observeLocked is observe with p.mu held. b must be the current bundle as
// read with p.mu held (or handed to OnReload, which runs before any later
// reload): a bundle read earlier may be older than seen, and comparing with
// it would retire the new CA.
func (p *PoolReloader) observeLocked(b *caBundle) {
	now := p.now()
	changed := false
	if p.seen != b {
		if p.seen != nil {
			for _, c := range p.seen.certs {
				if !containsCert(b.certs, c) && !p.isRetired(c) {
					p.retired = append(p.retired, retiredCA{cert: c, until: now.Add(p.grace)})
					p.log.Info("a CA certificate left the bundle; it stays trusted for the CA rotation grace period",
						"ca", c.Subject.String(), "grace", p.grace.String(), "until", now.Add(p.grace).UTC().Format(time.RFC3339))
				}
			}
		}
		// A CA that came back is trusted by the file again.
		p.retired = slices.DeleteFunc(p.retired, func(r retiredCA) bool { return containsCert(b.certs, r.cert) })
		p.seen, changed = b, true
	}
	p.retired = slices.DeleteFunc(p.retired, func(r retiredCA) bool {
		if now.Before(r.until) {
			return false
		}
		p.log.Info("the CA rotation grace period ended; the old CA certificate is no longer trusted", "ca", r.cert.Subject.String())
		changed = true
		return true
	})
	if !changed {
		return
	}
	if len(p.retired) == 0 {
		p.pool = b.pool
		return
	}
	p.pool = b.pool.Clone()
	for _, r := range p.retired {
		p.pool.AddCert(r.cert)
	}
}

func (p *PoolReloader) isRetired(c *x509.Certificate) bool {
	return slices.ContainsFunc(p.retired, func(r retiredCA) bool { return r.cert.Equal(c) })
}

func subjects(certs []*x509.Certificate) []string {
	out := make([]string, len(certs))
	for i, c := range certs {
		out[i] = c.Subject.String()
	}
	return out
}

func containsCert(certs []*x509.Certificate, c *x509.Certificate) bool {
	return slices.ContainsFunc(certs, c.Equal)
}

// ParsePool parses every CERTIFICATE block of a PEM bundle into a pool.
// Unlike x509.CertPool.AppendCertsFromPEM it fails on a block that does not
// parse, and when there is no certificate at all.
func ParsePool(data []byte) (*x509.CertPool, error) {
	b, err := parseBundle(data)
	if err != nil {
		return nil, err
	}
	return b.pool, nil
}

// parseCerts is ParsePool's parsing: every CERTIFICATE block, in order.
func parseCerts(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
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
			return nil, fmt.Errorf("certificate %d: %w", len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no CERTIFICATE found in PEM data")
	}
	return certs, nil
}

// Pool implements PoolSource: the current bundle's CAs, and during their
// grace period those a reload removed.
func (p *PoolReloader) Pool() *x509.CertPool {
	if p.grace <= 0 {
		return p.r.Value().pool
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.observeLocked(p.r.Value())
	return p.pool
}

// Certificates are the CA certificates of the bundle as last loaded from
// the file, without those kept for a grace period after they left it.
// The slice must not be modified.
func (p *PoolReloader) Certificates() []*x509.Certificate { return p.r.Value().certs }

// Reloads counts the successful reloads since construction.
func (p *PoolReloader) Reloads() uint64 { return p.r.Reloads() }

// Close stops watching the file; the last pool stays available.
func (p *PoolReloader) Close() error {
	p.r.Close()
	return nil
}

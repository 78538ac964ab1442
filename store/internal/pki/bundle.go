package pki

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Names of the files WriteBundle writes in its directory, besides
// <user>.crt and <user>.key for every user.
const (
	CACertFile     = "rootCA.crt"
	CAKeyFile      = "rootCA.key"
	ServerCertFile = "server.crt"
	ServerKeyFile  = "server.key"
	PeerCertFile   = "peer.crt"
	PeerKeyFile    = "peer.key"
)

// DefaultCAValidity is the lifetime of a CA created by WriteBundle.
const DefaultCAValidity = 3650 * 24 * time.Hour

// BundleOptions says what WriteBundle writes. Zero values give the defaults
// stated on each field.
type BundleOptions struct {
	// CACertFile and CAKeyFile name an existing CA to sign with (both or
	// neither). Without them a new CA is created and written to rootCA.crt
	// and rootCA.key.
	CACertFile, CAKeyFile string
	// CACommonName names a new CA; default DefaultCACommonName.
	CACommonName string
	// DNSNames are added to the server and peer certificates besides
	// localhost, 127.0.0.1 and ::1. An entry that is an IP address becomes an
	// IP SAN.
	DNSNames []string
	// IPAddresses are extra IP SANs for the server and peer certificates.
	IPAddresses []net.IP
	// PeerCommonName is the CN of the server and peer certificates; default
	// PeerCommonName.
	PeerCommonName string
	// Users get a client certificate each, <user>.crt and <user>.key, with
	// the user name as CN.
	Users []string
	// CAValidity (default DefaultCAValidity) and Validity (default
	// DefaultLeafValidity) are the lifetimes of a new CA and of the issued
	// certificates.
	CAValidity, Validity time.Duration
	// Force overwrites existing files; without it WriteBundle writes nothing
	// when any file it would write exists.
	Force bool
}

// WriteBundle writes a CA, a server certificate, a peer certificate and one
// client certificate per user into dir (created 0700 when missing), and
// returns the paths it wrote, in order.
//
// The server and peer certificates carry the same identity (CN
// opts.PeerCommonName, server and client auth, the same SANs) in separate
// files with separate keys, for operators who keep them apart. With an
// existing CA (opts.CACertFile), its certificate is copied to rootCA.crt so
// that dir is complete for --tls-ca, but its key is never copied. Private
// keys are written 0600, certificates 0644.
//
// Unless opts.Force, WriteBundle checks first and refuses (writing nothing)
// when any destination exists.
func WriteBundle(dir string, opts BundleOptions) ([]string, error) {
	if dir == "" {
		return nil, errors.New("write bundle: empty directory")
	}
	if (opts.CACertFile == "") != (opts.CAKeyFile == "") {
		return nil, fmt.Errorf("write bundle: CA certificate %q and key %q go together", opts.CACertFile, opts.CAKeyFile)
	}
	if err := validateUsers(opts.Users); err != nil {
		return nil, fmt.Errorf("write bundle: %w", err)
	}
	peerCN := opts.PeerCommonName
	if peerCN == "" {
		peerCN = PeerCommonName
	}

	type file struct {
		name string
		data []byte
		mode os.FileMode
	}
	var files []file

	var ca *CA
	var err error
	if opts.CACertFile != "" {
		if ca, err = LoadCA(opts.CACertFile, opts.CAKeyFile); err != nil {
			return nil, fmt.Errorf("write bundle: %w", err)
		}
		// Copy the CA certificate unless it already is dir/rootCA.crt.
		if existing, err := os.ReadFile(filepath.Join(dir, CACertFile)); err != nil || !certsEqual(existing, ca.CertPEM) {
			files = append(files, file{CACertFile, ca.CertPEM, 0o644})
		}
	} else {
		cn := opts.CACommonName
		if cn == "" {
			cn = DefaultCACommonName
		}
		validity := opts.CAValidity
		if validity == 0 {
			validity = DefaultCAValidity
		}
		if ca, err = NewCA(cn, validity); err != nil {
			return nil, fmt.Errorf("write bundle: %w", err)
		}
		keyPEM, err := ca.KeyPEM()
		if err != nil {
			return nil, fmt.Errorf("write bundle: CA key: %w", err)
		}
		files = append(files, file{CACertFile, ca.CertPEM, 0o644}, file{CAKeyFile, keyPEM, 0o600})
	}

	server := IssueRequest{
		CommonName:  peerCN,
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		ServerAuth:  true,
		ClientAuth:  true,
		Validity:    opts.Validity,
	}
	for _, n := range opts.DNSNames {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		if ip := net.ParseIP(n); ip != nil {
			server.IPAddresses = append(server.IPAddresses, ip)
		} else {
			server.DNSNames = append(server.DNSNames, n)
		}
	}
	server.IPAddresses = append(server.IPAddresses, opts.IPAddresses...)
	server.DNSNames = dedupe(server.DNSNames)
	server.IPAddresses = dedupeIPs(server.IPAddresses)

	for _, kp := range []struct{ crt, key string }{{ServerCertFile, ServerKeyFile}, {PeerCertFile, PeerKeyFile}} {
		crt, key, err := ca.Issue(server)
		if err != nil {
			return nil, fmt.Errorf("write bundle: %s: %w", kp.crt, err)
		}
		files = append(files, file{kp.crt, crt, 0o644}, file{kp.key, key, 0o600})
	}
	for _, u := range opts.Users {
		crt, key, err := ca.Issue(IssueRequest{CommonName: u, ClientAuth: true, Validity: opts.Validity})
		if err != nil {
			return nil, fmt.Errorf("write bundle: user %q: %w", u, err)
		}
		files = append(files, file{u + ".crt", crt, 0o644}, file{u + ".key", key, 0o600})
	}

	if !opts.Force {
		var exist []string
		for _, f := range files {
			p := filepath.Join(dir, f.name)
			if _, err := os.Lstat(p); err == nil {
				exist = append(exist, p)
			} else if !errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("write bundle: %w", err)
			}
		}
		if len(exist) > 0 {
			return nil, fmt.Errorf("write bundle: refusing to overwrite %s (use force to replace)", strings.Join(exist, ", "))
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("write bundle: %w", err)
	}
	var written []string
	for _, f := range files {
		p := filepath.Join(dir, f.name)
		if err := writeFileAtomic(p, f.data, f.mode); err != nil {
			return written, fmt.Errorf("write bundle: %w", err)
		}
		written = append(written, p)
	}
	return written, nil
}

// writeFileAtomic writes data to a temporary file beside path and renames
// it over path, so that path gets mode even when it existed with another,
// and a reader never sees half a file.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return nil
}

// reservedNames are the bundle's own file stems, which a user may not have.
var reservedNames = map[string]bool{"rootCA": true, "server": true, "peer": true}

func validateUsers(users []string) error {
	seen := map[string]bool{}
	for _, u := range users {
		switch {
		case u == "":
			return errors.New("empty user name")
		case strings.ContainsAny(u, `/\`) || strings.HasPrefix(u, "."):
			return fmt.Errorf("user %q: a user name must not contain a slash or start with a dot (it names the files <user>.crt and <user>.key)", u)
		case reservedNames[u]:
			return fmt.Errorf("user %q: the name is taken by the bundle's own %s.crt", u, u)
		case strings.ContainsFunc(u, func(r rune) bool { return r < 0x20 || r == 0x7f }):
			return fmt.Errorf("user %q: control character in the name", u)
		case seen[u]:
			return fmt.Errorf("user %q given twice", u)
		}
		seen[u] = true
	}
	return nil
}

func dedupe(in []string) []string {
	seen := make(map[string]bool, len(in))
	out := in[:0:0]
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

func dedupeIPs(in []net.IP) []net.IP {
	seen := make(map[string]bool, len(in))
	var out []net.IP
	for _, ip := range in {
		if k := ip.String(); !seen[k] {
			seen[k] = true
			out = append(out, ip)
		}
	}
	return out
}

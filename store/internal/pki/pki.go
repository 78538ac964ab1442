// Package pki creates and loads the store's certificate authority and issues
// the certificates a store needs: the serving certificate (which doubles as
// the peer certificate), and user client certificates whose Common Name is
// the user name. It uses the standard library only.
//
// Keys it generates are ECDSA P-256; keys it loads may be RSA (PKCS#1 or
// PKCS#8, as `openssl genrsa` writes them), EC (SEC 1 or PKCS#8) or Ed25519.
package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"time"
)

// PeerCommonName is the Common Name of the serving and peer certificates the
// store issues, and the default identity a peer must present (--peer-cn).
const PeerCommonName = "ephemeral-store-peer"

// DefaultCACommonName is the Common Name of a CA created by WriteBundle, the
// same as the old documentation's openssl steps.
const DefaultCACommonName = "ephemeral-store-ca"

// clockSkew backdates NotBefore so that a certificate issued on one machine
// is already valid on a peer whose clock is slightly behind.
const clockSkew = 5 * time.Minute

// CA is a certificate authority that can issue certificates. Cert and Key
// belong together (LoadCA and NewCA check it); CertPEM is Cert in PEM form,
// as written to rootCA.crt and handed to peers as the trust anchor.
type CA struct {
	Cert    *x509.Certificate
	Key     crypto.Signer
	CertPEM []byte
}

// NewCA creates a self-signed X.509 v3 CA (basic constraints CA:TRUE, key
// usage certificate and CRL signing) with a fresh ECDSA P-256 key, valid
// from now (minus a few minutes of clock skew) for validity.
func NewCA(commonName string, validity time.Duration) (*CA, error) {
	if commonName == "" {
		return nil, errors.New("new CA: empty common name")
	}
	if validity <= 0 {
		return nil, fmt.Errorf("new CA %q: validity %v must be positive", commonName, validity)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("new CA %q: generate key: %w", commonName, err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, fmt.Errorf("new CA %q: %w", commonName, err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("new CA %q: create certificate: %w", commonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("new CA %q: parse created certificate: %w", commonName, err)
	}
	return &CA{Cert: cert, Key: key, CertPEM: encodeCert(der)}, nil
}

// LoadCA reads a CA certificate and its private key from PEM files, such as
// the rootCA.crt and rootCA.key of the old documentation's openssl steps.
// It fails when the key does not match the certificate, when the key is
// encrypted, or when the certificate says it is not a CA (basic constraints
// CA:FALSE, or a key usage without certificate signing). A CA certificate
// without extensions (X.509 v1) is accepted.
func LoadCA(certFile, keyFile string) (*CA, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("load CA %s: %w", certFile, err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("load CA key %s: %w", keyFile, err)
	}
	ca, err := ParseCA(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("load CA %s (key %s): %w", certFile, keyFile, err)
	}
	return ca, nil
}

// ParseCA is LoadCA on PEM already in memory. When certPEM holds several
// certificates, the first is the CA.
func ParseCA(certPEM, keyPEM []byte) (*CA, error) {
	cert, der, err := parseFirstCert(certPEM)
	if err != nil {
		return nil, err
	}
	key, err := ParsePrivateKeyPEM(keyPEM)
	if err != nil {
		return nil, err
	}
	if !publicKeysEqual(cert.PublicKey, key.Public()) {
		return nil, errors.New("the private key does not belong to the CA certificate")
	}
	if cert.BasicConstraintsValid && !cert.IsCA {
		return nil, fmt.Errorf("certificate %q is not a CA (basic constraints CA:FALSE)", cert.Subject.CommonName)
	}
	if cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("certificate %q may not sign certificates (key usage lacks keyCertSign)", cert.Subject.CommonName)
	}
	return &CA{Cert: cert, Key: key, CertPEM: encodeCert(der)}, nil
}

// KeyPEM returns the CA's private key as PKCS#8 PEM ("PRIVATE KEY").
func (ca *CA) KeyPEM() ([]byte, error) {
	return encodeKey(ca.Key)
}

// IssueRequest describes a certificate to issue. At least one of ServerAuth
// and ClientAuth must be set: they become the extended key usages. A
// Validity of zero means DefaultLeafValidity.
type IssueRequest struct {
	CommonName  string
	DNSNames    []string
	IPAddresses []net.IP
	ServerAuth  bool
	ClientAuth  bool
	Validity    time.Duration
}

// DefaultLeafValidity is the lifetime of an issued certificate when the
// request does not say: ten years, as the old documentation's `-days 3650`.
const DefaultLeafValidity = 3650 * 24 * time.Hour

// Issue creates a new ECDSA P-256 key and an X.509 v3 certificate for it
// signed by the CA, and returns both in PEM (the key as PKCS#8). The
// certificate never outlives the CA: its NotAfter is capped at the CA's.
func (ca *CA) Issue(req IssueRequest) (certPEM, keyPEM []byte, err error) {
	if req.CommonName == "" {
		return nil, nil, errors.New("issue certificate: empty common name")
	}
	if !req.ServerAuth && !req.ClientAuth {
		return nil, nil, fmt.Errorf("issue certificate %q: neither server nor client auth requested", req.CommonName)
	}
	validity := req.Validity
	if validity == 0 {
		validity = DefaultLeafValidity
	}
	if validity < 0 {
		return nil, nil, fmt.Errorf("issue certificate %q: negative validity %v", req.CommonName, validity)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("issue certificate %q: generate key: %w", req.CommonName, err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, fmt.Errorf("issue certificate %q: %w", req.CommonName, err)
	}
	now := time.Now()
	notAfter := now.Add(validity)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	var eku []x509.ExtKeyUsage
	if req.ServerAuth {
		eku = append(eku, x509.ExtKeyUsageServerAuth)
	}
	if req.ClientAuth {
		eku = append(eku, x509.ExtKeyUsageClientAuth)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: req.CommonName},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           eku,
		BasicConstraintsValid: true,
		IsCA:                  false,
		DNSNames:              append([]string(nil), req.DNSNames...),
		IPAddresses:           append([]net.IP(nil), req.IPAddresses...),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("issue certificate %q: %w", req.CommonName, err)
	}
	keyPEM, err = encodeKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("issue certificate %q: %w", req.CommonName, err)
	}
	return encodeCert(der), keyPEM, nil
}

// ParsePrivateKeyPEM parses the first private key in PEM data: PKCS#1
// ("RSA PRIVATE KEY"), SEC 1 ("EC PRIVATE KEY") or PKCS#8 ("PRIVATE KEY")
// holding an RSA, ECDSA or Ed25519 key. Other blocks before it (such as the
// "EC PARAMETERS" that `openssl ecparam -genkey` writes) are skipped.
// Encrypted keys are refused: the store has no passphrase to open them.
func ParsePrivateKeyPEM(data []byte) (crypto.Signer, error) {
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("no private key found in PEM data")
		}
		if _, ok := block.Headers["Proc-Type"]; ok {
			return nil, fmt.Errorf("the %s is encrypted; decrypt it first (openssl pkey -in KEY -out KEY.plain)", block.Type)
		}
		switch block.Type {
		case "ENCRYPTED PRIVATE KEY":
			return nil, errors.New("the private key is encrypted (PKCS#8); decrypt it first (openssl pkey -in KEY -out KEY.plain)")
		case "RSA PRIVATE KEY":
			k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("parse RSA (PKCS#1) private key: %w", err)
			}
			return k, nil
		case "EC PRIVATE KEY":
			k, err := x509.ParseECPrivateKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("parse EC private key: %w", err)
			}
			return k, nil
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("parse PKCS#8 private key: %w", err)
			}
			s, ok := k.(crypto.Signer)
			if !ok {
				return nil, fmt.Errorf("PKCS#8 key of type %T cannot sign", k)
			}
			return s, nil
		}
	}
}

func parseFirstCert(data []byte) (*x509.Certificate, []byte, error) {
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, nil, errors.New("no CERTIFICATE block found in PEM data")
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, nil, fmt.Errorf("parse certificate: %w", err)
		}
		return cert, block.Bytes, nil
	}
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	// Every public key type of the standard library has this method.
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}

func randomSerial() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("serial number: %w", err)
	}
	return serial.Add(serial, big.NewInt(1)), nil // never zero
}

func encodeCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func encodeKey(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("marshal private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// certsEqual reports whether two PEM files hold the same first certificate.
func certsEqual(a, b []byte) bool {
	_, da, errA := parseFirstCert(a)
	_, db, errB := parseFirstCert(b)
	return errA == nil && errB == nil && bytes.Equal(da, db)
}

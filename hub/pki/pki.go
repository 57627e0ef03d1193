// Package pki is the hub's own certificate authority: the CA that signs
// the hub's server certificate, which the embedded broker (and the HTTPS
// API) present, and whose certificate tills receive at enrollment to verify
// the hub.
//
// On first start LoadOrCreate makes a CA (ECDSA P-256, self-signed, ten
// years) and a server certificate (ECDSA P-256, two years, signed by the
// CA) in a directory of the hub's data dir; later starts load them. The
// server certificate is issued again — by the same CA, so tills need
// nothing new — when it no longer names every configured host or is within
// RenewBefore of expiry. Keys are written owner-only (0600, directory 0700),
// atomically, and never logged. CAFingerprint, the SHA-256 of the CA
// certificate, lets a till pin the hub before it has the CA itself (the
// enrollment token carries it).
//
// An operator who runs a CA of their own gives LoadFiles its certificate
// and the hub's certificate and key instead: then nothing is created, and
// the files are checked (the key belongs to the certificate, the
// certificate chains to the CA for server use) before the hub serves with
// them. Load reads the hub's own files without changing anything, for
// `tillsync-hub tls show`.
//
// Only the standard library's crypto is used.
package pki

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// File names inside the PKI directory.
const (
	CACertFile     = "ca.pem"
	CAKeyFile      = "ca.key"
	ServerCertFile = "server.pem"
	ServerKeyFile  = "server.key"
)

// Lifetimes.
const (
	CALifetime     = 10 * 365 * 24 * time.Hour
	ServerLifetime = 2 * 365 * 24 * time.Hour
	// RenewBefore is how long before its expiry the server certificate is
	// issued again.
	RenewBefore = 30 * 24 * time.Hour
)

// Options configures LoadOrCreate.
type Options struct {
	// Names are the DNS names and IP addresses tills reach the hub by; the
	// server certificate names them all, and always localhost, 127.0.0.1
	// and ::1.
	Names []string
	// Organization names the coalition in the certificates' subjects.
	Organization string
	// Now defaults to time.Now.
	Now func() time.Time
	// Logger receives what was created or renewed, and why. Default: discard.
	Logger *slog.Logger
}

// PKI is the hub's CA and server certificate, loaded.
type PKI struct {
	paths  Paths
	caCert *x509.Certificate
	caPEM  []byte
	server tls.Certificate
	leaf   *x509.Certificate
}

// Paths are the files a PKI was loaded from.
type Paths struct {
	// Dir is the hub's PKI directory; empty for operator-supplied files.
	Dir string
	// CACert and ServerCert are the certificates (PEM), ServerKey the
	// server's private key.
	CACert, ServerCert, ServerKey string
	// CAKey is the CA's private key; empty for operator-supplied files
	// (the hub then signs nothing).
	CAKey string
}

// Files names operator-supplied PEM files, used instead of the hub's own CA.
type Files struct {
	// Cert is the hub's server certificate, optionally followed by the
	// intermediate certificates between it and CA.
	Cert string
	// Key is the server certificate's private key (PKCS #8, PKCS #1 or SEC 1).
	Key string
	// CA is the certificate of the CA tills verify the hub against.
	CA string
}

// LoadOrCreate loads the PKI in dir, creating what is missing and renewing
// the server certificate when it must be (see the package doc).
func LoadOrCreate(dir string, o Options) (*PKI, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Organization == "" {
		o.Organization = "tillsync hub"
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	p := &PKI{paths: ownPaths(dir)}
	caKey, err := p.loadOrCreateCA(o)
	if err != nil {
		return nil, err
	}
	if err := p.loadOrIssueServer(o, caKey); err != nil {
		return nil, err
	}
	return p, nil
}

// Load reads the hub's own CA and server certificate from dir and checks
// them, creating and renewing nothing. It returns an error wrapping
// fs.ErrNotExist when dir holds no CA yet.
func Load(dir string) (*PKI, error) {
	p := &PKI{paths: ownPaths(dir)}
	read := func(path string) ([]byte, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("pki: %w", err)
		}
		return b, nil
	}
	caPEM, err := read(p.paths.CACert)
	if err != nil {
		return nil, err
	}
	caKeyPEM, err := read(p.paths.CAKey)
	if err != nil {
		return nil, err
	}
	if p.caCert, _, err = parsePair(caPEM, caKeyPEM); err != nil {
		return nil, fmt.Errorf("pki: the CA in %s: %w", dir, err)
	}
	p.caPEM = caPEM
	certPEM, err := read(p.paths.ServerCert)
	if err != nil {
		return nil, err
	}
	keyPEM, err := read(p.paths.ServerKey)
	if err != nil {
		return nil, err
	}
	if p.leaf, _, err = parsePair(certPEM, keyPEM); err != nil {
		return nil, fmt.Errorf("pki: the server certificate in %s: %w", dir, err)
	}
	if p.server, err = tls.X509KeyPair(certPEM, keyPEM); err != nil {
		return nil, fmt.Errorf("pki: the server certificate in %s: %w", dir, err)
	}
	return p, nil
}

// LoadFiles loads operator-supplied files instead of the hub's own CA and
// checks them: the key belongs to the certificate, and the certificate
// (with the intermediates after it in its file) chains to the CA and may
// serve TLS at o.Now. Names the certificate does not cover are logged at
// WARN: tills reaching the hub by such a name will refuse it.
func LoadFiles(f Files, o Options) (*PKI, error) {
	if f.Cert == "" || f.Key == "" || f.CA == "" {
		return nil, errors.New("pki: operator-supplied TLS needs all three files: the certificate, its key and the CA")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	p := &PKI{paths: Paths{CACert: f.CA, ServerCert: f.Cert, ServerKey: f.Key}}
	caPEM, err := os.ReadFile(f.CA)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	cb, _ := pem.Decode(caPEM)
	if cb == nil || cb.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("pki: %s holds no PEM certificate", f.CA)
	}
	if p.caCert, err = x509.ParseCertificate(cb.Bytes); err != nil {
		return nil, fmt.Errorf("pki: %s: %w", f.CA, err)
	}
	p.caPEM = pem.EncodeToMemory(cb)
	certPEM, err := os.ReadFile(f.Cert)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	keyPEM, err := os.ReadFile(f.Key)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	if p.server, err = tls.X509KeyPair(certPEM, keyPEM); err != nil {
		// crypto/tls never quotes key material in its errors.
		return nil, fmt.Errorf("pki: %s and %s: %v", f.Cert, f.Key, err)
	}
	p.leaf = p.server.Leaf
	if p.leaf.IsCA {
		return nil, fmt.Errorf("pki: %s is a CA certificate; give the hub's server certificate, and the CA with its own flag", f.Cert)
	}
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(p.caCert)
	for _, der := range p.server.Certificate[1:] {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("pki: %s: %w", f.Cert, err)
		}
		inter.AddCert(c)
	}
	if _, err := p.leaf.Verify(x509.VerifyOptions{
		Roots: roots, Intermediates: inter, CurrentTime: o.Now(),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}); err != nil {
		return nil, fmt.Errorf("pki: %s does not verify against the CA %s for a TLS server: %v", f.Cert, f.CA, err)
	}
	if fi, err := os.Stat(f.Key); err == nil && keyOpen(fi) {
		o.Logger.Warn("the TLS key can be read by other users; chmod 600 it", "path", f.Key, "mode", fi.Mode().Perm().String())
	}
	var missing []string
	for _, n := range serverNames(o.Names) {
		if p.leaf.VerifyHostname(n) != nil {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		o.Logger.Warn("the TLS certificate does not name every name tills may use; they will refuse the hub by these", "cert", f.Cert, "missing", strings.Join(missing, ","))
	}
	return p, nil
}

func ownPaths(dir string) Paths {
	return Paths{
		Dir: dir, CACert: filepath.Join(dir, CACertFile), CAKey: filepath.Join(dir, CAKeyFile),
		ServerCert: filepath.Join(dir, ServerCertFile), ServerKey: filepath.Join(dir, ServerKeyFile),
	}
}

func (p *PKI) path(name string) string { return filepath.Join(p.paths.Dir, name) }

func (p *PKI) loadOrCreateCA(o Options) (*ecdsa.PrivateKey, error) {
	certPEM, certErr := os.ReadFile(p.path(CACertFile))
	keyPEM, keyErr := os.ReadFile(p.path(CAKeyFile))
	switch {
	case certErr == nil && keyErr == nil:
		cert, key, err := parsePair(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("pki: the CA in %s: %w", p.paths.Dir, err)
		}
		if !cert.IsCA {
			return nil, fmt.Errorf("pki: %s is not a CA certificate", p.path(CACertFile))
		}
		p.caCert, p.caPEM = cert, certPEM
		return key, nil
	case errors.Is(certErr, os.ErrNotExist) && errors.Is(keyErr, os.ErrNotExist):
	case certErr != nil && !errors.Is(certErr, os.ErrNotExist):
		return nil, fmt.Errorf("pki: %w", certErr)
	case keyErr != nil && !errors.Is(keyErr, os.ErrNotExist):
		return nil, fmt.Errorf("pki: %w", keyErr)
	default:
		return nil, fmt.Errorf("pki: %s holds only one of %s and %s; restore the other, or remove both to make a new CA (every till must then enroll again)", p.paths.Dir, CACertFile, CAKeyFile)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	now := o.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: o.Organization + " CA", Organization: []string{o.Organization}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(CALifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("pki: create the CA: %w", err)
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := writeKey(p.path(CAKeyFile), key); err != nil {
		return nil, err
	}
	if err := writeFile(p.path(CACertFile), certPEM, 0o644); err != nil {
		return nil, err
	}
	p.caCert, _ = x509.ParseCertificate(der)
	p.caPEM = certPEM
	o.Logger.Info("created the hub's certificate authority", "dir", p.paths.Dir, "fingerprint", p.CAFingerprint(), "expires", p.caCert.NotAfter)
	return key, nil
}

func (p *PKI) loadOrIssueServer(o Options, caKey *ecdsa.PrivateKey) error {
	names := serverNames(o.Names)
	certPEM, certErr := os.ReadFile(p.path(ServerCertFile))
	keyPEM, keyErr := os.ReadFile(p.path(ServerKeyFile))
	reason := "there is none"
	if certErr == nil && keyErr == nil {
		cert, _, err := parsePair(certPEM, keyPEM)
		if err != nil {
			return fmt.Errorf("pki: the server certificate in %s: %w", p.paths.Dir, err)
		}
		switch {
		case cert.CheckSignatureFrom(p.caCert) != nil:
			reason = "it was not signed by this CA"
		case o.Now().Add(RenewBefore).After(cert.NotAfter):
			reason = "it expires " + cert.NotAfter.UTC().Format(time.DateOnly)
		case !covers(cert, names):
			reason = "it does not name all of " + strings.Join(names, ", ")
		default:
			pair, err := tls.X509KeyPair(certPEM, keyPEM)
			if err != nil {
				return fmt.Errorf("pki: the server certificate in %s: %w", p.paths.Dir, err)
			}
			p.server, p.leaf = pair, cert
			return nil
		}
	} else if !errors.Is(certErr, os.ErrNotExist) && certErr != nil {
		return fmt.Errorf("pki: %w", certErr)
	} else if !errors.Is(keyErr, os.ErrNotExist) && keyErr != nil {
		return fmt.Errorf("pki: %w", keyErr)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	now := o.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: names[0], Organization: []string{o.Organization}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     minTime(now.Add(ServerLifetime), p.caCert.NotAfter),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, &key.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("pki: issue the server certificate: %w", err)
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := writeKey(p.path(ServerKeyFile), key); err != nil {
		return err
	}
	if err := writeFile(p.path(ServerCertFile), certPEM, 0o644); err != nil {
		return err
	}
	keyPEM, _ = os.ReadFile(p.path(ServerKeyFile))
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	p.server, p.leaf = pair, pair.Leaf
	o.Logger.Info("issued the hub's server certificate", "because", reason, "names", strings.Join(names, ","), "expires", tmpl.NotAfter)
	return nil
}

// Paths returns the files the PKI was loaded from.
func (p *PKI) Paths() Paths { return p.paths }

// Operator reports whether the files are operator-supplied (LoadFiles)
// rather than the hub's own CA.
func (p *PKI) Operator() bool { return p.paths.CAKey == "" }

// CACertificate is the CA's certificate.
func (p *PKI) CACertificate() *x509.Certificate { return p.caCert }

// CACertPEM is the CA certificate, PEM: what tills verify the hub with.
func (p *PKI) CACertPEM() []byte { return bytes.Clone(p.caPEM) }

// CAFingerprint is the SHA-256 of the CA certificate (DER), in hex.
func (p *PKI) CAFingerprint() string { return Fingerprint(p.caCert.Raw) }

// ServerCertificate is the hub's server certificate (leaf).
func (p *PKI) ServerCertificate() *x509.Certificate { return p.leaf }

// ServerTLSConfig is the TLS configuration the hub serves with: its server
// certificate (with the CA in the chain), TLS 1.2 or later, key exchange
// with X25519 (post-quantum hybrid first) or P-256, and for TLS 1.2 only
// forward-secret AEAD cipher suites.
func (p *PKI) ServerTLSConfig() *tls.Config {
	cert := p.server
	cert.Certificate = append(slices.Clone(cert.Certificate), p.caCert.Raw)
	return &tls.Config{
		Certificates:     []tls.Certificate{cert},
		MinVersion:       tls.VersionTLS12,
		CurvePreferences: []tls.CurveID{tls.X25519MLKEM768, tls.X25519, tls.CurveP256},
		CipherSuites: []uint16{ // TLS 1.2; TLS 1.3 chooses its own
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		},
	}
}

// Fingerprint is the SHA-256 of a certificate's DER, in hex.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// serverNames is names, deduplicated, with the loopback names added.
func serverNames(names []string) []string {
	var out []string
	for _, n := range append(slices.Clone(names), "localhost", "127.0.0.1", "::1") {
		n = strings.TrimSpace(n)
		if n != "" && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// covers reports whether cert names every one of names.
func covers(cert *x509.Certificate, names []string) bool {
	for _, n := range names {
		if cert.VerifyHostname(n) != nil {
			return false
		}
	}
	return true
}

// parsePair parses a certificate and its ECDSA key, and checks they belong together.
func parsePair(certPEM, keyPEM []byte) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	cb, _ := pem.Decode(certPEM)
	if cb == nil || cb.Type != "CERTIFICATE" {
		return nil, nil, errors.New("the certificate file holds no PEM certificate")
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("certificate: %w", err)
	}
	kb, _ := pem.Decode(keyPEM)
	if kb == nil {
		return nil, nil, errors.New("the key file holds no PEM key")
	}
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return nil, nil, errors.New("the key file holds no readable PKCS #8 key")
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, nil, errors.New("the key is not an ECDSA key")
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, nil, errors.New("the key does not belong to the certificate")
	}
	return cert, key, nil
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	return writeFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
}

// writeFile writes data to path atomically with mode.
func writeFile(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("pki: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("pki: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("pki: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	return nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail
	}
	return n
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

package pki_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tillsync/tillsync/hub/pki"
)

var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func at(t time.Time) func() time.Time { return func() time.Time { return t } }

func read(t *testing.T, dir, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCreateAndReload: the first start makes a CA and a server certificate,
// owner-only; the next start loads them unchanged.
func TestCreateAndReload(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	p, err := pki.LoadOrCreate(dir, pki.Options{Names: []string{"hub.example.com", "10.0.0.5"}, Now: at(t0)})
	if err != nil {
		t.Fatal(err)
	}
	leaf := p.ServerCertificate()
	for _, n := range []string{"hub.example.com", "10.0.0.5", "localhost", "127.0.0.1", "::1"} {
		if err := leaf.VerifyHostname(n); err != nil {
			t.Errorf("server certificate does not name %s: %v", n, err)
		}
	}
	if len(p.CAFingerprint()) != 64 {
		t.Errorf("fingerprint %q", p.CAFingerprint())
	}
	if runtime.GOOS != "windows" {
		for name, want := range map[string]os.FileMode{pki.CAKeyFile: 0o600, pki.ServerKeyFile: 0o600, pki.CACertFile: 0o644, pki.ServerCertFile: 0o644} {
			fi, err := os.Stat(filepath.Join(dir, name))
			if err != nil || fi.Mode().Perm() != want {
				t.Errorf("%s: mode %v, %v; want %v", name, fi.Mode().Perm(), err, want)
			}
		}
		if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
			t.Errorf("pki dir mode %v", fi.Mode().Perm())
		}
	}
	before := read(t, dir, pki.ServerCertFile)
	q, err := pki.LoadOrCreate(dir, pki.Options{Names: []string{"hub.example.com", "10.0.0.5"}, Now: at(t0.Add(24 * time.Hour))})
	if err != nil {
		t.Fatal(err)
	}
	if q.CAFingerprint() != p.CAFingerprint() || !bytes.Equal(read(t, dir, pki.ServerCertFile), before) {
		t.Error("a second start changed the CA or the server certificate")
	}
	if !bytes.Equal(q.CACertPEM(), read(t, dir, pki.CACertFile)) {
		t.Error("CACertPEM is not the CA file")
	}
}

// TestServerCertRenewed: a new name, or the server certificate near its
// expiry, gets a new server certificate from the same CA.
func TestServerCertRenewed(t *testing.T) {
	dir := t.TempDir()
	p, err := pki.LoadOrCreate(dir, pki.Options{Now: at(t0)})
	if err != nil {
		t.Fatal(err)
	}
	first := p.ServerCertificate()
	q, err := pki.LoadOrCreate(dir, pki.Options{Names: []string{"hub.example.com"}, Now: at(t0)})
	if err != nil {
		t.Fatal(err)
	}
	second := q.ServerCertificate()
	if second.SerialNumber.Cmp(first.SerialNumber) == 0 || second.VerifyHostname("hub.example.com") != nil || q.CAFingerprint() != p.CAFingerprint() {
		t.Fatalf("after a new name: serial %v (was %v), CA %s (was %s)", second.SerialNumber, first.SerialNumber, q.CAFingerprint(), p.CAFingerprint())
	}
	late := second.NotAfter.Add(-pki.RenewBefore + time.Hour)
	r, err := pki.LoadOrCreate(dir, pki.Options{Names: []string{"hub.example.com"}, Now: at(late)})
	if err != nil {
		t.Fatal(err)
	}
	if third := r.ServerCertificate(); third.SerialNumber.Cmp(second.SerialNumber) == 0 || !third.NotAfter.After(second.NotAfter) {
		t.Fatalf("near expiry: the server certificate was not renewed (expires %v, was %v)", third.NotAfter, second.NotAfter)
	}
}

// TestBadFiles: a key that does not match, a missing half of the CA, or
// garbage, is refused with one clear line; nothing is overwritten.
func TestBadFiles(t *testing.T) {
	dir := t.TempDir()
	if _, err := pki.LoadOrCreate(dir, pki.Options{Now: at(t0)}); err != nil {
		t.Fatal(err)
	}
	other := t.TempDir()
	if _, err := pki.LoadOrCreate(other, pki.Options{Now: at(t0)}); err != nil {
		t.Fatal(err)
	}
	caKey := read(t, dir, pki.CAKeyFile)
	if err := os.WriteFile(filepath.Join(dir, pki.CAKeyFile), read(t, other, pki.CAKeyFile), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := pki.LoadOrCreate(dir, pki.Options{Now: at(t0)})
	if err == nil || !strings.Contains(err.Error(), "does not belong") || strings.Contains(err.Error(), "\n") {
		t.Errorf("a CA key of another CA: %v", err)
	}
	os.WriteFile(filepath.Join(dir, pki.CAKeyFile), caKey, 0o600)
	os.Remove(filepath.Join(dir, pki.CAKeyFile))
	if _, err := pki.LoadOrCreate(dir, pki.Options{Now: at(t0)}); err == nil || !strings.Contains(err.Error(), "only one of") {
		t.Errorf("a CA certificate without its key: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, pki.CACertFile)); err != nil {
		t.Errorf("the CA certificate was removed: %v", err)
	}
	os.WriteFile(filepath.Join(dir, pki.CAKeyFile), []byte("garbage"), 0o600)
	if _, err := pki.LoadOrCreate(dir, pki.Options{Now: at(t0)}); err == nil || !strings.Contains(err.Error(), "no PEM key") {
		t.Errorf("a garbage key: %v", err)
	}
}

// TestTLSHandshake: a client that trusts the hub's CA connects to a server
// using ServerTLSConfig; one that trusts another CA is refused.
func TestTLSHandshake(t *testing.T) {
	p, err := pki.LoadOrCreate(t.TempDir(), pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	other, err := pki.LoadOrCreate(t.TempDir(), pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", p.ServerTLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { c.Write([]byte("hi")); c.Close() }()
		}
	}()
	dial := func(ca []byte, name string) error {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(ca)
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", l.Addr().String(), &tls.Config{RootCAs: pool, ServerName: name})
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = io.ReadAll(c)
		return err
	}
	if err := dial(p.CACertPEM(), "localhost"); err != nil {
		t.Errorf("a client trusting the hub's CA: %v", err)
	}
	if err := dial(p.CACertPEM(), "127.0.0.1"); err != nil {
		t.Errorf("a client trusting the hub's CA, by IP: %v", err)
	}
	if err := dial(other.CACertPEM(), "localhost"); err == nil || !strings.Contains(err.Error(), "unknown authority") {
		t.Errorf("a client trusting another CA: %v, want unknown authority", err)
	}
}

// TestOperatorFiles: operator-supplied files are used as they are (the
// hub makes nothing), and a key of another certificate, a certificate of
// another CA or a missing file is refused with one line.
func TestOperatorFiles(t *testing.T) {
	own := t.TempDir()
	if _, err := pki.LoadOrCreate(own, pki.Options{Names: []string{"hub.example.com"}, Now: at(t0)}); err != nil {
		t.Fatal(err)
	}
	other := t.TempDir()
	if _, err := pki.LoadOrCreate(other, pki.Options{Now: at(t0)}); err != nil {
		t.Fatal(err)
	}
	f := pki.Files{Cert: filepath.Join(own, pki.ServerCertFile), Key: filepath.Join(own, pki.ServerKeyFile), CA: filepath.Join(own, pki.CACertFile)}
	p, err := pki.LoadFiles(f, pki.Options{Names: []string{"hub.example.com"}, Now: at(t0)})
	if err != nil {
		t.Fatal(err)
	}
	if !p.Operator() || p.Paths().CAKey != "" || p.Paths().ServerCert != f.Cert {
		t.Errorf("paths %+v, operator %v", p.Paths(), p.Operator())
	}
	if !bytes.Equal(p.CACertPEM(), read(t, own, pki.CACertFile)) {
		t.Error("CACertPEM is not the operator's CA")
	}
	if err := handshake(t, p, p.CACertPEM(), "hub.example.com"); err != nil {
		t.Errorf("a client trusting the operator's CA: %v", err)
	}

	for name, c := range map[string]struct {
		f    pki.Files
		want string
	}{
		"key of another certificate": {pki.Files{Cert: f.Cert, Key: filepath.Join(other, pki.ServerKeyFile), CA: f.CA}, "private key does not match public key"},
		"certificate of another CA":  {pki.Files{Cert: f.Cert, Key: f.Key, CA: filepath.Join(other, pki.CACertFile)}, "does not verify against the CA"},
		"the CA as server":           {pki.Files{Cert: f.CA, Key: filepath.Join(own, pki.CAKeyFile), CA: f.CA}, "is a CA certificate"},
		"no such file":               {pki.Files{Cert: f.Cert + ".missing", Key: f.Key, CA: f.CA}, "no such file"},
		"a file left out":            {pki.Files{Cert: f.Cert, CA: f.CA}, "all three files"},
		"garbage key":                {pki.Files{Cert: f.Cert, Key: f.Cert, CA: f.CA}, "server.pem"},
	} {
		_, err := pki.LoadFiles(c.f, pki.Options{Now: at(t0)})
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") || strings.Contains(err.Error(), "PRIVATE KEY") {
			t.Errorf("%s: %v; want one line with %q", name, err, c.want)
		}
	}
}

// TestLoadChangesNothing: Load reads the hub's own files without creating
// or renewing anything, and says when there are none.
func TestLoadChangesNothing(t *testing.T) {
	dir := t.TempDir()
	if _, err := pki.Load(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load of an empty dir: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("Load created %d files", len(entries))
	}
	p, err := pki.LoadOrCreate(dir, pki.Options{Now: at(t0)})
	if err != nil {
		t.Fatal(err)
	}
	before := read(t, dir, pki.ServerCertFile)
	q, err := pki.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if q.CAFingerprint() != p.CAFingerprint() || q.Operator() || q.Paths().Dir != dir || !bytes.Equal(before, read(t, dir, pki.ServerCertFile)) {
		t.Errorf("Load: fingerprint %s (want %s), paths %+v", q.CAFingerprint(), p.CAFingerprint(), q.Paths())
	}
}

// TestNoKeyMaterialLogged: what LoadOrCreate logs never holds a key.
func TestNoKeyMaterialLogged(t *testing.T) {
	var buf bytes.Buffer
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if _, err := pki.LoadOrCreate(dir, pki.Options{Logger: log, Now: at(t0)}); err != nil {
		t.Fatal(err)
	}
	if _, err := pki.LoadOrCreate(dir, pki.Options{Names: []string{"hub.example.com"}, Logger: log, Now: at(t0)}); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if !strings.Contains(out, "created the hub's certificate authority") || !strings.Contains(out, "does not name all of") {
		t.Errorf("log lacks the creation or the reason for the renewal:\n%s", out)
	}
	for _, name := range []string{pki.CAKeyFile, pki.ServerKeyFile} {
		b, _ := pem.Decode(read(t, dir, name))
		if strings.Contains(out, "PRIVATE KEY") || strings.Contains(out, base64.StdEncoding.EncodeToString(b.Bytes)[:24]) {
			t.Fatalf("the log holds key material:\n%s", out)
		}
	}
}

func handshake(t *testing.T, p *pki.PKI, ca []byte, name string) error {
	t.Helper()
	l, err := tls.Listen("tcp", "127.0.0.1:0", p.ServerTLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err == nil {
			c.Write([]byte("hi"))
			c.Close()
		}
	}()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", l.Addr().String(), &tls.Config{RootCAs: pool, ServerName: name})
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = io.ReadAll(c)
	return err
}

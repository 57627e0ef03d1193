package hub

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// MemberTokenKeyFile is the default file, in the data dir, of the
// coalition's member token signing key.
const MemberTokenKeyFile = "member-token.key"

// maxKeyFile bounds what LoadMemberTokenKey reads: a PEM Ed25519 key is
// about 120 bytes.
const maxKeyFile = 16 << 10

// LoadMemberTokenKey returns the coalition's member token signing key
// from path: an Ed25519 private key, PEM-encoded PKCS #8 ("PRIVATE KEY",
// as openssl genpkey -algorithm ed25519 writes it). When path does not
// exist it creates a new key there, owner-only (0600), written to a
// temporary file and linked into place so that a crash never leaves half a
// key, and reports created. The key itself never appears in an error.
func LoadMemberTokenKey(path string) (key ed25519.PrivateKey, created bool, err error) {
	key, err = readMemberTokenKey(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return key, false, err
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, false, fmt.Errorf("hub: member token key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, false, fmt.Errorf("hub: member token key: %w", err)
	}
	tmp := path + ".tmp"
	os.Remove(tmp) // left by a crash before the link
	if err := writeSynced(tmp, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})); err != nil {
		return nil, false, fmt.Errorf("hub: member token key %s: %w", path, err)
	}
	defer os.Remove(tmp)
	// A link, not a rename: it never replaces a key that appeared meanwhile.
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			key, err = readMemberTokenKey(path)
			return key, false, err
		}
		return nil, false, fmt.Errorf("hub: member token key %s: %w", path, err)
	}
	syncDir(filepath.Dir(path))
	return priv, true, nil
}

func readMemberTokenKey(path string) (ed25519.PrivateKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("hub: member token key %s: %w", path, err)
	}
	bad := fmt.Errorf("hub: member token key %s: not an Ed25519 private key in PEM (PKCS #8, \"PRIVATE KEY\"); restore the hub's key or move the file away to make a new one (tokens already issued then stop working, and enrolled tills take no store config until they enroll again)", path)
	if len(data) > maxKeyFile {
		return nil, bad
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, bad
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, bad
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, bad
	}
	return key, nil
}

// writeSynced creates path (which must not exist) owner-only with data,
// on disk before it returns.
func writeSynced(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err = f.Write(data); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
	}
	return err
}

// syncDir makes a new directory entry durable where the platform can;
// failing that the key is still written, and is made again only if lost.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

package hub

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// BrokerPasswordFile is the file, in the data dir, of the hub's own
// password at an external broker (user broker.HubUsername): made once by
// tillsync-hub broker-config, which writes its hash into the broker's
// password file, and given to serve with --broker-password-file.
const BrokerPasswordFile = "broker-hub.password"

// LoadBrokerPassword returns the password in path (its first line). When
// path does not exist it makes one there — 32 random bytes, base64url —
// owner-only (0600), written to a temporary file and linked into place so
// that a crash never leaves half of it, and reports created. The password
// never appears in an error.
func LoadBrokerPassword(path string) (password string, created bool, err error) {
	password, err = ReadPasswordFile(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return password, false, err
	}
	b := make([]byte, 32)
	rand.Read(b)
	password = base64.RawURLEncoding.EncodeToString(b)
	tmp := path + ".tmp"
	os.Remove(tmp) // left by a crash before the link
	if err := writeSynced(tmp, []byte(password+"\n")); err != nil {
		return "", false, fmt.Errorf("hub: broker password %s: %w", path, err)
	}
	defer os.Remove(tmp)
	// A link, not a rename: it never replaces a password that appeared meanwhile.
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			password, err = ReadPasswordFile(path)
			return password, false, err
		}
		return "", false, fmt.Errorf("hub: broker password %s: %w", path, err)
	}
	syncDir(filepath.Dir(path))
	return password, true, nil
}

// ReadPasswordFile reads a password from the first line of path (trimmed).
// A file other users can read is refused where the platform says so: the
// password would not be the hub's alone.
func ReadPasswordFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("hub: %s: %w", path, err)
	}
	if keyFileOpen(fi) {
		return "", fmt.Errorf("hub: %s can be read by other users (mode %s); chmod 600 it", path, fi.Mode().Perm())
	}
	data, err := io.ReadAll(io.LimitReader(f, 4<<10))
	if err != nil {
		return "", fmt.Errorf("hub: %s: %w", path, err)
	}
	line, _, _ := strings.Cut(string(data), "\n")
	line = strings.TrimSpace(line)
	if line == "" || strings.ContainsFunc(line, func(r rune) bool { return r < 0x21 || r > 0x7e }) {
		return "", fmt.Errorf("hub: %s: want the password on the first line, printable characters without spaces", path)
	}
	return line, nil
}

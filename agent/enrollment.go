package agent

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/tillsync/tillsync/protocol"
)

// Files enrollment writes into the data dir, owner-only.
const (
	// EnrollmentFile holds the terminal's identity and MQTT credentials.
	EnrollmentFile = "enrollment.json"
	// TerminalKeyFile is the terminal's Ed25519 private key (PKCS #8 PEM);
	// it never leaves the till.
	TerminalKeyFile = "terminal.key"
	// HubCAFile is the hub's CA certificate from enrollment.
	HubCAFile = "hub-ca.pem"
)

// Enrollment is what a till keeps of its enrollment. Password is secret:
// never logged, never printed.
type Enrollment struct {
	Store    string `json:"store"`
	Terminal string `json:"terminal"`
	Partner  string `json:"partner"`
	Username string `json:"mqtt_username"`
	Password string `json:"mqtt_password"`
	// Hub is the hub address the till enrolled with, for people.
	Hub string `json:"hub,omitempty"`
	// MQTT is the hub's broker address the hub gave at enrollment
	// (tls://HOST:PORT): the agent's hub unless its config names one.
	MQTT string `json:"mqtt,omitempty"`
	// MemberTokenKeys are the coalition's member token public keys
	// (protocol.EncodeTokenKey) handed out at enrollment: the till verifies
	// member QR codes with them until the hub's config brings its own.
	MemberTokenKeys []string `json:"member_token_keys,omitempty"`
	// MACKey is the terminal's MAC key (base64url, as the hub gave it): the
	// till seals what it sends to the hub with it, and takes only acks and
	// replies sealed with it. Empty from a hub of protocol version 2.
	// Secret, like the password.
	MACKey string `json:"mac_key,omitempty"`
}

// Key returns the MAC key decoded: nil when the enrollment has none.
func (e Enrollment) Key() ([]byte, error) {
	if e.MACKey == "" {
		return nil, nil
	}
	k, err := base64.RawURLEncoding.DecodeString(e.MACKey)
	if err != nil || len(k) != protocol.MACKeyLen {
		return nil, fmt.Errorf("agent: %s: mac_key is not a key of %d bytes in base64url", EnrollmentFile, protocol.MACKeyLen)
	}
	return k, nil
}

// LoadEnrollment reads the enrollment in dir; found is false when the till
// has not enrolled.
func LoadEnrollment(dir string) (e Enrollment, found bool, err error) {
	data, err := os.ReadFile(filepath.Join(dir, EnrollmentFile))
	if errors.Is(err, fs.ErrNotExist) {
		return Enrollment{}, false, nil
	}
	if err != nil {
		return Enrollment{}, false, fmt.Errorf("agent: enrollment: %w", err)
	}
	if err := json.Unmarshal(data, &e); err != nil {
		return Enrollment{}, false, fmt.Errorf("agent: %s: %w", EnrollmentFile, err)
	}
	return e, true, nil
}

// SaveEnrollment writes e, the terminal's private key and the hub's CA
// (when given) into dir, owner-only, each atomically.
func SaveEnrollment(dir string, e Enrollment, key ed25519.PrivateKey, caPEM []byte) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("agent: data dir: %w", err)
	}
	// A data dir made before (by hand, or by an installer) may be readable
	// by others: the secrets' files are owner-only anyway, the dir becomes
	// so too.
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("agent: data dir: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := writeSecret(filepath.Join(dir, TerminalKeyFile), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})); err != nil {
		return err
	}
	if len(caPEM) > 0 {
		if err := writeSecret(filepath.Join(dir, HubCAFile), caPEM); err != nil {
			return err
		}
	}
	data, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		return err
	}
	return writeSecret(filepath.Join(dir, EnrollmentFile), data)
}

// writeSecret writes data to path, mode 0600, atomically.
func writeSecret(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err == nil {
		_, err = tmp.Write(data)
		if err == nil {
			err = tmp.Sync()
		}
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(tmp.Name(), path)
		}
		if err == nil {
			return nil
		}
	} else {
		tmp.Close()
	}
	return fmt.Errorf("agent: write %s: %w", path, err)
}

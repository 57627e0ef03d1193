package ledger

// Terminal enrollment: the one-time token an operator hands to a till's
// installer, and the per-terminal MQTT credentials and MAC key the till
// gets for it.
//
// Secrets the hub only checks are never stored: a token's secret and a
// terminal's password are kept as SHA-256 hashes (salted, for the
// password) — both are 32 random bytes, so a plain hash is as strong as a
// slow one would be. The password is also kept as Mosquitto's password
// file holds it (MosquittoHash: salted PBKDF2-SHA512), so that an external
// broker can be given the terminal's account (tillsync-hub broker-config)
// without the hub knowing the password. The MAC key (protocol.Seal) is the
// one secret kept as it is: the hub computes MACs with it. The ledger file
// is owner-only. Enrollment records live in their own buckets, never in
// the Terminal records that the API lists.
//
// The hub checks a MAC on every message of an enrolled terminal, so the
// keys and enrollment states are kept in memory too (TerminalAuth), loaded
// at open and changed in the commit that changes them.

import (
	"bytes"
	"cmp"
	"crypto/ed25519"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tillsync/tillsync/protocol"
)

// Enrollment token lifetimes.
const (
	DefaultEnrollmentTTL = 24 * time.Hour
	MaxEnrollmentTTL     = 30 * 24 * time.Hour
)

var (
	// bucketEnrollment: "store/terminal" → JSON enrollRec.
	bucketEnrollment = []byte("enrollment")
	// bucketEnrollTokens: token id → "store/terminal", kept after the
	// token is used or replaced.
	bucketEnrollTokens = []byte("enroll_tokens")
)

// EnrollmentToken is a one-time token for enrolling one terminal. Secret
// is given out once, when the token is issued; the ledger keeps its hash.
type EnrollmentToken struct {
	ID        string    `json:"id"`
	Secret    []byte    `json:"-"`
	Store     string    `json:"store"`
	Terminal  string    `json:"terminal"`
	ExpiresAt time.Time `json:"expires_at"`
}

// TerminalCredentials are what an enrolled terminal connects with.
// Password is given out once, at enrollment.
type TerminalCredentials struct {
	Store    string `json:"store"`
	Terminal string `json:"terminal"`
	Partner  string `json:"partner"`
	// Username is protocol.AgentUsername(store, terminal) (terminals
	// enrolled before protocol Version 3 got their client id).
	Username string `json:"username"`
	Password string `json:"-"`
	// MACKey authenticates the messages between the terminal and the hub
	// (protocol.Seal); given out once, at enrollment.
	MACKey []byte `json:"-"`
}

// Enrollment is a terminal's enrollment state, without secrets.
type Enrollment struct {
	Store    string `json:"store"`
	Terminal string `json:"terminal"`
	// TokenExpires is when the pending token expires; zero when none is pending.
	TokenExpires time.Time `json:"token_expires,omitzero"`
	// EnrolledAt is when the terminal enrolled (zero: never).
	EnrolledAt time.Time `json:"enrolled_at,omitzero"`
	// RevokedAt is when its credentials were revoked (zero: not revoked).
	RevokedAt time.Time `json:"revoked_at,omitzero"`
	// PublicKey is the terminal's Ed25519 public key from enrollment.
	PublicKey []byte `json:"public_key,omitempty"`
}

type enrollRec struct {
	TokenID      string    `json:"token_id,omitempty"`
	TokenHash    []byte    `json:"token_hash,omitempty"`
	TokenExpires time.Time `json:"token_expires,omitzero"`
	PublicKey    []byte    `json:"public_key,omitempty"`
	PassSalt     []byte    `json:"pass_salt,omitempty"`
	PassHash     []byte    `json:"pass_hash,omitempty"`
	EnrolledAt   time.Time `json:"enrolled_at,omitzero"`
	RevokedAt    time.Time `json:"revoked_at,omitzero"`
	// MACKey is the terminal's MAC key, as is (the hub computes with it);
	// empty when revoked or enrolled before the hub issued keys.
	MACKey []byte `json:"mac_key,omitempty"`
	// MosquittoHash is the password as Mosquitto's password file holds it.
	MosquittoHash string `json:"mosquitto_hash,omitempty"`
	// Generation counts the terminal's enrollments (0: none since the hub
	// kept count); its sequence numbers start afresh with each.
	Generation uint64 `json:"generation,omitempty"`
}

// TerminalAuth is what the hub needs to authenticate a terminal's
// messages, from its enrollment.
type TerminalAuth struct {
	// Enrolled is set once the terminal has enrolled, revoked since or not.
	Enrolled bool
	// Revoked is set while its last enrollment is revoked.
	Revoked bool
	// MACKey is its MAC key: nil when it is not enrolled, revoked, or
	// enrolled before the hub issued keys (it must enroll again).
	MACKey []byte
	// Generation counts its enrollments: the ledger's record of its
	// sequence numbers (seq_reused) starts afresh with each, because a
	// till enrolled again may be a new one whose outbox counts from 1.
	Generation uint64
}

// BrokerUser is an enrolled, unrevoked terminal's account at an external
// broker, for tillsync-hub broker-config.
type BrokerUser struct {
	Store    string `json:"store"`
	Terminal string `json:"terminal"`
	// Username is the name the terminal connects with.
	Username string `json:"username"`
	// MosquittoHash is its password in Mosquitto's password file format
	// ("$7$…", PBKDF2-SHA512); empty for a terminal enrolled before the hub
	// kept one, which must enroll again to use an external broker.
	MosquittoHash string `json:"mosquitto_hash,omitempty"`
}

func (r *enrollRec) auth() TerminalAuth {
	return TerminalAuth{Enrolled: !r.EnrolledAt.IsZero(), Revoked: !r.RevokedAt.IsZero(), MACKey: r.MACKey, Generation: r.Generation}
}

// termKey names a terminal in the in-memory maps.
type termKey struct{ store, terminal string }

// authCache holds every enrolled terminal's TerminalAuth.
type authCache struct {
	mu sync.RWMutex
	m  map[termKey]TerminalAuth
}

func (c *authCache) get(store, terminal string) TerminalAuth {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.m[termKey{store, terminal}]
}

func (c *authCache) set(store, terminal string, a TerminalAuth) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[termKey]TerminalAuth)
	}
	c.m[termKey{store, terminal}] = a
}

// loadAuth fills the cache from the enrollment bucket (absent in a file
// written before enrollment: nobody enrolled).
func (s *BoltStore) loadAuth() error {
	m := make(map[termKey]TerminalAuth)
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEnrollment)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var rec enrollRec
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("enrollment %s: %w", k, err)
			}
			if store, terminal, ok := bytes.Cut(k, []byte("/")); ok && !rec.EnrolledAt.IsZero() {
				m[termKey{string(store), string(terminal)}] = rec.auth()
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	s.auth.mu.Lock()
	s.auth.m = m
	s.auth.mu.Unlock()
	return nil
}

// TerminalAuth returns what the hub needs to authenticate the terminal's
// messages, from memory: the zero TerminalAuth for a terminal that never
// enrolled. The returned MACKey must not be modified.
func (s *BoltStore) TerminalAuth(store, terminal string) TerminalAuth {
	return s.auth.get(store, terminal)
}

// IssueEnrollmentToken makes a one-time token for a registered terminal,
// valid for ttl (0: DefaultEnrollmentTTL). A token still pending for the
// terminal is replaced. A revoked terminal can be enrolled again only
// with a new token.
func (s *BoltStore) IssueEnrollmentToken(store, terminal string, ttl time.Duration, now time.Time) (EnrollmentToken, error) {
	if ttl == 0 {
		ttl = DefaultEnrollmentTTL
	}
	if ttl < time.Minute || ttl > MaxEnrollmentTTL {
		return EnrollmentToken{}, protocol.Errorf(protocol.CodeMalformed, "expires_in", "must be 1m to %s", MaxEnrollmentTTL)
	}
	tok := EnrollmentToken{ID: randomTokenID(9), Secret: randomBytes(32), Store: store, Terminal: terminal, ExpiresAt: now.Add(ttl).UTC()}
	err := s.enrollAdmin("issue enrollment token", func(tx *bolt.Tx) error {
		key, rec, err := terminalEnrollment(tx, store, terminal)
		if err != nil {
			return err
		}
		// A replaced token's id stays in the index, so that using it reads
		// as "used or replaced", not as a typo.
		sum := sha256.Sum256(tok.Secret)
		rec.TokenID, rec.TokenHash, rec.TokenExpires = tok.ID, sum[:], tok.ExpiresAt
		if err := tx.Bucket(bucketEnrollTokens).Put([]byte(tok.ID), key); err != nil {
			return err
		}
		return putJSON(tx.Bucket(bucketEnrollment), key, rec)
	})
	if err != nil {
		return EnrollmentToken{}, err
	}
	return tok, nil
}

// Enroll redeems a token: it records the terminal's public key and issues
// its MQTT credentials, once. A token that is unknown, or whose secret does
// not match, is CodeEnrollmentUnknown (the two are not told apart); one
// already used is CodeEnrollmentUsed; one expired, CodeEnrollmentExpired.
func (s *BoltStore) Enroll(tokenID string, secret []byte, publicKey []byte, now time.Time) (TerminalCredentials, error) {
	if len(publicKey) != ed25519.PublicKeySize {
		return TerminalCredentials{}, protocol.Errorf(protocol.CodeMalformed, "public_key", "must be an Ed25519 public key (%d bytes)", ed25519.PublicKeySize)
	}
	var creds TerminalCredentials
	err := s.enrollAdmin("enroll", func(tx *bolt.Tx) error {
		key := tx.Bucket(bucketEnrollTokens).Get([]byte(tokenID))
		if key == nil {
			return protocol.Errorf(protocol.CodeEnrollmentUnknown, "token", "no such enrollment token; ask the hub's operator for a new one")
		}
		key = bytes.Clone(key)
		rec, err := getEnroll(tx, key)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(secret)
		switch {
		case rec.TokenID != tokenID:
			// Replaced by a newer token, or used: the id stays known so that
			// a second use is told apart from a typo.
			return protocol.Errorf(protocol.CodeEnrollmentUsed, "token", "this enrollment token has been used or replaced; ask the hub's operator for a new one")
		case subtle.ConstantTimeCompare(sum[:], rec.TokenHash) != 1:
			return protocol.Errorf(protocol.CodeEnrollmentUnknown, "token", "no such enrollment token; ask the hub's operator for a new one")
		case !now.Before(rec.TokenExpires):
			return protocol.Errorf(protocol.CodeEnrollmentExpired, "token", "the enrollment token expired at %s; ask the hub's operator for a new one", rec.TokenExpires.Format(time.RFC3339))
		}
		store, terminal, _ := bytes.Cut(key, []byte("/"))
		partner := ""
		if st, ok := s.reg.Load().stores[string(store)]; ok {
			partner = st.Partner
		}
		password := randomText(32)
		salt := randomBytes(16)
		rec.TokenID, rec.TokenHash, rec.TokenExpires = "", nil, time.Time{}
		rec.PublicKey, rec.PassSalt, rec.PassHash = publicKey, salt, passHash(salt, password)
		rec.MosquittoHash = MosquittoHash(password)
		rec.MACKey = randomBytes(protocol.MACKeyLen)
		rec.Generation++
		rec.EnrolledAt, rec.RevokedAt = now.UTC(), time.Time{}
		creds = TerminalCredentials{Store: string(store), Terminal: string(terminal), Partner: partner,
			Username: protocol.AgentUsername(string(store), string(terminal)), Password: password, MACKey: bytes.Clone(rec.MACKey)}
		s.authOnCommit(tx, string(store), string(terminal), rec)
		return putJSON(tx.Bucket(bucketEnrollment), key, rec)
	})
	if err != nil {
		return TerminalCredentials{}, err
	}
	return creds, nil
}

// AuthenticateTerminal checks an enrolled terminal's credentials: ok, or
// the reason they are refused (for the log; never the password).
// The username may be either form protocol.ParseTerminalUsername reads.
func (s *BoltStore) AuthenticateTerminal(username string, password []byte) (ok bool, reason string) {
	store, terminal, valid := protocol.ParseTerminalUsername(username)
	if !valid {
		return false, "not a terminal's username"
	}
	var rec enrollRec
	found := false
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEnrollment)
		if b == nil {
			return nil
		}
		v := b.Get([]byte(store + "/" + terminal))
		if v == nil {
			return nil
		}
		found = true
		return json.Unmarshal(v, &rec)
	})
	switch {
	case err != nil:
		return false, "ledger error"
	case !found || rec.EnrolledAt.IsZero():
		return false, "terminal not enrolled"
	case !rec.RevokedAt.IsZero():
		return false, "terminal revoked"
	case subtle.ConstantTimeCompare(passHash(rec.PassSalt, string(password)), rec.PassHash) != 1:
		return false, "wrong password"
	}
	return true, ""
}

// Enrolled reports whether the terminal has enrolled, revoked since or
// not: its client id must then always come with its credentials, so that
// nobody can connect as it without them, and a revoked till cannot come
// back by dropping its credentials.
func (s *BoltStore) Enrolled(store, terminal string) bool {
	return s.auth.get(store, terminal).Enrolled
}

// RevokeTerminal makes an enrolled terminal's credentials invalid for good
// (and drops a pending token). Enrolling it again needs a new token.
func (s *BoltStore) RevokeTerminal(store, terminal string, now time.Time) error {
	return s.enrollAdmin("revoke terminal", func(tx *bolt.Tx) error {
		key, rec, err := terminalEnrollment(tx, store, terminal)
		if err != nil {
			return err
		}
		if rec.EnrolledAt.IsZero() && rec.TokenID == "" {
			return protocol.Errorf(protocol.CodeNotFound, "terminal", "%s/%s has not enrolled and has no pending token", store, terminal)
		}
		rec.TokenID, rec.TokenHash, rec.TokenExpires = "", nil, time.Time{}
		if !rec.EnrolledAt.IsZero() && rec.RevokedAt.IsZero() {
			rec.RevokedAt = now.UTC()
		}
		rec.PassHash, rec.PassSalt, rec.MosquittoHash, rec.MACKey = nil, nil, "", nil
		if !rec.EnrolledAt.IsZero() {
			s.authOnCommit(tx, store, terminal, rec)
		}
		return putJSON(tx.Bucket(bucketEnrollment), key, rec)
	})
}

// eachEnrollment calls fn with every terminal's enrollment record, by
// store and terminal.
func (s *BoltStore) eachEnrollment(fn func(store, terminal string, rec enrollRec)) error {
	return s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEnrollment)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var rec enrollRec
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("enrollment %s: %w", k, err)
			}
			store, terminal, _ := bytes.Cut(k, []byte("/"))
			fn(string(store), string(terminal), rec)
			return nil
		})
	})
}

// Enrollments lists the enrollment state of every terminal that has a
// token or enrolled, by store and terminal.
func (s *BoltStore) Enrollments() ([]Enrollment, error) {
	var out []Enrollment
	err := s.eachEnrollment(func(store, terminal string, rec enrollRec) {
		out = append(out, Enrollment{Store: store, Terminal: terminal, TokenExpires: rec.TokenExpires,
			EnrolledAt: rec.EnrolledAt, RevokedAt: rec.RevokedAt, PublicKey: rec.PublicKey})
	})
	if err != nil {
		return nil, fmt.Errorf("ledger: enrollments: %w", err)
	}
	// Keys are "store/terminal": '-' and '.' sort before '/'.
	slices.SortFunc(out, func(a, b Enrollment) int {
		return cmp.Or(strings.Compare(a.Store, b.Store), strings.Compare(a.Terminal, b.Terminal))
	})
	return out, nil
}

// BrokerUsers lists the accounts an external broker must know: every
// enrolled, unrevoked terminal, by store and terminal.
func (s *BoltStore) BrokerUsers() ([]BrokerUser, error) {
	var out []BrokerUser
	err := s.eachEnrollment(func(store, terminal string, rec enrollRec) {
		if rec.EnrolledAt.IsZero() || !rec.RevokedAt.IsZero() {
			return
		}
		out = append(out, BrokerUser{Store: store, Terminal: terminal,
			Username: protocol.AgentUsername(store, terminal), MosquittoHash: rec.MosquittoHash})
	})
	if err != nil {
		return nil, fmt.Errorf("ledger: broker users: %w", err)
	}
	// Keys are "store/terminal": '-' and '.' sort before '/'.
	slices.SortFunc(out, func(a, b BrokerUser) int {
		return cmp.Or(strings.Compare(a.Store, b.Store), strings.Compare(a.Terminal, b.Terminal))
	})
	return out, nil
}

// authOnCommit updates the in-memory TerminalAuth of a terminal once tx,
// which writes rec, has committed (while the writer still holds s.mu, so
// no Apply runs between the commit and the update).
func (s *BoltStore) authOnCommit(tx *bolt.Tx, store, terminal string, rec enrollRec) {
	a := rec.auth()
	tx.OnCommit(func() { s.auth.set(store, terminal, a) })
}

func registeredTerminal(tx *bolt.Tx, store, terminal string) ([]byte, error) {
	if !protocol.ValidID(store) {
		return nil, idError("store", store)
	}
	if !protocol.ValidID(terminal) {
		return nil, idError("terminal", terminal)
	}
	key := []byte(store + "/" + terminal)
	v := tx.Bucket(bucketTerminals).Get(key)
	var t Terminal
	if v != nil {
		if err := json.Unmarshal(v, &t); err != nil {
			return nil, fmt.Errorf("terminal %s: %w", key, err)
		}
	}
	if !t.Registered {
		return nil, protocol.Errorf(protocol.CodeNotFound, "terminal", "no terminal %s of store %s; register it with terminal add", terminal, store)
	}
	return key, nil
}

// terminalEnrollment is a registered terminal's key and enrollment record.
func terminalEnrollment(tx *bolt.Tx, store, terminal string) ([]byte, enrollRec, error) {
	key, err := registeredTerminal(tx, store, terminal)
	if err != nil {
		return nil, enrollRec{}, err
	}
	rec, err := getEnroll(tx, key)
	return key, rec, err
}

func getEnroll(tx *bolt.Tx, key []byte) (enrollRec, error) {
	var rec enrollRec
	if v := tx.Bucket(bucketEnrollment).Get(key); v != nil {
		if err := json.Unmarshal(v, &rec); err != nil {
			return rec, fmt.Errorf("enrollment %s: %w", key, err)
		}
	}
	return rec, nil
}

func passHash(salt []byte, password string) []byte {
	h := sha256.New()
	h.Write(salt)
	h.Write([]byte(password))
	return h.Sum(nil)
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail
	}
	return b
}

func randomText(n int) string { return base64.RawURLEncoding.EncodeToString(randomBytes(n)) }

// randomTokenID is randomText(n) that starts with a letter or digit: an
// id people type as a command's argument must not read as a flag (-x).
func randomTokenID(n int) string {
	for {
		if id := randomText(n); id[0] != '-' && id[0] != '_' {
			return id
		}
	}
}

// Mosquitto's PBKDF2 password hashes ("$7$" in its password file, the
// default of mosquitto_passwd since Mosquitto 2.0): PBKDF2-HMAC-SHA512 of
// the password over a 12-byte salt, 64 bytes, written as
// $7$<iterations>$<salt, base64>$<hash, base64>. mosquitto_passwd uses
// 101 iterations; the password is 32 random bytes, so more would buy
// nothing but CPU at every connect.
//
// The salt's 12 bytes are characters of the base64url alphabet (72 random
// bits, plenty for a salt): so the same hash also serves EMQX's built-in
// database, which takes a salt as text (pbkdf2, sha512, 101 iterations,
// dk_length 64, the hash in hex; docs/external-brokers.md).
const (
	mosquittoIterations = 101
	mosquittoSaltLen    = 12
)

// MosquittoHash returns password hashed as Mosquitto's password file
// holds it, with a fresh salt.
func MosquittoHash(password string) string {
	salt := []byte(randomText(mosquittoSaltLen * 3 / 4))
	sum, err := pbkdf2.Key(sha512.New, password, salt, mosquittoIterations, sha512.Size)
	if err != nil {
		panic(err) // only for parameters out of FIPS bounds, which these are not
	}
	return "$7$" + strconv.Itoa(mosquittoIterations) + "$" + base64.StdEncoding.EncodeToString(salt) + "$" + base64.StdEncoding.EncodeToString(sum)
}

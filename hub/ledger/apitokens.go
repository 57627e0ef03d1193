package ledger

// API tokens: the bearer tokens of the hub's HTTP API, each with a role.
//
// A token is "TSA1.<id>.<secret>" (protocol.FormatAPIToken). Its secret is
// given out once, when the token is created; the ledger keeps a salted
// SHA-256 of it — the secret is 32 random bytes, so a slow hash would add
// nothing but latency to every request — and compares in constant time.
// The id is not secret: logs and listings name tokens by it.
//
// When a token was last used is worth knowing (an unused token can go) but
// not a disk write per request: it is written at most once per
// APITokenUseEvery per token.

import (
	"cmp"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tillsync/tillsync/protocol"
)

// bucketAPITokens: token id → JSON apiTokenRec.
var bucketAPITokens = []byte("api_tokens")

// Role is what an API token may do; the hub's HTTP API decides, per
// route, which roles it lets through (see hub/httpapi).
type Role string

// The roles.
const (
	// RoleOperator may do everything.
	RoleOperator Role = "operator"
	// RolePartner reads what concerns its own partner: its stores and
	// terminals, its settlement lines, anonymous statistics. It changes
	// nothing and never sees a member id.
	RolePartner Role = "partner"
	// RoleReadOnly reads everything and changes nothing.
	RoleReadOnly Role = "read-only"
)

// Roles lists the roles.
var Roles = []Role{RoleOperator, RolePartner, RoleReadOnly}

// APITokenUseEvery is how often, at most, a token's LastUsed is written.
const APITokenUseEvery = time.Minute

// APIToken is an API token, without its secret.
type APIToken struct {
	// ID names the token; it is the middle part of the token.
	ID string `json:"id"`
	// Name says, for people, who or what holds the token.
	Name string `json:"name,omitempty"`
	// Role is what the token may do.
	Role Role `json:"role"`
	// Partner is the partner a RolePartner token speaks for; empty for the
	// other roles.
	Partner string `json:"partner,omitempty"`
	// CreatedAt is when the token was made.
	CreatedAt time.Time `json:"created_at"`
	// LastUsed is when the token last authenticated a request, to within
	// APITokenUseEvery; zero when never.
	LastUsed time.Time `json:"last_used,omitzero"`
	// RevokedAt is when the token was revoked; zero while it is valid.
	RevokedAt time.Time `json:"revoked_at,omitzero"`
}

type apiTokenRec struct {
	APIToken
	Salt []byte `json:"salt"`
	Hash []byte `json:"hash"`
}

// CreateAPIToken makes a token with t's Name, Role and Partner, and
// returns it with its ID and CreatedAt set, and its secret — the only
// time the secret is seen. A partner token must name a partner of the
// coalition (CodeUnknownPartner otherwise); the other roles name none.
func (s *BoltStore) CreateAPIToken(t APIToken, now time.Time) (APIToken, []byte, error) {
	if !slices.Contains(Roles, t.Role) {
		return APIToken{}, nil, protocol.Errorf(protocol.CodeMalformed, "role", "%q: want operator, partner or read-only", t.Role)
	}
	if err := checkName("name", t.Name); err != nil {
		return APIToken{}, nil, err
	}
	switch {
	case t.Role == RolePartner && t.Partner == "":
		return APIToken{}, nil, protocol.Errorf(protocol.CodeMissingField, "partner", "a partner token speaks for one partner; name it")
	case t.Role == RolePartner && !protocol.ValidID(t.Partner):
		return APIToken{}, nil, idError("partner", t.Partner)
	case t.Role != RolePartner && t.Partner != "":
		return APIToken{}, nil, protocol.Errorf(protocol.CodeMalformed, "partner", "only a partner token names a partner; the %s role sees every partner", t.Role)
	}
	secret := randomBytes(protocol.APISecretLen)
	rec := apiTokenRec{
		APIToken: APIToken{ID: randomTokenID(9), Name: t.Name, Role: t.Role, Partner: t.Partner, CreatedAt: now.UTC()},
		Salt:     randomBytes(16),
	}
	rec.Hash = passHash(rec.Salt, string(secret))
	err := s.db.Update(func(tx *bolt.Tx) error {
		if t.Role == RolePartner {
			if _, ok := s.reg.Load().partners[t.Partner]; !ok {
				return protocol.Errorf(protocol.CodeUnknownPartner, "partner", "no partner %q in the coalition", t.Partner)
			}
		}
		b := tx.Bucket(bucketAPITokens)
		if b.Get([]byte(rec.ID)) != nil {
			return fmt.Errorf("token id %s drawn twice", rec.ID) // 72 random bits: never
		}
		return putJSON(b, []byte(rec.ID), rec)
	})
	if err != nil {
		return APIToken{}, nil, apiTokenErr("create API token", err)
	}
	return rec.APIToken, secret, nil
}

// AuthenticateAPIToken checks a token's secret and returns the token. An
// unknown id and a wrong secret are both CodeUnauthorized "no such API
// token" (not told apart); a revoked token is CodeUnauthorized saying so.
// Any other error is the ledger's own. It records the use as LastUsed when
// the one recorded is APITokenUseEvery or more before now.
func (s *BoltStore) AuthenticateAPIToken(id string, secret []byte, now time.Time) (APIToken, error) {
	var rec apiTokenRec
	found := false
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAPITokens)
		if b == nil {
			return nil
		}
		v := b.Get([]byte(id))
		if v == nil {
			return nil
		}
		found = true
		return json.Unmarshal(v, &rec)
	})
	if err != nil {
		return APIToken{}, fmt.Errorf("ledger: authenticate API token %s: %w", id, err)
	}
	if !found || subtle.ConstantTimeCompare(passHash(rec.Salt, string(secret)), rec.Hash) != 1 {
		return APIToken{}, protocol.Errorf(protocol.CodeUnauthorized, "token", "no such API token")
	}
	if !rec.RevokedAt.IsZero() {
		return APIToken{}, protocol.Errorf(protocol.CodeUnauthorized, "token", "API token %s was revoked at %s", id, rec.RevokedAt.Format(time.RFC3339))
	}
	if now.Sub(rec.LastUsed) >= APITokenUseEvery && s.claimUse(id, now) {
		if err := s.recordUse(id, now); err != nil {
			// The request is still good: only the bookkeeping failed.
			s.log.Warn("API token use not recorded", "token_id", id, "err", err)
		} else {
			rec.LastUsed = now.UTC()
		}
	}
	return rec.APIToken, nil
}

// claimUse reports whether this caller is the one to record id's use at
// now: concurrent requests of one token write once.
func (s *BoltStore) claimUse(id string, now time.Time) bool {
	s.apiUseMu.Lock()
	defer s.apiUseMu.Unlock()
	if last, ok := s.apiUse[id]; ok && now.Sub(last) < APITokenUseEvery {
		return false
	}
	if s.apiUse == nil {
		s.apiUse = make(map[string]time.Time)
	}
	s.apiUse[id] = now
	return true
}

func (s *BoltStore) recordUse(id string, now time.Time) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAPITokens)
		rec, err := getAPIToken(b, id)
		if err != nil || !now.After(rec.LastUsed) {
			return err
		}
		rec.LastUsed = now.UTC()
		return putJSON(b, []byte(id), rec)
	})
}

// APITokens lists every token, revoked ones too, oldest first.
func (s *BoltStore) APITokens() ([]APIToken, error) {
	out := []APIToken{}
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAPITokens)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var rec apiTokenRec
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("API token %s: %w", k, err)
			}
			out = append(out, rec.APIToken)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("ledger: API tokens: %w", err)
	}
	slices.SortFunc(out, func(a, b APIToken) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

// RevokeAPIToken makes a token invalid for good and returns it. Revoking
// a revoked token changes nothing; an unknown id is CodeNotFound.
func (s *BoltStore) RevokeAPIToken(id string, now time.Time) (APIToken, error) {
	var out APIToken
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAPITokens)
		rec, err := getAPIToken(b, id)
		if err != nil {
			return err
		}
		if rec.RevokedAt.IsZero() {
			rec.RevokedAt = now.UTC()
			if err := putJSON(b, []byte(id), rec); err != nil {
				return err
			}
		}
		out = rec.APIToken
		return nil
	})
	if err != nil {
		return APIToken{}, apiTokenErr("revoke API token "+id, err)
	}
	return out, nil
}

func getAPIToken(b *bolt.Bucket, id string) (apiTokenRec, error) {
	var rec apiTokenRec
	v := b.Get([]byte(id))
	if v == nil {
		return rec, protocol.Errorf(protocol.CodeNotFound, "token", "no API token %q; see apitoken list", id)
	}
	if err := json.Unmarshal(v, &rec); err != nil {
		return rec, fmt.Errorf("API token %s: %w", id, err)
	}
	return rec, nil
}

// apiTokenErr passes a protocol error on as it is and wraps anything else
// with the operation.
func apiTokenErr(op string, err error) error {
	if _, ok := err.(*protocol.Error); ok {
		return err
	}
	return fmt.Errorf("ledger: %s: %w", op, err)
}

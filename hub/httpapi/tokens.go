package httpapi

import (
	"crypto/ed25519"
	"net/http"
	"strconv"
	"time"

	"github.com/tillsync/tillsync/hub/ledger"
	"github.com/tillsync/tillsync/internal/httpx"
	"github.com/tillsync/tillsync/protocol"
)

// MinTokenTTL is the shortest lifetime POST /v1/members/{member}/token
// grants; the longest is protocol.MaxTokenLifetime.
const MinTokenTTL = 10 * time.Second

// MemberToken answers POST /v1/members/{member}/token.
type MemberToken struct {
	// Token is the member token, for the member app to show as a QR code.
	Token string `json:"token"`
	// Member is the member it stands for.
	Member string `json:"member"`
	// ExpiresAt is when tills stop accepting it (give or take their leeway).
	ExpiresAt time.Time `json:"expires_at"`
	// KeyID names the key that signed it (protocol.TokenKeyID).
	KeyID string `json:"key_id"`
}

// TokenKey is one public key in GET /v1/member-token-key.
type TokenKey struct {
	// KeyID is protocol.TokenKeyID of the key: the id tokens carry.
	KeyID string `json:"key_id"`
	// Algorithm is "Ed25519".
	Algorithm string `json:"algorithm"`
	// PublicKey is the key's 32 bytes in standard base64, as
	// protocol.Config.MemberTokenKeys carries it.
	PublicKey string `json:"public_key"`
}

// TokenKeys answers GET /v1/member-token-key.
type TokenKeys struct {
	// Format is the token format the keys sign: "TS1".
	Format string `json:"format"`
	// Keys are the keys tills accept tokens from, newest first; the first
	// signs new tokens.
	Keys []TokenKey `json:"keys"`
	// MaxTTLSeconds is the longest a token may live.
	MaxTTLSeconds int `json:"max_ttl_seconds"`
}

// tokensOff answers when the API has no signing key; false when it has one.
func (a *api) tokensOff(w http.ResponseWriter) bool {
	if a.o.MemberTokenKey == nil {
		httpx.WriteError(w, http.StatusNotFound, protocol.CodeNotFound, "member tokens are not enabled on this hub")
		return true
	}
	return false
}

// mintToken signs a member token for the path's member, living ?ttl= (a Go
// duration such as 90s or 2m, or whole seconds) or MemberTokenTTL. The
// member need not be known to the ledger: a new member's first earn may be
// on a token.
func (a *api) mintToken(w http.ResponseWriter, r *http.Request) {
	if a.tokensOff(w) {
		return
	}
	m, ok := a.member(w, r)
	if !ok {
		return
	}
	ttl := a.o.MemberTokenTTL
	if s := r.URL.Query().Get("ttl"); s != "" {
		d, err := time.ParseDuration(s)
		if n, nerr := strconv.Atoi(s); nerr == nil {
			d, err = time.Duration(n)*time.Second, nil
		}
		if err != nil || d < MinTokenTTL || d > protocol.MaxTokenLifetime {
			httpx.WriteError(w, http.StatusBadRequest, CodeBadRequest, "ttl: must be a duration from "+MinTokenTTL.String()+" to "+protocol.MaxTokenLifetime.String()+", e.g. 2m or 90 (seconds)")
			return
		}
		ttl = d
	}
	var b struct{}
	if !decodeBody(w, r, MaxSmallBody, true, &b) {
		return
	}
	exp := a.o.Clock.Now().Add(ttl).Truncate(time.Second).UTC()
	tok, err := protocol.MintMemberToken(a.o.MemberTokenKey, m, exp, nil)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusCreated, MemberToken{
		Token: tok, Member: m, ExpiresAt: exp,
		KeyID: protocol.TokenKeyID(a.o.MemberTokenKey.Public().(ed25519.PublicKey)),
	})
}

// tokenKeys lists the public keys tills accept member tokens from.
func (a *api) tokenKeys(w http.ResponseWriter, r *http.Request) {
	if a.tokensOff(w) {
		return
	}
	pub := a.o.MemberTokenKey.Public().(ed25519.PublicKey)
	httpx.WriteJSON(w, http.StatusOK, TokenKeys{
		Format:        "TS1",
		Keys:          []TokenKey{{KeyID: protocol.TokenKeyID(pub), Algorithm: "Ed25519", PublicKey: protocol.EncodeTokenKey(pub)}},
		MaxTTLSeconds: int(protocol.MaxTokenLifetime / time.Second),
	})
}

// tokenFlags lists the member tokens accepted at two stores.
func (a *api) tokenFlags(w http.ResponseWriter, r *http.Request) {
	fs, err := a.o.Store.TokenFlags()
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if fs == nil {
		fs = []ledger.TokenRecord{}
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"token_flags": fs})
}

package httpapi_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tillsync/tillsync/hub/httpapi"
	"github.com/tillsync/tillsync/hub/ledger"
	"github.com/tillsync/tillsync/hub/ledger/ledgertest"
	"github.com/tillsync/tillsync/protocol"
)

var hubTokenKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{5}, ed25519.SeedSize))

// mint POSTs a token request and decodes a 201.
func mint(t *testing.T, url string) httpapi.MemberToken {
	t.Helper()
	r := do(t, http.MethodPost, url)
	if r.status != http.StatusCreated || r.ctype != "application/json" {
		t.Fatalf("POST %s: %d %s", url, r.status, r.body)
	}
	var got httpapi.MemberToken
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("decoding %s: %v", r.body, err)
	}
	return got
}

func TestMintMemberToken(t *testing.T) {
	f := newFixture(t, httpapi.Options{MemberTokenKey: hubTokenKey})
	now := f.clock.Now()
	pub := hubTokenKey.Public().(ed25519.PublicKey)
	for _, tc := range []struct {
		name, query string
		ttl         time.Duration
	}{
		{"default lifetime", "", protocol.DefaultTokenTTL},
		{"ttl as a duration", "?ttl=30s", 30 * time.Second},
		{"ttl in seconds", "?ttl=90", 90 * time.Second},
		{"shortest", "?ttl=10s", httpapi.MinTokenTTL},
		{"longest", "?ttl=10m", protocol.MaxTokenLifetime},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := mint(t, f.url+"/v1/members/M1001/token"+tc.query)
			want := now.Add(tc.ttl).Truncate(time.Second)
			if got.Member != "M1001" || !got.ExpiresAt.Equal(want) || got.KeyID != protocol.TokenKeyID(pub) {
				t.Fatalf("answer %+v, want member M1001 expiring at %s", got, want)
			}
			mt, err := protocol.VerifyMemberToken(got.Token, []ed25519.PublicKey{pub}, now, 0)
			if err != nil || mt.Member != "M1001" || !mt.ExpiresAt.Equal(got.ExpiresAt) || mt.KeyID != got.KeyID {
				t.Fatalf("the token verifies as %+v, %v", mt, err)
			}
		})
	}
	// Every token is new: two requests, two nonces.
	a, b := mint(t, f.url+"/v1/members/M1001/token"), mint(t, f.url+"/v1/members/M1001/token")
	if a.Token == b.Token {
		t.Error("two requests minted the same token")
	}
	// A member the ledger has never seen gets one too: the first earn may be on it.
	if got := mint(t, f.url+"/v1/members/new-member/token"); got.Member != "new-member" {
		t.Errorf("a new member: %+v", got)
	}
	// An empty JSON object as the body is fine.
	req, _ := http.NewRequest(http.MethodPost, f.url+"/v1/members/M1001/token", strings.NewReader("{}"))
	authorize(req)
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != http.StatusCreated {
		t.Errorf("POST with {}: %v, %v", res, err)
	} else {
		res.Body.Close()
	}

	for _, tc := range []struct {
		name, path string
		status     int
		code       protocol.Code
	}{
		{"ttl too short", "/v1/members/M1001/token?ttl=9s", 400, "bad_request"},
		{"ttl too long", "/v1/members/M1001/token?ttl=601", 400, "bad_request"},
		{"ttl negative", "/v1/members/M1001/token?ttl=-2m", 400, "bad_request"},
		{"ttl not a duration", "/v1/members/M1001/token?ttl=soon", 400, "bad_request"},
		{"member with a space", "/v1/members/M%201001/token", 400, protocol.CodeInvalidID},
		{"member with a wildcard", "/v1/members/M%2B1/token", 400, protocol.CodeInvalidID},
		{"member too long", "/v1/members/" + strings.Repeat("m", protocol.MaxIDLen+1) + "/token", 400, protocol.CodeInvalidID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkError(t, do(t, http.MethodPost, f.url+tc.path), tc.status, tc.code)
		})
	}
	r := doBody(t, http.MethodPost, f.url+"/v1/members/M1001/token", `{"ttl":"2m"}`)
	checkError(t, r, 400, protocol.CodeMalformed)
	checkError(t, get(t, f.url+"/v1/members/M1001/token"), 405, "method_not_allowed")
}

func doBody(t *testing.T, method, url, body string) response {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	authorize(req)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(res.Body)
	return response{res.StatusCode, res.Header.Get("Content-Type"), b.Bytes()}
}

func TestMemberTokenTTLOption(t *testing.T) {
	f := newFixture(t, httpapi.Options{MemberTokenKey: hubTokenKey, MemberTokenTTL: 5 * time.Minute})
	if got := mint(t, f.url+"/v1/members/M1/token"); !got.ExpiresAt.Equal(f.clock.Now().Add(5 * time.Minute).Truncate(time.Second)) {
		t.Errorf("expires_at %s, want 5 minutes ahead", got.ExpiresAt)
	}
}

func TestMemberTokenKeyAPI(t *testing.T) {
	f := newFixture(t, httpapi.Options{MemberTokenKey: hubTokenKey})
	var got httpapi.TokenKeys
	decodeOK(t, get(t, f.url+"/v1/member-token-key"), &got)
	pub := hubTokenKey.Public().(ed25519.PublicKey)
	want := httpapi.TokenKeys{Format: "TS1", MaxTTLSeconds: 600, Keys: []httpapi.TokenKey{{KeyID: protocol.TokenKeyID(pub), Algorithm: "Ed25519", PublicKey: protocol.EncodeTokenKey(pub)}}}
	if len(got.Keys) != 1 || got.Keys[0] != want.Keys[0] || got.Format != want.Format || got.MaxTTLSeconds != want.MaxTTLSeconds {
		t.Fatalf("keys %+v, want %+v", got, want)
	}
	if bytes.Contains(get(t, f.url+"/v1/member-token-key").body, []byte(base64.StdEncoding.EncodeToString(hubTokenKey.Seed()))) {
		t.Fatal("the answer carries the private key")
	}
	// What the endpoint publishes verifies what the other one mints.
	keys, err := protocol.ParseTokenKeys([]string{got.Keys[0].PublicKey})
	if err != nil {
		t.Fatal(err)
	}
	tok := mint(t, f.url+"/v1/members/M1/token")
	if _, err := protocol.VerifyMemberToken(tok.Token, keys, f.clock.Now(), 0); err != nil {
		t.Fatalf("the published key does not verify a minted token: %v", err)
	}
}

func TestMemberTokensOff(t *testing.T) {
	f := newFixture(t, httpapi.Options{})
	checkError(t, do(t, http.MethodPost, f.url+"/v1/members/M1001/token"), 404, protocol.CodeNotFound)
	checkError(t, get(t, f.url+"/v1/member-token-key"), 404, protocol.CodeNotFound)
}

func TestTokenFlagsAPI(t *testing.T) {
	f := newFixture(t, httpapi.Options{})
	r := get(t, f.url+"/v1/token-flags")
	if r.status != 200 || strings.TrimSpace(string(r.body)) != `{"token_flags":[]}` {
		t.Fatalf("token flags with none: %d %s", r.status, r.body)
	}
	exp := ledgertest.T0.Add(2 * time.Minute)
	for _, store := range []string{"s1", "s2"} {
		if _, _, err := f.store.SeeToken(ledger.TokenSighting{Nonce: "nonce-1", Member: "m1", ExpiresAt: exp, Store: store, Terminal: "t1", At: ledgertest.T0}, ledgertest.T0); err != nil {
			t.Fatal(err)
		}
	}
	var got struct {
		TokenFlags []ledger.TokenRecord `json:"token_flags"`
	}
	decodeOK(t, get(t, f.url+"/v1/token-flags"), &got)
	if len(got.TokenFlags) != 1 || got.TokenFlags[0].Nonce != "nonce-1" || got.TokenFlags[0].First.Store != "s1" ||
		got.TokenFlags[0].Elsewhere == nil || got.TokenFlags[0].Elsewhere.Store != "s2" || got.TokenFlags[0].Member != "m1" {
		t.Fatalf("token flags %+v", got.TokenFlags)
	}
	// The member flags are another list.
	if r := get(t, f.url+"/v1/flags"); strings.TrimSpace(string(r.body)) != `{"flags":[]}` {
		t.Errorf("member flags: %s", r.body)
	}
}

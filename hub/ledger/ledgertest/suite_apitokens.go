package ledgertest

import (
	"bytes"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tillsync/tillsync/hub/ledger"
	"github.com/tillsync/tillsync/protocol"
)

// testAPITokens: tokens are made for a role (a partner token for a partner
// of the coalition), authenticate with their own secret only, record their
// use at most once per APITokenUseEvery, and once revoked stay refused;
// nothing secret is listed.
func testAPITokens(t *testing.T, open func(t *testing.T) ledger.Store) {
	s := open(t)
	Register(t, s, NewTill("s1", "t1", "p1"))
	code := protocol.CodeOf

	for _, c := range []struct {
		name string
		tok  ledger.APIToken
		want protocol.Code
	}{
		{"no role", ledger.APIToken{}, protocol.CodeMalformed},
		{"an unknown role", ledger.APIToken{Role: "admin"}, protocol.CodeMalformed},
		{"a partner token without a partner", ledger.APIToken{Role: ledger.RolePartner}, protocol.CodeMissingField},
		{"a partner token for an unknown partner", ledger.APIToken{Role: ledger.RolePartner, Partner: "p9"}, protocol.CodeUnknownPartner},
		{"a partner token for an invalid id", ledger.APIToken{Role: ledger.RolePartner, Partner: "p/1"}, protocol.CodeInvalidID},
		{"an operator token naming a partner", ledger.APIToken{Role: ledger.RoleOperator, Partner: "p1"}, protocol.CodeMalformed},
		{"a read-only token naming a partner", ledger.APIToken{Role: ledger.RoleReadOnly, Partner: "p1"}, protocol.CodeMalformed},
		{"a name with a line break", ledger.APIToken{Role: ledger.RoleOperator, Name: "a\nb"}, protocol.CodeMalformed},
	} {
		if _, _, err := s.CreateAPIToken(c.tok, T0); code(err) != c.want {
			t.Errorf("%s: %v, want %s", c.name, err, c.want)
		}
	}
	if list, err := s.APITokens(); err != nil || len(list) != 0 {
		t.Fatalf("after refused creations: %+v, %v", list, err)
	}

	op, opSecret, err := s.CreateAPIToken(ledger.APIToken{Role: ledger.RoleOperator, Name: "ops laptop"}, T0)
	if err != nil {
		t.Fatal(err)
	}
	pt, ptSecret, err := s.CreateAPIToken(ledger.APIToken{Role: ledger.RolePartner, Partner: "p1", Name: "p1 reports"}, T0.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	ro, roSecret, err := s.CreateAPIToken(ledger.APIToken{Role: ledger.RoleReadOnly}, T0.Add(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if !protocol.ValidID(op.ID) || op.ID == pt.ID || pt.ID == ro.ID || strings.Contains(op.ID, ".") ||
		len(opSecret) != protocol.APISecretLen || bytes.Equal(opSecret, ptSecret) || bytes.Equal(ptSecret, roSecret) {
		t.Fatalf("tokens %+v %+v %+v", op, pt, ro)
	}
	if want := (ledger.APIToken{ID: op.ID, Name: "ops laptop", Role: ledger.RoleOperator, CreatedAt: T0}); op != want {
		t.Fatalf("created %+v, want %+v", op, want)
	}
	if pt.Role != ledger.RolePartner || pt.Partner != "p1" {
		t.Fatalf("partner token %+v", pt)
	}

	auth := func(id string, secret []byte, now time.Time) (ledger.APIToken, error) {
		t.Helper()
		return s.AuthenticateAPIToken(id, secret, now)
	}
	got, err := auth(pt.ID, ptSecret, T0.Add(time.Minute))
	if err != nil || got.ID != pt.ID || got.Role != ledger.RolePartner || got.Partner != "p1" {
		t.Fatalf("the partner token's own secret: %+v, %v", got, err)
	}
	var unknown string
	for _, c := range []struct {
		name   string
		id     string
		secret []byte
	}{
		{"another token's secret", op.ID, ptSecret},
		{"a wrong secret", op.ID, bytes.Repeat([]byte{1}, protocol.APISecretLen)},
		{"no secret", op.ID, nil},
		{"an unknown id", "nope", opSecret},
		{"an empty id", "", opSecret},
	} {
		_, err := auth(c.id, c.secret, T0.Add(time.Minute))
		if code(err) != protocol.CodeUnauthorized {
			t.Errorf("%s: %v, want %s", c.name, err, protocol.CodeUnauthorized)
			continue
		}
		if unknown == "" {
			unknown = err.Error()
		} else if err.Error() != unknown {
			t.Errorf("%s: %q; an unknown token and a wrong secret must read alike (%q)", c.name, err, unknown)
		}
	}

	// Use is recorded, but at most once per APITokenUseEvery.
	lastUsed := func(id string) time.Time {
		t.Helper()
		list, err := s.APITokens()
		if err != nil {
			t.Fatal(err)
		}
		for _, tk := range list {
			if tk.ID == id {
				return tk.LastUsed
			}
		}
		t.Fatalf("token %s not listed", id)
		return time.Time{}
	}
	if !lastUsed(op.ID).IsZero() {
		t.Fatal("a token never used has a last use")
	}
	t1 := T0.Add(time.Hour)
	if got, err := auth(op.ID, opSecret, t1); err != nil || !got.LastUsed.Equal(t1) {
		t.Fatalf("first use: %+v, %v", got, err)
	}
	if got, err := auth(op.ID, opSecret, t1.Add(ledger.APITokenUseEvery-time.Second)); err != nil || !got.LastUsed.Equal(t1) {
		t.Fatalf("within a minute: %+v, %v", got, err)
	}
	if lu := lastUsed(op.ID); !lu.Equal(t1) {
		t.Fatalf("last used %s after two uses within a minute, want %s", lu, t1)
	}
	t2 := t1.Add(ledger.APITokenUseEvery)
	if _, err := auth(op.ID, opSecret, t2); err != nil {
		t.Fatal(err)
	}
	if lu := lastUsed(op.ID); !lu.Equal(t2) {
		t.Fatalf("last used %s, want %s", lu, t2)
	}
	// Many requests at once: all authenticated, the use recorded.
	t3 := t2.Add(time.Hour)
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, err := s.AuthenticateAPIToken(ro.ID, roSecret, t3); err != nil {
				t.Errorf("concurrent use: %v", err)
			}
		})
	}
	wg.Wait()
	if lu := lastUsed(ro.ID); !lu.Equal(t3) {
		t.Fatalf("last used %s after concurrent use, want %s", lu, t3)
	}

	// Revocation is for good.
	if _, err := s.RevokeAPIToken("nope", t3); code(err) != protocol.CodeNotFound {
		t.Errorf("revoking an unknown token: %v", err)
	}
	rv, err := s.RevokeAPIToken(pt.ID, t3)
	if err != nil || !rv.RevokedAt.Equal(t3) || rv.ID != pt.ID {
		t.Fatalf("revoke: %+v, %v", rv, err)
	}
	if _, err := auth(pt.ID, ptSecret, t3.Add(time.Hour)); code(err) != protocol.CodeUnauthorized || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("a revoked token: %v", err)
	}
	if again, err := s.RevokeAPIToken(pt.ID, t3.Add(time.Hour)); err != nil || !again.RevokedAt.Equal(t3) {
		t.Fatalf("revoking twice: %+v, %v (the first revocation stays)", again, err)
	}
	if _, err := auth(op.ID, opSecret, t3.Add(time.Hour)); err != nil {
		t.Fatalf("another token after a revocation: %v", err)
	}

	list, err := s.APITokens()
	if err != nil || len(list) != 3 || list[0].ID != op.ID || list[1].ID != pt.ID || list[2].ID != ro.ID {
		t.Fatalf("APITokens() = %+v, %v; want the three, oldest first", list, err)
	}
	if !list[1].RevokedAt.Equal(t3) || !list[0].RevokedAt.IsZero() {
		t.Fatalf("listed %+v", list)
	}
	js, _ := json.Marshal(list)
	for _, sec := range [][]byte{opSecret, ptSecret, roSecret} {
		if strings.Contains(string(js), protocol.FormatAPIToken("x", sec)[len("TSA1.x."):]) {
			t.Fatalf("a secret is listed: %s", js)
		}
	}
	if strings.Contains(string(js), "salt") || strings.Contains(string(js), "hash") {
		t.Fatalf("the listing carries the hash: %s", js)
	}
}

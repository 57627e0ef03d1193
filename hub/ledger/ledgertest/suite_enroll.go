package ledgertest

import (
	"bytes"
	"crypto/ed25519"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tillsync/tillsync/hub/ledger"
	"github.com/tillsync/tillsync/protocol"
)

// testEnrollment: a token is issued for a registered terminal only, works
// once, expires, and is replaced by a newer one; enrolling gives the
// terminal credentials and a MAC key that authenticate it, and no other;
// revoking makes them invalid for good; nothing secret is listed; the
// terminal's TerminalAuth and broker account follow each step.
func testEnrollment(t *testing.T, open func(t *testing.T) ledger.Store) {
	s := open(t)
	a := NewTill("s1", "t1", "p1")
	Register(t, s, a)
	if err := s.AddTerminal("s1", "t1", T0); err != nil {
		t.Fatal(err)
	}
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	code := func(err error) protocol.Code { return protocol.CodeOf(err) }

	if _, err := s.IssueEnrollmentToken("s1", "t9", 0, T0); code(err) != protocol.CodeNotFound {
		t.Errorf("token for an unregistered terminal: %v", err)
	}
	if _, err := s.IssueEnrollmentToken("s1", "t1", time.Second, T0); code(err) != protocol.CodeMalformed {
		t.Errorf("token valid for a second: %v", err)
	}
	old, err := s.IssueEnrollmentToken("s1", "t1", 0, T0)
	if err != nil {
		t.Fatal(err)
	}
	if !old.ExpiresAt.Equal(T0.Add(ledger.DefaultEnrollmentTTL)) || len(old.Secret) != 32 || old.ID == "" {
		t.Fatalf("token %+v", old)
	}
	tok, err := s.IssueEnrollmentToken("s1", "t1", time.Hour, T0)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		id     string
		secret []byte
		now    time.Time
		want   protocol.Code
	}{
		{"the replaced token", old.ID, old.Secret, T0, protocol.CodeEnrollmentUsed},
		{"an unknown token", "nope", tok.Secret, T0, protocol.CodeEnrollmentUnknown},
		{"a wrong secret", tok.ID, bytes.Repeat([]byte{1}, 32), T0, protocol.CodeEnrollmentUnknown},
		{"after it expired", tok.ID, tok.Secret, T0.Add(time.Hour), protocol.CodeEnrollmentExpired},
	} {
		if _, err := s.Enroll(c.id, c.secret, pub, c.now); code(err) != c.want {
			t.Errorf("enroll with %s: %v, want %s", c.name, err, c.want)
		}
	}
	if ok, _ := s.AuthenticateTerminal(protocol.AgentClientID("s1", "t1"), []byte("x")); ok || s.Enrolled("s1", "t1") {
		t.Fatal("a terminal authenticated before it enrolled")
	}
	if a := s.TerminalAuth("s1", "t1"); a.Enrolled || a.Revoked || a.MACKey != nil {
		t.Fatalf("TerminalAuth before enrolling: %+v", a)
	}
	checkBrokerUsers(t, s)
	creds, err := s.Enroll(tok.ID, tok.Secret, pub, T0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if creds.Store != "s1" || creds.Terminal != "t1" || creds.Partner != "p1" || creds.Username != protocol.AgentUsername("s1", "t1") || len(creds.Password) < 40 {
		t.Fatalf("credentials %+v", creds)
	}
	if a := s.TerminalAuth("s1", "t1"); !a.Enrolled || a.Revoked || len(a.MACKey) != protocol.MACKeyLen || !bytes.Equal(a.MACKey, creds.MACKey) || a.Generation != 1 {
		t.Fatalf("TerminalAuth once enrolled: %+v (key given out %x)", a, creds.MACKey)
	}
	if a := s.TerminalAuth("s1", "t2"); a.Enrolled || a.MACKey != nil {
		t.Fatalf("another terminal's TerminalAuth: %+v", a)
	}
	checkBrokerUsers(t, s, "s1/t1")
	if _, err := s.Enroll(tok.ID, tok.Secret, pub, T0.Add(time.Minute)); code(err) != protocol.CodeEnrollmentUsed {
		t.Errorf("the token again: %v, want %s", err, protocol.CodeEnrollmentUsed)
	}
	if ok, why := s.AuthenticateTerminal(creds.Username, []byte(creds.Password)); !ok || !s.Enrolled("s1", "t1") {
		t.Fatalf("the enrolled terminal's own credentials refused: %s", why)
	}
	// Tills enrolled before protocol Version 3 have their client id as username.
	if ok, why := s.AuthenticateTerminal(protocol.AgentClientID("s1", "t1"), []byte(creds.Password)); !ok {
		t.Fatalf("the enrolled terminal's password under its client id refused: %s", why)
	}
	for _, c := range []struct{ user, pass string }{
		{creds.Username, creds.Password + "x"},
		{protocol.AgentClientID("s1", "t2"), creds.Password},
		{protocol.AgentUsername("s1", "t2"), creds.Password},
		{"s1", creds.Password},
	} {
		if ok, _ := s.AuthenticateTerminal(c.user, []byte(c.pass)); ok {
			t.Errorf("authenticated %q with the wrong password or name", c.user)
		}
	}
	list, err := s.Enrollments()
	if err != nil || len(list) != 1 || !list[0].EnrolledAt.Equal(T0.Add(time.Minute)) || !bytes.Equal(list[0].PublicKey, pub) || !list[0].TokenExpires.IsZero() {
		t.Fatalf("Enrollments() = %+v, %v", list, err)
	}

	if err := s.RevokeTerminal("s1", "t1", T0.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if ok, why := s.AuthenticateTerminal(creds.Username, []byte(creds.Password)); ok || why != "terminal revoked" {
		t.Fatalf("revoked credentials: ok %v, %s", ok, why)
	}
	if list, _ := s.Enrollments(); len(list) != 1 || !list[0].RevokedAt.Equal(T0.Add(2*time.Minute)) {
		t.Fatalf("after revoke: %+v", list)
	}
	if a := s.TerminalAuth("s1", "t1"); !a.Enrolled || !a.Revoked || a.MACKey != nil || a.Generation != 1 {
		t.Fatalf("TerminalAuth once revoked: %+v", a)
	}
	checkBrokerUsers(t, s)
	// Enrolling again takes a new token, and new credentials.
	again, err := s.IssueEnrollmentToken("s1", "t1", 0, T0.Add(3*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := s.Enroll(again.ID, again.Secret, pub, T0.Add(4*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if fresh.Password == creds.Password {
		t.Fatal("re-enrolling gave the old password")
	}
	if ok, _ := s.AuthenticateTerminal(creds.Username, []byte(creds.Password)); ok {
		t.Fatal("the revoked password works again after re-enrolling")
	}
	if ok, why := s.AuthenticateTerminal(fresh.Username, []byte(fresh.Password)); !ok {
		t.Fatalf("the new credentials: %s", why)
	}
	if a := s.TerminalAuth("s1", "t1"); !a.Enrolled || a.Revoked || !bytes.Equal(a.MACKey, fresh.MACKey) || bytes.Equal(a.MACKey, creds.MACKey) || a.Generation != 2 {
		t.Fatalf("TerminalAuth once enrolled again: %+v", a)
	}
	checkBrokerUsers(t, s, "s1/t1")
}

// checkBrokerUsers checks that BrokerUsers lists exactly the terminals
// named ("store/terminal"), each with its username and a Mosquitto hash.
func checkBrokerUsers(t *testing.T, s ledger.Store, want ...string) {
	t.Helper()
	users, err := s.BrokerUsers()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, u := range users {
		got = append(got, u.Store+"/"+u.Terminal)
		if u.Username != protocol.AgentUsername(u.Store, u.Terminal) || !strings.HasPrefix(u.MosquittoHash, "$7$101$") || len(strings.Split(u.MosquittoHash, "$")) != 5 {
			t.Errorf("broker user %+v", u)
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("BrokerUsers: %v, want %v", got, want)
	}
}

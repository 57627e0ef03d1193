//go:build unix

package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tillsync/tillsync/protocol"
)

// An operator's first session: seed the coalition into a running hub, look
// at it, add a campaign, take a settlement report, stop the hub, compact
// and verify its ledger file.
func TestAdminSession(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p, addr := startHub(t, dir)
	hub := "http://" + addr
	token := operatorTokenFile(dir)
	admin := func(args ...string) string {
		t.Helper()
		return run(t, append(args, "--hub", hub, "--token-file", token)...).OK(t)
	}

	out := admin("seed", demoSeed(t))
	contains(t, "seed", out, "3 partners", "5 stores", "7 terminals", "3 rule versions")
	out = admin("rules", "show", "--partner", "greencross")
	contains(t, "rules show", out, "1 rule version, version 1 in force", "1 point per 1.00 EUR, rounded down", "beauty x2", "rx x0", "4006381333931 x3", "xmas-double")
	out = admin("seed", demoSeed(t))
	contains(t, "seed again", out, "nothing changed")

	out = admin("partner", "list")
	contains(t, "partner list", out, "PARTNER", "greencross", "GreenCross Pharmacy", "bean-bar", "roadfuel")
	var partners struct {
		Partners []struct {
			ID, Name string
		} `json:"partners"`
	}
	if err := json.Unmarshal([]byte(admin("partner", "list", "--json")), &partners); err != nil || len(partners.Partners) != 3 {
		t.Errorf("partner list --json: %+v, %v", partners, err)
	}

	out = admin("store", "list")
	contains(t, "store list", out, "gc-berlin-01", "greencross", "GreenCross Berlin Mitte", "rf-a7-south", "bb-central")
	if n := strings.Count(strings.TrimSpace(out), "\n"); n != 5 {
		t.Errorf("store list: %d lines below the header, want 5:\n%s", n, out)
	}
	admin("store", "add", "gc-munich-01", "--partner", "greencross", "--name", "GreenCross Munich")
	admin("terminal", "add", "--store", "gc-munich-01", "--terminal", "till-1")
	out = admin("terminal", "list", "--store", "gc-munich-01")
	contains(t, "terminal list", out, "gc-munich-01", "till-1", "never")

	out = admin("coalition", "show")
	contains(t, "coalition show", out, "Demo Coalition", "EUR", "0.01", "24 months")
	out = admin("coalition", "set", "--hold-minutes", "20")
	contains(t, "coalition set", out, "20 minutes", "Demo Coalition", "0.01") // the rest kept

	out = admin("campaign", "add", "--partner", "greencross", "--id", "black-friday", "--name", "Black Friday",
		"--from", "2026-11-27", "--to", "2026-11-30T00:00:00Z", "--bonus", "50", "--min-amount", "2000")
	contains(t, "campaign add", out, "black-friday", "greencross", "as version")
	version := strings.Fields(strings.SplitAfter(out, "as version ")[1])[0] // "2,"
	out = admin("rules", "show", "--partner", "greencross")
	contains(t, "rules show after the campaign", out, "version "+strings.TrimSuffix(version, ",")+" in force",
		"black-friday: +50 points from 20.00 EUR, 2026-11-27 00:00:00Z to 2026-11-30 00:00:00Z (Black Friday)", "xmas-double", "superseded")

	// An empty ledger settles to zero for every partner.
	out = admin("settlement", "--from", "2026-11-01", "--to", "2026-12-01", "--csv")
	want := "partner,restates,issued,redeemed,expired,issued_value,redeemed_value,net\n" +
		"bean-bar,,0,0,0,0.00,0.00,0.00\n" +
		"greencross,,0,0,0,0.00,0.00,0.00\n" +
		"roadfuel,,0,0,0,0.00,0.00,0.00\n" +
		"TOTAL,,0,0,0,0.00,0.00,0.00\n"
	if out != want {
		t.Errorf("settlement --csv:\n%s\nwant:\n%s", out, want)
	}
	out = admin("settlement", "--from", "2026-11-01", "--to", "2026-12-01")
	contains(t, "settlement", out, "greencross", "TOTAL", "0.00 EUR", "NET")

	out = admin("member", "show", "M1001")
	contains(t, "member show", out, "M1001", "not known")
	contains(t, "flags", admin("flags"), "No member owes points", "No member token was accepted at two stores")
	var flags map[string]json.RawMessage
	if err := json.Unmarshal([]byte(admin("flags", "--json")), &flags); err != nil || string(flags["flags"]) != "[]" || string(flags["token_flags"]) != "[]" {
		t.Errorf("flags --json: %v, %v", flags, err)
	}

	// A member QR token: the token alone on a line, for scripts.
	out = admin("member", "token", "M1001")
	if tok := strings.TrimSuffix(out, "\n"); strings.Count(out, "\n") != 1 || !protocol.IsMemberToken(tok) {
		t.Errorf("member token printed %q, want one token on one line", out)
	}
	var minted struct {
		Token, Member string
		ExpiresAt     time.Time `json:"expires_at"`
	}
	if err := json.Unmarshal([]byte(admin("member", "token", "M1001", "--ttl", "5m", "--json")), &minted); err != nil ||
		minted.Member != "M1001" || !protocol.IsMemberToken(minted.Token) || time.Until(minted.ExpiresAt) > 5*time.Minute || time.Until(minted.ExpiresAt) < 4*time.Minute {
		t.Errorf("member token --json: %+v, %v", minted, err)
	}
	contains(t, "period list", admin("period", "list"), "No closed periods")
	contains(t, "expire", admin("expire"), "Nothing to expire")
	out = admin("verify")
	contains(t, "verify", out, "entries checked", "chain head", "OK")

	// Refusals from the hub: exit 1, one line with the hub's code.
	run(t, "rules", "show", "--partner", "nobody", "--hub", hub, "--token-file", token).OneLine(t, 1, "unknown_partner", "nobody")
	run(t, "store", "add", "s9", "--partner", "nobody", "--hub", hub, "--token-file", token).OneLine(t, 1, "unknown_partner")
	run(t, "campaign", "add", "--partner", "greencross", "--id", "black-friday", "--from", "2026-12-01", "--to", "2026-12-02", "--bonus", "1", "--hub", hub, "--token-file", token).
		OneLine(t, 1, "conflict", "black-friday")
	run(t, "coalition", "set", "--currency", "USD", "--hub", hub, "--token-file", token).OneLine(t, 1, "conflict", "currency")
	run(t, "expire", "--as-of", "2099-01-01", "--hub", hub, "--token-file", token).OneLine(t, 1, "invalid_time", "future")
	// The ledger file is the running hub's.
	run(t, "verify", "--data-dir", dir).OneLine(t, 1, "in use", "stop the hub or run verify against it with --hub")
	run(t, "compact", "--data-dir", dir).OneLine(t, 1, "in use by a running hub", "stop the hub first")

	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.ExitCode(t, 5*time.Second); code != 0 {
		t.Fatalf("hub: exit %d after SIGTERM; output:\n%s", code, p.Output())
	}
	contains(t, "compact", run(t, "compact", "--data-dir", dir).OK(t), "Compacted", "passes verify")
	out = run(t, "verify", "--data-dir", dir).OK(t)
	contains(t, "verify --data-dir", out, "entries checked", "chain head", "OK")
	var v struct {
		OK      bool `json:"ok"`
		Entries int  `json:"entries"`
	}
	if err := json.Unmarshal([]byte(run(t, "verify", "--data-dir", dir, "--json").OK(t)), &v); err != nil || !v.OK {
		t.Errorf("verify --data-dir --json: %+v, %v", v, err)
	}
	// With the hub stopped, the API commands say so.
	run(t, "partner", "list", "--hub", hub).OneLine(t, 1, "cannot reach the hub", addr)
}

// serve --seed loads the seed before the hub starts; TILLSYNC_HUB points
// the admin commands at it.
func TestServeSeed(t *testing.T) {
	dir := t.TempDir()
	p, addr := startHub(t, dir, "--seed", demoSeed(t))
	t.Setenv(hubEnv, addr)
	t.Setenv(tokenEnv, readFileT(t, operatorTokenFile(dir)))
	out := run(t, "partner", "list").OK(t)
	contains(t, "partner list", out, "greencross", "bean-bar", "roadfuel")
	contains(t, "hub log", p.Output(), "seed loaded", "partners=3", "store configs published")
	p.Signal(syscall.SIGTERM)
	if code := p.ExitCode(t, 5*time.Second); code != 0 {
		t.Fatalf("hub: exit %d; output:\n%s", code, p.Output())
	}
	// The same seed at the next start changes nothing.
	p, _ = startHub(t, dir, "--seed", demoSeed(t))
	p.WaitFor(t, 5*time.Second, "the seed to be loaded", func() bool { return strings.Contains(p.Output(), "seed loaded") })
	contains(t, "hub log at the second start", p.Output(), "partners=0 stores=0 terminals=0 rules=0")
}

// TestTerminalEnrollmentCommands: terminal add prints a one-time token
// (and --no-token none), terminal token replaces it, terminal revoke
// revokes; mistakes get one line each.
func TestTerminalEnrollmentCommands(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p, addr := startHub(t, dir)
	hub := "http://" + addr
	// --data-dir: the commands send the operator token the hub keeps there.
	admin := func(args ...string) string {
		t.Helper()
		return run(t, append(args, "--hub", hub, "--data-dir", dir)...).OK(t)
	}
	admin("seed", demoSeed(t))
	out := admin("terminal", "add", "--store", "gc-berlin-01", "--terminal", "till-7", "--expires-in", "2h")
	contains(t, "terminal add", out, "Terminal till-7 of store gc-berlin-01 registered", "valid until", "TSE1.", "tillsync-agent enroll")
	first := strings.Fields(out[strings.Index(out, "TSE1."):])[0]
	if _, _, _, err := protocol.ParseEnrollmentToken(first); err != nil {
		t.Fatalf("terminal add printed %q: %v", first, err)
	}
	out = admin("terminal", "add", "--store", "gc-berlin-01", "--terminal", "till-8", "--no-token")
	if strings.Contains(out, "TSE1.") {
		t.Errorf("terminal add --no-token printed a token:\n%s", out)
	}
	out = admin("terminal", "token", "--store", "gc-berlin-01", "--terminal", "till-7")
	second := strings.Fields(out[strings.Index(out, "TSE1."):])[0]
	if second == first {
		t.Error("terminal token printed the same token")
	}
	list := func(term string) string {
		t.Helper()
		for _, l := range strings.Split(admin("terminal", "list", "--store", "gc-berlin-01"), "\n") {
			if f := strings.Fields(l); len(f) > 1 && f[1] == term {
				return l
			}
		}
		t.Fatalf("terminal list does not show %s", term)
		return ""
	}
	contains(t, "terminal list, a token pending", list("till-7"), "token until")
	contains(t, "terminal list, no token", list("till-8"), " no ")
	pub, _, _ := ed25519.GenerateKey(nil)
	body, _ := json.Marshal(map[string]string{"token": second, "public_key": base64.StdEncoding.EncodeToString(pub)})
	resp, err := http.Post(hub+"/v1/enroll", "application/json", bytes.NewReader(body))
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("enroll with the token terminal token printed: %v %v", resp.Status, err)
	}
	resp.Body.Close()
	contains(t, "terminal list, enrolled", list("till-7"), "yes, ")
	contains(t, "terminal revoke", admin("terminal", "revoke", "--store", "gc-berlin-01", "--terminal", "till-7"), "revoked")
	contains(t, "terminal list, revoked", list("till-7"), "revoked ")
	run(t, "terminal", "revoke", "--store", "gc-berlin-01", "--terminal", "till-8", "--hub", hub, "--data-dir", dir).OneLine(t, 1, "not_found", "till-8")
	run(t, "terminal", "token", "--store", "gc-berlin-01", "--terminal", "nope", "--hub", hub, "--data-dir", dir).OneLine(t, 1, "not_found", "terminal add")
	run(t, "terminal", "token", "--store", "gc-berlin-01", "--hub", hub, "--data-dir", dir).OneLine(t, 2, "--store and --terminal")
	run(t, "terminal", "add", "--store", "gc-berlin-01", "--terminal", "till-9", "--expires-in", "1s", "--hub", hub, "--data-dir", dir).OneLine(t, 1, "expires_in")
	p.Signal(syscall.SIGTERM)
	p.ExitCode(t, 5*time.Second)
}

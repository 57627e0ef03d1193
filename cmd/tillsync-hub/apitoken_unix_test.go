//go:build unix

package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tillsync/tillsync/internal/cli"
	"github.com/tillsync/tillsync/protocol"
)

// printedToken finds the API token apitoken add printed.
func printedToken(t *testing.T, out string) (token, id string) {
	t.Helper()
	i := strings.Index(out, protocol.APITokenPrefix)
	if i < 0 {
		t.Fatalf("no token printed:\n%s", out)
	}
	token = strings.Fields(out[i:])[0]
	id, _, err := protocol.ParseAPIToken(token)
	if err != nil {
		t.Fatalf("printed %q: %v", token, err)
	}
	return token, id
}

// writeToken keeps a token in a file for --token-file.
func writeToken(t *testing.T, token string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "api.token")
	if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func secretOf(token string) string { return token[strings.LastIndex(token, ".")+1:] }

// TestAPITokenCommands: apitoken add prints a token once, list shows every
// token without secrets, revoke refuses it from then on; a read-only token
// reads and changes nothing, a partner's sees its own stores and settlement
// lines only; refusals are one line naming the token by id.
func TestAPITokenCommands(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p, addr := startHub(t, dir)
	hub := "http://" + addr
	admin := func(args ...string) string {
		t.Helper()
		return run(t, append(args, "--hub", hub, "--data-dir", dir)...).OK(t)
	}
	as := func(tokenFile string, args ...string) string {
		t.Helper()
		return run(t, append(args, "--hub", hub, "--token-file", tokenFile)...).OK(t)
	}
	admin("seed", demoSeed(t))
	opToken := readFileT(t, operatorTokenFile(dir))
	opID, _, _ := protocol.ParseAPIToken(opToken)

	out := admin("apitoken", "add", "--role", "read-only", "--name", "dashboard")
	contains(t, "apitoken add", out, "role read-only", "(dashboard)", "shown this once", "--token-file", "TILLSYNC_HUB_TOKEN")
	roToken, roID := printedToken(t, out)
	out = admin("apitoken", "add", "--role", "partner", "--partner", "greencross", "--name", "GreenCross finance")
	contains(t, "apitoken add --role partner", out, "role partner of partner greencross")
	gcToken, gcID := printedToken(t, out)
	var made struct {
		Token    string `json:"token"`
		APIToken struct {
			ID, Role string
		} `json:"api_token"`
	}
	if err := json.Unmarshal([]byte(admin("apitoken", "add", "--role", "operator", "--json")), &made); err != nil || made.APIToken.Role != "operator" {
		t.Fatalf("apitoken add --json: %+v, %v", made, err)
	}
	run(t, "apitoken", "add", "--role", "partner", "--partner", "nobody", "--hub", hub, "--data-dir", dir).OneLine(t, 1, "unknown_partner", "nobody")

	list := admin("apitoken", "list")
	contains(t, "apitoken list", list, "ID", "NAME", "ROLE", "PARTNER", "CREATED", "LAST USED", "REVOKED",
		opID, "operator.token (made by the hub)", roID, "dashboard", "read-only", gcID, "greencross", "GreenCross finance", made.APIToken.ID)
	for _, tok := range []string{opToken, roToken, gcToken, made.Token} {
		if strings.Contains(list, secretOf(tok)) {
			t.Fatalf("apitoken list shows a secret:\n%s", list)
		}
	}
	for _, l := range strings.Split(list, "\n") {
		if strings.HasPrefix(l, opID) && strings.Contains(l, "never") {
			t.Errorf("the operator token in use shows as never used: %s", l)
		}
		if strings.HasPrefix(l, roID) && !strings.Contains(l, "never") {
			t.Errorf("the read-only token shows a use: %s", l)
		}
	}

	// The read-only token reads and changes nothing.
	ro, gc := writeToken(t, roToken), writeToken(t, gcToken)
	contains(t, "partner list, read-only", as(ro, "partner", "list"), "greencross", "bean-bar")
	for _, args := range [][]string{
		{"partner", "add", "p9"},
		{"apitoken", "list"},
		{"terminal", "add", "--store", "gc-berlin-01", "--terminal", "till-9"},
	} {
		line := run(t, append(args, "--hub", hub, "--token-file", ro)...).OneLine(t, 1, "forbidden", "read-only", roID, "--token-file "+ro, "--token-file FILE")
		if strings.Contains(line, secretOf(roToken)) {
			t.Fatalf("the refusal shows the secret: %s", line)
		}
	}
	if strings.Contains(as(ro, "partner", "list"), "p9") {
		t.Error("a refused partner add recorded the partner")
	}

	// The partner's token: its own stores and settlement line.
	stores := as(gc, "store", "list")
	contains(t, "store list, partner", stores, "gc-berlin-01", "gc-hamburg-01")
	if strings.Contains(stores, "bb-central") || strings.Contains(stores, "rf-a7") {
		t.Errorf("a greencross token lists other partners' stores:\n%s", stores)
	}
	if csv := as(gc, "settlement", "--from", "2026-11-01", "--to", "2026-12-01", "--csv"); strings.Count(csv, "\n") != 3 ||
		!strings.Contains(csv, "\ngreencross,") || !strings.Contains(csv, "\nTOTAL,") {
		t.Errorf("settlement --csv with a greencross token:\n%s", csv)
	}
	run(t, "member", "show", "M1001", "--hub", hub, "--token-file", gc).OneLine(t, 1, "forbidden", gcID)
	run(t, "rules", "show", "--partner", "bean-bar", "--hub", hub, "--token-file", gc).OneLine(t, 1, "forbidden", "greencross", "bean-bar")
	contains(t, "rules show, own", as(gc, "rules", "show", "--partner", "greencross"), "rule version")

	// Revoked: refused from then on.
	contains(t, "apitoken revoke", admin("apitoken", "revoke", roID), roID, "revoked", "dashboard")
	run(t, "partner", "list", "--hub", hub, "--token-file", ro).OneLine(t, 1, "unauthorized", "revoked", roID, "--token-file")
	run(t, "apitoken", "revoke", "nope", "--hub", hub, "--data-dir", dir).OneLine(t, 1, "not_found", "nope")
	list = admin("apitoken", "list")
	for _, l := range strings.Split(list, "\n") {
		if strings.HasPrefix(l, roID) && strings.HasSuffix(strings.TrimSpace(l), " -") {
			t.Errorf("the revoked token is not shown revoked: %s", l)
		}
	}
	if strings.Contains(p.Output(), secretOf(opToken)) || strings.Contains(p.Output(), secretOf(roToken)) || strings.Contains(p.Output(), secretOf(gcToken)) {
		t.Errorf("the hub logged a token's secret:\n%s", p.Output())
	}
	p.Signal(syscall.SIGTERM)
	p.ExitCode(t, 5*time.Second)
}

// TestCommandsFindTheToken: without --token, $TILLSYNC_HUB_TOKEN or
// --token-file the admin commands send the operator token in --data-dir
// (or the default data dir); with none to be found, the hub's refusal says
// where they looked and how to give one.
func TestCommandsFindTheToken(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p, addr := startHub(t, dir)
	hub := "http://" + addr
	if fi, err := os.Stat(operatorTokenFile(dir)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("operator.token: %v, %v; want mode 0600", fi.Mode().Perm(), err)
	}
	opID, _, _ := protocol.ParseAPIToken(readFileT(t, operatorTokenFile(dir)))
	// The log reaches us through a pipe: the line may trail the API's first answer.
	p.WaitFor(t, 10*time.Second, "the token's line in the hub's log", func() bool { return strings.Contains(p.Output(), "operator API token created") })
	contains(t, "the hub's log", p.Output(), "operator API token created", operatorTokenFile(dir), "token_id="+opID)
	if strings.Contains(p.Output(), secretOf(readFileT(t, operatorTokenFile(dir)))) {
		t.Fatalf("the hub logged the operator token:\n%s", p.Output())
	}

	run(t, "partner", "list", "--hub", hub, "--data-dir", dir).OK(t)
	other := t.TempDir()
	run(t, "partner", "list", "--hub", hub, "--data-dir", other).
		OneLine(t, 1, "unauthorized", "none was given", filepath.Join(other, "operator.token"), "no such file", "--token-file", "TILLSYNC_HUB_TOKEN", "--data-dir")
	if def := filepath.Join(cli.DefaultDataDir("hub"), "operator.token"); !exists(def) {
		run(t, "store", "list", "--hub", hub).OneLine(t, 1, "unauthorized", "none was given", def)
	}
	run(t, "partner", "list", "--hub", hub, "--token-file", filepath.Join(other, "missing")).OneLine(t, 1, "--token-file", "missing", "no such file")
	bad := writeToken(t, "not a token")
	line := run(t, "partner", "list", "--hub", hub, "--token-file", bad).OneLine(t, 1, "--token-file "+bad, "not one")
	if strings.Contains(line, "not a token") {
		t.Errorf("the message quotes the file's content: %s", line)
	}
	// An unknown token: the hub refuses it, the line names it by id.
	unknown := protocol.FormatAPIToken("unknownid", make([]byte, protocol.APISecretLen))
	run(t, "partner", "list", "--hub", hub, "--token", unknown).OneLine(t, 1, "unauthorized", "unknownid", "from --token")
	p.Signal(syscall.SIGTERM)
	p.ExitCode(t, 5*time.Second)
}

func exists(path string) bool { _, err := os.Stat(path); return err == nil }

// TestTokenPrecedence: --token over $TILLSYNC_HUB_TOKEN over --token-file
// over the data dir's operator.token.
func TestTokenPrecedence(t *testing.T) {
	dir := t.TempDir()
	p, addr := startHub(t, dir)
	hub := "http://" + addr
	op := readFileT(t, operatorTokenFile(dir))
	ro, roID := printedToken(t, run(t, "apitoken", "add", "--role", "read-only", "--hub", hub, "--data-dir", dir).OK(t))
	opFile, roFile := writeToken(t, op), writeToken(t, ro)
	write := func(args ...string) []string {
		return append([]string{"partner", "add", "p" + strings.Repeat("x", len(args)), "--hub", hub, "--data-dir", dir}, args...)
	}
	// --token-file before the data dir.
	run(t, write("--token-file", roFile)...).OneLine(t, 1, "forbidden", roID, "--token-file "+roFile)
	// The environment before --token-file.
	t.Setenv(tokenEnv, ro)
	run(t, write("--token-file", opFile)...).OneLine(t, 1, "forbidden", roID, "$"+tokenEnv)
	// --token before the environment.
	run(t, write("--token", op)...).OK(t)
	t.Setenv(tokenEnv, op)
	run(t, write()...).OK(t)
	p.Signal(syscall.SIGTERM)
	p.ExitCode(t, 5*time.Second)
}

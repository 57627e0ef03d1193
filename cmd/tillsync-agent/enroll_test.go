package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tillsync/tillsync/agent"
	"github.com/tillsync/tillsync/hub/httpapi"
	"github.com/tillsync/tillsync/hub/ledger"
	"github.com/tillsync/tillsync/hub/ledger/ledgertest"
	"github.com/tillsync/tillsync/hub/pki"
	"github.com/tillsync/tillsync/protocol"
)

// TestEnrollCommand: enroll over https with the hub's real API, pinning
// the hub's certificate to the token's CA fingerprint; the credentials,
// key and CA land owner-only in the data dir; a token naming another CA
// is refused before anything is sent, and an enrolled data dir is not
// enrolled again by mistake.
func TestEnrollCommand(t *testing.T) {
	store, err := ledger.OpenBolt(filepath.Join(t.TempDir(), "ledger.db"), ledger.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ledgertest.Register(t, store, ledgertest.NewTill("s1", "t1", "p1"))
	if err := store.AddTerminal("s1", "t1", time.Now()); err != nil {
		t.Fatal(err)
	}
	p, err := pki.LoadOrCreate(filepath.Join(t.TempDir(), "pki"), pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- httpapi.Serve(ctx, tls.NewListener(l, p.ServerTLSConfig()), httpapi.Options{Store: store, CAPEM: p.CACertPEM(), CAFingerprint: p.CAFingerprint(), MQTTScheme: "tls", MQTTPort: "8883"})
	}()
	defer func() { cancel(); <-done }()
	hub := "https://" + l.Addr().String()
	issue := func() ledger.EnrollmentToken {
		tok, err := store.IssueEnrollmentToken("s1", "t1", time.Hour, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}

	other, err := pki.LoadOrCreate(filepath.Join(t.TempDir(), "other"), pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tok := issue()
	dir := filepath.Join(t.TempDir(), "agent")
	run(t, "enroll", "--hub", hub, "--data-dir", dir, "--token", protocol.FormatEnrollmentToken(tok.ID, tok.Secret, other.CAFingerprint())).
		OneLine(t, 1, "not from the CA the enrollment token names")
	if _, found, _ := agent.LoadEnrollment(dir); found {
		t.Fatal("a refused enrollment left credentials")
	}

	out := run(t, "enroll", "--hub", hub, "--data-dir", dir, "--token", protocol.FormatEnrollmentToken(tok.ID, tok.Secret, p.CAFingerprint())).OK(t)
	if !strings.Contains(out, "Enrolled as store s1, terminal t1 (partner p1)") || !strings.Contains(out, "tillsync-agent run --data-dir "+dir+"\n") {
		t.Errorf("enroll said:\n%s", out)
	}
	e, found, err := agent.LoadEnrollment(dir)
	// The hub tells the till its broker: the host the till reached it by, at the MQTT port.
	if err != nil || !found || e.Username != protocol.AgentUsername("s1", "t1") || e.Password == "" || e.MQTT != "tls://127.0.0.1:8883" {
		t.Fatalf("enrollment kept: %+v %v %v", e, found, err)
	}
	if strings.Contains(out, e.Password) || strings.Contains(out, e.MACKey) {
		t.Error("enroll printed the password or the MAC key")
	}
	if key, err := e.Key(); err != nil || !bytes.Equal(key, store.TerminalAuth("s1", "t1").MACKey) {
		t.Fatalf("the MAC key kept is not the hub's: %x, %v", key, err)
	}
	if ok, why := store.AuthenticateTerminal(e.Username, []byte(e.Password)); !ok {
		t.Fatalf("the kept credentials do not authenticate: %s", why)
	}
	ca, err := os.ReadFile(filepath.Join(dir, agent.HubCAFile))
	if err != nil || string(ca) != string(p.CACertPEM()) {
		t.Errorf("hub CA kept: %v", err)
	}
	if runtime.GOOS != "windows" {
		for _, f := range []string{agent.EnrollmentFile, agent.TerminalKeyFile, agent.HubCAFile} {
			if fi, err := os.Stat(filepath.Join(dir, f)); err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("%s: mode %v, %v; want 0600", f, fi.Mode().Perm(), err)
			}
		}
	}
	tok = issue()
	run(t, "enroll", "--hub", hub, "--data-dir", dir, "--token", protocol.FormatEnrollmentToken(tok.ID, tok.Secret, p.CAFingerprint())).
		OneLine(t, 1, "already enrolled", "--force")
	run(t, "enroll", "--hub", hub, "--data-dir", t.TempDir(), "--token", "TSE1.nonsense").OneLine(t, 2, "--token")
	// Plain http to another machine would carry the token and the
	// password in clear: refused before anything is sent.
	tok = issue()
	plainDir := t.TempDir()
	run(t, "enroll", "--hub", "http://192.0.2.7:8080", "--data-dir", plainDir, "--token", protocol.FormatEnrollmentToken(tok.ID, tok.Secret, p.CAFingerprint())).
		OneLine(t, 2, "in clear", "https://", "--hub-plain")
	if _, found, _ := agent.LoadEnrollment(plainDir); found {
		t.Error("a refused plain enrollment left credentials")
	}
}

package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tillsync/tillsync/hub/broker"
	"github.com/tillsync/tillsync/hub/pki"
)

// TestPingOverTLS: ping reaches a hub serving MQTT over TLS when given the
// hub's CA, and says why when it trusts another CA.
func TestPingOverTLS(t *testing.T) {
	p, err := pki.LoadOrCreate(filepath.Join(t.TempDir(), "pki"), pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b, err := broker.StartEmbedded(broker.EmbeddedOptions{Listener: l, TLS: p.ServerTLSConfig()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	caFile := filepath.Join(t.TempDir(), "hub-ca.pem")
	if err := os.WriteFile(caFile, p.CACertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	hub := "tls://" + l.Addr().String()
	if out := run(t, "ping", "--hub", hub, "--hub-ca", caFile).OK(t); !strings.Contains(out, "TLS, certificate verified") {
		t.Errorf("ping over TLS said %q", out)
	}
	run(t, "ping", "--hub", hub, "--timeout", "2s").OneLine(t, 1, "refused at TLS", "unknown authority", "--hub-ca")
	run(t, "ping", "--hub", "tcp://hub.example.com:1883").OneLine(t, 2, "plain MQTT", "--hub-plain")

	other, err := pki.LoadOrCreate(filepath.Join(t.TempDir(), "other"), pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	otherFile := filepath.Join(t.TempDir(), "other-ca.pem")
	if err := os.WriteFile(otherFile, other.CACertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, "ping", "--hub", hub, "--hub-ca", otherFile, "--timeout", "2s").OneLine(t, 1, "refused at TLS", "unknown authority", "give the till the hub's CA")
	run(t, "ping", "--hub", hub, "--hub-ca", caFile+".missing").OneLine(t, 1, "--hub-ca", "cannot read")
}

// TestPingEnrollmentRequired: a hub that takes enrolled tills only refuses
// ping's anonymous client after the TLS handshake; ping reports the hub
// reachable and trusted, and says so.
func TestPingEnrollmentRequired(t *testing.T) {
	p, err := pki.LoadOrCreate(filepath.Join(t.TempDir(), "pki"), pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b, err := broker.StartEmbedded(broker.EmbeddedOptions{Listener: l, TLS: p.ServerTLSConfig(), RequireEnrollment: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	caFile := filepath.Join(t.TempDir(), "hub-ca.pem")
	if err := os.WriteFile(caFile, p.CACertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	out := run(t, "ping", "--hub", "tls://"+l.Addr().String(), "--hub-ca", caFile).OK(t)
	if !strings.Contains(out, "TLS, certificate verified") || !strings.Contains(out, "enrolled tills only") {
		t.Errorf("ping said %q", out)
	}
	if b.Refused() != 1 {
		t.Errorf("the broker refused %d clients, want ping's 1", b.Refused())
	}
}

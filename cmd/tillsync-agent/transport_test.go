package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tillsync/tillsync/hub/pki"
)

// TestConfigCheckTransport: config check says in one line how the agent
// reaches the hub and whom it trusts, refuses plain MQTT to another
// machine without hub_plain, and points at the hub's CA.
func TestConfigCheckTransport(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := writeConfig(t, "data_dir: "+dir+"\nstore: gc-berlin-01\nterminal: till-1\npartner: greencross\n")
	check := func(args ...string) string {
		return run(t, append([]string{"config", "check", "--config", file}, args...)...).OK(t)
	}
	out := check("--hub", "tcp://127.0.0.1:1883")
	if !strings.Contains(out, "transport plain MQTT to a hub on this machine") {
		t.Errorf("plain on loopback:\n%s", out)
	}
	r := run(t, "config", "check", "--config", file)
	if r.Code != 0 || !strings.Contains(r.Stderr, "warning: hub_ca: not set, and no hub-ca.pem in the data dir") || !strings.Contains(r.Stdout, "system's root CAs") {
		t.Errorf("the default tls:// hub without a CA: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	p, err := pki.LoadOrCreate(t.TempDir(), pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(dir, "hub-ca.pem")
	if err := os.WriteFile(ca, p.CACertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	out = check()
	for _, want := range []string{"tls://127.0.0.1:8883", "verified against " + ca + " (from the data dir)", "ping --hub tls://127.0.0.1:8883 --hub-ca " + ca} {
		if !strings.Contains(out, want) {
			t.Errorf("tls:// with hub-ca.pem in the data dir lacks %q:\n%s", want, out)
		}
	}
	stderrLines(t, []string{"config", "check", "--config", file, "--hub", "tcp://10.0.0.5:1883"}, 1,
		`--hub "tcp://10.0.0.5:1883": plain MQTT to a hub on another machine: anyone on the network can read and forge the till's transactions; use tls://HOST:PORT (and hub_ca), or set hub_plain: true on a network you trust`,
		"tillsync-agent: "+file+": 1 problem; fix it and check again")
	if out := check("--hub", "tcp://10.0.0.5:1883", "--hub-plain"); !strings.Contains(out, "plain MQTT across the network (hub_plain)") {
		t.Errorf("plain with --hub-plain:\n%s", out)
	}
}

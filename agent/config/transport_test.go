package config_test

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/tillsync/tillsync/agent/config"
)

const pemCert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"

// TestHubTransport: tls:// is the default; plain MQTT is for a hub on this
// machine unless hub_plain says otherwise; the hub's CA comes from hub_ca
// or, unset, from hub-ca.pem in the data dir.
func TestHubTransport(t *testing.T) {
	ok := "store: s1\nterminal: t1\npartner: p1\n"
	for _, tc := range []struct {
		name  string
		env   []string
		flags []config.Flag
		want  []string
	}{
		{name: "default tls"},
		{name: "plain on loopback", flags: []config.Flag{flag("hub", "tcp://127.0.0.1:1883")}},
		{name: "plain on localhost", flags: []config.Flag{flag("hub", "mqtt://localhost:1883")}},
		{name: "plain to another machine", flags: []config.Flag{flag("hub", "tcp://hub.example.com:1883")}, want: []string{
			`--hub "tcp://hub.example.com:1883": plain MQTT to a hub on another machine: anyone on the network can read and forge the till's transactions; use tls://HOST:PORT (and hub_ca), or set hub_plain: true on a network you trust`,
		}},
		{name: "plain allowed", env: []string{"TILLSYNC_AGENT_HUB_PLAIN=true"}, flags: []config.Flag{flag("hub", "tcp://10.0.0.5:1883")}},
		{name: "plain allowed for tls", flags: []config.Flag{flag("hub", "ssl://hub.example.com:8883"), flag("hub_plain", "true")}, want: []string{
			"warning: --hub-plain true: has no effect: hub is tls://",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, probs := load(t, ok, tc.env, tc.flags...)
			probs = append(probs, c.Check()...)
			if got := lines(probs); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("problems:\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "))
			}
		})
	}

	dir := t.TempDir()
	c, _ := load(t, ok, nil, flag("data_dir", dir))
	if got := lines(c.CheckHost()); len(got) != 1 || !strings.Contains(got[0], "warning: hub_ca: not set, and no hub-ca.pem in the data dir") {
		t.Errorf("CheckHost without a hub CA: %q", got)
	}
	if o, err := c.AgentOptions(); err != nil || o.HubCA != nil || o.Broker != "tls://127.0.0.1:8883" {
		t.Errorf("AgentOptions without a hub CA: %v, %q, %s", err, o.HubCA, o.Broker)
	}
	if err := os.WriteFile(filepath.Join(dir, config.DefaultHubCAFile), []byte(pemCert), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := lines(c.CheckHost()); len(got) != 0 {
		t.Errorf("CheckHost with hub-ca.pem in the data dir: %q", got)
	}
	if p, isDefault := c.HubCAPath(); p != filepath.Join(dir, config.DefaultHubCAFile) || !isDefault {
		t.Errorf("HubCAPath() = %s, %v", p, isDefault)
	}
	if o, err := c.AgentOptions(); err != nil || !bytes.Equal(o.HubCA, []byte(pemCert)) {
		t.Errorf("AgentOptions with hub-ca.pem in the data dir: %v, %q", err, o.HubCA)
	}
	// A plain hub on loopback ignores the default file (it is for TLS) ...
	c, _ = load(t, ok, nil, flag("data_dir", dir), flag("hub", "tcp://127.0.0.1:1883"))
	if o, err := c.AgentOptions(); err != nil || o.HubCA != nil {
		t.Errorf("AgentOptions of a plain hub with hub-ca.pem in the data dir: %v, %q", err, o.HubCA)
	}
	// ... but refuses hub_ca named for it.
	c, _ = load(t, ok, nil, flag("hub", "tcp://127.0.0.1:1883"), flag("hub_ca", filepath.Join(dir, config.DefaultHubCAFile)))
	if got := lines(c.Check()); len(got) != 1 || !strings.Contains(got[0], "hub is plain MQTT") {
		t.Errorf("hub_ca with a plain hub: %q", got)
	}
}

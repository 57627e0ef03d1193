package perf

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/tillsync/tillsync/agent"
	"github.com/tillsync/tillsync/internal/proc"
)

// Mosquitto is a Mosquitto of the bench's own, set up as an operator
// sets one up for a hub (tillsync-hub broker-config mosquitto: the hub's
// certificate on a TLS listener for the tills, every enrolled terminal's
// account, the ACL), plus a plain loopback listener for the hub. The
// machine's own Mosquitto service, if any, is left alone: its
// configuration is not the hub's.
type Mosquitto struct {
	p *proc.Proc
	// TLS is the tills' listener, Plain the hub's.
	TLS, Plain string
	// HubDir is the hub data dir the setup was written from: the hub that
	// uses this Mosquitto runs on it.
	HubDir string
}

// StartMosquitto copies c into dir/hub, writes Mosquitto's setup from
// it into dir/mosquitto and runs mosquitto (the program at mosq) on it.
func StartMosquitto(ctx context.Context, bin, mosq string, c *Coalition, dir string) (*Mosquitto, error) {
	m := &Mosquitto{HubDir: filepath.Join(dir, "hub"), p: &proc.Proc{Name: "mosquitto", Bin: mosq, Log: filepath.Join(dir, "mosquitto.log")}}
	if err := copyDir(c.Dir, m.HubDir); err != nil {
		return nil, err
	}
	var err error
	if m.TLS, err = proc.FreePort(); err != nil {
		return nil, err
	}
	if m.Plain, err = proc.FreePort(); err != nil {
		return nil, err
	}
	out := filepath.Join(dir, "mosquitto")
	cmd := exec.CommandContext(ctx, filepath.Join(bin, proc.Exe("tillsync-hub")), "broker-config", "mosquitto",
		"--data-dir", m.HubDir, "--out", out, "--listen", m.TLS, "--plain-listen", m.Plain)
	var msg bytes.Buffer
	cmd.Stdout, cmd.Stderr = &msg, &msg
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("perf: tillsync-hub broker-config mosquitto: %w\n%s", err, msg.String())
	}
	conf := filepath.Join(out, "mosquitto.conf")
	if u := proc.MosquittoUser(); u != "" {
		f, err := os.OpenFile(conf, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			return nil, err
		}
		_, err = f.WriteString("\n" + u)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, err
		}
	}
	if err := m.p.StartListening(ctx, 15*time.Second, m.TLS, "-c", conf); err != nil {
		m.p.Kill()
		return nil, err
	}
	return m, nil
}

// Stop stops Mosquitto.
func (m *Mosquitto) Stop() error { return m.p.Stop() }

// Dial is the address and TLS configuration the tills dial Mosquitto by.
func (m *Mosquitto) Dial() (string, *tls.Config, error) {
	ca, err := os.ReadFile(filepath.Join(m.HubDir, "pki", "ca.pem"))
	if err != nil {
		return "", nil, err
	}
	broker := "tls://" + m.TLS
	cfg, err := agent.HubTLSConfig(broker, ca)
	return broker, cfg, err
}

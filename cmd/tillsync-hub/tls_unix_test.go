//go:build unix

package main

import (
	"crypto/tls"
	"crypto/x509"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// TestServeMQTTOverTLS: serve --mqtt-tls makes the hub's CA at its first
// start and serves MQTT over TLS; a client trusting `tls ca` connects, one
// trusting another CA is refused, and plain MQTT gets nowhere.
func TestServeMQTTOverTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	mqttAddr, httpAddr := freeAddr(t), freeAddr(t)
	p := start(t, "serve", "--data-dir", dir, "--mqtt-listen", mqttAddr, "--http-listen", httpAddr, "--mqtt-tls", "--tls-name", "hub.example.com")
	p.WaitFor(t, 10*time.Second, "GET /v1/health to answer", func() bool { return answers("http://" + httpAddr + "/v1/health") })
	caPEM := run(t, "tls", "ca", "--data-dir", dir).OK(t)
	if !strings.HasPrefix(caPEM, "-----BEGIN CERTIFICATE-----") {
		t.Fatalf("tls ca printed %q", caPEM)
	}
	show := run(t, "tls", "show", "--data-dir", dir, "--tls-name", "hub.example.com").OK(t)
	for _, want := range []string{"sha256:", "hub.example.com", "127.0.0.1", filepath.Join(dir, "pki")} {
		if !strings.Contains(show, want) {
			t.Errorf("tls show lacks %q:\n%s", want, show)
		}
	}
	connect := func(url string, ca []byte) error {
		o := mqtt.NewClientOptions().AddBroker(url).SetClientID("tls-probe").SetAutoReconnect(false).SetConnectTimeout(3 * time.Second)
		if ca != nil {
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM(ca)
			o.SetTLSConfig(&tls.Config{RootCAs: pool})
		}
		c := mqtt.NewClient(o)
		tok := c.Connect()
		if !tok.WaitTimeout(5 * time.Second) {
			return errTimeout
		}
		if tok.Error() == nil {
			c.Disconnect(0)
		}
		return tok.Error()
	}
	if err := connect("tls://"+mqttAddr, []byte(caPEM)); err != nil {
		t.Errorf("a client trusting the hub's CA: %v", err)
	}
	otherDir := t.TempDir()
	otherCA := run(t, "tls", "ca", "--data-dir", otherDir).OK(t)
	if err := connect("tls://"+mqttAddr, []byte(otherCA)); err == nil || !strings.Contains(err.Error(), "unknown authority") {
		t.Errorf("a client trusting another CA: %v, want unknown authority", err)
	}
	if err := connect("tcp://"+mqttAddr, nil); err == nil {
		t.Error("plain MQTT to the TLS listener connected")
	}
	p.Signal(syscall.SIGTERM)
	if code := p.ExitCode(t, 5*time.Second); code != 0 {
		t.Errorf("exit %d; output:\n%s", code, p.Output())
	}
}

type timeoutError struct{}

func (timeoutError) Error() string { return "timed out" }

var errTimeout error = timeoutError{}

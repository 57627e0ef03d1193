//go:build unix

package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/tillsync/tillsync/hub/pki"
)

// connect tries an MQTT connection as a till would, over TLS when ca is given.
func connect(url string, ca []byte) error {
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

func stop(t *testing.T, p interface {
	Signal(os.Signal) error
	ExitCode(*testing.T, time.Duration) int
	Output() string
}) {
	t.Helper()
	p.Signal(syscall.SIGTERM)
	if code := p.ExitCode(t, 5*time.Second); code != 0 {
		t.Errorf("exit %d; output:\n%s", code, p.Output())
	}
}

// TestServeMQTTOverTLS: serve makes the hub's CA at its first start and
// serves MQTT over TLS by default, and the API over HTTPS when asked; a
// client trusting `tls ca` connects, one trusting another CA is refused,
// and plain MQTT gets nowhere. The key files are owner-only.
func TestServeMQTTOverTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if out := run(t, "tls", "ca", "--data-dir", dir); out.Code != 1 || !strings.Contains(out.Stderr, "no CA in") {
		t.Errorf("tls ca before the first start: exit %d, %q", out.Code, out.Stderr)
	}
	mqttAddr, httpAddr, httpsAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	p := start(t, "serve", "--data-dir", dir, "--mqtt-listen", mqttAddr, "--http-listen", httpAddr, "--https-listen", httpsAddr, "--tls-name", "hub.example.com")
	p.WaitFor(t, 10*time.Second, "GET /healthz to answer", func() bool { return answers("http://" + httpAddr + "/healthz") })
	defer stop(t, p)
	caPEM := run(t, "tls", "ca", "--data-dir", dir).OK(t)
	if !strings.HasPrefix(caPEM, "-----BEGIN CERTIFICATE-----") {
		t.Fatalf("tls ca printed %q", caPEM)
	}
	show := run(t, "tls", "show", "--data-dir", dir, "--tls-name", "hub.example.com", "--tls-name", "other.example.com").OK(t)
	for _, want := range []string{"sha256:", "hub.example.com", "127.0.0.1", filepath.Join(dir, "pki", "ca.pem"), filepath.Join(dir, "pki", "ca.key"), "not named", "other.example.com"} {
		if !strings.Contains(show, want) {
			t.Errorf("tls show lacks %q:\n%s", want, show)
		}
	}
	for name, want := range map[string]os.FileMode{"pki": 0o700, "pki/ca.key": 0o600, "pki/server.key": 0o600} {
		if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: %v, %v; want mode %v", name, fi.Mode().Perm(), err, want)
		}
	}
	// The TLS handshake passes; the broker then refuses a client that has
	// not enrolled, which it does by default.
	if err := connect("tls://"+mqttAddr, []byte(caPEM)); err == nil || !strings.Contains(err.Error(), "not Authorized") {
		t.Errorf("a client trusting the hub's CA, without credentials: %v; want TLS to pass and the broker to refuse it", err)
	}
	other, err := pki.LoadOrCreate(t.TempDir(), pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := connect("tls://"+mqttAddr, other.CACertPEM()); err == nil || !strings.Contains(err.Error(), "unknown authority") {
		t.Errorf("a client trusting another CA: %v, want unknown authority", err)
	}
	if err := connect("tcp://"+mqttAddr, nil); err == nil {
		t.Error("plain MQTT to the TLS listener connected")
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(caPEM))
	hc := http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	req, _ := http.NewRequest("GET", "https://"+httpsAddr+"/v1/health", nil)
	req.Header.Set("Authorization", "Bearer "+readFileT(t, operatorTokenFile(dir)))
	if res, err := hc.Do(req); err != nil {
		t.Errorf("the API over HTTPS: %v", err)
	} else {
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Errorf("GET /v1/health over HTTPS with the operator token: %s", res.Status)
		}
	}
	if strings.Contains(p.Output(), "PRIVATE KEY") {
		t.Errorf("the hub logged key material:\n%s", p.Output())
	}
}

// TestServePlainMQTT: plain MQTT only where asked, on loopback unless the
// operator insists; the plain HTTP API likewise.
func TestServePlainMQTT(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, c := range []struct {
		args  []string
		wants []string
	}{
		{[]string{"--mqtt-plain-listen", "0.0.0.0:1883"}, []string{"--mqtt-plain-listen 0.0.0.0:1883", "loopback", "--mqtt-plain-any-interface", "--mqtt-listen"}},
		{[]string{"--mqtt-plain-listen", ":1883"}, []string{"--mqtt-plain-listen :1883", "--mqtt-plain-any-interface"}},
		{[]string{"--mqtt-plain-listen", "hub.example.com:1883"}, []string{"--mqtt-plain-any-interface"}},
		{[]string{"--http-listen", "0.0.0.0:8080"}, []string{"--http-listen 0.0.0.0:8080", "--http-plain-any-interface", "--https-listen"}},
		{[]string{"--mqtt-listen", ""}, []string{"no MQTT listener", "--mqtt-listen"}},
		{[]string{"--tls-cert", "x.pem"}, []string{"--tls-cert, --tls-key and --tls-ca go together"}},
		{[]string{"--broker", "tcp://127.0.0.1:1", "--mqtt-plain-listen", "127.0.0.1:0"}, []string{"--broker", "--mqtt-plain-listen"}},
	} {
		run(t, append([]string{"serve", "--data-dir", dir}, c.args...)...).OneLine(t, 2, c.wants...)
	}
	if _, err := os.Stat(filepath.Join(dir, "pki")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a refused command line made the PKI: %v", err)
	}

	plainAddr, httpAddr := freeAddr(t), freeAddr(t)
	p := start(t, "serve", "--data-dir", dir, "--mqtt-listen", "", "--mqtt-plain-listen", plainAddr, "--http-listen", httpAddr, "--require-enrollment=false")
	p.WaitFor(t, 10*time.Second, "GET /healthz to answer", func() bool { return answers("http://" + httpAddr + "/healthz") })
	defer stop(t, p)
	if err := connect("tcp://"+plainAddr, nil); err != nil {
		t.Errorf("plain MQTT on loopback: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "pki")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a hub without a TLS listener made the PKI: %v", err)
	}
}

// TestServeOperatorFiles: with --tls-cert, --tls-key and --tls-ca the hub
// serves the operator's certificate and makes no CA of its own; a key that
// does not belong to the certificate is refused in one line.
func TestServeOperatorFiles(t *testing.T) {
	t.Parallel()
	corp := t.TempDir()
	c, err := pki.LoadOrCreate(corp, pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	other := t.TempDir()
	if _, err := pki.LoadOrCreate(other, pki.Options{}); err != nil {
		t.Fatal(err)
	}
	files := []string{"--tls-cert", filepath.Join(corp, "server.pem"), "--tls-key", filepath.Join(corp, "server.key"), "--tls-ca", filepath.Join(corp, "ca.pem")}
	dir := t.TempDir()
	run(t, "serve", "--data-dir", dir, "--mqtt-listen", "127.0.0.1:0", "--http-listen", "",
		"--tls-cert", filepath.Join(corp, "server.pem"), "--tls-key", filepath.Join(other, "server.key"), "--tls-ca", filepath.Join(corp, "ca.pem")).
		OneLine(t, 1, "does not match", "--tls-key")

	mqttAddr, httpAddr := freeAddr(t), freeAddr(t)
	p := start(t, append([]string{"serve", "--data-dir", dir, "--mqtt-listen", mqttAddr, "--http-listen", httpAddr}, files...)...)
	p.WaitFor(t, 10*time.Second, "GET /healthz to answer", func() bool { return answers("http://" + httpAddr + "/healthz") })
	defer stop(t, p)
	if err := connect("tls://"+mqttAddr, c.CACertPEM()); err == nil || !strings.Contains(err.Error(), "not Authorized") {
		t.Errorf("a client trusting the operator's CA, without credentials: %v; want TLS to pass and the broker to refuse it", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "pki")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the hub made its own CA beside the operator's: %v", err)
	}
	show := run(t, append([]string{"tls", "show"}, files...)...).OK(t)
	if !strings.Contains(show, "operator-supplied") || !strings.Contains(show, c.CAFingerprint()) {
		t.Errorf("tls show of the operator's files:\n%s", show)
	}
}

type timeoutError struct{}

func (timeoutError) Error() string { return "timed out" }

var errTimeout error = timeoutError{}

package hub_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/tillsync/tillsync/hub"
	"github.com/tillsync/tillsync/hub/ledger/ledgertest"
	"github.com/tillsync/tillsync/hub/pki"
	"github.com/tillsync/tillsync/internal/clock"
	"github.com/tillsync/tillsync/protocol"
)

func listen(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestTLSListeners: a hub with its own PKI serves MQTT over TLS, plain
// MQTT on a second listener when asked, and its HTTP API over HTTPS; a
// till on either MQTT listener gets its store's config.
func TestTLSListeners(t *testing.T) {
	dir := t.TempDir()
	p, err := pki.LoadOrCreate(filepath.Join(dir, "pki"), pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tlsL, plainL, httpsL := listen(t), listen(t), listen(t)
	h, err := hub.Open(hub.Options{
		DataDir: dir, Seed: seed(), Clock: clock.NewFake(ledgertest.T0),
		MQTTListener: tlsL, MQTTTLS: p.ServerTLSConfig(), MQTTPlainListener: plainL,
		HTTPSListener: httpsL, HTTPSTLS: p.ServerTLSConfig(),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	select {
	case <-h.Ready():
	case err := <-done:
		t.Fatalf("Run: %v", err)
	case <-time.After(wait):
		t.Fatal("hub not ready")
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(p.CACertPEM())

	// paho takes the TLS config from its options: till() does not set
	// one, so the TLS till goes through a client built here.
	topic, _ := protocol.ConfigTopic("s1")
	got := make(chan mqtt.Message, 1)
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tls://" + tlsL.Addr().String()).
		SetClientID(protocol.AgentClientID("s1", "t1")).SetTLSConfig(&tls.Config{RootCAs: pool}).
		SetConnectTimeout(5 * time.Second).SetAutoReconnect(false).SetOrderMatters(false))
	if tok := c.Connect(); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("connect over TLS: %v", tok.Error())
	}
	defer c.Disconnect(0)
	if tok := c.Subscribe(topic, 1, func(_ mqtt.Client, m mqtt.Message) {
		select {
		case got <- m:
		default:
		}
	}); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("subscribe over TLS: %v", tok.Error())
	}
	if cfg, _ := next(t, got); cfg.Store != "s1" {
		t.Errorf("config over TLS for %s", cfg.Store)
	}
	if cfg, _ := next(t, till(t, "tcp://"+plainL.Addr().String(), "s1", "t2")); cfg.Store != "s1" {
		t.Errorf("config over the plain listener for %s", cfg.Store)
	}

	hc := &http.Client{Timeout: wait, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	res := send(t, hc, readToken(t, filepath.Join(dir, hub.OperatorTokenFile)), "GET", "https://"+httpsL.Addr().String()+"/v1/health", "")
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Errorf("GET /v1/health over HTTPS: %d", res.StatusCode)
	}
	if _, err := (&http.Client{Timeout: wait}).Get("https://" + httpsL.Addr().String() + "/v1/health"); err == nil {
		t.Error("a client that does not trust the hub's CA got an answer over HTTPS")
	}
}

// TestOpenListenerOptions: Open wants an MQTT listener or a broker URL, and
// an HTTPS listener only with its TLS configuration.
func TestOpenListenerOptions(t *testing.T) {
	if _, err := hub.Open(hub.Options{DataDir: t.TempDir()}); err == nil {
		t.Error("Open without any MQTT listener or broker succeeded")
	}
	if _, err := hub.Open(hub.Options{DataDir: t.TempDir(), MQTTPlainListener: listen(t), HTTPSListener: listen(t)}); err == nil {
		t.Error("Open with an HTTPS listener without TLS succeeded")
	}
}

package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/tillsync/tillsync/agent"
	"github.com/tillsync/tillsync/hub/alerts"
)

// TestAlertStoreOffline runs a hub with a store_offline rule posting to a
// local webhook receiver: stopping the store's agent fires the alert,
// restarting it sends the recovery, each notice signed.
func TestAlertStoreOffline(t *testing.T) {
	const secret = "e2e-webhook-secret"
	notices := make(chan alerts.Notice, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if !alerts.Verify(secret, body, r.Header.Get(alerts.SignatureHeader)) {
			t.Errorf("notice with a bad signature %q: %s", r.Header.Get(alerts.SignatureHeader), body)
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var n alerts.Notice
		if err := json.Unmarshal(body, &n); err != nil {
			t.Errorf("notice: %v: %s", err, body)
		}
		notices <- n
	}))
	defer srv.Close()

	e := newEnv(t, "embedded")
	store := e.store("alerts-")
	cfg, err := alerts.Parse([]byte(`hub: e2e-hub
every: 100ms
webhooks:
  - url: ` + srv.URL + `
    secret: ` + secret + `
rules:
  - name: store-offline
    condition: store_offline
    threshold: 1s
    for: 500ms
    recover_for: 500ms
    severity: critical
    stores: [` + store + `]
`))
	if err != nil {
		t.Fatal(err)
	}
	e.alerts = cfg
	h := startHubOnce(t, e)
	a := startTill(t, agent.Options{DataDir: t.TempDir(), Broker: e.brokerURL(), Store: store})
	a.earn(t, store+"-m1", 500)
	a.waitDrained(t)
	// Online for a while: nothing fires.
	select {
	case n := <-notices:
		t.Fatalf("a notice while the store is online: %+v", n)
	case <-time.After(2 * time.Second):
	}

	stopped := time.Now()
	a.stop(t)
	var fired alerts.Notice
	select {
	case fired = <-notices:
	case <-time.After(waitLong):
		t.Fatal("no firing notice after the agent stopped")
	}
	if fired.State != alerts.Firing || fired.Alert != "store-offline" || fired.Store != store || fired.Partner != e2ePartner ||
		fired.Hub != "e2e-hub" || fired.Severity != alerts.Critical || fired.Value <= 1 || fired.Threshold != 1 || fired.Since.Before(stopped.Add(-time.Second)) {
		t.Errorf("firing notice %+v", fired)
	}
	if f := h.h.Alerts(); len(f) != 1 || f[0].Store != store {
		t.Errorf("firing on the hub: %+v", f)
	}

	a = a.reopen(t)
	a.waitConnected(t, true)
	select {
	case n := <-notices:
		if n.State != alerts.Resolved || n.ID != fired.ID || n.Store != store || n.Alert != "store-offline" {
			t.Errorf("recovery notice %+v", n)
		}
	case <-time.After(waitLong):
		t.Fatal("no recovery notice after the agent restarted")
	}
	if f := h.h.Alerts(); len(f) != 0 {
		t.Errorf("still firing: %+v", f)
	}
	select {
	case n := <-notices:
		t.Errorf("a notice more: %+v", n)
	case <-time.After(time.Second):
	}
}

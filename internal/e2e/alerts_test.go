package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tillsync/tillsync/agent"
	"github.com/tillsync/tillsync/hub/alerts"
	"github.com/tillsync/tillsync/internal/testkit"
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

// TestAlertsPanelInChromium: the dashboard's Alerts panel lists the store
// offline alert while the till is stopped and empties when it is back,
// without a reload. A screenshot is saved as an artifact.
func TestAlertsPanelInChromium(t *testing.T) {
	browser := chromium(t)
	e := newEnv(t, "embedded")
	e.httpAddr = testkit.FreePort(t)
	store := e.store("alerts-panel-")
	cfg, err := alerts.Parse([]byte(`every: 100ms
rules:
  - name: store-offline
    condition: store_offline
    threshold: 0s
    for: 0s
    recover_for: 0s
    severity: critical
`))
	if err != nil {
		t.Fatal(err)
	}
	e.alerts = cfg
	startHubOnce(t, e)
	a := startTill(t, agent.Options{DataDir: t.TempDir(), Broker: e.brokerURL(), Store: store})
	a.earn(t, store+"-m1", 500)
	a.waitDrained(t)

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.WindowSize(1366, 768),
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.Flag("lang", "en-GB"))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(allocCtx, chromedp.WithLogf(t.Logf))
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, time.Minute)
	defer cancelTimeout()
	if err := chromedp.Run(ctx,
		chromedp.Navigate("http://"+e.httpAddr+"/dashboard/"),
		chromedp.WaitVisible(`#token`, chromedp.ByID),
		chromedp.SendKeys(`#token`, e.hubToken(t), chromedp.ByID),
		chromedp.Submit(`#token`, chromedp.ByID),
		chromedp.WaitVisible(`#alerts-card`, chromedp.ByID),
		chromedp.Evaluate(`window.__noReload = true`, nil),
	); err != nil {
		t.Fatalf("signing in and seeing the Alerts panel: %v", err)
	}
	rows := func() string {
		var s string
		if err := chromedp.Run(ctx, chromedp.Evaluate(`[...document.querySelectorAll("#alerts tbody tr")].map(r => r.innerText).join("\n")`, &s)); err != nil {
			t.Fatalf("reading the page: %v", err)
		}
		return s
	}
	if r := rows(); r != "" {
		t.Fatalf("alerts while the store is online: %q", r)
	}
	a.stop(t)
	testkit.WaitFor(t, waitLong, "the store offline alert on the page", func() bool {
		r := rows()
		return strings.Contains(r, "store-offline") && strings.Contains(r, "critical")
	})
	var png []byte
	if err := chromedp.Run(ctx, chromedp.Sleep(300*time.Millisecond), chromedp.CaptureScreenshot(&png)); err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	path := filepath.Join(artifactDir(t), "dashboard-alerts.png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)

	a = a.reopen(t)
	a.waitConnected(t, true)
	testkit.WaitFor(t, waitLong, "the alert gone from the page", func() bool { return rows() == "" })
	var noReload bool
	if err := chromedp.Run(ctx, chromedp.Evaluate(`window.__noReload === true`, &noReload)); err != nil || !noReload {
		t.Errorf("the page reloaded (%v)", err)
	}
}

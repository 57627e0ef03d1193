package hub_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tillsync/tillsync/hub"
	"github.com/tillsync/tillsync/hub/dashboard"
	"github.com/tillsync/tillsync/internal/testkit"
)

// TestDashboardServed: the hub serves the dashboard at /dashboard/ on its
// HTTP listener beside the API (which still wants its bearer token), says
// where in its log, signs in with the operator token and shows a till
// connected to the embedded broker online, with the ingest's samples.
func TestDashboardServed(t *testing.T) {
	var logs testkit.Buffer
	r := start(t, hub.Options{Seed: seed(), Logger: testLogger(&logs)})
	testkit.WaitFor(t, wait, "the log to say where the dashboard is", func() bool {
		return strings.Contains(logs.String(), "dashboard="+r.httpURL+"/dashboard/")
	})
	till(t, r.mqttURL, "s1", "t1")

	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(path string) (*http.Response, string) {
		t.Helper()
		resp, err := c.Get(r.httpURL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	if resp, _ := get("/dashboard"); resp.StatusCode/100 != 3 || resp.Header.Get("Location") != "/dashboard/" {
		t.Errorf("/dashboard: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, _ := get("/dashboard/"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("/dashboard/ without a session: %d", resp.StatusCode)
	}
	resp, err := c.PostForm(r.httpURL+"/dashboard/login", url.Values{"token": {r.token}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in with the operator token: %d", resp.StatusCode)
	}
	// The cookie is the dashboard's, not a way into the API.
	if resp, _ := get("/v1/stores"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("the API with the dashboard's cookie: %d, want 401", resp.StatusCode)
	}
	// A path with an empty segment goes to the API, which wants a token
	// and then names no endpoint, in its own error body: no redirect.
	if resp, body := get("/v1//stores"); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, `"unauthorized"`) {
		t.Errorf("/v1//stores without a token: %d %q, want 401 unauthorized", resp.StatusCode, body)
	}
	req, _ := http.NewRequest(http.MethodGet, r.httpURL+"/dashboard/../v1/stores", nil)
	req.Header.Set("Authorization", "Bearer "+r.token)
	if resp, err := c.Do(req); err != nil {
		t.Fatal(err)
	} else {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound || !strings.Contains(string(body), `"not_found"`) {
			t.Errorf("/dashboard/../v1/stores with a token: %d %q, want 404 not_found", resp.StatusCode, body)
		}
	}
	var snap dashboard.Snapshot
	testkit.WaitFor(t, wait, "s1's till online and samples of the ingest", func() bool {
		r.clock.Advance(time.Second) // past the view's cache
		resp, body := get("/dashboard/api/snapshot")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("snapshot: %d %s", resp.StatusCode, body)
		}
		snap = dashboard.Snapshot{}
		json.Unmarshal([]byte(body), &snap)
		return len(snap.Samples) > 0 && snap.Overview.TerminalsOnline == 1
	})
	for _, s := range snap.Stores {
		if s.Store == "s1" && (s.State != dashboard.StatePartial || s.Online != 1 || s.Terminals != 2) {
			t.Errorf("s1 with one of its two tills connected: %+v", s)
		}
	}
	if snap.Ledger == nil || snap.Ledger.State != dashboard.LedgerOK || !snap.Overview.ConnectionsKnown || snap.Overview.Counters == nil {
		t.Errorf("snapshot: ledger %+v overview %+v", snap.Ledger, snap.Overview)
	}
}

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tillsync/tillsync/agent"
	"github.com/tillsync/tillsync/hub/ledger"
	"github.com/tillsync/tillsync/internal/testkit"
)

// EnvArtifacts names a directory where tests leave what a person may want
// to look at afterwards (the dashboard's screenshots); unset, they go to
// the test's temporary directory and are gone after it.
const EnvArtifacts = "TILLSYNC_ARTIFACTS"

// EnvChromium names the Chromium (or Chrome) binary for the dashboard
// test; default Debian's /usr/bin/chromium, else chromium on PATH.
const EnvChromium = "TILLSYNC_CHROMIUM"

// chromium returns the browser to drive, or skips the test saying how to
// get one.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv(EnvChromium); p != "" {
		return p
	}
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium"
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skipf("no Chromium to drive the dashboard in: install Debian's chromium (apt-get install chromium; .ci/run does) or name one in %s", EnvChromium)
	return ""
}

// artifactDir is where the test's screenshots go.
func artifactDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv(EnvArtifacts)
	if dir == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("%s: %v", EnvArtifacts, err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// TestDashboardInChromium: an operator signs in to the dashboard with the
// hub's operator token in a real headless Chromium and sees the store whose
// till runs online; when the till stops, the page shows it offline within
// seconds, and online again when it restarts — without a reload. The
// screenshots are saved as artifacts.
func TestDashboardInChromium(t *testing.T) {
	browser := chromium(t)
	e := newEnv(t, "embedded")
	e.httpAddr = testkit.FreePort(t)
	live := e.store("dash")
	later := e.store("dash-quiet")
	h := startHubOnce(t, e)
	st := h.h.Ledger()
	now := time.Now()
	for id, name := range map[string]string{live: "Pharmacy Alexanderplatz", later: "Pharmacy Hauptbahnhof"} {
		if err := st.PutStore(ledger.StoreInfo{ID: id, Partner: e2ePartner, Name: name}, now); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.AddTerminal(later, "till-1", now); err != nil {
		t.Fatal(err)
	}

	dataDir := filepath.Join(t.TempDir(), "till")
	till := startTill(t, agent.Options{DataDir: dataDir, Broker: e.brokerURL(), Store: live, Version: "1.4.0"})
	till.waitConnected(t, true)
	for i := range 5 {
		till.earn(t, fmt.Sprintf("member-%d", i%3), int64(1000+i*250))
	}
	till.burn(t, "member-0", 1_000_000) // declined: the hub rejects it, and the dashboard lists it
	till.waitDrained(t)

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.WindowSize(1366, 768),
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.Flag("lang", "en-GB"))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(allocCtx, chromedp.WithLogf(t.Logf))
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, 2*time.Minute)
	defer cancelTimeout()

	base := "http://" + e.httpAddr + "/dashboard/"
	var loginURL string
	if err := chromedp.Run(ctx,
		chromedp.EmulateViewport(1366, 768), // a laptop's screen
		chromedp.Navigate(base),
		chromedp.WaitVisible(`#token`, chromedp.ByID),
		chromedp.Location(&loginURL),
	); err != nil {
		t.Fatalf("opening the dashboard: %v", err)
	}
	if want := base + "login?next=%2Fdashboard%2F"; loginURL != want {
		t.Fatalf("without a session the dashboard went to %s, want %s", loginURL, want)
	}
	row := fmt.Sprintf(`#stores tbody tr[data-store=%q]`, live)
	step, cancelStep := context.WithTimeout(ctx, 20*time.Second)
	defer cancelStep()
	if err := chromedp.Run(step,
		chromedp.SendKeys(`#token`, e.hubToken(t), chromedp.ByID),
		chromedp.Submit(`#token`, chromedp.ByID),
		chromedp.WaitVisible(row, chromedp.ByQuery),
	); err != nil {
		var text, where string
		chromedp.Run(ctx, chromedp.Location(&where), chromedp.Evaluate(`document.body.innerText`, &text))
		t.Fatalf("signing in: %v; the page at %s says:\n%s", err, where, text)
	}
	state := func() string {
		var s string
		if err := chromedp.Run(ctx, chromedp.Evaluate(fmt.Sprintf(`(document.querySelector(%q)||{dataset:{}}).dataset.state||""`, row), &s)); err != nil {
			t.Fatalf("reading the page: %v", err)
		}
		return s
	}
	// The page's own marker: a reload would lose it.
	if err := chromedp.Run(ctx, chromedp.Evaluate(`window.__noReload = true`, nil)); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, "the store shown online", func() bool { return state() == "online" })
	// The till's own status reaches the page: its version.
	testkit.WaitFor(t, 10*time.Second, "the till's version shown", func() bool {
		var text string
		chromedp.Run(ctx, chromedp.Evaluate(fmt.Sprintf(`(document.querySelector(%q)||{innerText:""}).innerText`, row), &text))
		return strings.Contains(text, "1.4.0")
	})
	testkit.WaitFor(t, 10*time.Second, "the rejected burn listed", func() bool {
		var n int
		chromedp.Run(ctx, chromedp.Evaluate(`document.querySelectorAll("#rejections tbody tr").length`, &n))
		return n > 0
	})
	// Some traffic for the charts, and a verification asked for on the page.
	for i := range 8 {
		till.earn(t, fmt.Sprintf("member-%d", i%4), int64(500+i*120))
		time.Sleep(250 * time.Millisecond)
	}
	if err := chromedp.Run(ctx, chromedp.Click(`#ledger button`, chromedp.ByQuery)); err != nil {
		t.Fatalf("asking for a verification: %v", err)
	}
	testkit.WaitFor(t, 10*time.Second, "the ledger shown verified with the new entries", func() bool {
		var ok bool
		chromedp.Run(ctx, chromedp.Evaluate(`/Verified/.test(document.getElementById("ledger").innerText) && /\b13 journal entries/.test(document.getElementById("ledger").innerText)`, &ok))
		return ok
	})
	dir := artifactDir(t)
	shot := func(name string) {
		t.Helper()
		var png []byte
		if err := chromedp.Run(ctx, chromedp.Sleep(300*time.Millisecond), chromedp.CaptureScreenshot(&png)); err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", path)
	}
	shot("dashboard-online.png")

	till.stop(t)
	stopped := time.Now()
	testkit.WaitFor(t, 10*time.Second, "the stopped till's store shown offline", func() bool { return state() == "offline" })
	t.Logf("offline on the page %v after the till stopped", time.Since(stopped).Round(100*time.Millisecond))
	shot("dashboard-offline.png")

	till = till.reopen(t)
	till.waitConnected(t, true)
	restarted := time.Now()
	testkit.WaitFor(t, 10*time.Second, "the restarted till's store shown online again", func() bool { return state() == "online" })
	t.Logf("online on the page %v after the till reconnected", time.Since(restarted).Round(100*time.Millisecond))

	var noReload bool
	if err := chromedp.Run(ctx, chromedp.Evaluate(`window.__noReload === true`, &noReload)); err != nil || !noReload {
		t.Fatalf("the page reloaded (marker %v, %v)", noReload, err)
	}

	// Filter by text, sort by a column.
	var rows int
	if err := chromedp.Run(ctx,
		chromedp.SendKeys(`#filter`, "hauptbahnhof", chromedp.ByID),
		chromedp.Evaluate(`document.querySelectorAll("#stores tbody tr").length`, &rows),
	); err != nil || rows != 1 {
		t.Fatalf("filtered by a store's name: %d rows (%v), want 1", rows, err)
	}
	first := func() string {
		var s string
		chromedp.Run(ctx, chromedp.Evaluate(`document.querySelector("#stores tbody tr").dataset.store`, &s))
		return s
	}
	if err := chromedp.Run(ctx,
		chromedp.Evaluate(`(() => { const f = document.getElementById("filter"); f.value = ""; f.dispatchEvent(new Event("input")); })()`, nil),
		chromedp.Click(`#stores th[data-key="store"]`, chromedp.ByQuery),
	); err != nil {
		t.Fatal(err)
	}
	if got := first(); got != live {
		t.Fatalf("sorted by name: %s first, want %s (Alexanderplatz)", got, live)
	}
	if err := chromedp.Run(ctx, chromedp.Click(`#stores th[data-key="store"]`, chromedp.ByQuery)); err != nil {
		t.Fatal(err)
	}
	if got := first(); got != later {
		t.Fatalf("sorted by name, reversed: %s first, want %s", got, later)
	}

	// The store's page: its terminal and its journal entries.
	if err := chromedp.Run(ctx,
		chromedp.Navigate(base+"stores/"+live),
		chromedp.WaitVisible(`#terminals tbody tr[data-terminal="till-1"][data-state="online"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`#recent tbody tr`, chromedp.ByQuery),
	); err != nil {
		t.Fatalf("the store page: %v", err)
	}
	shot("dashboard-store.png")

	// Signing out ends the session: the page goes back to the login.
	var after string
	if err := chromedp.Run(ctx,
		chromedp.Click(`form[action="/dashboard/logout"] button`, chromedp.ByQuery),
		chromedp.WaitVisible(`#token`, chromedp.ByID),
		chromedp.Navigate(base),
		chromedp.WaitVisible(`#token`, chromedp.ByID),
		chromedp.Location(&after),
	); err != nil {
		t.Fatalf("signing out: %v", err)
	}
	if after != base+"login?next=%2Fdashboard%2F" {
		t.Fatalf("after signing out the dashboard showed %s", after)
	}
}

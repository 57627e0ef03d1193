package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tillsync/tillsync/agent"
	"github.com/tillsync/tillsync/hub"
	"github.com/tillsync/tillsync/internal/testkit"
)

// Both /metrics endpoints after a real till's earns reach a real hub: the
// counters moved by the earns, the histograms counted every transaction
// (or batch, or commit) once, the store's gauges say it is in sync.
func TestMetricsAfterEarns(t *testing.T) {
	e := newEnv(t, "embedded")
	e.httpAddr = testkit.FreePort(t)
	startHubOnce(t, e)
	store := e.store("metrics-")
	tok, err := os.ReadFile(filepath.Join(e.hubDir, hub.OperatorTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	hubURL, bearer := "http://"+e.httpAddr+"/metrics", "Bearer "+strings.TrimSpace(string(tok))
	if st, _ := testkit.Scrape(t, hubURL, ""); st != http.StatusUnauthorized {
		t.Errorf("hub /metrics without a token: HTTP %d, want 401", st)
	}
	_, before := testkit.Scrape(t, hubURL, bearer)

	a := startTill(t, agent.Options{DataDir: t.TempDir(), Broker: e.brokerURL(), Store: store})
	a.waitConnected(t, true)
	const earns = 7
	for i := range earns {
		a.earn(t, fmt.Sprintf("%s-m%d", store, i%3), 1000+int64(i))
	}
	a.waitDrained(t)

	var m testkit.Metrics
	testkit.WaitFor(t, waitLong, "the hub's store gauges to see the till", func() bool {
		_, m = testkit.Scrape(t, hubURL, bearer)
		_, seen := m[`tillsync_hub_store_last_seen_age_seconds{store="`+store+`"}`]
		return seen
	})
	moved := func(name string) float64 { return m[name] - before[name] }
	if got := moved(`tillsync_hub_ingest_transactions_total{outcome="applied"}`); got != earns {
		t.Errorf("hub applied: +%v, want +%d", got, earns)
	}
	for _, name := range []string{`tillsync_hub_ingest_transactions_total{outcome="duplicate"}`, `tillsync_hub_ingest_transactions_total{outcome="rejected"}`, "tillsync_hub_ingest_refused_total"} {
		if got := moved(name); got != 0 {
			t.Errorf("%s: +%v, want +0", name, got)
		}
	}
	if got := moved("tillsync_hub_ingest_latency_seconds_count"); got != earns {
		t.Errorf("hub ingest latency count: +%v, want +%d (one per transaction)", got, earns)
	}
	if b, a := moved("tillsync_hub_ingest_batches_total"), moved("tillsync_hub_ack_latency_seconds_count"); b < 1 || a != b {
		t.Errorf("hub ack latency count +%v, batches +%v: want one per batch", a, b)
	}
	if c, l := moved("tillsync_hub_ingest_commits_total"), moved("tillsync_hub_ledger_commit_seconds_count"); c < 1 || l != c {
		t.Errorf("hub commit latency count +%v, commits +%v: want one per commit", l, c)
	}
	if got := m[`tillsync_hub_ack_latency_seconds_bucket{le="+Inf"}`]; got != m["tillsync_hub_ack_latency_seconds_count"] {
		t.Errorf("ack latency +Inf bucket %v, count %v", got, m["tillsync_hub_ack_latency_seconds_count"])
	}
	if m["tillsync_hub_mqtt_connected_clients"] < 1 {
		t.Errorf("connected clients: %v", m["tillsync_hub_mqtt_connected_clients"])
	}
	for name, want := range map[string]float64{
		`tillsync_hub_store_backlog{store="` + store + `"}`:                     0,
		`tillsync_hub_store_oldest_unsynced_age_seconds{store="` + store + `"}`: 0,
		`tillsync_hub_store_in_sync{store="` + store + `"}`:                     1,
	} {
		if got, ok := m[name]; !ok || got != want {
			t.Errorf("%s: %v (present %v), want %v", name, got, ok, want)
		}
	}

	_, am := testkit.Scrape(t, a.pos+"/metrics", "")
	for name, want := range map[string]float64{
		"tillsync_agent_outbox_depth":                                           0,
		"tillsync_agent_oldest_unsynced_age_seconds":                            0,
		"tillsync_agent_hub_connected":                                          1,
		"tillsync_agent_publish_ack_latency_seconds_count":                      earns,
		`tillsync_agent_pos_requests_total{route="POST /v1/earn",status="200"}`: earns,
		"tillsync_agent_scans_total":                                            0,
		"tillsync_agent_scanner_reconnects_total":                               0,
		"tillsync_agent_hub_rejections_total":                                   0,
	} {
		if got, ok := am[name]; !ok || got != want {
			t.Errorf("agent %s: %v (present %v), want %v", name, got, ok, want)
		}
	}
	for _, name := range []string{"tillsync_agent_publish_ack_latency_seconds_bucket", "go_goroutines", "process_open_fds"} {
		if !am.Has(name) {
			t.Errorf("agent: no %s", name)
		}
	}
	if !am.Has("tillsync_agent_pos_requests_total") || am[`tillsync_agent_pos_requests_total{route="GET /v1/health",status="200"}`] < 1 {
		t.Errorf("agent: health requests not counted")
	}
}

// The agent's /metrics is behind the POS API's shared secret when one is
// set, like its other routes; a refused scrape is counted as a 401.
func TestAgentMetricsSecret(t *testing.T) {
	const secret = "a-long-enough-pos-secret"
	a := startTill(t, agent.Options{DataDir: t.TempDir(), Broker: "tcp://" + testkit.FreePort(t), Store: randomID("metrics-secret-"), POSSecret: secret})
	url := a.pos + "/metrics"
	if st, _ := testkit.Scrape(t, url, ""); st != http.StatusUnauthorized {
		t.Errorf("without the secret: HTTP %d, want 401", st)
	}
	if st, _ := testkit.Scrape(t, url, "Bearer wrong-secret-of-some-length"); st != http.StatusUnauthorized {
		t.Errorf("with another secret: HTTP %d, want 401", st)
	}
	st, m := testkit.Scrape(t, url, "Bearer "+secret)
	if st != http.StatusOK {
		t.Fatalf("with the secret: HTTP %d", st)
	}
	if got := m[`tillsync_agent_pos_requests_total{route="GET /metrics",status="401"}`]; got != 2 {
		t.Errorf("refused scrapes counted: %v, want 2", got)
	}
	if got := m["tillsync_agent_hub_connected"]; got != 0 {
		t.Errorf("hub connected with no broker: %v", got)
	}
}

package hub_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/tillsync/tillsync/hub"
	"github.com/tillsync/tillsync/hub/ledger"
	"github.com/tillsync/tillsync/internal/testkit"
	"github.com/tillsync/tillsync/protocol"
)

// GET /metrics wants an operator or read-only API token, serves the
// ingest's, the ledger's and the broker's metrics with the Go runtime's,
// and keeps per-store series to MetricsMaxStores, folding the rest into
// store="(other)".
func TestMetrics(t *testing.T) {
	const maxStores = 3
	r := start(t, hub.Options{MetricsMaxStores: maxStores})
	st := r.hub.Ledger()
	now := r.clock.Now()
	if err := st.PutPartner(ledger.Partner{ID: "pharmacy"}, now); err != nil {
		t.Fatal(err)
	}
	const stores = 10
	for i := range stores {
		if err := st.PutStore(ledger.StoreInfo{ID: fmt.Sprintf("store-%02d", i), Partner: "pharmacy"}, now); err != nil {
			t.Fatal(err)
		}
	}
	token := func(role ledger.Role, partner string) string {
		tok, secret, err := st.CreateAPIToken(ledger.APIToken{Name: string(role), Role: role, Partner: partner}, now)
		if err != nil {
			t.Fatal(err)
		}
		return "Bearer " + protocol.FormatAPIToken(tok.ID, secret)
	}
	url := r.httpURL + "/metrics"

	for _, c := range []struct {
		name, auth string
		want       int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"not a token", "Bearer nope", http.StatusUnauthorized},
		{"partner token", token(ledger.RolePartner, "pharmacy"), http.StatusForbidden},
		{"read-only token", token(ledger.RoleReadOnly, ""), http.StatusOK},
		{"operator token", "Bearer " + r.token, http.StatusOK},
	} {
		if got, _ := testkit.Scrape(t, url, c.auth); got != c.want {
			t.Errorf("%s: HTTP %d, want %d", c.name, got, c.want)
		}
	}

	// The stores table is rebuilt at most twice a Tick: wait for the new stores.
	var m testkit.Metrics
	testkit.WaitFor(t, wait, "the stores in the metrics", func() bool {
		_, m = testkit.Scrape(t, url, "Bearer "+r.token)
		return m["tillsync_hub_stores"] == stores
	})
	for _, name := range []string{
		"tillsync_hub_ingest_batches_total", "tillsync_hub_ingest_commits_total", "tillsync_hub_ingest_transactions_total",
		"tillsync_hub_ingest_refused_total", "tillsync_hub_ingest_mac_refused_total", "tillsync_hub_ingest_seq_reused_total",
		"tillsync_hub_ingest_dropped_total", "tillsync_hub_ingest_queue_depth",
		"tillsync_hub_ack_latency_seconds_bucket", "tillsync_hub_ack_latency_seconds_count",
		"tillsync_hub_ingest_latency_seconds_bucket", "tillsync_hub_ledger_commit_seconds_bucket", "tillsync_hub_ledger_commit_failures_total",
		"tillsync_hub_mqtt_connected_clients", "tillsync_hub_stores", "tillsync_hub_store_series_folded",
		"tillsync_hub_store_backlog", "tillsync_hub_store_oldest_unsynced_age_seconds", "tillsync_hub_store_in_sync",
		"go_goroutines", "process_resident_memory_bytes",
	} {
		if !m.Has(name) {
			t.Errorf("no %s", name)
		}
	}
	for _, name := range []string{"tillsync_hub_store_backlog", "tillsync_hub_store_oldest_unsynced_age_seconds", "tillsync_hub_store_in_sync"} {
		if n := m.Count(name); n != maxStores+1 {
			t.Errorf("%s: %d series, want %d stores and (other)", name, n, maxStores)
		}
	}
	if got := m["tillsync_hub_store_series_folded"]; got != stores-maxStores {
		t.Errorf("folded: %v, want %d", got, stores-maxStores)
	}
	if got, ok := m[`tillsync_hub_store_in_sync{store="(other)"}`]; !ok || got != 1 {
		t.Errorf("(other) in sync: %v %v, want 1", got, ok)
	}
	if got := m[`tillsync_hub_ingest_transactions_total{outcome="applied"}`]; got != 0 {
		t.Errorf("applied before any till: %v", got)
	}
}

package hub

// The hub's Prometheus metrics, served at GET /metrics on the HTTP API
// (hub/httpapi: an operator or read-only API token, as a scraper's bearer
// token). Everything but two latency histograms is read at scrape time from
// what the hub keeps anyway: the ingest's counters and ack latency
// (hub/ingest), the embedded broker's client list, and the dashboard's
// stores table (hub/dashboard, rebuilt at most twice a Tick however often
// it is read). The two histograms, the ledger's commit time and each
// transaction's wait from the till to the ledger, are observed by
// timedStore around ledger.Store.Apply: a few atomic adds per commit and
// per transaction (internal/latency's benchmark: ~30 ns each).
//
// Per-store series are bounded: the MetricsMaxStores most urgent stores
// (the dashboard's order: those that need attention first, then by id) get
// series of their own; the others are summed up in one series labelled
// store="(other)" (a label no store id can be: parentheses are not allowed
// in ids), and tillsync_hub_store_series_folded says how many were folded
// into it. A coalition with fewer stores than the cap has a stable set of
// series; one with more sees the folded ones only in the aggregate.

import (
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tillsync/tillsync/hub/broker"
	"github.com/tillsync/tillsync/hub/dashboard"
	"github.com/tillsync/tillsync/hub/ingest"
	"github.com/tillsync/tillsync/hub/ledger"
	"github.com/tillsync/tillsync/internal/clock"
	"github.com/tillsync/tillsync/internal/latency"
	"github.com/tillsync/tillsync/internal/metrics"
	"github.com/tillsync/tillsync/protocol"
)

// DefaultMetricsMaxStores is Options.MetricsMaxStores' default.
const DefaultMetricsMaxStores = 2000

// OtherStores is the store label of the series summing up the stores past
// Options.MetricsMaxStores.
const OtherStores = "(other)"

// timedStore times the ledger's commits for the metrics: how long each
// Apply took, and how long each transaction in it waited between the till
// accepting it (by the till's clock) and the commit.
type timedStore struct {
	ledger.Store
	clock    clock.Clock
	commit   latency.Histogram // per successful Apply
	toLedger latency.Histogram // per transaction committed
	failed   atomic.Int64      // failed Applies
}

func newTimedStore(st ledger.Store, c clock.Clock) *timedStore {
	return &timedStore{Store: st, clock: clock.Or(c)}
}

func (s *timedStore) Apply(batches []*protocol.Batch, now time.Time) ([][]protocol.Ack, error) {
	start := s.clock.Now()
	acks, err := s.Store.Apply(batches, now)
	end := s.clock.Now()
	if err != nil {
		s.failed.Add(1)
		return acks, err
	}
	s.commit.Observe(end.Sub(start))
	for _, b := range batches {
		for i := range b.Txs {
			s.toLedger.Observe(end.Sub(b.Txs[i].CreatedAt))
		}
	}
	return acks, nil
}

// hubCollector reads the hub's figures at scrape time.
type hubCollector struct {
	in        *ingest.Ingest
	ledger    *timedStore
	stores    func() ([]dashboard.StoreRow, time.Time, error)
	connected func() []string // nil: an external broker's clients are out of reach
	maxStores int
	log       interface{ Warn(string, ...any) }
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

var (
	hubBatches    = desc("tillsync_hub_ingest_batches_total", "Batches from the tills committed and acked.")
	hubCommits    = desc("tillsync_hub_ingest_commits_total", "Ledger group commits.")
	hubTxs        = desc("tillsync_hub_ingest_transactions_total", "Transactions answered, by outcome: applied, duplicate, rejected, held.", "outcome")
	hubRefused    = desc("tillsync_hub_ingest_refused_total", "Messages refused before the ledger: malformed, wrong topic, another store's, not authenticated.")
	hubMACRefused = desc("tillsync_hub_ingest_mac_refused_total", "Of the refused messages, those not authenticated as their terminal (MAC).")
	hubReplays    = desc("tillsync_hub_ingest_seq_reused_total", "Transactions rejected seq_reused: a new id under a terminal sequence number seen before.")
	hubDropped    = desc("tillsync_hub_ingest_dropped_total", "Messages dropped because the ingest queue was full (their tills send them again).")
	hubQueue      = desc("tillsync_hub_ingest_queue_depth", "Batches waiting for the commit loop.")
	hubAckLat     = desc("tillsync_hub_ack_latency_seconds", "Per batch: from its arrival at the hub to the publication of its acks (validation, queue, ledger commit).")
	hubIngestLat  = desc("tillsync_hub_ingest_latency_seconds", "Per transaction: from the till accepting it (by the till's clock) to the hub's ledger commit; long after an outage.")
	hubCommitLat  = desc("tillsync_hub_ledger_commit_seconds", "Per ledger group commit: how long the commit (with its fsync) took.")
	hubCommitFail = desc("tillsync_hub_ledger_commit_failures_total", "Ledger commits that failed (their transactions are re-sent).")
	hubClients    = desc("tillsync_hub_mqtt_connected_clients", "MQTT clients connected to the embedded broker.")
	hubStores     = desc("tillsync_hub_stores", "Stores the hub knows: registered, or sending.")
	hubFolded     = desc("tillsync_hub_store_series_folded", "Stores past the per-store series cap, summed up in store=\"(other)\".")
	storeBacklog  = desc("tillsync_hub_store_backlog", "Transactions the store's tills said were queued behind their last batch.", "store")
	storeOldest   = desc("tillsync_hub_store_oldest_unsynced_age_seconds", "Age of the store's oldest unsynced transaction; 0 when none (for (other): the oldest).", "store")
	storeSeen     = desc("tillsync_hub_store_last_seen_age_seconds", "How long since the hub last heard from the store (for (other): the longest); absent when never.", "store")
	storeInSync   = desc("tillsync_hub_store_in_sync", "1 when every terminal of the store is in sync (for (other): all of them), else 0.", "store")
)

func (c *hubCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{hubBatches, hubCommits, hubTxs, hubRefused, hubMACRefused, hubReplays, hubDropped, hubQueue,
		hubAckLat, hubIngestLat, hubCommitLat, hubCommitFail, hubClients, hubStores, hubFolded, storeBacklog, storeOldest, storeSeen, storeInSync} {
		ch <- d
	}
}

func (c *hubCollector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	hist := func(m prometheus.Metric, err error) {
		if err != nil {
			m = prometheus.NewInvalidMetric(hubAckLat, err) // cannot happen: the bounds are fixed and ordered
		}
		ch <- m
	}
	st := c.in.Stats()
	counter(hubBatches, st.Batches)
	counter(hubCommits, st.Commits)
	counter(hubTxs, st.Applied, "applied")
	counter(hubTxs, st.Duplicates, "duplicate")
	counter(hubTxs, st.Rejected, "rejected")
	counter(hubTxs, st.Held, "held")
	counter(hubRefused, st.Refused)
	counter(hubMACRefused, st.MACRefused)
	counter(hubReplays, st.Replays)
	counter(hubDropped, st.Dropped)
	gauge(hubQueue, float64(st.QueueDepth))
	a := c.in.AckLatency()
	hist(metrics.Histogram(hubAckLat, ingest.LatencyBounds[:], a.Buckets[:], a.Count, a.Sum))
	hist(metrics.Latency(hubIngestLat, c.ledger.toLedger.Snapshot()))
	hist(metrics.Latency(hubCommitLat, c.ledger.commit.Snapshot()))
	counter(hubCommitFail, c.ledger.failed.Load())
	if c.connected != nil {
		gauge(hubClients, float64(len(c.connected())))
	}
	c.collectStores(gauge)
}

// collectStores sends the per-store gauges, at most maxStores stores of
// them and the rest summed up as OtherStores.
func (c *hubCollector) collectStores(gauge func(*prometheus.Desc, float64, ...string)) {
	rows, at, err := c.stores()
	if err != nil {
		// The other metrics are still worth the scrape.
		c.log.Warn("metrics: per-store gauges left out", "err", err)
		return
	}
	gauge(hubStores, float64(len(rows)))
	folded := max(len(rows)-c.maxStores, 0)
	gauge(hubFolded, float64(folded))
	age := func(t time.Time) float64 { return max(at.Sub(t), 0).Seconds() }
	one := func(r dashboard.StoreRow, label string) {
		gauge(storeBacklog, float64(r.Backlog), label)
		oldest := 0.0
		if !r.OldestUnsynced.IsZero() {
			oldest = age(r.OldestUnsynced)
		}
		gauge(storeOldest, oldest, label)
		if !r.LastSeen.IsZero() {
			gauge(storeSeen, age(r.LastSeen), label)
		}
		inSync := 0.0
		if r.InSync {
			inSync = 1
		}
		gauge(storeInSync, inSync, label)
	}
	for _, r := range rows[:len(rows)-folded] {
		one(r, r.Store)
	}
	if folded == 0 {
		return
	}
	other := dashboard.StoreRow{InSync: true}
	for _, r := range rows[len(rows)-folded:] {
		other.Backlog += r.Backlog
		if !r.OldestUnsynced.IsZero() && (other.OldestUnsynced.IsZero() || r.OldestUnsynced.Before(other.OldestUnsynced)) {
			other.OldestUnsynced = r.OldestUnsynced
		}
		if !r.LastSeen.IsZero() && (other.LastSeen.IsZero() || r.LastSeen.Before(other.LastSeen)) {
			other.LastSeen = r.LastSeen
		}
		other.InSync = other.InSync && r.InSync
	}
	one(other, OtherStores)
}

// metricsHandler is GET /metrics: the hub's collector and the Go runtime
// and process collectors in a registry of the hub's own.
func (h *Hub) metricsHandler(bus broker.Bus, in *ingest.Ingest, timed *timedStore, dash *dashboard.Dashboard) (http.Handler, error) {
	c := &hubCollector{in: in, ledger: timed, stores: dash.Stores, maxStores: h.o.MetricsMaxStores, log: h.log}
	if c.maxStores <= 0 {
		c.maxStores = DefaultMetricsMaxStores
	}
	if e, ok := bus.(*broker.Embedded); ok {
		c.connected = e.ConnectedClients
	}
	reg, err := metrics.NewRegistry(c)
	if err != nil {
		return nil, err
	}
	return metrics.Handler(reg), nil
}

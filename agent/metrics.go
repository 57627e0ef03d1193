package agent

// The agent's Prometheus metrics, served at GET /metrics on the POS API's
// listener (loopback by default; behind the POS API's shared secret when
// one is set, like every other route). Everything is read at scrape time
// from what the agent keeps anyway — the outbox's depth and oldest entry,
// the uplink's counters, the scanner's state, the POS API's request counts
// — except the publish-to-ack latency, which the uplink observes as acks
// arrive (agent/uplink's latency.go: a map insert and delete per
// transaction).

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tillsync/tillsync/agent/posapi"
	"github.com/tillsync/tillsync/internal/metrics"
)

func agentDesc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

var (
	agentOutbox      = agentDesc("tillsync_agent_outbox_depth", "Transactions in the outbox: accepted here, not yet acked by the hub.")
	agentOldest      = agentDesc("tillsync_agent_oldest_unsynced_age_seconds", "Age of the oldest transaction in the outbox; 0 when it is empty.")
	agentConnected   = agentDesc("tillsync_agent_hub_connected", "1 while the agent is connected to the hub's broker.")
	agentAckLat      = agentDesc("tillsync_agent_publish_ack_latency_seconds", "Per transaction: from its first publication to the hub's ack that removed it from the outbox.")
	agentRejected    = agentDesc("tillsync_agent_hub_rejections_total", "Transactions accepted here that the hub rejected.")
	agentHeld        = agentDesc("tillsync_agent_hub_held_total", "Held answers from the hub (the transaction stays queued).")
	agentDropped     = agentDesc("tillsync_agent_hub_messages_dropped_total", "Acks and replies dropped because the uplink's queue was full (harmless: the outbox re-sends).")
	agentMACRefused  = agentDesc("tillsync_agent_mac_refused_total", "Acks and replies refused for their MAC.")
	agentCfgRefused  = agentDesc("tillsync_agent_config_refused_total", "Store configs refused for their signature.")
	agentScanConn    = agentDesc("tillsync_agent_scanner_connected", "1 while the scanner is attached.")
	agentReconnects  = agentDesc("tillsync_agent_scanner_reconnects_total", "Times the scanner was found again after it went away.")
	agentScans       = agentDesc("tillsync_agent_scans_total", "Scans read from the scanner.")
	agentScanRefused = agentDesc("tillsync_agent_scans_refused_total", "Scans refused: not a member id (a payment card, a product code).")
	agentRequests    = agentDesc("tillsync_agent_pos_requests_total", "POS API requests by route and HTTP status.", "route", "status")
)

type agentCollector struct {
	a        *Agent
	requests *posapi.Requests
}

func (c *agentCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{agentOutbox, agentOldest, agentConnected, agentAckLat, agentRejected, agentHeld, agentDropped,
		agentMACRefused, agentCfgRefused, agentScanConn, agentReconnects, agentScans, agentScanRefused, agentRequests} {
		ch <- d
	}
}

func (c *agentCollector) Collect(ch chan<- prometheus.Metric) {
	a := c.a
	send := func(d *prometheus.Desc, t prometheus.ValueType, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, t, v, labels...)
	}
	b2f := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	n, oldest, err := a.ob.Stats()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(agentOutbox, err)
	} else {
		send(agentOutbox, prometheus.GaugeValue, float64(n))
		age := 0.0
		if !oldest.IsZero() {
			age = max(a.clk.Now().Sub(oldest), 0).Seconds()
		}
		send(agentOldest, prometheus.GaugeValue, age)
	}
	send(agentConnected, prometheus.GaugeValue, b2f(a.up.Connected()))
	if m, err := metrics.Latency(agentAckLat, a.up.AckLatency()); err == nil {
		ch <- m
	}
	a.rmu.Lock()
	rejected, held := a.rejected, a.held
	a.rmu.Unlock()
	send(agentRejected, prometheus.CounterValue, float64(rejected))
	send(agentHeld, prometheus.CounterValue, float64(held))
	send(agentDropped, prometheus.CounterValue, float64(a.up.Dropped()))
	send(agentMACRefused, prometheus.CounterValue, float64(a.up.MACRefused()))
	send(agentCfgRefused, prometheus.CounterValue, float64(a.up.ConfigRefused()))
	a.smu.Lock()
	sc := a.scanner
	a.smu.Unlock()
	send(agentScanConn, prometheus.GaugeValue, b2f(sc.Connected))
	send(agentReconnects, prometheus.CounterValue, float64(sc.Reconnects))
	send(agentScans, prometheus.CounterValue, float64(sc.Scans))
	send(agentScanRefused, prometheus.CounterValue, float64(sc.Refused))
	for k, v := range c.requests.Snapshot() {
		send(agentRequests, prometheus.CounterValue, float64(v), k.Route, k.Status)
	}
}

// withMetrics adds GET /metrics and the request counts to the POS API's
// options.
func (a *Agent) withMetrics(o posapi.Options) posapi.Options {
	c := &agentCollector{a: a, requests: &posapi.Requests{}}
	reg, err := metrics.NewRegistry(c)
	if err != nil {
		a.log.Error("metrics not served", "err", err)
		return o
	}
	o.Requests, o.Metrics = c.requests, metrics.Handler(reg)
	return o
}

//go:build unix

package e2e

import (
	"testing"

	"github.com/tillsync/tillsync/agent"
	"github.com/tillsync/tillsync/internal/testkit"
)

// The agent's scanner metrics follow a serial scanner (a pseudo-terminal):
// attached, every scan counted, the ones that are not a member id too.
func TestAgentScannerMetrics(t *testing.T) {
	pty := testkit.OpenPTY(t)
	a := startTill(t, agent.Options{DataDir: t.TempDir(), Broker: "tcp://" + testkit.FreePort(t), Store: randomID("metrics-scan-"), ScannerPort: pty.Name})
	testkit.WaitFor(t, waitLong, "the scanner to connect", func() bool { return a.health(t).Scanner.Connected })
	if _, err := pty.Master.Write([]byte("]C0M1001\r\n]Q1https://x.example/m/1\r\n]C0M1002\r\n")); err != nil {
		t.Fatal(err)
	}
	var m testkit.Metrics
	testkit.WaitFor(t, waitLong, "three scans in the metrics", func() bool {
		_, m = testkit.Scrape(t, a.pos+"/metrics", "")
		return m["tillsync_agent_scans_total"] == 3
	})
	for name, want := range map[string]float64{
		"tillsync_agent_scanner_connected":        1,
		"tillsync_agent_scans_refused_total":      1,
		"tillsync_agent_scanner_reconnects_total": 0,
	} {
		if got, ok := m[name]; !ok || got != want {
			t.Errorf("%s: %v (present %v), want %v", name, got, ok, want)
		}
	}
}

package perf

import (
	"bytes"
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tillsync/tillsync/internal/proc"
	"github.com/tillsync/tillsync/internal/testkit/clitest"
)

// TestRunSmall runs every scenario end to end at a small scale, as make
// bench does at full scale: real hub and agent binaries, TLS, enrolled
// tills, the ledger. It checks that each produced its figures and that
// what the scenarios count themselves holds (the drain's exactly-once
// check, every till answered); how fast anything was is not its business.
func TestRunSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the hub for half a minute; make bench runs the full scale")
	}
	bin := t.TempDir()
	for _, name := range []string{"tillsync-hub", "tillsync-agent"} {
		if _, err := clitest.Build(bin, name, "github.com/tillsync/tillsync/cmd/"+name); err != nil {
			t.Fatal(err)
		}
	}
	mosq, _ := proc.FindMosquitto()
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	rows, err := Run(ctx, Options{
		Bin: bin, Dir: t.TempDir(), Out: &out, Mosquitto: mosq, NoMosquitto: mosq == "",
		Confirms: 60, Terminals: 20, Duration: time.Second, Warmup: 300 * time.Millisecond,
		DrainStores: 8, DrainQueued: 150, Background: 200, Connections: 30, AgingTxs: 8000, AgingProbes: 10,
		HubFlags: []string{"--metrics-max-stores=50"},
	})
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, out.String())
	}
	want := []string{"1", "2", "2c", "3", "3b", "4", "5", "5b", "6", "6b"}
	if mosq != "" {
		want = append(want, "2m", "2mc", "3m", "3mb")
	}
	var got []string
	for _, r := range rows {
		got = append(got, r.ID)
		if r.Figure == "" || r.Target == "" {
			t.Errorf("row %s has no figure or target: %+v", r.ID, r)
		}
		// The rows of scenarios 2 to 5 (the hub's) say how it was set up.
		if hubs := slices.Contains([]string{"2", "2m", "3", "3m", "4", "5"}, r.ID); hubs != strings.Contains(r.What, "hub --metrics-max-stores=50") {
			t.Errorf("row %s: %q; want the hub's flags named in the rows of scenarios 2 to 5 and nowhere else", r.ID, r.What)
		}
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("rows %v, want %v\n%s", got, want, out.String())
	}
	var table bytes.Buffer
	PrintTable(&table, rows)
	for _, w := range []string{"figure", "baseline", "ratio", "target", "live ingest", "backlog drain"} {
		if !strings.Contains(table.String(), w) {
			t.Errorf("the table lacks %q:\n%s", w, table.String())
		}
	}
	if testing.Verbose() {
		os.Stdout.Write(table.Bytes())
	}
}

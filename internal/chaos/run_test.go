package chaos

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tillsync/tillsync/internal/testkit/clitest"
)

// TestRunSeed runs the harness end to end, as make chaos does, on a short
// seed: real hub and agent binaries, every kind of fault, the checker on
// the whole history; with the hub's embedded broker, and with a Mosquitto
// of its own where one is installed. It must find nothing, and it must
// have had something to check.
func TestRunSeed(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the hub and agents for half a minute; make chaos runs more")
	}
	bin := t.TempDir()
	for _, name := range []string{"tillsync-hub", "tillsync-agent"} {
		if _, err := clitest.Build(bin, name, "github.com/tillsync/tillsync/cmd/"+name); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("embedded", func(t *testing.T) { runSeed(t, bin, "") })
	t.Run("mosquitto", func(t *testing.T) {
		mosq, err := FindMosquitto()
		if err != nil {
			t.Skipf("%v: the run behind Mosquitto is left out", err)
		}
		runSeed(t, bin, mosq)
	})
}

func runSeed(t *testing.T, bin, mosquitto string) {
	dir := t.TempDir()
	var out strings.Builder
	res, err := Run(context.Background(), Options{Bin: bin, Dir: dir, Seed: 1, Tills: 4, Duration: 8 * time.Second, Mosquitto: mosquitto, Out: &out})
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK() {
		logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
		for _, l := range logs {
			if b, err := os.ReadFile(l); err == nil {
				t.Logf("%s:\n%s", filepath.Base(l), b)
			}
		}
		t.Fatalf("violations:\n%s", strings.Join(res.Report.Violations, "\n"))
	}
	for _, k := range Kinds {
		if res.Injected[k] == 0 {
			t.Errorf("no %s fault was carried out", k)
		}
	}
	r := res.Report
	if r.Accepted == 0 || r.Approved == 0 || r.Declined == 0 || r.LedgerTxs == 0 || r.Entries == 0 {
		t.Errorf("too little was checked: %+v", r)
	}
	if res.Drain > DefaultDrainWithin {
		t.Errorf("drained in %v", res.Drain)
	}
}

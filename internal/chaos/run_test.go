package chaos

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tillsync/tillsync/internal/proc"
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
	bin := binaries(t)
	t.Run("embedded", func(t *testing.T) { runSeed(t, bin, "") })
	t.Run("mosquitto", func(t *testing.T) {
		mosq, err := proc.FindMosquitto()
		if err != nil {
			t.Skipf("%v: the run behind Mosquitto is left out", err)
		}
		runSeed(t, bin, mosq)
	})
}

// binaries builds tillsync-hub and tillsync-agent once for the package's
// tests.
func binaries(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "tillsync-chaos-test-")
		if err != nil {
			buildErr = err
			return
		}
		binDir = dir
		for _, name := range []string{"tillsync-hub", "tillsync-agent"} {
			if _, err := clitest.Build(dir, name, "github.com/tillsync/tillsync/cmd/"+name); err != nil {
				buildErr = err
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// TestCrashLoop kills the agent mid-traffic a few dozen times, as make
// crashloop does a thousand times: every outbox check clean, nothing lost.
func TestCrashLoop(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the hub and an agent; make crashloop runs more")
	}
	var out strings.Builder
	res, err := CrashLoop(context.Background(), CrashOptions{Bin: binaries(t), Dir: t.TempDir(), Seed: 3, Kills: 25, Out: &out})
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK() {
		t.Fatalf("clean %d of %d kills; violations:\n%s", res.Clean, res.Kills, strings.Join(res.Report.Violations, "\n"))
	}
	if res.Kills != 25 || res.Report.Accepted == 0 || res.Report.LedgerTxs == 0 {
		t.Errorf("too little happened: %d kills, %+v", res.Kills, res.Report)
	}
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
	// Every fault of the schedule was carried out, or left out because the
	// load had ended before its turn (a slow machine pushes the hub's back);
	// every kind that hits a till, and the hub, were carried out.
	if got, want := res.Faults()+res.Skipped, len(res.Schedule.Faults); got != want {
		t.Errorf("%d faults carried out and %d left out; the schedule has %d", res.Faults(), res.Skipped, want)
	}
	hub := 0
	for _, k := range Kinds {
		if k.hubKind() {
			hub += res.Injected[k]
		} else if res.Injected[k] == 0 {
			t.Errorf("no %s fault was carried out", k)
		}
	}
	if hub == 0 {
		t.Error("no fault of the hub's was carried out")
	}
	r := res.Report
	if r.Accepted == 0 || r.Approved == 0 || r.Declined == 0 || r.LedgerTxs == 0 || r.Entries == 0 {
		t.Errorf("too little was checked: %+v", r)
	}
	if res.Drain > DefaultDrainWithin {
		t.Errorf("drained in %v", res.Drain)
	}
}

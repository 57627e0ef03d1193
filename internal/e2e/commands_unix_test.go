//go:build unix

package e2e

import (
	"os"
	"sync"
	"testing"

	"github.com/tillsync/tillsync/internal/testkit/clitest"
)

// The commands some tests run as binaries (tillsync-hub broker-config for
// Mosquitto, both commands in the bad-input tour) are built at most once
// per test run, into one directory that TestMain removes.
var commands struct {
	mu    sync.Mutex
	dir   string
	built map[string]clitest.Binary
}

// command builds the command cmd/name once for the package's tests.
func command(t *testing.T, name string) clitest.Binary {
	t.Helper()
	commands.mu.Lock()
	defer commands.mu.Unlock()
	if b, ok := commands.built[name]; ok {
		return b
	}
	if commands.dir == "" {
		dir, err := os.MkdirTemp("", "tillsync-e2e-commands-")
		if err != nil {
			t.Fatal(err)
		}
		commands.dir, commands.built = dir, map[string]clitest.Binary{}
	}
	b, err := clitest.Build(commands.dir, name, "github.com/tillsync/tillsync/cmd/"+name)
	if err != nil {
		t.Fatal(err)
	}
	commands.built[name] = b
	return b
}

// hubCommand is tillsync-hub, built for the package's tests.
func hubCommand(t *testing.T) clitest.Binary { t.Helper(); return command(t, "tillsync-hub") }

// agentCommand is tillsync-agent, built for the package's tests.
func agentCommand(t *testing.T) clitest.Binary { t.Helper(); return command(t, "tillsync-agent") }

func TestMain(m *testing.M) {
	code := m.Run()
	if commands.dir != "" {
		os.RemoveAll(commands.dir)
	}
	os.Exit(code)
}

//go:build unix

package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// run --config: the file configures the agent, a variable and a flag
// override it, and with log.file the log goes to <data_dir>/logs/agent.log
// as well as stderr.
func TestRunWithConfig(t *testing.T) {
	t.Setenv("TILLSYNC_AGENT_TERMINAL", "till-env")
	dir, pos := t.TempDir(), freeAddr(t)
	p := writeConfig(t, goodConfig(dir, pos))
	proc := start(t, "run", "--config", p, "--store", "s-flag")
	var h health
	proc.WaitFor(t, 10*time.Second, "the POS API from the config file to answer", func() bool {
		var ok bool
		h, ok = getHealth(pos)
		return ok
	})
	if h.Store != "s-flag" {
		t.Errorf("health store %q, want s-flag from --store over the file", h.Store)
	}
	// status finds the POS API through the same file.
	if out := run(t, "status", "--config", p).OK(t); !strings.Contains(out, `"terminal": "till-env"`) || !strings.Contains(out, "agent at "+pos) {
		t.Errorf("status --config printed:\n%s\nwant terminal till-env from TILLSYNC_AGENT_TERMINAL", out)
	}
	if err := proc.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := proc.ExitCode(t, 5*time.Second); code != 0 {
		t.Errorf("exit %d after SIGTERM; output:\n%s", code, proc.Output())
	}
	log, err := os.ReadFile(filepath.Join(dir, "logs", "agent.log"))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{`msg="config read" path=` + p, `msg="agent running"`, "store=s-flag", "terminal=till-env", `msg="agent stopped"`} {
		if !strings.Contains(string(log), w) {
			t.Errorf("agent.log lacks %q:\n%s", w, log)
		}
	}
	if !strings.Contains(proc.Output(), `msg="agent running"`) {
		t.Errorf("stderr lacks the log:\n%s", proc.Output())
	}
}

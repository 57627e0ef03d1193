//go:build unix

package main

import (
	"os"
	"syscall"
	"testing"
	"time"
)

// startHub starts `serve` on free ports and waits until its health answers.
func startHub(t *testing.T, dataDir string) (*proc, string) {
	t.Helper()
	httpAddr := freeAddr(t)
	p := start(t, "serve", "--data-dir", dataDir, "--mqtt-listen", freeAddr(t), "--http-listen", httpAddr)
	p.waitFor(t, 10*time.Second, "GET /v1/health to answer", func() bool { return answers("http://" + httpAddr + "/v1/health") })
	return p, httpAddr
}

func TestServeStopsCleanly(t *testing.T) {
	t.Parallel()
	for _, sig := range []os.Signal{syscall.SIGTERM, os.Interrupt} {
		t.Run(sig.String(), func(t *testing.T) {
			t.Parallel()
			p, _ := startHub(t, t.TempDir())
			if err := p.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			if code := p.exitCode(t, 5*time.Second); code != 0 {
				t.Errorf("exit %d after %s, want 0; output:\n%s", code, sig, p.out.String())
			}
		})
	}
}

func TestDataDirInUse(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p, _ := startHub(t, dir)
	run(t, "serve", "--data-dir", dir, "--mqtt-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0").
		oneLine(t, 1, dir, "in use", "same data dir")
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.exitCode(t, 5*time.Second); code != 0 {
		t.Errorf("first hub: exit %d after SIGTERM, want 0; output:\n%s", code, p.out.String())
	}
}

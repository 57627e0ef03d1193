//go:build unix

package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tillsync/tillsync/internal/testkit/clitest"
)

// startHub starts `serve` on free ports, with extra flags, and waits until
// its health answers.
func startHub(t *testing.T, dataDir string, extra ...string) (*clitest.Proc, string) {
	t.Helper()
	httpAddr := freeAddr(t)
	p := start(t, append([]string{"serve", "--data-dir", dataDir, "--mqtt-listen", freeAddr(t), "--http-listen", httpAddr}, extra...)...)
	p.WaitFor(t, 10*time.Second, "GET /healthz to answer", func() bool { return answers("http://" + httpAddr + "/healthz") })
	return p, httpAddr
}

// operatorTokenFile is where serve keeps the operator token it makes in
// its data dir.
func operatorTokenFile(dataDir string) string { return filepath.Join(dataDir, "operator.token") }

// readFileT returns the first line of a file.
func readFileT(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	line, _, _ := strings.Cut(string(data), "\n")
	return line
}

func TestServeStopsCleanly(t *testing.T) {
	t.Parallel()
	for _, sig := range []os.Signal{syscall.SIGTERM, os.Interrupt} {
		t.Run(sig.String(), func(t *testing.T) {
			t.Parallel()
			p, _ := startHub(t, t.TempDir())
			if err := p.Signal(sig); err != nil {
				t.Fatal(err)
			}
			if code := p.ExitCode(t, 5*time.Second); code != 0 {
				t.Errorf("exit %d after %s, want 0; output:\n%s", code, sig, p.Output())
			}
		})
	}
}

func TestDataDirInUse(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p, _ := startHub(t, dir)
	run(t, "serve", "--data-dir", dir, "--mqtt-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0").
		OneLine(t, 1, dir, "in use", "same data dir")
	p.Signal(syscall.SIGTERM)
	if code := p.ExitCode(t, 5*time.Second); code != 0 {
		t.Errorf("first hub: exit %d after SIGTERM, want 0; output:\n%s", code, p.Output())
	}
}

//go:build unix

package e2e

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/tillsync/tillsync/hub/broker"
	"github.com/tillsync/tillsync/internal/testkit"
)

// mosquittoWorld is a hub behind a real Mosquitto set up by tillsync-hub
// broker-config mosquitto (TLS with the hub's certificate, the hub's own
// account, an account and ACL per enrolled terminal), with Mosquitto
// logging at every level so that its denials can be counted. reload runs
// broker-config against the running hub and sends Mosquitto SIGHUP.
func mosquittoWorld(t *testing.T) *spoofWorld {
	bed := newMosquittoBed(t, true, nil)
	bin, m, out, addr, conf := bed.bin, bed.m, bed.out, bed.addr, filepath.Join(bed.out, broker.MosquittoConfFile)
	hubDir := bed.e.hubDir
	w := &spoofWorld{logs: new(testkit.Buffer), mosquitto: m, url: bed.url, ca: bed.ca, e: bed.e}
	w.e.requireEnrollment = true
	w.e.log = slog.New(slog.NewTextHandler(w.logs, &slog.HandlerOptions{Level: slog.LevelInfo})).With("side", "hub")
	w.h = startHubOnce(t, w.e)
	w.reload = func() {
		t.Helper()
		res := bin.Run(t, "broker-config", "mosquitto", "--data-dir", hubDir, "--out", out, "--listen", addr, "--hub", "http://"+w.e.httpAddr).OK(t)
		if !strings.Contains(res, "the running hub") {
			t.Fatalf("broker-config with a running hub said:\n%s", res)
		}
		logEverything(t, conf)
		loaded := strings.Count(m.Output(), "Reloading config")
		if err := m.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		m.WaitFor(t, waitLong, "Mosquitto to reload", func() bool { return strings.Count(m.Output(), "Reloading config") > loaded })
	}
	return w
}

// logEverything makes the Mosquitto configuration conf log at every level
// to stderr: denied publishes are logged at debug only.
func logEverything(t *testing.T, conf string) {
	t.Helper()
	data, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), "\nlog_type all\n") {
		return
	}
	if err := os.WriteFile(conf, append(data, "\nlog_type all\nlog_dest stderr\n"...), 0); err != nil {
		t.Fatal(err)
	}
}

//go:build unix

package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tillsync/tillsync/hub"
	"github.com/tillsync/tillsync/hub/broker"
	"github.com/tillsync/tillsync/hub/pki"
	"github.com/tillsync/tillsync/internal/testkit"
	"github.com/tillsync/tillsync/internal/testkit/clitest"
)

// mosquittoWorld is a hub behind a real Mosquitto set up by tillsync-hub
// broker-config mosquitto (TLS with the hub's certificate, the hub's own
// account, an account and ACL per enrolled terminal), with Mosquitto
// logging at every level so that its denials can be counted. reload runs
// broker-config against the running hub and sends Mosquitto SIGHUP.
func mosquittoWorld(t *testing.T) *spoofWorld {
	mosq := mosquittoBinary(t)
	bin := hubCommand(t)
	// Not t.TempDir(): its parents are owner-only, and a Mosquitto started
	// as root reads the files as its own user.
	base, err := os.MkdirTemp("", "tillsync-spoof-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o711); err != nil {
		t.Fatal(err)
	}
	hubDir, out := filepath.Join(base, "hub"), filepath.Join(base, "mosquitto")
	addr := testkit.FreePort(t)
	bin.Run(t, "broker-config", "mosquitto", "--data-dir", hubDir, "--out", out, "--listen", addr).OK(t)
	conf := filepath.Join(out, broker.MosquittoConfFile)
	logEverything(t, conf)
	letMosquittoRead(t, out)
	m := clitest.Binary{Name: "mosquitto", Path: mosq}.Start(t, "-c", conf)
	m.WaitFor(t, waitLong, "Mosquitto to listen", func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	ca, err := os.ReadFile(filepath.Join(out, broker.MosquittoCAFile))
	if err != nil {
		t.Fatal(err)
	}
	hubPass, err := hub.ReadPasswordFile(filepath.Join(hubDir, hub.BrokerPasswordFile))
	if err != nil {
		t.Fatal(err)
	}
	p, err := pki.Load(filepath.Join(hubDir, "pki"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	w := &spoofWorld{logs: new(testkit.Buffer), mosquitto: m, url: "tls://" + addr, ca: ca}
	w.e = &env{t: t, external: w.url, hubDir: hubDir, clientID: randomID("tillsync-hub-e2e-"), httpAddr: testkit.FreePort(t), pki: p,
		brokerTLS: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, brokerUser: broker.HubUsername, brokerPass: hubPass,
		requireEnrollment: true,
		log:               slog.New(slog.NewTextHandler(w.logs, &slog.HandlerOptions{Level: slog.LevelInfo})).With("side", "hub")}
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

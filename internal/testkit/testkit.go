// Package testkit holds what tillsync's tests share: polling instead of
// sleeping, free loopback ports, pseudo-terminals standing in for serial
// scanners, the choice of MQTT broker (embedded, or the one named by
// TILLSYNC_TEST_MQTT), and the shape both HTTP APIs' answers must have
// (JSONAnswer).
package testkit

import (
	"net"
	"os"
	"testing"
	"time"
)

// WaitFor polls cond every 10 ms until it returns true, failing the test
// with what after timeout.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// WaitUntil polls cond every 10 ms until it returns true or timeout
// passes, and says which: for a test that counts an outcome rather than
// failing on it.
func WaitUntil(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// FreePort returns a loopback address "127.0.0.1:N" whose port was free a
// moment ago. Prefer listening on port 0 where the code under test allows it.
func FreePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// ExternalBroker returns the broker URL named by TILLSYNC_TEST_MQTT
// (e.g. tcp://127.0.0.1:1883), or "" when tests should use the embedded one only.
func ExternalBroker() string { return os.Getenv("TILLSYNC_TEST_MQTT") }

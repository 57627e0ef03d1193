//go:build unix

package testkit

import (
	"os"
	"testing"

	"github.com/creack/pty"
)

// PTY is a pseudo-terminal standing in for a serial scanner: the code under
// test opens Name as a serial port, the test writes scans into Master.
type PTY struct {
	Master *os.File
	Name   string
	slave  *os.File
}

// OpenPTY opens a pseudo-terminal pair, closed when the test ends. The slave
// side stays open in the test too, so the device does not hang up while the
// code under test reopens it.
func OpenPTY(t testing.TB) *PTY {
	t.Helper()
	m, s, err := pty.Open()
	if err != nil {
		t.Fatalf("open pty: %v", err)
	}
	t.Cleanup(func() { m.Close(); s.Close() })
	return &PTY{Master: m, Name: s.Name(), slave: s}
}

package chaos

import (
	"errors"
	"os"
)

// terminate asks a process to stop; Windows has no SIGTERM to send to
// another process, so it is killed.
func terminate(p *os.Process) { p.Kill() }

// exe is a program's file name on this OS.
func exe(name string) string { return name + ".exe" }

// dump would ask for a goroutine dump; Windows has no SIGQUIT.
func dump(*os.Process) bool { return false }

// reload would have Mosquitto re-read its configuration; Windows has no
// SIGHUP, and the harness runs Mosquitto on Unix only.
func reload(*proc) error { return errors.New("chaos: reloading Mosquitto needs SIGHUP (Unix)") }

// mosquittoUser: Mosquitto on Windows runs as whoever starts it.
func mosquittoUser() string { return "" }

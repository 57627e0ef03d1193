package proc

import (
	"errors"
	"os"
)

// terminate asks a process to stop; Windows has no SIGTERM to send to
// another process, so it is killed.
func terminate(p *os.Process) { p.Kill() }

// Exe is a program's file name on this OS.
func Exe(name string) string { return name + ".exe" }

// dump would ask for a goroutine dump; Windows has no SIGQUIT.
func dump(*os.Process) bool { return false }

// Reload would have the process re-read its configuration; Windows has
// no SIGHUP, and the harnesses run Mosquitto on Unix only.
func (p *Proc) Reload() error { return errors.New("reloading " + p.Name + " needs SIGHUP (Unix)") }

// MosquittoUser: Mosquitto on Windows runs as whoever starts it.
func MosquittoUser() string { return "" }

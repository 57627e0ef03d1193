//go:build unix

package proc

import (
	"fmt"
	"os"
	"syscall"
)

// terminate asks a process to stop cleanly.
func terminate(p *os.Process) { p.Signal(syscall.SIGTERM) }

// Exe is a program's file name on this OS.
func Exe(name string) string { return name }

// dump asks a Go process for a goroutine dump on its stderr (SIGQUIT).
func dump(p *os.Process) bool { return p.Signal(syscall.SIGQUIT) == nil }

// Reload has the process re-read its configuration (SIGHUP).
func (p *Proc) Reload() error {
	p.mu.Lock()
	cmd := p.cmd
	p.mu.Unlock()
	if cmd == nil {
		return fmt.Errorf("reload %s: not running", p.Name)
	}
	return cmd.Process.Signal(syscall.SIGHUP)
}

// MosquittoUser is the line of Mosquitto's configuration that keeps it
// running as the harness's user: started as root, Mosquitto would drop to
// the user mosquitto, who cannot read the run's owner-only dir.
func MosquittoUser() string {
	if os.Geteuid() == 0 {
		return "user root\n"
	}
	return ""
}

//go:build unix

package chaos

import (
	"fmt"
	"os"
	"syscall"
)

// terminate asks a process to stop cleanly.
func terminate(p *os.Process) { p.Signal(syscall.SIGTERM) }

// exe is a program's file name on this OS.
func exe(name string) string { return name }

// dump asks a Go process for a goroutine dump on its stderr (SIGQUIT).
func dump(p *os.Process) bool { return p.Signal(syscall.SIGQUIT) == nil }

// reload has a process re-read its configuration (SIGHUP).
func reload(p *proc) error {
	p.mu.Lock()
	cmd := p.cmd
	p.mu.Unlock()
	if cmd == nil {
		return fmt.Errorf("chaos: reload %s: not running", p.name)
	}
	return cmd.Process.Signal(syscall.SIGHUP)
}

// mosquittoUser is the line of Mosquitto's configuration that keeps it
// running as the harness's user: started as root, Mosquitto would drop to
// the user mosquitto, who cannot read the run's owner-only dir.
func mosquittoUser() string {
	if os.Geteuid() == 0 {
		return "user root\n"
	}
	return ""
}

//go:build unix

package chaos

import (
	"os"
	"syscall"
)

// terminate asks a process to stop cleanly.
func terminate(p *os.Process) { p.Signal(syscall.SIGTERM) }

// exe is a program's file name on this OS.
func exe(name string) string { return name }

// dump asks a Go process for a goroutine dump on its stderr (SIGQUIT).
func dump(p *os.Process) bool { return p.Signal(syscall.SIGQUIT) == nil }

package chaos

import "os"

// terminate asks a process to stop; Windows has no SIGTERM to send to
// another process, so it is killed.
func terminate(p *os.Process) { p.Kill() }

// exe is a program's file name on this OS.
func exe(name string) string { return name + ".exe" }

// dump would ask for a goroutine dump; Windows has no SIGQUIT.
func dump(*os.Process) bool { return false }

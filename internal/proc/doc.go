// Package proc runs the programs of a test harness (the chaos harness,
// the performance bench) as separate processes: started with their output
// appended to a log file, killed as kill -9 does, or stopped with SIGTERM
// and a deadline, past which a Go program is asked for a goroutine dump
// before it is killed, because a process that does not stop is a finding.
package proc

package proc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Proc is one program a harness runs, started again as often as it is
// killed. Its output is appended to its log file.
type Proc struct {
	// Name is for messages; Bin is the program; Log is the file its
	// output is appended to.
	Name, Bin, Log string
	// StopTimeout is how long Stop waits after SIGTERM; default 10s.
	StopTimeout time.Duration

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{} // closed when the current process has exited
	starts int
}

// Start runs the program with args; the process must not be running.
func (p *Proc) Start(args ...string) error {
	f, err := os.OpenFile(p.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.starts++
	fmt.Fprintf(f, "=== start %d: %s %s\n", p.starts, filepath.Base(p.Bin), strings.Join(args, " "))
	cmd := exec.Command(p.Bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	done := make(chan struct{})
	p.cmd, p.done = cmd, done
	go func() { cmd.Wait(); close(done) }()
	return nil
}

// Exited returns a channel closed when the current process has exited (an
// already closed one when none was started).
func (p *Proc) Exited() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done == nil {
		c := make(chan struct{})
		close(c)
		return c
	}
	return p.done
}

// Running reports whether the process is up.
func (p *Proc) Running() bool {
	select {
	case <-p.Exited():
		return false
	default:
		return true
	}
}

// Kill sends SIGKILL (kill -9) and waits for the process to be gone.
func (p *Proc) Kill() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Kill()
	<-done
}

// DefaultStopTimeout is how long a process may take to stop on SIGTERM.
const DefaultStopTimeout = 10 * time.Second

// Stop asks the process to stop (SIGTERM) and waits up to StopTimeout.
// A process that does not stop in time is a finding: stop asks it for a
// goroutine dump into its log (SIGQUIT, on Unix), kills it, and returns
// an error saying so.
func (p *Proc) Stop() error {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return nil
	}
	terminate(cmd.Process)
	select {
	case <-done:
		return nil
	case <-time.After(p.stopTimeout()):
	}
	if dump(cmd.Process) {
		select {
		case <-done:
		case <-time.After(2 * time.Second):
		}
	}
	cmd.Process.Kill()
	<-done
	return fmt.Errorf("%s did not stop within %v of SIGTERM (killed; a goroutine dump, where the OS has SIGQUIT, is in %s)", p.Name, p.stopTimeout(), p.Log)
}

func (p *Proc) stopTimeout() time.Duration {
	if p.StopTimeout > 0 {
		return p.StopTimeout
	}
	return DefaultStopTimeout
}

// Pid is the current process's id, 0 when none was started.
func (p *Proc) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// StartListening runs the program with args, as Start does, and waits up
// to timeout until addr takes TCP connections. A program that exits
// first is an error naming its log.
func (p *Proc) StartListening(ctx context.Context, timeout time.Duration, addr string, args ...string) error {
	if err := p.Start(args...); err != nil {
		return err
	}
	return WaitFor(ctx, timeout, p.Name+" to listen", func() (bool, error) {
		if !p.Running() {
			return false, p.ExitedAtStart()
		}
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
		}
		return err == nil, nil
	})
}

// ExitedAtStart is the error for a process that exited before it was
// ready: it names the log and quotes the log's last lines, as a test's
// temporary dir, the log with it, is gone by the time its failure is read.
func (p *Proc) ExitedAtStart() error {
	return fmt.Errorf("%s exited at its start; see %s, which ends:\n%s", p.Name, p.Log, tail(p.Log, 15))
}

// tail returns the last n lines of the file at path, indented, or why it
// cannot.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "    (" + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	lines = lines[max(0, len(lines)-n):]
	return "    " + strings.Join(lines, "\n    ")
}

// WaitFor polls cond every 50ms until it holds, fails, or timeout passes.
func WaitFor(ctx context.Context, timeout time.Duration, what string, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %v waiting for %s", timeout, what)
		}
		select {
		case <-ctx.Done():
			return errors.Join(fmt.Errorf("waiting for %s", what), ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// FindMosquitto finds a mosquitto binary: on PATH, else where Debian's
// package puts it.
func FindMosquitto() (string, error) {
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/sbin/mosquitto"); err == nil {
		return "/usr/sbin/mosquitto", nil
	}
	return "", errors.New("no mosquitto binary on PATH or in /usr/sbin")
}

// FreePort returns a loopback address with a port free a moment ago, for
// a program to listen on.
func FreePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

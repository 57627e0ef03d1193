package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/kardianos/service"
	"github.com/spf13/cobra"
	"github.com/tillsync/tillsync/agent/config"
	"github.com/tillsync/tillsync/internal/cli"
)

// stopWait bounds Stop. Windows gives a stopping service little time (at
// shutdown, WaitToKillServiceTimeout: 5 s by default on current versions)
// and the agent closes its outbox in well under a second.
const stopWait = 2 * time.Second

// program runs the agent under the OS service manager through
// kardianos/service: Start returns at once (Windows fails a service whose
// start does not report back promptly, error 1053) and Stop waits for the
// agent to finish — POS API, scanner and uplink stopped, outbox closed —
// for at most stopWait.
type program struct {
	run      func(context.Context) error // the agent's Run
	log      *slog.Logger
	stopWait time.Duration
	exit     func(code int) // os.Exit

	cancel context.CancelFunc
	done   chan error
}

func (p *program) Start(service.Service) error {
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel, p.done = cancel, make(chan error, 1)
	go func() {
		err := p.run(ctx)
		if err != nil && ctx.Err() == nil {
			// The agent cannot work (its POS API is gone): exit non-zero so
			// the service manager restarts it, rather than look alive.
			p.log.Error("agent stopped on its own; exiting for the service manager to restart it", "err", err)
			p.exit(1)
		}
		p.done <- err
	}()
	return nil
}

func (p *program) Stop(service.Service) error {
	if p.cancel == nil {
		return nil
	}
	p.cancel()
	t := time.NewTimer(p.stopWait)
	defer t.Stop()
	select {
	case err := <-p.done:
		if err != nil {
			p.log.Error("agent stopped with an error", "err", err)
		}
		return err
	case <-t.C:
		// Nothing is lost: every accepted transaction is already committed
		// to the outbox, and bbolt needs no clean close to be consistent.
		// Returning lets the service manager finish the stop in time.
		p.log.Error("agent did not stop within the time the service manager allows; stopping anyway", "wait", p.stopWait)
		return nil
	}
}

// noProgram is the service seen from the commands that only install or
// control it.
type noProgram struct{}

func (noProgram) Start(service.Service) error { return nil }
func (noProgram) Stop(service.Service) error  { return nil }

func controlService() (service.Service, error) {
	return service.New(noProgram{}, &service.Config{Name: serviceName})
}

// The service's states, in the words status prints.
const (
	stateRunning      = "running"
	stateStopped      = "stopped"
	stateFailed       = "stopped after a failure"
	stateNotInstalled = "not installed"
)

func serviceState(s service.Service) (string, error) {
	st, err := s.Status()
	switch {
	case errors.Is(err, service.ErrNotInstalled):
		return stateNotInstalled, nil
	case err != nil && strings.Contains(err.Error(), "failed state"):
		return stateFailed, nil // systemd's "failed"
	case err != nil:
		// On SysV-style systems kardianos asks `service NAME status`, which
		// fails for a service that does not exist; its script would be here.
		if p := s.Platform(); p == "unix-systemv" || p == "linux-openrc" {
			if _, serr := os.Stat("/etc/init.d/" + serviceName); errors.Is(serr, fs.ErrNotExist) {
				return stateNotInstalled, nil
			}
		}
		return "", fmt.Errorf("cannot tell the state of service %s: %s", serviceName, oneLine(err.Error()))
	case st == service.StatusRunning:
		return stateRunning, nil
	case st == service.StatusStopped:
		return stateStopped, nil
	}
	return "", fmt.Errorf("cannot tell the state of service %s", serviceName)
}

// waitState polls until the service is in state want, for at most d, and
// returns the last state seen.
func waitState(s service.Service, want string, d time.Duration) string {
	deadline := time.Now().Add(d)
	for {
		st, err := serviceState(s)
		if err == nil && st == want || time.Now().After(deadline) {
			return st
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func needAdmin(action string) error {
	if isAdmin() {
		return nil
	}
	return fmt.Errorf("%s needs administrator rights; %s", action, adminHint)
}

func errNotInstalled() error {
	return fmt.Errorf("service %s is not installed; install it with: tillsync-agent install --config PATH", serviceName)
}

// controlErr says why the service manager refused, in one line.
func controlErr(action string, err error) error {
	switch {
	case errors.Is(err, service.ErrNotInstalled):
		return errNotInstalled()
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("%s service %s: permission denied; %s", action, serviceName, adminHint)
	}
	return fmt.Errorf("%s service %s: %s", action, serviceName, oneLine(err.Error()))
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// executable is this binary's absolute path, the one the service will run.
func executable() (string, error) {
	exe, err := os.Executable()
	if err == nil {
		exe, err = filepath.EvalSymlinks(exe)
	}
	if err != nil {
		return "", fmt.Errorf("cannot find this program's own path: %v", err)
	}
	if strings.Contains(exe, "go-build") {
		return "", fmt.Errorf("%s is a temporary build (go run); build tillsync-agent (make build), put it where it will stay, and install from there", exe)
	}
	return exe, nil
}

func installCmd() *cobra.Command {
	var path, user string
	c := &cobra.Command{
		Use:   "install",
		Short: "Install the agent as a service that starts at boot and restarts after a failure",
		Long: `Install registers tillsync-agent with the OS service manager to run
"tillsync-agent run --config <file>" (this binary, the config's absolute path):

  Windows  a service started automatically, restarted 5s after any failure
  Linux    a systemd unit: Restart=always, RestartSec=5, after network-online.target
  macOS    a launchd daemon: RunAtLoad, KeepAlive

It checks the config file first (as the service will read it: without this
shell's TILLSYNC_AGENT_* variables) and refuses to install a broken one,
listing its problems. The service logs to the OS log (Event Viewer, the
journal or syslog) and to <data_dir>/logs/agent.log. Install does not start
it: run "tillsync-agent start". Needs administrator rights (root).`,
		Example: `  sudo tillsync-agent install --config /etc/tillsync/agent.yaml
  sudo tillsync-agent install --config /etc/tillsync/agent.yaml --user tillsync
  tillsync-agent install --config C:\ProgramData\tillsync\agent.yaml   (as administrator)`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if user != "" && !serviceUserSupported {
				return cli.Usagef("--user: not on Windows, where the service runs as LocalSystem")
			}
			if path == "" {
				path = config.DefaultPath()
			}
			abs, err := filepath.Abs(path)
			if err != nil {
				return fmt.Errorf("config %s: %v", path, err)
			}
			// The service sees the file alone: no variables, no flags.
			cfg, probs, err := config.Load(config.Options{Path: abs})
			if err != nil {
				return err
			}
			probs = append(probs, cfg.Check()...)
			if cfg.DataDir != "" && !filepath.IsAbs(cfg.DataDir) {
				probs = append(probs, config.Problem{Key: "data_dir", Src: cfg.Source("data_dir"), Value: fmt.Sprintf("%q", cfg.DataDir),
					Msg: "a service needs an absolute path (it does not start in this directory)"})
			}
			if len(config.Errors(probs)) == 0 {
				if err := needAdmin("install"); err != nil {
					return err
				}
				probs = append(probs, cfg.CheckHost()...)
			}
			if errs := config.Errors(probs); len(errs) > 0 {
				for _, p := range errs {
					fmt.Fprintln(c.ErrOrStderr(), p.String())
				}
				return fmt.Errorf("config %s: %s; not installed (fix, then: tillsync-agent config check --config %s)", abs, plural(len(errs), "problem"), abs)
			}
			for _, p := range probs {
				fmt.Fprintln(c.ErrOrStderr(), "warning: "+p.String())
			}
			exe, err := executable()
			if err != nil {
				return err
			}
			sc, err := serviceConfig(runtime.GOOS, serviceSpec{Exe: exe, Config: abs, User: user})
			if err != nil {
				return err
			}
			s, err := service.New(noProgram{}, sc)
			if err != nil {
				return err
			}
			switch st, err := serviceState(s); {
			case err != nil:
				return err
			case st != stateNotInstalled:
				return fmt.Errorf("service %s is already installed (%s); to change it: tillsync-agent uninstall, then install again", serviceName, st)
			}
			if err := s.Install(); err != nil {
				return controlErr("install", err)
			}
			out := c.OutOrStdout()
			fmt.Fprintf(out, "installed service %s (%s)\n", serviceName, s.Platform())
			fmt.Fprintf(out, "  runs  %s %s\n", exe, strings.Join(sc.Arguments, " "))
			fmt.Fprintf(out, "  logs  %s; %s\n", osLogHint(runtime.GOOS), cfg.LogPath())
			if !restartsOnFailure(s.Platform()) {
				fmt.Fprintf(out, "  note  %s does not restart the agent after a failure; only Windows, systemd and launchd are set up to\n", s.Platform())
			}
			fmt.Fprintln(out, "start it with: tillsync-agent start")
			return nil
		},
	}
	c.Flags().StringVar(&path, "config", "", "the config file the service runs with (default "+config.DefaultPath()+")")
	c.Flags().StringVar(&user, "user", "", "run the service as this account (Linux, macOS; default root); it must own the data dir and may read the scanner's port")
	return c
}

func restartsOnFailure(platform string) bool {
	switch platform {
	case "linux-systemd", "windows-service", "darwin-launchd":
		return true
	}
	return false
}

func uninstallCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "uninstall",
		Short: "Stop the service and remove it; the config file, data dir and logs stay",
		Long: `Uninstall stops the service if it runs and removes it from the OS service
manager. The config file, the data dir (with the outbox: transactions not yet
confirmed by the hub) and the logs are left in place. Needs administrator
rights (root).`,
		Example: `  sudo tillsync-agent uninstall`,
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := needAdmin("uninstall"); err != nil {
				return err
			}
			s, err := controlService()
			if err != nil {
				return err
			}
			st, err := serviceState(s)
			switch {
			case err != nil:
				return err
			case st == stateNotInstalled:
				return errNotInstalled()
			case st == stateRunning:
				if err := s.Stop(); err != nil {
					return controlErr("stop", err)
				}
			}
			if err := s.Uninstall(); err != nil {
				return controlErr("uninstall", err)
			}
			fmt.Fprintf(c.OutOrStdout(), "uninstalled service %s; its config file, data dir and logs are left in place\n", serviceName)
			return nil
		},
	}
}

func startCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "start",
		Short: "Start the installed service",
		Long: `Start asks the OS service manager to start the installed agent and waits a
few seconds to report whether it runs. Needs administrator rights (root).`,
		Example: `  sudo tillsync-agent start`,
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return control(c, "start", stateRunning, func(s service.Service) error { return s.Start() })
		},
	}
}

func stopCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "stop",
		Short: "Stop the installed service (it starts again at boot)",
		Long: `Stop asks the OS service manager to stop the agent: it stops taking requests,
closes its outbox and exits within 2 seconds. Nothing accepted is lost; the
hub gets it after the next start. Needs administrator rights (root).`,
		Example: `  sudo tillsync-agent stop`,
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return control(c, "stop", stateStopped, func(s service.Service) error { return s.Stop() })
		},
	}
}

func restartCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "restart",
		Short: "Restart the installed service (after changing its config file)",
		Long: `Restart stops and starts the installed agent, e.g. after its config file
changed (check it first: tillsync-agent config check). Needs administrator
rights (root).`,
		Example: `  sudo tillsync-agent config check && sudo tillsync-agent restart`,
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return control(c, "restart", stateRunning, func(s service.Service) error { return s.Restart() })
		},
	}
}

// control runs one of start, stop and restart and reports the state the
// service reaches.
func control(c *cobra.Command, action, want string, do func(service.Service) error) error {
	if err := needAdmin(action); err != nil {
		return err
	}
	s, err := controlService()
	if err != nil {
		return err
	}
	st, err := serviceState(s)
	switch {
	case err != nil:
		return err
	case st == stateNotInstalled:
		return errNotInstalled()
	case action != "restart" && (st == want || (want == stateStopped && st == stateFailed)):
		fmt.Fprintf(c.OutOrStdout(), "service %s is already %s\n", serviceName, st)
		return nil
	case action == "restart" && st != stateRunning:
		// Windows refuses to stop a service that is not running.
		do = service.Service.Start
	}
	if err := do(s); err != nil {
		return controlErr(action, err)
	}
	if st = waitState(s, want, 10*time.Second); st != want {
		return fmt.Errorf("service %s is %s after %s; see its log: %s", serviceName, orUnknown(st), action, osLogHint(runtime.GOOS))
	}
	fmt.Fprintf(c.OutOrStdout(), "service %s: %s\n", serviceName, st)
	return nil
}

func orUnknown(st string) string {
	if st == "" {
		return "in an unknown state"
	}
	return st
}

func statusCmd() *cobra.Command {
	var pos, cfgFile string
	c := &cobra.Command{
		Use:   "status",
		Short: "Show whether the service runs, and the running agent's health: hub connection, backlog, scanner",
		Long: `Status says whether the agent's service is running, stopped or not installed,
and shows the health of the agent answering at the POS API address (--pos;
else pos.listen of the config file; else 127.0.0.1:8081): hub connection,
backlog, scanner, earn rules in force. An agent run in a terminal answers too.
Exit status 1 when no agent answers.`,
		Example: `  tillsync-agent status
  tillsync-agent status --pos 127.0.0.1:8081`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			state, serr := "", error(nil)
			if s, err := controlService(); err != nil {
				serr = err
			} else {
				state, serr = serviceState(s)
			}
			words := state
			if serr != nil {
				words = "in an unknown state (" + serr.Error() + ")"
			}
			addr, secret, err := posFromConfig(cfgFile)
			if err != nil {
				return err
			}
			if pos != "" {
				addr = pos
			}
			health, err := fetchHealth(addr, secret)
			if errors.Is(err, errNeedSecret) {
				return fmt.Errorf("the agent at %s wants the POS API's shared secret; run status with the --config whose pos.secret_file holds it (as a user who can read that file)", addr)
			}
			var ue *unreadableError
			if errors.As(err, &ue) {
				return fmt.Errorf("agent at %s sent an unreadable answer: %v", addr, ue.err)
			}
			if err != nil {
				switch state {
				case stateRunning:
					return fmt.Errorf("service %s is running, but no agent answers at %s (%v); it may be starting, or listen elsewhere than --pos; see its log: %s", serviceName, addr, err, osLogHint(runtime.GOOS))
				case stateStopped, stateFailed:
					return fmt.Errorf("service %s is %s, and no agent answers at %s; start it with: tillsync-agent start", serviceName, state, addr)
				}
				return fmt.Errorf("no agent answers at %s (%v), and service %s is %s; is tillsync-agent running, and is --pos the address it listens on?", addr, err, serviceName, words)
			}
			out := c.OutOrStdout()
			fmt.Fprintf(out, "service %s: %s\n", serviceName, words)
			fmt.Fprintf(out, "agent at %s:\n%s\n", addr, health)
			return nil
		},
	}
	c.Flags().StringVar(&pos, "pos", "", "the agent's POS API address (default: pos.listen of the config file, else 127.0.0.1:8081)")
	c.Flags().StringVar(&cfgFile, "config", "", "the config file to take pos.listen from (default: $"+config.EnvConfig+", else "+config.DefaultPath()+")")
	return c
}

// posFromConfig is the address to reach the POS API at: pos.listen of the
// config file (an unspecified host becomes loopback), else the default; and
// the API's shared secret, when the file names one this user can read.
// The error is for a file named explicitly that cannot be read.
func posFromConfig(named string) (addr, secret string, err error) {
	addr = config.Default().POS.Listen
	path, err := configPath(named)
	if err != nil || path == "" {
		return addr, "", err
	}
	cfg, _, err := config.Load(config.Options{Path: path, Environ: os.Environ()})
	if err != nil {
		if named != "" {
			return "", "", err
		}
		return addr, "", nil // e.g. a root-only file: try the default
	}
	if cfg.POS.SecretFile != "" {
		secret, _ = config.ReadSecret(cfg.POS.SecretFile) // unreadable: the agent says 401
	}
	host, port, err := net.SplitHostPort(cfg.POS.Listen)
	if err != nil {
		return addr, secret, nil
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), secret, nil
}

// errNeedSecret: the agent answered 401, it wants the POS API's secret.
var errNeedSecret = errors.New("the POS API wants its shared secret")

func fetchHealth(addr, secret string) (string, error) {
	cl := http.Client{Timeout: 3 * time.Second}
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/v1/health", nil)
	if err != nil {
		return "", err
	}
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	resp, err := cl.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized {
		return "", errNeedSecret
	}
	var h map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		return "", &unreadableError{err}
	}
	out, _ := json.MarshalIndent(h, "", "  ")
	return string(out), nil
}

// unreadableError is returned by fetchHealth when something answered, but
// not with the agent's health.
type unreadableError struct{ err error }

func (e *unreadableError) Error() string { return "unreadable answer: " + e.err.Error() }

package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"
)

// proc is one program the harness runs, started again as often as the
// schedule kills it. Its output goes to a log file in the run's dir.
type proc struct {
	name, bin, log string

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{} // closed when the current process has exited
	starts int
}

// start runs the program with args; the process must not be running.
func (p *proc) start(args ...string) error {
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.starts++
	fmt.Fprintf(f, "=== start %d: %s %s\n", p.starts, filepath.Base(p.bin), strings.Join(args, " "))
	cmd := exec.Command(p.bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("chaos: start %s: %w", p.name, err)
	}
	done := make(chan struct{})
	p.cmd, p.done = cmd, done
	go func() { cmd.Wait(); close(done) }()
	return nil
}

// exited returns a channel closed when the current process has exited (an
// already closed one when none was started).
func (p *proc) exited() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done == nil {
		c := make(chan struct{})
		close(c)
		return c
	}
	return p.done
}

// running reports whether the process is up.
func (p *proc) running() bool {
	select {
	case <-p.exited():
		return false
	default:
		return true
	}
}

// kill sends SIGKILL (kill -9) and waits for the process to be gone.
func (p *proc) kill() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Kill()
	<-done
}

// stopTimeout is how long a process may take to stop on SIGTERM.
const stopTimeout = 10 * time.Second

// stop asks the process to stop (SIGTERM) and waits up to stopTimeout.
// A process that does not stop in time is a finding: stop asks it for a
// goroutine dump into its log (SIGQUIT, on Unix), kills it, and returns
// an error saying so.
func (p *proc) stop() error {
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
	case <-time.After(stopTimeout):
	}
	if dump(cmd.Process) {
		select {
		case <-done:
		case <-time.After(2 * time.Second):
		}
	}
	cmd.Process.Kill()
	<-done
	return fmt.Errorf("%s did not stop within %v of SIGTERM (killed; a goroutine dump, where the OS has SIGQUIT, is in %s)", p.name, stopTimeout, p.log)
}

// till is one till of the run: its agent, the proxy its line runs
// through, and its POS API.
type till struct {
	idx                      int
	store, terminal, partner string
	pos                      string // POS API address
	dir                      string // the agent's data dir
	config                   string // the agent's config file (offline policy)
	proxy                    *Proxy
	agent                    *proc

	mu   sync.Mutex // one process fault at a time
	skew time.Duration
}

func (t *till) String() string { return fmt.Sprintf("till %d (%s/%s)", t.idx, t.store, t.terminal) }

// cluster is a run's hub, broker and tills on loopback.
type cluster struct {
	bin, dir  string
	seedFile  string
	hubDir    string
	mqttPlain string // the broker's plain MQTT listener, behind the proxies
	mqttTLS   string // the broker's TLS listener (unused by the run's tills)
	hubHTTP   string
	hub       *proc
	tills     []*till
	http      *http.Client

	// mosq is the external broker (Mosquitto) when the run has one; the
	// hub embeds its broker otherwise.
	mosq     *proc
	mosqConf string
}

// external reports whether the run's broker is Mosquitto rather than the
// hub's own.
func (c *cluster) external() bool { return c.mosq != nil }

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// hubArgs are serve's arguments; armAfter > 0 arms the fault that kills
// the hub after that ledger commit.
func (c *cluster) hubArgs(armAfter int) []string {
	args := []string{"serve", "--data-dir", c.hubDir, "--seed", c.seedFile, "--http-listen", c.hubHTTP}
	if c.external() {
		args = append(args, "--broker", "tcp://"+c.mqttPlain, "--broker-username", brokerHubUser,
			"--broker-password-file", filepath.Join(c.hubDir, brokerHubPasswordFile))
	} else {
		args = append(args, "--mqtt-listen", c.mqttTLS, "--mqtt-plain-listen", c.mqttPlain)
	}
	if armAfter > 0 {
		args = append(args, "--fault-kill-after-commit", fmt.Sprint(armAfter))
	}
	return args
}

// startHub starts the hub and waits until its API answers (or, armed, it
// has died at its commit already).
func (c *cluster) startHub(ctx context.Context, armAfter int) error {
	if err := c.hub.start(c.hubArgs(armAfter)...); err != nil {
		return err
	}
	return waitFor(ctx, 30*time.Second, "the hub to answer", func() (bool, error) {
		if !c.hub.running() {
			if armAfter > 0 {
				return true, nil // it reached its fatal commit before its API answered
			}
			return false, fmt.Errorf("the hub exited at its start; see %s", c.hub.log)
		}
		resp, err := c.http.Get("http://" + c.hubHTTP + "/healthz")
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
}

func (c *cluster) agentArgs(t *till) []string {
	args := []string{"run", "--config", t.config, "--data-dir", t.dir, "--hub", "tcp://" + t.proxy.Addr(),
		"--pos-listen", t.pos, "--burn-timeout", "2s"}
	if t.skew != 0 {
		args = append(args, "--fault-clock-offset", t.skew.String())
	}
	return args
}

// startAgent starts t's agent and waits until its POS API answers.
func (c *cluster) startAgent(ctx context.Context, t *till) error {
	if err := t.agent.start(c.agentArgs(t)...); err != nil {
		return err
	}
	return waitFor(ctx, 30*time.Second, t.String()+"'s POS API", func() (bool, error) {
		if !t.agent.running() {
			return false, fmt.Errorf("%s's agent exited at its start; see %s", t, t.agent.log)
		}
		_, err := c.health(t)
		return err == nil, nil
	})
}

// The hub's account at an external broker, as tillsync-hub broker-config
// sets it up (hub/broker.HubUsername, hub.BrokerPasswordFile).
const (
	brokerHubUser         = "tillsync-hub"
	brokerHubPasswordFile = "broker-hub.password"
)

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

// setupMosquitto writes Mosquitto's setup (writeMosquitto) and starts it.
func (c *cluster) setupMosquitto(ctx context.Context, mosquitto string) error {
	c.mosqConf = filepath.Join(c.dir, "mosquitto", "mosquitto.conf")
	if err := c.writeMosquitto(); err != nil {
		return err
	}
	c.mosq = &proc{name: "mosquitto", bin: mosquitto, log: filepath.Join(c.dir, "mosquitto.log")}
	return c.startMosquitto(ctx)
}

// writeMosquitto writes Mosquitto's setup with tillsync-hub broker-config
// mosquitto (password file with the hub's and, once the hub runs, every
// enrolled terminal's account, ACL, TLS listener), and adds a plain
// listener on loopback for the tills behind the proxies (a proxy reads
// MQTT packets, so it cannot carry TLS).
func (c *cluster) writeMosquitto() error {
	dir := filepath.Dir(c.mosqConf)
	args := []string{"broker-config", "mosquitto", "--data-dir", c.hubDir, "--out", dir, "--listen", c.mqttTLS}
	if c.hub.running() {
		args = append(args, "--hub", "http://"+c.hubHTTP)
	}
	if _, err := c.run("tillsync-hub", args...); err != nil {
		return err
	}
	f, err := os.OpenFile(c.mosqConf, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	host, port, _ := net.SplitHostPort(c.mqttPlain)
	_, err = fmt.Fprintf(f, "\n# The chaos harness: plain MQTT on loopback for the tills, behind its proxies.\n%slistener %s %s\nuse_username_as_clientid true\n", mosquittoUser(), port, host)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// startMosquitto starts the external broker and waits until it listens.
func (c *cluster) startMosquitto(ctx context.Context) error {
	if err := c.mosq.start("-c", c.mosqConf); err != nil {
		return err
	}
	return waitFor(ctx, 15*time.Second, "Mosquitto to listen", func() (bool, error) {
		if !c.mosq.running() {
			return false, fmt.Errorf("mosquitto exited at its start; see %s", c.mosq.log)
		}
		conn, err := net.DialTimeout("tcp", c.mqttPlain, time.Second)
		if err == nil {
			conn.Close()
		}
		return err == nil, nil
	})
}

// reloadMosquitto writes the terminals' accounts again and has Mosquitto
// re-read them, as an operator does after enrolling tills.
func (c *cluster) reloadMosquitto() error {
	if err := c.writeMosquitto(); err != nil {
		return err
	}
	return reload(c.mosq)
}

// health is what the harness reads of a till's health.
type health struct {
	HubConnected bool  `json:"hub_connected"`
	RulesVersion int64 `json:"rules_version"`
	Backlog      int64 `json:"backlog"`
}

func (c *cluster) health(t *till) (health, error) {
	var h health
	resp, err := c.http.Get("http://" + t.pos + "/v1/health")
	if err != nil {
		return h, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return h, fmt.Errorf("health: HTTP %d", resp.StatusCode)
	}
	return h, json.NewDecoder(resp.Body).Decode(&h)
}

// enrollTokenRE finds an enrollment token in terminal token's output.
var enrollTokenRE = regexp.MustCompile(`TSE1\.[A-Za-z0-9._-]+`)

// enroll enrolls t as an installer would: a one-time token from the hub
// (tillsync-hub terminal token), redeemed on the till (tillsync-agent
// enroll).
func (c *cluster) enroll(t *till) error {
	out, err := c.run("tillsync-hub", "terminal", "token", "--hub", "http://"+c.hubHTTP, "--data-dir", c.hubDir,
		"--store", t.store, "--terminal", t.terminal, "--expires-in", "10m")
	if err != nil {
		return err
	}
	tok := enrollTokenRE.FindString(out)
	if tok == "" {
		return fmt.Errorf("chaos: tillsync-hub terminal token printed no token:\n%s", out)
	}
	_, err = c.run("tillsync-agent", "enroll", "--hub", "http://"+c.hubHTTP, "--token", tok, "--data-dir", t.dir)
	return err
}

// run runs one of the binaries to its end and returns what it printed.
func (c *cluster) run(name string, args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(c.bin, name), args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("chaos: %s %s: %w\n%s", name, strings.Join(args[:min(2, len(args))], " "), err, out.String())
	}
	return out.String(), nil
}

// stopAll stops every agent, then the hub, politely; it returns what did
// not stop in time.
func (c *cluster) stopAll() []error {
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for _, t := range c.tills {
		wg.Go(func() {
			if err := t.agent.stop(); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if err := c.hub.stop(); err != nil {
		errs = append(errs, err)
	}
	if c.mosq != nil {
		if err := c.mosq.stop(); err != nil {
			errs = append(errs, err)
		}
	}
	for _, t := range c.tills {
		if t.proxy != nil {
			t.proxy.Close()
		}
	}
	return errs
}

// waitFor polls cond every 50ms until it holds, fails, or timeout passes.
func waitFor(ctx context.Context, timeout time.Duration, what string, cond func() (bool, error)) error {
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
			return fmt.Errorf("chaos: timed out after %v waiting for %s", timeout, what)
		}
		select {
		case <-ctx.Done():
			return errors.Join(fmt.Errorf("chaos: waiting for %s", what), ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

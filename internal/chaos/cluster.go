package chaos

import (
	"bytes"
	"context"
	"encoding/json"
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

	"github.com/tillsync/tillsync/internal/proc"
)

// till is one till of the run: its agent, the proxy its line runs
// through, and its POS API.
type till struct {
	idx                      int
	store, terminal, partner string
	pos                      string // POS API address
	dir                      string // the agent's data dir
	config                   string // the agent's config file (offline policy)
	proxy                    *Proxy
	agent                    *proc.Proc

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
	hub       *proc.Proc
	tills     []*till
	http      *http.Client

	// mosq is the external broker (Mosquitto) when the run has one; the
	// hub embeds its broker otherwise.
	mosq     *proc.Proc
	mosqConf string
}

// external reports whether the run's broker is Mosquitto rather than the
// hub's own.
func (c *cluster) external() bool { return c.mosq != nil }

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
	if err := c.hub.Start(c.hubArgs(armAfter)...); err != nil {
		return err
	}
	return proc.WaitFor(ctx, 30*time.Second, "the hub to answer", func() (bool, error) {
		if !c.hub.Running() {
			if armAfter > 0 {
				return true, nil // it reached its fatal commit before its API answered
			}
			return false, c.hub.ExitedAtStart()
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
	if err := t.agent.Start(c.agentArgs(t)...); err != nil {
		return err
	}
	return proc.WaitFor(ctx, 30*time.Second, t.String()+"'s POS API", func() (bool, error) {
		if !t.agent.Running() {
			return false, t.agent.ExitedAtStart()
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

// setupMosquitto writes Mosquitto's setup (writeMosquitto) and starts it.
func (c *cluster) setupMosquitto(ctx context.Context, mosquitto string) error {
	c.mosqConf = filepath.Join(c.dir, "mosquitto", "mosquitto.conf")
	if err := c.writeMosquitto(); err != nil {
		return err
	}
	c.mosq = &proc.Proc{Name: "mosquitto", Bin: mosquitto, Log: filepath.Join(c.dir, "mosquitto.log")}
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
	if c.hub.Running() {
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
	_, err = fmt.Fprintf(f, "\n# The chaos harness: plain MQTT on loopback for the tills, behind its proxies.\n%slistener %s %s\nuse_username_as_clientid true\n", proc.MosquittoUser(), port, host)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// startMosquitto starts the external broker and waits until it listens.
func (c *cluster) startMosquitto(ctx context.Context) error {
	return c.mosq.StartListening(ctx, 15*time.Second, c.mqttPlain, "-c", c.mosqConf)
}

// reloadMosquitto writes the terminals' accounts again and has Mosquitto
// re-read them, as an operator does after enrolling tills.
func (c *cluster) reloadMosquitto() error {
	if err := c.writeMosquitto(); err != nil {
		return err
	}
	return c.mosq.Reload()
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
			if err := t.agent.Stop(); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if err := c.hub.Stop(); err != nil {
		errs = append(errs, err)
	}
	if c.mosq != nil {
		if err := c.mosq.Stop(); err != nil {
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

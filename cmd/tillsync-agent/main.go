// Command tillsync-agent runs beside a till: it reads member cards from the
// barcode scanner, serves the POS's local API, keeps every accepted
// transaction in its outbox and syncs them to the hub.
//
// It is configured by one YAML file (agent/config), TILLSYNC_AGENT_*
// variables and run's flags, and installs itself as an OS service
// (install, uninstall, start, stop, restart, status) through
// kardianos/service: a Windows service with recovery actions, a systemd
// unit, a launchd daemon. As a service it logs to the OS log and to a
// rotating file in its data dir (internal/logfile).
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/kardianos/service"
	"github.com/spf13/cobra"
	"github.com/tillsync/tillsync/agent"
	"github.com/tillsync/tillsync/agent/config"
	"github.com/tillsync/tillsync/agent/outbox"
	"github.com/tillsync/tillsync/agent/uplink"
	"github.com/tillsync/tillsync/internal/cli"
	"github.com/tillsync/tillsync/internal/clock"
)

func main() { cli.Main(rootCmd()) }

func rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "tillsync-agent",
		Short: "The store agent beside a till: scanner, POS API, outbox, sync",
		Long: `tillsync-agent runs beside a till. The POS earns, burns and reverses loyalty
points through its local HTTP API; every accepted transaction is on disk before
the POS hears "accepted", and stays there until the hub confirms it. The agent
keeps working while the store is offline and catches up when the hub is back.`,
		Version: cli.Version,
		// No Args here: cobra reports an unknown subcommand only when a
		// root without Run leaves Args nil (else it prints help, exit 0).
	}
	root.AddCommand(runCmd(), pingCmd(), statusCmd(), versionCmd(), portsCmd(), scanTestCmd())
	root.AddCommand(installCmd(), uninstallCmd(), startCmd(), stopCmd(), restartCmd(), configCmd(), enrollCmd())
	return root
}

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run:   func(c *cobra.Command, _ []string) { fmt.Fprintln(c.OutOrStdout(), "tillsync-agent", cli.Version) },
	}
}

// hubURL checks a --hub value and returns it as tcp://host:port.
func hubURL(s string) (string, error) {
	u, err := config.ParseHub(s)
	if err != nil {
		return "", cli.Usagef("--hub %q: %v", s, err)
	}
	return u, nil
}

func runCmd() *cobra.Command {
	var af agentFlags
	var clockOffset time.Duration
	c := &cobra.Command{
		Use:   "run",
		Short: "Run the agent until interrupted (or as a service)",
		Long: `Run the agent: open the outbox in the data dir, serve the POS API, read the
scanner, and sync with the hub. If the hub cannot be reached the agent says so
once, keeps accepting earns offline, and keeps retrying. Stops cleanly on
Ctrl-C or SIGTERM.

The configuration comes from the config file (--config; else
$TILLSYNC_AGENT_CONFIG; else ` + config.DefaultPath() + ` if it exists), then
TILLSYNC_AGENT_* variables, then the flags below, which override both. Without
a file the flags alone configure the agent. See "tillsync-agent config --help".

In a terminal it logs to stderr (and to <data-dir>/logs/agent.log with
log.file: true); run by the service manager ("tillsync-agent install"), to the
OS log and that file.`,
		Example: `  tillsync-agent run --data-dir ./agent-data --hub tcp://127.0.0.1:18830 \
      --store store-042 --terminal till-1 --partner pharmacy --scanner /dev/ttyACM0
  tillsync-agent run --config /etc/tillsync/agent.yaml
  TILLSYNC_AGENT_SCANNER_PORT=COM4 tillsync-agent run --config agent.yaml --log-level debug`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error { return runAgent(c, &af, clockOffset) },
	}
	af.add(c)
	// Fault injection for the chaos harness (tillsync-sim chaos); not for production.
	c.Flags().DurationVar(&clockOffset, "fault-clock-offset", 0, "fault injection: run the agent's clock this far from the system's (e.g. -20h), as a till with a wrong clock")
	c.Flags().MarkHidden("fault-clock-offset")
	return c
}

// runAgent runs the agent in the terminal or, when the OS service manager
// started it, as a service.
func runAgent(c *cobra.Command, af *agentFlags, clockOffset time.Duration) (err error) {
	asService := !service.Interactive()
	prog := &program{stopWait: stopWait, exit: os.Exit}
	var svc service.Service
	var osLog *osLogHandler
	if asService {
		if svc, err = service.New(prog, &service.Config{Name: serviceName}); err != nil {
			return err
		}
		if l, lerr := svc.Logger(nil); lerr == nil {
			osLog = newOSLogHandler(l)
			// A service's stderr may go nowhere (Windows): say why it
			// could not start where an operator looks.
			defer func() {
				if err != nil {
					slog.New(osLog).Error("tillsync-agent cannot start", "err", err)
				}
			}()
		}
	}

	cfg, probs, err := af.load(c)
	if err != nil {
		return err
	}
	probs = append(probs, cfg.Check()...)
	if errs := config.Errors(probs); len(errs) > 0 {
		more := ""
		if len(errs) > 1 {
			more = fmt.Sprintf(" (and %d more; tillsync-agent config check with the same flags lists them all)", len(errs)-1)
		}
		return &cli.UsageError{Err: errors.New(errs[0].String() + more)}
	}
	o, err := cfg.AgentOptions()
	if err != nil {
		return err
	}
	if err := cli.DataDir(cfg.DataDir, cfg.FixWith("data_dir")); err != nil {
		return err
	}
	log, closeLog := newLogger(cfg, asService, osLog, os.Stderr)
	defer closeLog()
	for _, p := range probs {
		log.Warn("config: " + p.String())
	}
	if o.POSListener, err = cli.Listen("POS API", cfg.POS.Listen, cfg.FixWith("pos.listen")); err != nil {
		return err
	}
	o.Logger, o.Version = log, cli.Version
	if clockOffset != 0 {
		o.Clock = clock.Offset{D: clockOffset}
		log.Warn("fault injection: the agent's clock is off the system's", "offset", clockOffset.String())
	}
	a, err := agent.New(o)
	if err != nil {
		o.POSListener.Close()
		if errors.Is(err, outbox.ErrLocked) {
			return fmt.Errorf("%w; stop that agent or choose another data dir with %s", err, cfg.FixWith("data_dir"))
		}
		return err
	}
	if cfg.Path != "" {
		log.Info("config read", "path", cfg.Path)
	}
	if asService {
		prog.run, prog.log = a.Run, log
		return svc.Run()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return a.Run(ctx)
}

func pingCmd() *cobra.Command {
	var hub, hubCA string
	var plain bool
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "ping",
		Short: "Check that the hub's broker can be reached (and, over TLS, trusted)",
		Example: `  tillsync-agent ping --hub tls://hub.example.com:8883 --hub-ca hub-ca.pem
  tillsync-agent ping --hub tcp://127.0.0.1:1883`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			u, err := hubURL(hub)
			if err != nil {
				return err
			}
			if !agent.IsTLSBroker(u) && !config.HubOnLoopback(u) && !plain {
				return cli.Usagef("--hub %s: plain MQTT to a hub on another machine; use tls://HOST:PORT with --hub-ca, or add --hub-plain on a network you trust", hub)
			}
			var ca []byte
			if hubCA != "" {
				if ca, err = config.ReadHubCA(hubCA); err != nil {
					return fmt.Errorf("--hub-ca: %w", err)
				}
			}
			tlsCfg, err := agent.HubTLSConfig(u, ca)
			if err != nil {
				return err
			}
			mc := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(u).
				SetClientID(fmt.Sprintf("tillsync-ping-%d", os.Getpid())).
				SetProtocolVersion(4). // MQTT 3.1.1 only: one attempt, not a second with 3.1
				SetTLSConfig(tlsCfg).
				SetConnectTimeout(timeout).SetAutoReconnect(false))
			start := time.Now()
			tok := mc.Connect()
			how := "plain MQTT"
			if tlsCfg != nil {
				how = "TLS, certificate verified"
			}
			done := tok.WaitTimeout(timeout + time.Second)
			if done && uplink.AuthHint(tok.Error()) != "" {
				// The broker answered, after the TLS handshake: it takes
				// enrolled tills only, and ping is none (it would take a
				// running till's place with its credentials).
				fmt.Fprintf(c.OutOrStdout(), "hub at %s reachable in %s (%s); it takes enrolled tills only (tillsync-agent status shows whether this till's credentials are accepted)\n",
					u, time.Since(start).Round(time.Millisecond), how)
				return nil
			}
			if !done || tok.Error() != nil {
				why := "timed out"
				if tok.Error() != nil {
					why = tok.Error().Error()
				}
				if hint := uplink.TLSHint(tok.Error()); hint != "" {
					return fmt.Errorf("hub at %s refused at TLS (%s): %s", u, why, strings.Replace(hint, "hub_ca", "--hub-ca", 1))
				}
				return fmt.Errorf("hub at %s is unreachable (%s); check the address given with --hub and that tillsync-hub is running", u, why)
			}
			mc.Disconnect(100)
			fmt.Fprintf(c.OutOrStdout(), "hub at %s reachable in %s (%s)\n", u, time.Since(start).Round(time.Millisecond), how)
			return nil
		},
	}
	c.Flags().StringVar(&hub, "hub", config.Default().Hub, "the hub's MQTT address: tls://HOST:PORT or tcp://HOST:PORT")
	c.Flags().StringVar(&hubCA, "hub-ca", "", "the hub's CA certificate (PEM file) for a tls:// hub (default: the system's roots)")
	c.Flags().BoolVar(&plain, "hub-plain", false, "allow plain MQTT (tcp://) to a hub on another machine")
	c.Flags().DurationVar(&timeout, "timeout", 5*time.Second, "how long to try")
	return c
}

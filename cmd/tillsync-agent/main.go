// Command tillsync-agent runs beside a till: it reads member cards from the
// barcode scanner, serves the POS's local API, keeps every accepted
// transaction in its outbox and syncs them to the hub.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/kardianos/service"
	"github.com/spf13/cobra"
	"github.com/tillsync/tillsync/agent"
	"github.com/tillsync/tillsync/agent/outbox"
	"github.com/tillsync/tillsync/internal/cli"
	"github.com/tillsync/tillsync/protocol"
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
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "tcp" && u.Scheme != "mqtt") || u.Host == "" || u.Port() == "" {
		return "", cli.Usagef("--hub %q: want tcp://host:port, e.g. tcp://hub.example.com:1883", s)
	}
	return "tcp://" + u.Host, nil
}

func runCmd() *cobra.Command {
	var (
		o              agent.Options
		hub, posListen string
		logf           cli.LogFlags
	)
	c := &cobra.Command{
		Use:   "run",
		Short: "Run the agent until interrupted (or as a service)",
		Long: `Run the agent: open the outbox in the data dir, serve the POS API, read the
scanner, and sync with the hub. If the hub cannot be reached the agent says so
once, keeps accepting earns offline, and keeps retrying. Stops cleanly on
Ctrl-C or SIGTERM.`,
		Example: `  tillsync-agent run --data-dir ./agent-data --hub tcp://127.0.0.1:18830 \
      --store store-042 --terminal till-1 --partner pharmacy --scanner /dev/ttyACM0`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			log, err := logf.Logger(os.Stderr)
			if err != nil {
				return err
			}
			for _, f := range [...]struct{ flag, v string }{{"--store", o.Store}, {"--terminal", o.Terminal}, {"--partner", o.Partner}} {
				if f.v == "" {
					return cli.Usagef("%s is required", f.flag)
				}
				if !protocol.ValidID(f.v) {
					return cli.Usagef("%s %q: use 1-%d characters of A-Z a-z 0-9 . _ -", f.flag, f.v, protocol.MaxIDLen)
				}
			}
			if o.EarnRate < 1 || o.EarnRate > agent.MaxEarnRate {
				return cli.Usagef("--earn-rate %d: want 1 to %d points per 100 minor units", o.EarnRate, agent.MaxEarnRate)
			}
			if o.Broker, err = hubURL(hub); err != nil {
				return err
			}
			if err := cli.DataDir(o.DataDir, "--data-dir"); err != nil {
				return err
			}
			if o.POSListener, err = cli.Listen("POS API", posListen, "--pos-listen"); err != nil {
				return err
			}
			o.Logger, o.Version = log, cli.Version
			a, err := agent.New(o)
			if err != nil {
				o.POSListener.Close()
				if errors.Is(err, outbox.ErrLocked) {
					return fmt.Errorf("%w; stop that agent or choose another --data-dir", err)
				}
				return err
			}
			if !service.Interactive() {
				return runService(a, log)
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return a.Run(ctx)
		},
	}
	f := c.Flags()
	f.StringVar(&o.DataDir, "data-dir", cli.DefaultDataDir("agent"), "directory for the outbox (created owner-only)")
	f.StringVar(&hub, "hub", "tcp://127.0.0.1:1883", "the hub's MQTT address")
	f.StringVar(&o.Store, "store", "", "this store's id (required)")
	f.StringVar(&o.Terminal, "terminal", "", "this till's id within the store (required)")
	f.StringVar(&o.Partner, "partner", "", "the brand this store trades as (required)")
	f.StringVar(&posListen, "pos-listen", "127.0.0.1:8081", "address of the POS API (keep it on loopback)")
	f.StringVar(&o.ScannerPort, "scanner", "", "serial port of the barcode scanner, e.g. COM3 or /dev/ttyACM0 (none if empty)")
	f.IntVar(&o.ScannerBaud, "scanner-baud", 9600, "the scanner's baud rate")
	f.Int64Var(&o.EarnRate, "earn-rate", 1, "points per 100 minor units of a purchase (until the hub pushes partner rules)")
	f.DurationVar(&o.BurnTimeout, "burn-timeout", 3*time.Second, "how long a burn waits for the hub before it is declined")
	logf.Add(c)
	return c
}

// runService runs the agent under the OS service manager. Start returns at
// once and Stop waits at most two seconds, as Windows expects.
func runService(a *agent.Agent, log *slog.Logger) error {
	p := &program{a: a, log: log}
	s, err := service.New(p, &service.Config{
		Name: "tillsync-agent", DisplayName: "tillsync agent", Description: "Loyalty points agent beside the till",
		// Windows leaves recovery off unless asked: restart after a failure.
		Option: service.KeyValue{"OnFailure": "restart", "OnFailureDelayDuration": "5s", "OnFailureResetPeriod": 600},
	})
	if err != nil {
		return err
	}
	return s.Run()
}

type program struct {
	a      *agent.Agent
	log    *slog.Logger
	cancel context.CancelFunc
	done   chan error
}

func (p *program) Start(service.Service) error {
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel, p.done = cancel, make(chan error, 1)
	go func() {
		err := p.a.Run(ctx)
		if err != nil && ctx.Err() == nil {
			// The agent cannot work (its POS API is gone): exit non-zero so
			// the service manager restarts it, rather than look alive.
			p.log.Error("agent stopped on its own; exiting for the service manager to restart it", "err", err)
			os.Exit(1)
		}
		p.done <- err
	}()
	return nil
}

func (p *program) Stop(service.Service) error {
	p.cancel()
	select {
	case err := <-p.done:
		return err
	case <-time.After(2 * time.Second):
		return fmt.Errorf("agent did not stop within 2s")
	}
}

func pingCmd() *cobra.Command {
	var hub string
	var timeout time.Duration
	c := &cobra.Command{
		Use:     "ping",
		Short:   "Check that the hub's broker can be reached",
		Example: `  tillsync-agent ping --hub tcp://hub.example.com:1883`,
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			u, err := hubURL(hub)
			if err != nil {
				return err
			}
			mc := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(u).
				SetClientID(fmt.Sprintf("tillsync-ping-%d", os.Getpid())).
				SetConnectTimeout(timeout).SetAutoReconnect(false))
			start := time.Now()
			tok := mc.Connect()
			if !tok.WaitTimeout(timeout+time.Second) || tok.Error() != nil {
				why := "timed out"
				if tok.Error() != nil {
					why = tok.Error().Error()
				}
				return fmt.Errorf("hub at %s is unreachable (%s); check the address given with --hub and that tillsync-hub is running", u, why)
			}
			mc.Disconnect(100)
			fmt.Fprintf(c.OutOrStdout(), "hub at %s reachable in %s\n", u, time.Since(start).Round(time.Millisecond))
			return nil
		},
	}
	c.Flags().StringVar(&hub, "hub", "tcp://127.0.0.1:1883", "the hub's MQTT address")
	c.Flags().DurationVar(&timeout, "timeout", 5*time.Second, "how long to try")
	return c
}

func statusCmd() *cobra.Command {
	var pos string
	c := &cobra.Command{
		Use:   "status",
		Short: "Show a running agent's health: hub connection, backlog, scanner",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			cl := http.Client{Timeout: 3 * time.Second}
			resp, err := cl.Get("http://" + pos + "/v1/health")
			if err != nil {
				return fmt.Errorf("no agent answers at %s (%v); is tillsync-agent running, and is --pos the address it listens on?", pos, err)
			}
			defer resp.Body.Close()
			var h map[string]any
			if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
				return fmt.Errorf("agent at %s sent an unreadable answer: %v", pos, err)
			}
			out, _ := json.MarshalIndent(h, "", "  ")
			fmt.Fprintln(c.OutOrStdout(), string(out))
			return nil
		},
	}
	c.Flags().StringVar(&pos, "pos", "127.0.0.1:8081", "the agent's POS API address")
	return c
}

// Command tillsync-hub runs the coalition's hub: the embedded MQTT broker
// (or a connection to an external one), the authoritative points ledger and
// the operators' HTTP API. Its other commands administer a running hub over
// that API: the coalition, partners, stores, terminals, earn rules and
// campaigns, members and their QR tokens, flags, settlement, periods, expiry
// and verification.
package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/tillsync/tillsync/hub/pki"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/tillsync/tillsync/hub"
	"github.com/tillsync/tillsync/hub/ledger"
	"github.com/tillsync/tillsync/hub/seedfile"
	"github.com/tillsync/tillsync/internal/cli"
	"github.com/tillsync/tillsync/protocol"
)

func main() { cli.Main(rootCmd()) }

func rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "tillsync-hub",
		Short: "The coalition hub: ledger, MQTT broker and operator API",
		Long: `tillsync-hub holds the coalition's authoritative points ledger. Store agents
send their transactions to it over MQTT; it applies each exactly once, acks it
after the ledger commit, and shows operators which stores are in sync.

"serve" runs the hub. The other commands administer a running hub over its
HTTP API: give its address with --hub or $TILLSYNC_HUB (default
http://127.0.0.1:8080). They print tables for people; --json prints the
hub's JSON answer for scripts.`,
		Example: `  tillsync-hub serve --data-dir ./hub-data --seed demo-coalition.yaml
  tillsync-hub partner list
  tillsync-hub settlement --from 2026-11-01 --to 2026-12-01 --csv`,
		Version: cli.Version,
		// No Args here: cobra reports an unknown subcommand only when a
		// root without Run leaves Args nil (else it prints help, exit 0).
	}
	root.AddGroup(&cobra.Group{ID: "run", Title: "Run the hub:"},
		&cobra.Group{ID: adminGroup, Title: "Administer a running hub (over its HTTP API, --hub):"})
	srv := serveCmd()
	srv.GroupID = "run"
	root.AddCommand(srv, versionCmd(), tlsCmd())
	root.AddCommand(adminCmds()...)
	return root
}

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run:   func(c *cobra.Command, _ []string) { fmt.Fprintln(c.OutOrStdout(), "tillsync-hub", cli.Version) },
	}
}

func serveCmd() *cobra.Command {
	var (
		dataDir, mqttListen, broker, httpListen, clientID, seedFile, tokenKey string
		mqttTLS, requireEnrollment                                            bool
		tlsNames                                                              []string
		logf                                                                  cli.LogFlags
	)
	c := &cobra.Command{
		Use:   "serve",
		Short: "Run the hub until interrupted",
		Long: `Run the hub: open the ledger in the data dir, start the embedded MQTT broker
(or connect to the external one given by --broker), and serve the HTTP API.
Stops cleanly on Ctrl-C or SIGTERM: what was received is committed and acked.

With --seed it loads a seed file (coalition, partners, stores, terminals and
earn rules, YAML or JSON) into the ledger before it starts; loading the same
file at every start changes nothing. The hub publishes every registered
store's config (currency, point value, earn rules) to its tills, and lapses
holds and expires points by itself.

At its first start it makes the coalition's member token key (the key that
signs member QR codes, see "member token") in the data dir, or where
--member-token-key says, and uses it from then on. Back it up with the
ledger: with a new key, the tokens the old one signed are refused.`,
		Example: `  tillsync-hub serve --data-dir ./hub-data --mqtt-listen 127.0.0.1:18830 --http-listen 127.0.0.1:8080
  tillsync-hub serve --data-dir ./hub-data --seed demo-coalition.yaml
  tillsync-hub serve --data-dir ./hub-data --broker tcp://127.0.0.1:1883`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			log, err := logf.Logger(os.Stderr)
			if err != nil {
				return err
			}
			o := hub.Options{DataDir: dataDir, Logger: log, BrokerClientID: clientID, MemberTokenKeyFile: tokenKey, RequireEnrollment: requireEnrollment}
			if broker != "" {
				if c.Flags().Changed("mqtt-listen") {
					return cli.Usagef("--broker and --mqtt-listen exclude each other: the hub either embeds a broker or uses yours")
				}
				u, err := url.Parse(broker)
				if err != nil || (u.Scheme != "tcp" && u.Scheme != "mqtt") || u.Host == "" {
					return cli.Usagef("--broker %q: want tcp://host:port", broker)
				}
				o.BrokerURL = "tcp://" + u.Host
			}
			if seedFile != "" {
				data, err := readFile("--seed", seedFile)
				if err != nil {
					return err
				}
				if o.Seed, err = seedfile.Parse(data); err != nil {
					return fmt.Errorf("--seed %s: %w", seedFile, err)
				}
			}
			if err := cli.DataDir(dataDir, "--data-dir"); err != nil {
				return err
			}
			if mqttTLS && broker != "" {
				return cli.Usagef("--mqtt-tls is for the embedded broker; an external broker (--broker) does its own TLS")
			}
			if mqttTLS {
				p, err := pki.LoadOrCreate(filepath.Join(dataDir, "pki"), pki.Options{Names: tlsNames, Logger: log})
				if err != nil {
					return err
				}
				o.MQTTTLS = p.ServerTLSConfig()
				o.CAPEM, o.CAFingerprint = p.CACertPEM(), p.CAFingerprint()
			}
			if broker == "" {
				if o.MQTTListener, err = cli.Listen("MQTT", mqttListen, "--mqtt-listen (or use a running broker with --broker tcp://HOST:PORT)"); err != nil {
					return err
				}
			}
			if httpListen != "" {
				if o.HTTPListener, err = cli.Listen("HTTP API", httpListen, "--http-listen"); err != nil {
					return err
				}
			}
			h, err := hub.Open(o)
			if errors.Is(err, ledger.ErrLocked) {
				return fmt.Errorf("%w; stop that hub or choose another --data-dir", err)
			}
			var pe *protocol.Error
			if errors.As(err, &pe) {
				return fmt.Errorf("--seed %s: the ledger refused it: %s", seedFile, pe.Error())
			}
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			err = h.Run(ctx)
			if ctx.Err() != nil && errors.Is(err, context.Canceled) {
				return nil // interrupted while still starting: a clean stop
			}
			select {
			case <-h.Ready():
			default:
				if err != nil && broker != "" && ctx.Err() == nil {
					return fmt.Errorf("%w; check the broker given with --broker (is it running, is the address right?)", err)
				}
			}
			return err
		},
	}
	c.Flags().StringVar(&dataDir, "data-dir", cli.DefaultDataDir("hub"), "directory for the ledger (created owner-only)")
	c.Flags().StringVar(&mqttListen, "mqtt-listen", "127.0.0.1:1883", "address of the embedded MQTT broker")
	c.Flags().BoolVar(&mqttTLS, "mqtt-tls", false, "serve MQTT over TLS with the hub's own certificate (made in <data-dir>/pki at the first start; agents use tls://HOST:PORT and the CA from `tillsync-hub tls ca`)")
	c.Flags().BoolVar(&requireEnrollment, "require-enrollment", false, "refuse every MQTT client without an enrolled terminal's credentials (enrolled terminals must use theirs in any case)")
	c.Flags().StringSliceVar(&tlsNames, "tls-name", nil, "a DNS name or IP address tills reach the hub by, for its certificate (repeatable; localhost and 127.0.0.1 are always in)")
	c.Flags().StringVar(&broker, "broker", "", "use this external MQTT broker (tcp://host:port) instead of the embedded one")
	c.Flags().StringVar(&clientID, "broker-client-id", "tillsync-hub", "the hub's client id at an external broker")
	c.Flags().StringVar(&httpListen, "http-listen", "127.0.0.1:8080", "address of the HTTP API (empty to disable)")
	c.Flags().StringVar(&seedFile, "seed", "", "load this seed file (YAML or JSON) into the ledger at start")
	c.Flags().StringVar(&tokenKey, "member-token-key", "", "the coalition's member token signing key, PEM (made there when missing; default: member-token.key in the data dir)")
	logf.Add(c)
	return c
}

// Command tillsync-hub runs the coalition's hub: the embedded MQTT broker
// (or a connection to an external one), the authoritative points ledger and
// the operators' HTTP API. Its other commands administer a running hub over
// that API: the coalition, partners, stores, terminals, earn rules and
// campaigns, members and their QR tokens, flags, settlement, periods, expiry,
// verification and the API's own tokens. compact works on a stopped hub's
// data dir: it compacts the ledger file.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/tillsync/tillsync/hub"
	"github.com/tillsync/tillsync/hub/alerts"
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
http://127.0.0.1:8080). They send an API token: --token, else
$TILLSYNC_HUB_TOKEN, else the file --token-file names, else operator.token
in the hub's data dir (--data-dir, or the default), which serve writes at
its first start. They print tables for people; --json prints the hub's JSON
answer for scripts. "compact" works on a stopped hub's data dir.`,
		Example: `  tillsync-hub serve --data-dir ./hub-data --seed demo-coalition.yaml
  tillsync-hub partner list
  tillsync-hub settlement --from 2026-11-01 --to 2026-12-01 --csv`,
		Version: cli.Version,
		// No Args here: cobra reports an unknown subcommand only when a
		// root without Run leaves Args nil (else it prints help, exit 0).
	}
	root.AddGroup(&cobra.Group{ID: "run", Title: "Run the hub:"},
		&cobra.Group{ID: adminGroup, Title: "Administer a running hub (over its HTTP API, --hub):"},
		&cobra.Group{ID: maintainGroup, Title: "Maintain a stopped hub (on its data dir, --data-dir):"})
	srv := serveCmd()
	srv.GroupID = "run"
	compact := compactCmd()
	compact.GroupID = maintainGroup
	root.AddCommand(srv, versionCmd(), tlsCmd(), brokerConfigCmd(), compact)
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
		alertsFile                                                            string
		mqttPlainListen, httpsListen, mqttAdvertise                           string
		brokerUser, brokerPassFile, brokerCA                                  string
		mqttTLS, mqttPlainAny, httpPlainAny, requireEnrollment, newOpToken    bool
		tf                                                                    tlsFlags
		metricsMaxStores                                                      int
		faultKillAfter                                                        int64
		benchBrokerOnly                                                       bool
		pprofListen, memoryLimit                                              string
		logf                                                                  cli.LogFlags
	)
	c := &cobra.Command{
		Use:   "serve",
		Short: "Run the hub until interrupted",
		Long: `Run the hub: open the ledger in the data dir, start the embedded MQTT broker
(or connect to the external one given by --broker), and serve the HTTP API.
Stops cleanly on Ctrl-C or SIGTERM: what was received is committed and acked.

The embedded broker serves MQTT over TLS (--mqtt-listen, 127.0.0.1:8883 by
default). At its first start the hub makes its own certificate authority and
server certificate (ECDSA P-256) in <data-dir>/pki; give the tills the CA
(tillsync-hub tls ca) and name every address they reach the hub by with
--tls-name, or the tills refuse the hub. With --tls-cert, --tls-key and
--tls-ca the hub uses an operator's certificate instead and makes nothing.
Plain MQTT is off unless --mqtt-plain-listen is given, and then only on a
loopback address unless --mqtt-plain-any-interface says otherwise. The HTTP
API is plain on --http-listen (loopback only, unless
--http-plain-any-interface) and over TLS on --https-listen.

Only enrolled terminals connect (tillsync-hub terminal add, then
tillsync-agent enroll on the till), each with its own credentials and only
to its own topics. --require-enrollment=false lets tills that have not
enrolled connect without credentials, for a test bench.

With --alerts it reads alert rules (YAML: store offline during its opening
hours, oldest unsynced, rejection rate, offline exposure; see
docs/alerts.example.yaml), shows the firing alerts on the dashboard and posts
each firing and recovery, signed, to the file's webhooks. The file may hold
webhook secrets: keep it owner-only.

With --seed it loads a seed file (coalition, partners, stores, terminals and
earn rules, YAML or JSON) into the ledger before it starts; loading the same
file at every start changes nothing. The hub publishes every registered
store's config (currency, point value, earn rules) to its tills, and lapses
holds and expires points by itself.

At its first start it also makes an operator API token and writes it,
owner-only, to operator.token in the data dir: the admin commands send it
when run with the same --data-dir (or its default). Every request to the
HTTP API but an enrollment and GET /healthz needs a token; make more, with
roles, with "apitoken add". When no operator token is left (all revoked) the
next start makes a new one; --new-operator-token makes one anyway, for an
operator who lost theirs.

With --broker the hub uses an external broker (Mosquitto, EMQX) instead,
over plain MQTT (tcp://) or TLS (tls://, verified against --broker-ca or
the system's roots), as --broker-username with the password in
--broker-password-file (never logged). Such a broker does not tell the hub
who published a message, so an enrolled terminal's messages count only
with its MAC, and the broker must confine each terminal to its own topics:
"tillsync-hub broker-config mosquitto" writes Mosquitto's configuration for
it, the hub's own account included. See docs/external-brokers.md.

At its first start it makes the coalition's member token key (the key that
signs member QR codes, see "member token", and the store configs) in the
data dir, or where --member-token-key says, and uses it from then on. Back
it up with the ledger: with a new key, the tokens the old one signed are
refused, and enrolled tills take no new config until they enroll again.`,
		Example: `  tillsync-hub serve --data-dir ./hub-data --seed demo-coalition.yaml
  tillsync-hub serve --data-dir ./hub-data --mqtt-listen 0.0.0.0:8883 --tls-name hub.example.com --tls-name 10.0.0.5
  tillsync-hub serve --data-dir ./hub-data --mqtt-plain-listen 127.0.0.1:1883
  tillsync-hub serve --data-dir ./hub-data --tls-cert hub.pem --tls-key hub.key --tls-ca corp-ca.pem
  tillsync-hub serve --data-dir ./hub-data --broker tcp://127.0.0.1:1883
  tillsync-hub serve --data-dir ./hub-data --broker tls://mqtt.example.com:8883 --broker-ca ./mosquitto/ca.pem \
      --broker-username tillsync-hub --broker-password-file ./hub-data/broker-hub.password`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			log, err := logf.Logger(os.Stderr)
			if err != nil {
				return err
			}
			o := hub.Options{DataDir: dataDir, Logger: log, BrokerClientID: clientID, MemberTokenKeyFile: tokenKey, RequireEnrollment: requireEnrollment,
				MQTTAdvertise: mqttAdvertise, NewOperatorToken: newOpToken, MetricsMaxStores: metricsMaxStores}
			if faultKillAfter < 0 {
				return cli.Usagef("--fault-kill-after-commit %d: want the number of a ledger commit (1 or more), or 0 for none", faultKillAfter)
			}
			if faultKillAfter > 0 {
				o.AfterCommit = killAfterCommits(faultKillAfter, log)
			}
			o.BrokerOnly = benchBrokerOnly
			if pprofListen != "" {
				stop, err := servePprof(pprofListen, log)
				if err != nil {
					return err
				}
				defer stop()
			}
			if mqttAdvertise != "" {
				u, err := url.Parse(mqttAdvertise)
				if err != nil || (u.Scheme != "tls" && u.Scheme != "tcp") || u.Port() == "" || u.Hostname() == "" || u.Path != "" {
					return cli.Usagef("--mqtt-advertise %q: want tls://HOST:PORT (or tcp://HOST:PORT), the address tills reach the broker by", mqttAdvertise)
				}
			}
			if broker != "" {
				for _, f := range []string{"mqtt-listen", "mqtt-plain-listen"} {
					if c.Flags().Changed(f) {
						return cli.Usagef("--broker and --%s exclude each other: the hub either embeds a broker or uses yours", f)
					}
				}
				u, err := url.Parse(broker)
				if err == nil && u.User != nil {
					// Not quoted back: it holds a password.
					return cli.Usagef("--broker: credentials do not go in the URL; give them with --broker-username and --broker-password-file")
				}
				if err != nil || u.Host == "" || (u.Path != "" && u.Path != "/") {
					return cli.Usagef("--broker %q: want tcp://host:port, or tls://host:port for MQTT over TLS (credentials go in --broker-username and --broker-password-file)", broker)
				}
				switch u.Scheme {
				case "tcp", "mqtt":
					o.BrokerURL = "tcp://" + u.Host
				case "tls", "ssl", "mqtts":
					o.BrokerURL = "tls://" + u.Host
					o.BrokerTLS = &tls.Config{MinVersion: tls.VersionTLS12}
				default:
					return cli.Usagef("--broker %q: want tcp://host:port, or tls://host:port for MQTT over TLS", broker)
				}
				mqttListen = ""
			}
			for _, f := range []string{"broker-username", "broker-password-file", "broker-ca"} {
				if c.Flags().Changed(f) && broker == "" {
					return cli.Usagef("--%s is for an external broker: give --broker too", f)
				}
			}
			if (brokerUser == "") != (brokerPassFile == "") {
				return cli.Usagef("--broker-username and --broker-password-file go together")
			}
			if brokerPassFile != "" {
				pass, err := hub.ReadPasswordFile(brokerPassFile)
				if err != nil {
					if errors.Is(err, fs.ErrNotExist) {
						return fmt.Errorf("--broker-password-file %s does not exist; tillsync-hub broker-config makes the hub's password in its data dir", brokerPassFile)
					}
					return fmt.Errorf("--broker-password-file: %w", err)
				}
				o.BrokerUsername, o.BrokerPassword = brokerUser, pass
			}
			if brokerCA != "" {
				if o.BrokerTLS == nil {
					return cli.Usagef("--broker-ca is for a broker over TLS: give --broker tls://host:port")
				}
				pem, err := readFile("--broker-ca", brokerCA)
				if err != nil {
					return err
				}
				pool := x509.NewCertPool()
				if !pool.AppendCertsFromPEM(pem) {
					return fmt.Errorf("--broker-ca %s holds no PEM certificate", brokerCA)
				}
				o.BrokerTLS.RootCAs = pool
			}
			if mqttTLS && broker != "" {
				return cli.Usagef("--mqtt-tls is for the embedded broker; an external broker (--broker) does its own TLS")
			}
			if broker == "" && mqttListen == "" && mqttPlainListen == "" {
				return cli.Usagef("no MQTT listener: give --mqtt-listen (TLS), or use a running broker with --broker tcp://HOST:PORT")
			}
			if err := plainOnLoopback("MQTT", mqttPlainListen, "--mqtt-plain-listen", "--mqtt-listen (TLS)", "--mqtt-plain-any-interface", mqttPlainAny); err != nil {
				return err
			}
			if err := plainOnLoopback("HTTP API", httpListen, "--http-listen", "--https-listen", "--http-plain-any-interface", httpPlainAny); err != nil {
				return err
			}
			if err := tf.check(); err != nil {
				return err
			}
			if metricsMaxStores < 1 {
				return cli.Usagef("--metrics-max-stores %d: want 1 or more stores with series of their own (default %d)", metricsMaxStores, hub.DefaultMetricsMaxStores)
			}
			memLimit, err := parseMemoryLimit(memoryLimit)
			if err != nil {
				return err
			}
			listeners := []struct {
				dst             *net.Listener
				what, addr, fix string
			}{
				{&o.MQTTListener, "MQTT (TLS)", mqttListen, "--mqtt-listen (or use a running broker with --broker tcp://HOST:PORT)"},
				{&o.MQTTPlainListener, "plain MQTT", mqttPlainListen, "--mqtt-plain-listen"},
				{&o.HTTPListener, "HTTP API", httpListen, "--http-listen"},
				{&o.HTTPSListener, "HTTPS API", httpsListen, "--https-listen"},
			}
			// A mistyped address is a usage mistake, refused before the
			// data dir is made.
			for _, l := range listeners {
				if l.addr == "" {
					continue
				}
				if err := cli.ListenAddr(l.what, l.addr, l.fix); err != nil {
					return err
				}
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
			if alertsFile != "" {
				data, err := readFile("--alerts", alertsFile)
				if err != nil {
					return err
				}
				if o.Alerts, err = alerts.Parse(data); err != nil {
					return fmt.Errorf("--alerts %s: %w", alertsFile, err)
				}
				if o.Alerts.Hub == "" {
					o.Alerts.Hub, _ = os.Hostname()
				}
			}
			if err := cli.DataDir(dataDir, "--data-dir"); err != nil {
				return err
			}
			var ls []net.Listener
			listen := func(dst *net.Listener, what, addr, fix string) error {
				if addr == "" {
					return nil
				}
				l, err := cli.Listen(what, addr, fix)
				if err != nil {
					for _, l := range ls {
						l.Close()
					}
					return err
				}
				ls = append(ls, l)
				*dst = l
				return nil
			}
			for _, l := range listeners {
				if err := listen(l.dst, l.what, l.addr, l.fix); err != nil {
					return err
				}
			}
			// What the PKI logs (a CA made, a certificate renewed) is said
			// once the hub opened: a start that fails says only why.
			pkiLog := &heldLog{Handler: log.Handler()}
			// With an external broker too: enrollment hands the tills the
			// hub's CA, which verifies the broker that broker-config sets up
			// with the hub's certificate.
			if o.MQTTListener != nil || o.HTTPSListener != nil || o.BrokerURL != "" {
				p, err := tf.load(dataDir, slog.New(pkiLog))
				if err != nil {
					for _, l := range ls {
						l.Close()
					}
					return err
				}
				tlsCfg := p.ServerTLSConfig()
				o.CAPEM, o.CAFingerprint = p.CACertPEM(), p.CAFingerprint()
				if o.MQTTListener != nil {
					o.MQTTTLS = tlsCfg
				}
				if o.HTTPSListener != nil {
					o.HTTPSTLS = tlsCfg
				}
			}
			if memLimit > 0 {
				debug.SetMemoryLimit(memLimit)
				log.Info("soft memory limit", "bytes", memLimit, "limit", memoryLimit)
			}
			h, err := hub.Open(o)
			if err != nil {
				for _, l := range ls {
					l.Close()
				}
			} else if o.BrokerURL == "" {
				pkiLog.release()
			} else {
				// The external broker is reached in Run: a start that
				// cannot reach it says only that.
				go func() {
					<-h.Ready()
					pkiLog.release()
				}()
			}
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
	f := c.Flags()
	f.StringVar(&dataDir, "data-dir", cli.DefaultDataDir("hub"), "directory for the ledger and the hub's own CA in pki/ (created owner-only)")
	f.StringVar(&mqttListen, "mqtt-listen", "127.0.0.1:8883", "address of the embedded MQTT broker, over TLS (empty for none)")
	f.StringVar(&mqttPlainListen, "mqtt-plain-listen", "", "also serve plain, unencrypted MQTT here (loopback only unless --mqtt-plain-any-interface)")
	f.BoolVar(&mqttPlainAny, "mqtt-plain-any-interface", false, "allow --mqtt-plain-listen on an address other than loopback (a network you trust: tills' traffic is readable there)")
	f.BoolVar(&mqttTLS, "mqtt-tls", false, "MQTT over TLS (the default now)")
	f.MarkDeprecated("mqtt-tls", "MQTT over TLS is the default now; drop the flag")
	f.BoolVar(&requireEnrollment, "require-enrollment", true, "refuse every MQTT client without an enrolled terminal's credentials (with --broker: the messages of every terminal that has not enrolled); =false lets tills that have not enrolled connect anonymously (a test bench: they can claim any terminal that has not enrolled)")
	f.StringVar(&mqttAdvertise, "mqtt-advertise", "", "the broker address tills are told at enrollment, e.g. tls://hub.example.com:8883 (default: --mqtt-listen's port on the host name the till enrolled through)")
	tf.add(c, true)
	f.StringVar(&broker, "broker", "", "use this external MQTT broker (tcp://host:port, or tls://host:port) instead of the embedded one")
	f.StringVar(&brokerUser, "broker-username", "", "the hub's username at the external broker (broker-config sets up "+brokerHubUser+")")
	f.StringVar(&brokerPassFile, "broker-password-file", "", "file whose first line is the hub's password at the external broker (owner-only; broker-config makes <data-dir>/"+hub.BrokerPasswordFile+")")
	f.StringVar(&brokerCA, "broker-ca", "", "CA certificate (PEM) to verify a tls:// external broker against, instead of the system's roots")
	f.StringVar(&clientID, "broker-client-id", "tillsync-hub", "the hub's client id at an external broker")
	f.StringVar(&httpListen, "http-listen", "127.0.0.1:8080", "address of the HTTP API, plain (loopback only unless --http-plain-any-interface; empty to disable)")
	f.BoolVar(&httpPlainAny, "http-plain-any-interface", false, "allow --http-listen on an address other than loopback (a network you trust: API tokens cross it readable)")
	f.StringVar(&httpsListen, "https-listen", "", "also serve the HTTP API over TLS here, with the hub's certificate")
	f.StringVar(&seedFile, "seed", "", "load this seed file (YAML or JSON) into the ledger at start")
	f.StringVar(&alertsFile, "alerts", "", "alert rules (YAML, see docs/alerts.example.yaml): shown on the dashboard and posted to their webhooks")
	f.BoolVar(&newOpToken, "new-operator-token", false, "make a new operator API token and write it to operator.token in the data dir (the others stay valid until revoked)")
	f.StringVar(&memoryLimit, "memory-limit", "", "soft limit on the hub's memory, e.g. 900MiB for a hub with 1 GiB: the garbage collector works harder near it instead of growing past it (default: none, or GOMEMLIMIT's)")
	f.IntVar(&metricsMaxStores, "metrics-max-stores", hub.DefaultMetricsMaxStores, "stores with per-store series of their own at GET /metrics (most urgent first); the rest are summed up as store=\"(other)\"")
	f.StringVar(&tokenKey, "member-token-key", "", "the coalition's member token signing key, PEM (made there when missing; default: member-token.key in the data dir)")
	// Fault injection for the chaos harness (tillsync-sim chaos); not for production.
	f.Int64Var(&faultKillAfter, "fault-kill-after-commit", 0, "fault injection: kill the hub (as kill -9 would) after its Nth ledger commit, before that commit's acks go out")
	f.MarkHidden("fault-kill-after-commit")
	// For the benchmarks (tillsync-sim bench); not for production.
	f.BoolVar(&benchBrokerOnly, "bench-broker-only", false, "benchmark baseline: serve the broker and take no transaction")
	f.MarkHidden("bench-broker-only")
	f.StringVar(&pprofListen, "pprof-listen", "", "serve Go's profiler (net/http/pprof) on this loopback address, for profiling under load")
	f.MarkHidden("pprof-listen")
	logf.Add(c)
	return c
}

// plainOnLoopback refuses a plain (unencrypted) listener address that is
// not loopback, unless the operator said so with anyFlag.
func plainOnLoopback(what, addr, flag, tlsFlag, anyFlag string, anyOK bool) error {
	if addr == "" || anyOK || cli.LoopbackAddr(addr) {
		return nil
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil // cli.Listen explains it
	}
	return cli.Usagef("%s %s: plain %s on an address other than loopback is readable and forgeable on the network; use %s, keep it on 127.0.0.1, or add %s on a network you trust", flag, addr, what, tlsFlag, anyFlag)
}

// heldLog keeps records until release hands them to Handler.
type heldLog struct {
	slog.Handler
	held []slog.Record
}

func (h *heldLog) Handle(_ context.Context, r slog.Record) error {
	h.held = append(h.held, r.Clone())
	return nil
}

func (h *heldLog) release() {
	for _, r := range h.held {
		h.Handler.Handle(context.Background(), r)
	}
	h.held = nil
}

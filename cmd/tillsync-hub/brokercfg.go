package main

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tillsync/tillsync/hub"
	"github.com/tillsync/tillsync/hub/broker"
	"github.com/tillsync/tillsync/hub/ledger"
	"github.com/tillsync/tillsync/internal/cli"
)

// brokerHubUser is the hub's username in the broker files broker-config
// writes (serve's main.go names the package "broker" as a flag).
const brokerHubUser = broker.HubUsername

// brokerConfigCmd writes an external broker's configuration: the same
// rules the embedded broker enforces, in the broker's own files.
func brokerConfigCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "broker-config",
		Short: "Write an external MQTT broker's configuration: the hub's and the terminals' accounts and access rules",
		Long: `Write the configuration an external MQTT broker needs to enforce what the
embedded broker enforces: no anonymous clients, an account for the hub (which
may use every tillsync topic) and one for every enrolled terminal (which may
publish only on its own tx, query and scan topics and read only its own ack
and reply topics and its store's config).

Run it again after every terminal enroll or revoke, and reload the broker.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return cli.Usagef("broker-config: say which broker: mosquitto (see %s --help)", c.CommandPath())
		},
	}
	c.AddCommand(mosquittoConfigCmd())
	return c
}

func mosquittoConfigCmd() *cobra.Command {
	var (
		out, dataDir, listen, plainListen string
		api                               apiFlags
		tf                                tlsFlags
	)
	c := &cobra.Command{
		Use:   "mosquitto",
		Short: "Write a Mosquitto 2.x configuration, password file and ACL for the hub and its enrolled terminals",
		Long: `Write into --out a Mosquitto 2.x setup enforcing the embedded broker's rules:

  mosquitto.conf  listeners, allow_anonymous false, the files below, each
                  client known by its username (use_username_as_clientid)
  passwords       the hub's account (tillsync-hub) and every enrolled,
                  unrevoked terminal's, hashed as mosquitto_passwd does ($7$,
                  PBKDF2-SHA512); the hub never holds a terminal's password,
                  it keeps this hash from the enrollment
  acl             the hub: everything under tillsync/v1; each terminal: its
                  own topics only; nobody else: nothing
  server.pem, server.key, ca.pem
                  the hub's certificate for the TLS listener (--listen), from
                  <data-dir>/pki as serve makes it (--tls-name), or the
                  operator's files (--tls-cert, --tls-key, --tls-ca); tills
                  verify it against the CA they got at enrollment

The hub's own password is made once, in <data-dir>/` + hub.BrokerPasswordFile + ` (owner-only),
and given to serve with --broker-password-file. The terminals come from the
ledger in --data-dir while no hub runs, and from the running hub's API (--hub)
while one does.

Run it again after every enroll and revoke, then reload Mosquitto (kill -HUP,
systemctl reload mosquitto): it re-reads the password file and the ACL.
Terminals enrolled before this hub version have no hash and get no account:
enroll them again.`,
		Example: `  tillsync-hub broker-config mosquitto --data-dir ./hub-data --out /etc/mosquitto/tillsync --tls-name mqtt.example.com
  tillsync-hub broker-config mosquitto --data-dir ./hub-data --out ./mosquitto --listen 127.0.0.1:8883 --plain-listen 127.0.0.1:1883`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if out == "" {
				return cli.Usagef("--out is required: the directory to write the Mosquitto files into")
			}
			if listen == "" && plainListen == "" {
				return cli.Usagef("no listener: give --listen (TLS) or --plain-listen")
			}
			if plainListen != "" && !cli.LoopbackAddr(plainListen) {
				return cli.Usagef("--plain-listen %s: plain MQTT is readable and forgeable on the network; keep it on a loopback address (127.0.0.1:1883) for a hub on the broker's machine", plainListen)
			}
			if err := tf.check(); err != nil {
				return err
			}
			if err := cli.DataDir(dataDir, "--data-dir"); err != nil {
				return err
			}
			password, created, err := hub.LoadBrokerPassword(filepath.Join(dataDir, hub.BrokerPasswordFile))
			if err != nil {
				return err
			}
			users, from, err := brokerUsers(dataDir, &api)
			if err != nil {
				return err
			}
			setup := broker.MosquittoSetup{
				Hub:    broker.MosquittoAccount{Username: broker.HubUsername, Hash: ledger.MosquittoHash(password)},
				Listen: listen, PlainListen: plainListen,
			}
			var skipped []string
			for _, u := range users {
				if u.MosquittoHash == "" {
					skipped = append(skipped, u.Store+"/"+u.Terminal)
					continue
				}
				setup.Terminals = append(setup.Terminals, broker.MosquittoAccount{Username: u.Username, Hash: u.MosquittoHash, Store: u.Store, Terminal: u.Terminal})
			}
			if listen != "" {
				p, err := tf.load(dataDir, slog.New(slog.DiscardHandler))
				if err != nil {
					return err
				}
				paths := p.Paths()
				if setup.CertPEM, err = readFile("the hub's certificate", paths.ServerCert); err != nil {
					return err
				}
				if setup.KeyPEM, err = readFile("the hub's key", paths.ServerKey); err != nil {
					return err
				}
				setup.CAPEM = p.CACertPEM()
			}
			files, err := broker.WriteMosquitto(out, setup)
			if err != nil {
				return err
			}
			abs, _ := filepath.Abs(out)
			absData, _ := filepath.Abs(dataDir)
			w := c.OutOrStdout()
			fmt.Fprintf(w, "Wrote the Mosquitto setup for the hub and %d terminal(s) (from %s) into %s:\n", len(setup.Terminals), from, abs)
			for _, f := range files {
				fmt.Fprintf(w, "  %s\n", f)
			}
			for _, s := range skipped {
				fmt.Fprintf(w, "No account for %s: it enrolled before the hub kept broker password hashes; enroll it again (terminal token), then run this again.\n", s)
			}
			if created {
				fmt.Fprintf(w, "Made the hub's broker password in %s (owner-only; back it up with the ledger).\n", filepath.Join(absData, hub.BrokerPasswordFile))
			}
			fmt.Fprintf(w, "\nReload Mosquitto now to apply it (kill -HUP <pid>, or systemctl reload mosquitto): it re-reads %s and %s.\n", broker.MosquittoPasswordsFile, broker.MosquittoACLFile)
			fmt.Fprintf(w, "Run this again after every terminal enroll or revoke, and reload Mosquitto again.\n")
			fmt.Fprintf(w, "\nThe first time: let Mosquitto's user read %s (chown -R mosquitto %s), start it with this configuration\n", abs, abs)
			fmt.Fprintf(w, "(mosquitto -c %s, or include it from /etc/mosquitto/conf.d), and run the hub with:\n", filepath.Join(abs, broker.MosquittoConfFile))
			brokerURL, caFlag := "tcp://"+plainListen, ""
			if listen != "" {
				brokerURL, caFlag = "tls://"+hostPort(listen), " --broker-ca "+filepath.Join(abs, broker.MosquittoCAFile)
			}
			fmt.Fprintf(w, "  tillsync-hub serve --data-dir %s --broker %s --broker-username %s --broker-password-file %s%s\n",
				absData, brokerURL, broker.HubUsername, filepath.Join(absData, hub.BrokerPasswordFile), caFlag)
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&out, "out", "", "the directory to write the Mosquitto files into (made owner-only when missing)")
	f.StringVar(&dataDir, "data-dir", cli.DefaultDataDir("hub"), "the hub's data dir: its ledger, its broker password, its certificates in pki/")
	f.StringVar(&listen, "listen", "8883", "Mosquitto's MQTT over TLS listener for the tills: PORT (every address) or HOST:PORT; empty for none")
	f.StringVar(&plainListen, "plain-listen", "", "also a plain MQTT listener on a loopback address (127.0.0.1:1883), for a hub on the broker's machine")
	api.add(c, false)
	tf.add(c, true)
	return c
}

// brokerUsers returns the terminals' broker accounts: from the ledger in
// dataDir while no hub holds it, from the running hub's API otherwise.
func brokerUsers(dataDir string, api *apiFlags) ([]ledger.BrokerUser, string, error) {
	path := filepath.Join(dataDir, hub.LedgerFile)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, "no ledger yet", nil
	}
	st, err := ledger.OpenBolt(path, ledger.BoltOptions{ReadOnly: true})
	if err == nil {
		defer st.Close()
		users, err := st.BrokerUsers()
		return users, "the ledger in " + dataDir, err
	}
	if errors.Is(err, ledger.ErrOldSchema) {
		return nil, "", errors.New(oneLine(err.Error()))
	}
	if !errors.Is(err, ledger.ErrLocked) {
		return nil, "", fmt.Errorf("%v; is --data-dir a hub's data dir?", oneLine(err.Error()))
	}
	// The running hub of this data dir: send its operator token unless
	// told otherwise.
	api.dataDir = dataDir
	cl, err := api.client()
	if err != nil {
		return nil, "", err
	}
	var ans struct {
		Users []ledger.BrokerUser `json:"users"`
	}
	if _, err := cl.get("/v1/broker-users", &ans); err != nil {
		return nil, "", fmt.Errorf("a hub runs on %s, and its API answered: %w", dataDir, err)
	}
	return ans.Users, "the running hub at " + cl.base, nil
}

// hostPort is the address to reach a listener by: PORT alone is localhost.
func hostPort(listen string) string {
	if !strings.Contains(listen, ":") {
		return "127.0.0.1:" + listen
	}
	return listen
}

package main

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tillsync/tillsync/hub/pki"
	"github.com/tillsync/tillsync/internal/cli"
)

// PKIDir is where the hub keeps its own CA inside its data dir.
const PKIDir = "pki"

// tlsFlags are the flags choosing the hub's certificate: its own CA (names
// for the server certificate), or an operator's files.
type tlsFlags struct {
	names         []string
	cert, key, ca string
}

func (tf *tlsFlags) add(c *cobra.Command, serve bool) {
	f := c.Flags()
	what := "a DNS name or IP address tills reach the hub by, for its certificate (repeatable; the host name, localhost, 127.0.0.1 and ::1 are always in)"
	if !serve {
		what = "the names serve is given with --tls-name, to show whether the certificate covers them"
	}
	f.StringSliceVar(&tf.names, "tls-name", nil, what)
	f.StringVar(&tf.cert, "tls-cert", "", "the operator's server certificate (PEM, intermediates after it) instead of the hub's own; with --tls-key and --tls-ca")
	f.StringVar(&tf.key, "tls-key", "", "the private key of --tls-cert (PEM)")
	f.StringVar(&tf.ca, "tls-ca", "", "the CA certificate (PEM) tills verify --tls-cert against")
}

func (tf *tlsFlags) operator() bool { return tf.cert != "" || tf.key != "" || tf.ca != "" }

func (tf *tlsFlags) check() error {
	if tf.operator() && (tf.cert == "" || tf.key == "" || tf.ca == "") {
		return cli.Usagef("--tls-cert, --tls-key and --tls-ca go together: give all three, or none for the hub's own CA")
	}
	for _, n := range tf.names {
		if strings.TrimSpace(n) == "" || strings.ContainsAny(n, " /:") && net.ParseIP(n) == nil {
			return cli.Usagef("--tls-name %q: want a DNS name or an IP address, e.g. hub.example.com or 10.0.0.5", n)
		}
	}
	return nil
}

// load gives serve its PKI: the operator's files, or the hub's own CA in
// <dataDir>/pki, made or renewed as needed.
func (tf *tlsFlags) load(dataDir string, log *slog.Logger) (*pki.PKI, error) {
	if tf.operator() {
		p, err := pki.LoadFiles(pki.Files{Cert: tf.cert, Key: tf.key, CA: tf.ca}, pki.Options{Names: tf.names, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("%w; check --tls-cert, --tls-key and --tls-ca", err)
		}
		return p, nil
	}
	names := tf.names
	if h, err := os.Hostname(); err == nil && h != "" && !strings.ContainsAny(h, " /:") {
		names = append(slices.Clone(names), h)
	}
	p, err := pki.LoadOrCreate(filepath.Join(dataDir, PKIDir), pki.Options{Names: names, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("%w; or give the operator's files with --tls-cert, --tls-key and --tls-ca", err)
	}
	return p, nil
}

// tlsCmd shows the hub's certificate authority, which serve makes at its
// first start.
func tlsCmd() *cobra.Command {
	var dataDir string
	var tf tlsFlags
	c := &cobra.Command{
		Use:   "tls",
		Short: "The hub's certificate authority: its CA certificate for tills, its fingerprint",
		Long: `The hub serves MQTT over TLS with a server certificate signed by its own
certificate authority, which serve makes at its first start in <data-dir>/pki.
Tills verify the hub against that CA: give them its certificate (tls ca) as
hub_ca. The fingerprint (tls show) is what a till can pin the hub by.

These commands only read the files (run them on the hub's machine, as the
hub's user); with --tls-cert, --tls-key and --tls-ca they describe the
operator's files serve is given instead.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return cli.Usagef("tls: say what to do: ca or show (see %s --help)", c.CommandPath())
		},
	}
	load := func() (*pki.PKI, error) {
		if err := tf.check(); err != nil {
			return nil, err
		}
		if tf.operator() {
			return pki.LoadFiles(pki.Files{Cert: tf.cert, Key: tf.key, CA: tf.ca}, pki.Options{})
		}
		dir := filepath.Join(dataDir, PKIDir)
		p, err := pki.Load(dir)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("no CA in %s yet: the hub makes it at its first start (tillsync-hub serve --data-dir %s); is --data-dir right?", dir, dataDir)
		}
		return p, err
	}
	ca := &cobra.Command{
		Use:     "ca",
		Short:   "Print the CA certificate (PEM), for the tills' hub_ca",
		Example: `  tillsync-hub tls ca --data-dir ./hub-data > hub-ca.pem`,
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			p, err := load()
			if err != nil {
				return err
			}
			_, err = c.OutOrStdout().Write(p.CACertPEM())
			return err
		},
	}
	show := &cobra.Command{
		Use:   "show",
		Short: "Show the CA's fingerprint, the files, and the server certificate's names and expiry",
		Example: `  tillsync-hub tls show --data-dir ./hub-data
  tillsync-hub tls show --data-dir ./hub-data --tls-name hub.example.com`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			p, err := load()
			if err != nil {
				return err
			}
			paths, leaf, cac := p.Paths(), p.ServerCertificate(), p.CACertificate()
			t := newTable(c)
			if p.Operator() {
				t.row("source", "operator-supplied files (the hub makes and renews nothing)")
			} else {
				t.row("directory", paths.Dir)
			}
			t.row("CA certificate", paths.CACert+"   (give it to the tills as hub_ca)")
			if paths.CAKey != "" {
				t.row("CA key", paths.CAKey+"   (owner-only; back it up with the ledger)")
			}
			t.row("server certificate", paths.ServerCert)
			t.row("server key", paths.ServerKey)
			t.row("CA fingerprint", "sha256:"+p.CAFingerprint())
			t.row("CA expires", cac.NotAfter.UTC().Format("2006-01-02 15:04Z"))
			var ns []string
			ns = append(ns, leaf.DNSNames...)
			for _, ip := range leaf.IPAddresses {
				ns = append(ns, ip.String())
			}
			t.row("server names", strings.Join(ns, ", "))
			exp := leaf.NotAfter.UTC().Format("2006-01-02 15:04Z")
			if !p.Operator() && time.Now().Add(pki.RenewBefore).After(leaf.NotAfter) {
				exp += "   (renewed at the hub's next start)"
			}
			t.row("server expires", exp)
			var missing []string
			for _, n := range tf.names {
				if leaf.VerifyHostname(n) != nil {
					missing = append(missing, n)
				}
			}
			if len(missing) > 0 {
				how := "serve adds them at its next start"
				if p.Operator() {
					how = "tills reaching the hub by them will refuse it"
				}
				t.row("not named", strings.Join(missing, ", ")+"   ("+how+")")
			}
			t.flush()
			return nil
		},
	}
	for _, sub := range []*cobra.Command{ca, show} {
		sub.Flags().StringVar(&dataDir, "data-dir", cli.DefaultDataDir("hub"), "the hub's data dir")
		tf.add(sub, false)
		c.AddCommand(sub)
	}
	return c
}

package main

import (
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/tillsync/tillsync/hub/pki"
	"github.com/tillsync/tillsync/internal/cli"
)

// tlsCmd shows the hub's own certificate authority, which `serve
// --mqtt-tls` makes at its first start.
func tlsCmd() *cobra.Command {
	var dataDir string
	var names []string
	c := &cobra.Command{
		Use:   "tls",
		Short: "The hub's own certificate authority: its CA certificate for tills, its fingerprint",
		Long: `The hub serves MQTT over TLS (serve --mqtt-tls) with a server certificate
signed by its own certificate authority, kept in <data-dir>/pki. Tills verify
the hub against that CA: give them its certificate (tls ca) as hub_ca.
These commands read the files directly (made on first use if missing); run
them on the hub's machine, as the hub's user.`,
		Args: cobra.NoArgs,
	}
	ca := &cobra.Command{
		Use:     "ca",
		Short:   "Print the CA certificate (PEM), for the tills' hub_ca",
		Example: `  tillsync-hub tls ca --data-dir ./hub-data > hub-ca.pem`,
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			p, err := loadPKI(dataDir, names)
			if err != nil {
				return err
			}
			_, err = c.OutOrStdout().Write(p.CACertPEM())
			return err
		},
	}
	show := &cobra.Command{
		Use:     "show",
		Short:   "Show the CA's fingerprint and the server certificate's names and expiry",
		Example: `  tillsync-hub tls show --data-dir ./hub-data`,
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			p, err := loadPKI(dataDir, names)
			if err != nil {
				return err
			}
			leaf := p.ServerCertificate()
			t := newTable(c)
			t.row("directory", filepath.Join(dataDir, "pki"))
			t.row("CA fingerprint", "sha256:"+p.CAFingerprint())
			var ns []string
			ns = append(ns, leaf.DNSNames...)
			for _, ip := range leaf.IPAddresses {
				ns = append(ns, ip.String())
			}
			t.row("server names", fmt.Sprint(ns))
			t.row("server expires", leaf.NotAfter.UTC().Format("2006-01-02 15:04Z"))
			t.flush()
			return nil
		},
	}
	for _, sub := range []*cobra.Command{ca, show} {
		sub.Flags().StringVar(&dataDir, "data-dir", cli.DefaultDataDir("hub"), "the hub's data dir")
		sub.Flags().StringSliceVar(&names, "tls-name", nil, "names the server certificate must carry (as given to serve)")
		c.AddCommand(sub)
	}
	return c
}

func loadPKI(dataDir string, names []string) (*pki.PKI, error) {
	if err := cli.DataDir(dataDir, "--data-dir"); err != nil {
		return nil, err
	}
	return pki.LoadOrCreate(filepath.Join(dataDir, "pki"), pki.Options{Names: names})
}

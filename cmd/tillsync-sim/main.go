// Command tillsync-sim simulates the world around tillsync: tills, a serial
// barcode scanner and outages. `tillsync-sim demo` runs the whole path end to
// end with the real tillsync-hub and tillsync-agent binaries.
package main

import (
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"github.com/tillsync/tillsync/internal/cli"
)

func main() { cli.Main(rootCmd()) }

func rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:     "tillsync-sim",
		Short:   "Simulated tills, scanners and outages for tillsync",
		Version: cli.Version,
		// No Args here: cobra reports an unknown subcommand only when a
		// root without Run leaves Args nil (else it prints help, exit 0).
	}
	root.AddCommand(demoCmd(), chaosCmd(), crashLoopCmd(), benchCmd())
	return root
}

func demoCmd() *cobra.Command {
	var o demoOptions
	c := &cobra.Command{
		Use:   "demo",
		Short: "Run a hub and a store agent, scan cards, earn and burn, survive an outage",
		Long: `Run the main job end to end on embedded defaults, with the real binaries:
a hub (embedded MQTT broker over TLS with its own CA, and the ledger) and
store agents that verify its certificate, in a temporary data dir, on free
loopback ports; a simulated serial scanner (a
pseudo-terminal) the demo types member cards into; earns and burns through the
agent's POS API; the hub cut off for a few seconds while the till keeps
accepting earns; then the catch-up, and every member's balance as the hub's
ledger has it, checked against what the till was told.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := besideMe(&o.Bin); err != nil {
				return err
			}
			return runDemo(c.Context(), c.OutOrStdout(), o)
		},
	}
	c.Flags().StringVar(&o.Bin, "bin", "", "directory holding tillsync-hub and tillsync-agent (default: this program's own)")
	c.Flags().StringVar(&o.DataDir, "data-dir", "", "keep the data here instead of a temporary dir that is removed afterwards")
	c.Flags().DurationVar(&o.Outage, "outage", 4*time.Second, "how long the hub stays cut off")
	c.Flags().BoolVar(&o.Verbose, "verbose", false, "show the hub's and the agent's logs")
	return c
}

type demoOptions struct {
	Bin, DataDir string
	Outage       time.Duration
	Verbose      bool
}

// besideMe sets an empty --bin to the directory this program is in, where
// make build puts the other two.
func besideMe(bin *string) error {
	if *bin != "" {
		return nil
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	*bin = filepath.Dir(exe)
	return nil
}

package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/tillsync/tillsync/agent"
	"github.com/tillsync/tillsync/agent/config"
	"github.com/tillsync/tillsync/internal/cli"
)

func configCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "config",
		Short: "Check the config file, show the configuration in effect, or write an example",
		Long: `The agent reads one YAML config file (--config; else $TILLSYNC_AGENT_CONFIG;
else ` + config.DefaultPath() + ` if it exists). TILLSYNC_AGENT_<KEY> variables
override its keys (TILLSYNC_AGENT_HUB, TILLSYNC_AGENT_SCANNER_PORT,
TILLSYNC_AGENT_OFFLINE_STORE_CAP: the key's path in capitals, _ for the dots),
and run's flags override both. Without a file, the flags alone configure the
agent, as they always did.`,
		Example: `  tillsync-agent config example --output ` + config.DefaultPath() + `
  tillsync-agent config check
  tillsync-agent config show --config ./agent.yaml --store gc-berlin-02`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return cli.Usagef("config: say what to do: check, show or example (see %s --help)", c.CommandPath())
		},
	}
	c.AddCommand(configCheckCmd(), configShowCmd(), configExampleCmd())
	return c
}

func configCheckCmd() *cobra.Command {
	var af agentFlags
	c := &cobra.Command{
		Use:   "check",
		Short: "Check the config file (with the environment and flags) and explain every problem",
		Long: `Check reads the configuration run would use — the file, then TILLSYNC_AGENT_*
variables, then the flags given — and lists every problem on stderr, one line
each, naming the key, where the value came from (the file's line, the variable,
the flag) and what to do. It also checks that the data dir can be written (run
it as the user the agent runs as: as a service, root or administrator).

Exit status 0 and a summary when it is fine (warnings may be listed), 1 with
the list otherwise.`,
		Example: `  tillsync-agent config check
  sudo tillsync-agent config check --config /etc/tillsync/agent.yaml
  tillsync-agent config check --config agent.yaml --scanner COM4`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			cfg, probs, err := af.load(c)
			if err != nil {
				return err
			}
			if cfg.Path == "" && !anyOverride(c) {
				return fmt.Errorf("no config file at %s (the default); name one with --config, or write one: tillsync-agent config example --output %s", config.DefaultPath(), config.DefaultPath())
			}
			probs = append(probs, cfg.Check()...)
			if len(config.Errors(probs)) == 0 {
				probs = append(probs, cfg.CheckHost()...)
			}
			return reportCheck(c.OutOrStdout(), c.ErrOrStderr(), cfg, probs)
		},
	}
	af.add(c)
	return c
}

// anyOverride reports whether a TILLSYNC_AGENT_ variable or a flag sets a key.
func anyOverride(c *cobra.Command) bool {
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, config.EnvPrefix) && !strings.HasPrefix(kv, config.EnvConfig+"=") {
			return true
		}
	}
	for _, fk := range flagKeys {
		if c.Flags().Changed(fk.flag) {
			return true
		}
	}
	return false
}

// reportCheck lists the problems on stderr, one a line, and either a
// summary on stdout (no errors) or an error counting them.
func reportCheck(stdout, stderr io.Writer, cfg *config.Config, probs []config.Problem) error {
	name := cfg.Path
	if name == "" {
		name = "the configuration (no file)"
	}
	errs := config.Errors(probs)
	for _, p := range probs {
		if p.Warning {
			fmt.Fprintln(stderr, "warning: "+p.String())
		} else {
			fmt.Fprintln(stderr, p.String())
		}
	}
	if n := len(errs); n > 0 {
		return fmt.Errorf("%s: %s; fix %s and check again", name, plural(n, "problem"), map[bool]string{true: "it", false: "them"}[n == 1])
	}
	fmt.Fprintf(stdout, "%s: ok\n", name)
	for _, l := range summary(cfg) {
		fmt.Fprintf(stdout, "  %-9s %s\n", l[0], l[1])
	}
	return nil
}

func summary(cfg *config.Config) [][2]string {
	out := [][2]string{
		{"till", fmt.Sprintf("store %s, terminal %s, partner %s", cfg.Store, cfg.Terminal, cfg.Partner)},
		{"hub", cfg.Hub + " (is it reachable? " + pingLine(cfg) + ")"},
		{"transport", transport(cfg)},
		{"POS API", cfg.POS.Listen},
	}
	scanner := "none"
	switch {
	case cfg.Scanner.Port != "":
		scanner = fmt.Sprintf("%s at %d baud", cfg.Scanner.Port, cfg.Scanner.Baud)
	case cfg.Scanner.USB != "":
		scanner = fmt.Sprintf("USB %s at %d baud", cfg.Scanner.USB, cfg.Scanner.Baud)
	}
	if cd := cfg.Scanner.CheckDigit; cd != "" && cd != "none" {
		scanner += ", check digit " + cd
	}
	out = append(out, [2]string{"scanner", scanner})
	offline := "burns declined while the hub is unreachable"
	if p := cfg.Offline; p.Enabled() {
		offline = fmt.Sprintf("burns up to %d points a member, %d for this till (store cap %d over %d tills)", p.MemberAllowance, p.TillCap(), p.StoreCap, max(1, p.StoreTills))
	}
	out = append(out, [2]string{"offline", offline}, [2]string{"data dir", cfg.DataDir})
	rotated := fmt.Sprintf("%s (rotated at %d MB, %d kept)", cfg.LogPath(), cfg.Log.MaxSizeMB, cfg.Log.MaxFiles)
	var where string
	switch {
	case cfg.Log.File == nil:
		where = "as a service to the OS log and " + rotated + "; in a terminal to stderr"
	case !*cfg.Log.File:
		where = "as a service to the OS log; in a terminal to stderr"
	default:
		where = "to " + rotated + ", and to the OS log (as a service) or stderr"
	}
	out = append(out, [2]string{"log", fmt.Sprintf("level %s, %s", cfg.Log.Level, where)})
	var env []string
	for _, k := range config.Keys() {
		if s := cfg.Source(k); s.Kind == config.FromEnv {
			env = append(env, s.Name)
		}
	}
	if len(env) > 0 {
		out = append(out, [2]string{"note", "set by this shell's environment, which a service does not see: " + strings.Join(env, ", ")})
	}
	return out
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

func configShowCmd() *cobra.Command {
	var af agentFlags
	c := &cobra.Command{
		Use:   "show",
		Short: "Print the configuration in effect (file, then environment, then flags) as YAML",
		Long: `Show prints the configuration run would use, as a config file: the file, then
TILLSYNC_AGENT_* variables, then the flags given, over the defaults. Each value
that is not a default says where it came from (# line 3, # TILLSYNC_AGENT_HUB,
# --store). Problems, if any, are listed on stderr; show prints what it can.`,
		Example: `  tillsync-agent config show
  TILLSYNC_AGENT_HUB=tcp://10.0.0.5:1883 tillsync-agent config show --config agent.yaml`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			cfg, probs, err := af.load(c)
			if err != nil {
				return err
			}
			for _, p := range probs {
				fmt.Fprintln(c.ErrOrStderr(), "problem: "+p.String())
			}
			out, err := cfg.Marshal()
			if err != nil {
				return err
			}
			_, err = c.OutOrStdout().Write(out)
			return err
		},
	}
	af.add(c)
	return c
}

func configExampleCmd() *cobra.Command {
	var output string
	var force bool
	c := &cobra.Command{
		Use:   "example",
		Short: "Write a commented example config file with every key",
		Long: `Example prints a commented config file with every key and what it does, to
start from. With --output it writes the file (owner-only, creating its
directory) and refuses to replace one unless --force.`,
		Example: `  tillsync-agent config example > agent.yaml
  sudo tillsync-agent config example --output ` + config.DefaultPath(),
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if output == "" {
				_, err := c.OutOrStdout().Write(config.Example)
				return err
			}
			if _, err := os.Stat(output); err == nil && !force {
				return fmt.Errorf("%s exists; edit it, or replace it with --force", output)
			} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("%s: %v", output, err)
			}
			if err := os.MkdirAll(filepath.Dir(output), 0o755); err != nil {
				return fmt.Errorf("cannot create the directory of %s: %v", output, errors.Unwrap(err))
			}
			if err := os.WriteFile(output, config.Example, 0o600); err != nil {
				return fmt.Errorf("cannot write %s: %v", output, errors.Unwrap(err))
			}
			fmt.Fprintf(c.OutOrStdout(), "wrote %s; edit store, terminal, partner, hub and scanner, then: tillsync-agent config check --config %s\n", output, output)
			return nil
		},
	}
	c.Flags().StringVarP(&output, "output", "o", "", "write the example to this file instead of stdout")
	c.Flags().BoolVar(&force, "force", false, "replace the --output file if it exists")
	return c
}

// pingLine is the ping command that checks the hub as run would reach it.
func pingLine(cfg *config.Config) string {
	line := "tillsync-agent ping --hub " + cfg.Hub
	hub, _ := config.ParseHub(cfg.Hub)
	if path, _ := cfg.HubCAPath(); path != "" && agent.IsTLSBroker(hub) {
		line += " --hub-ca " + path
	}
	if cfg.HubPlain && !agent.IsTLSBroker(hub) && !config.HubOnLoopback(hub) {
		line += " --hub-plain"
	}
	return line
}

// transport says in one line how the agent reaches the hub and whom it trusts.
func transport(cfg *config.Config) string {
	hub, _ := config.ParseHub(cfg.Hub)
	switch {
	case !agent.IsTLSBroker(hub) && config.HubOnLoopback(hub):
		return "plain MQTT to a hub on this machine (nothing crosses the network)"
	case !agent.IsTLSBroker(hub):
		return "plain MQTT across the network (hub_plain): anyone on it can read and forge this till's traffic"
	}
	switch path, isDefault := cfg.HubCAPath(); {
	case path == "":
		return "MQTT over TLS; the hub's certificate must chain to the system's root CAs (no hub_ca)"
	case isDefault:
		return "MQTT over TLS; the hub's certificate is verified against " + path + " (from the data dir)"
	default:
		return "MQTT over TLS; the hub's certificate is verified against " + path + " (hub_ca)"
	}
}

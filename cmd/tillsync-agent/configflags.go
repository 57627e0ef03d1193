package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/tillsync/tillsync/agent/config"
)

// flagKeys maps run's flags to the config keys they override. These are
// the flags run had before there was a config file, and they keep their
// names, defaults and meaning.
var flagKeys = []struct{ flag, key string }{
	{"data-dir", "data_dir"},
	{"hub", "hub"},
	{"hub-ca", "hub_ca"},
	{"hub-plain", "hub_plain"},
	{"store", "store"},
	{"terminal", "terminal"},
	{"partner", "partner"},
	{"pos-listen", "pos.listen"},
	{"pos-secret-file", "pos.secret_file"},
	{"scanner", "scanner.port"},
	{"scanner-usb", "scanner.usb"},
	{"scanner-baud", "scanner.baud"},
	{"scanner-check-digit", "scanner.check_digit"},
	{"earn-rate", "earn_rate"},
	{"burn-timeout", "burn_timeout"},
	{"log-level", "log.level"},
	{"log-format", "log.format"},
}

// flagNames maps a key to its flag, e.g. store → --store.
var flagNames = func() map[string]string {
	m := map[string]string{}
	for _, fk := range flagKeys {
		m[fk.key] = "--" + fk.flag
	}
	return m
}()

// agentFlags are run's flags, which `config check` and `config show` take
// too so that they look at what run would use: --config, and one flag per
// key above.
type agentFlags struct {
	config string
}

func (af *agentFlags) add(c *cobra.Command) {
	d := config.Default()
	f := c.Flags()
	f.StringVar(&af.config, "config", "", fmt.Sprintf("the config file (default: $%s, else %s if it exists)", config.EnvConfig, config.DefaultPath()))
	f.String("data-dir", d.DataDir, "directory for the outbox and the log files (created owner-only)")
	f.String("hub", d.Hub, "the hub's MQTT address: tls://HOST:PORT (MQTT over TLS) or tcp://HOST:PORT")
	f.String("hub-ca", d.HubCA, "the hub's CA certificate (PEM file) for a tls:// hub, from tillsync-hub tls ca (default: hub-ca.pem in the data dir, if there)")
	f.Bool("hub-plain", d.HubPlain, "allow plain MQTT (tcp://) to a hub on another machine, on a network you trust")
	f.String("store", d.Store, "this store's id (required)")
	f.String("terminal", d.Terminal, "this till's id within the store (required)")
	f.String("partner", d.Partner, "the brand this store trades as (required)")
	f.String("pos-listen", d.POS.Listen, "address of the POS API (keep it on loopback)")
	f.String("pos-secret-file", d.POS.SecretFile, "a file whose first line is the shared secret every POS request must carry (none if empty)")
	f.String("scanner", d.Scanner.Port, "serial port of the barcode scanner, e.g. COM3 or /dev/ttyACM0 (none if empty)")
	f.String("scanner-usb", d.Scanner.USB, "the scanner by USB identity instead of --scanner: VID:PID or VID:PID:SERIAL, e.g. 0c2e:0b61")
	f.Int("scanner-baud", d.Scanner.Baud, "the scanner's baud rate")
	f.String("scanner-check-digit", d.Scanner.CheckDigit, "check digit of the member card numbers: none, luhn or mod11")
	f.Int64("earn-rate", d.EarnRate, "points per 100 minor units of a purchase (until the hub pushes partner rules)")
	f.Duration("burn-timeout", d.BurnTimeout, "how long a burn waits for the hub before it is declined")
	f.String("log-level", d.Log.Level, "log level: debug, info, warn or error")
	f.String("log-format", d.Log.Format, "log format: text or json")
}

// load reads the configuration run would use: the config file, the
// environment, then the flags given.
func (af *agentFlags) load(c *cobra.Command) (*config.Config, []config.Problem, error) {
	path, err := configPath(af.config)
	if err != nil {
		return nil, nil, err
	}
	keys := map[string]string{}
	for _, fk := range flagKeys {
		keys[fk.flag] = fk.key
	}
	var flags []config.Flag
	c.Flags().Visit(func(f *pflag.Flag) {
		if key, ok := keys[f.Name]; ok {
			flags = append(flags, config.Flag{Key: key, Name: "--" + f.Name, Value: f.Value.String()})
		}
	})
	return config.Load(config.Options{Path: path, Environ: os.Environ(), Flags: flags, FlagNames: flagNames})
}

// configPath finds the config file: the one named (--config, else
// TILLSYNC_AGENT_CONFIG), which must exist, else the OS's default path if
// there is a file there; "" for none.
func configPath(named string) (string, error) {
	if named == "" {
		named = os.Getenv(config.EnvConfig)
	}
	if named == "" {
		if _, err := os.Stat(config.DefaultPath()); errors.Is(err, fs.ErrNotExist) {
			return "", nil
		}
		named = config.DefaultPath()
	}
	abs, err := filepath.Abs(named)
	if err != nil {
		return "", fmt.Errorf("config %s: %v", named, err)
	}
	return abs, nil
}

package config_test

import (
	"bytes"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tillsync/tillsync/agent"
	"github.com/tillsync/tillsync/agent/config"
	"github.com/tillsync/tillsync/agent/scanner"
)

// flagNames is how tillsync-agent run names the flags of the keys it has
// flags for.
var flagNames = map[string]string{
	"data_dir": "--data-dir", "hub": "--hub", "hub_ca": "--hub-ca", "hub_plain": "--hub-plain", "store": "--store", "terminal": "--terminal", "partner": "--partner",
	"pos.listen": "--pos-listen", "scanner.port": "--scanner", "scanner.usb": "--scanner-usb", "scanner.baud": "--scanner-baud",
	"scanner.check_digit": "--scanner-check-digit", "earn_rate": "--earn-rate", "burn_timeout": "--burn-timeout",
	"log.level": "--log-level", "log.format": "--log-format",
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "agent.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func flag(key, value string) config.Flag {
	return config.Flag{Key: key, Name: flagNames[key], Value: value}
}

func load(t *testing.T, file string, env []string, flags ...config.Flag) (*config.Config, []config.Problem) {
	t.Helper()
	o := config.Options{Environ: env, Flags: flags, FlagNames: flagNames}
	if file != "" {
		o.Path = writeFile(t, file)
	}
	c, probs, err := config.Load(o)
	if err != nil {
		t.Fatal(err)
	}
	return c, probs
}

func lines(probs []config.Problem) []string {
	var out []string
	for _, p := range probs {
		s := p.String()
		if p.Warning {
			s = "warning: " + s
		}
		out = append(out, s)
	}
	return out
}

// The example file is valid with an enrolled data dir; with its
// commented-out keys (those enrollment fills) given, it sets every key (so
// it documents every key), and the strict decoder agrees with the schema
// about every one of them.
func TestExample(t *testing.T) {
	dir := t.TempDir()
	_, key, _ := ed25519.GenerateKey(nil)
	if err := agent.SaveEnrollment(dir, agent.Enrollment{Store: "gc-berlin-01", Terminal: "till-1", Partner: "greencross", MQTT: "tls://hub.example.com:8883"}, key, nil); err != nil {
		t.Fatal(err)
	}
	c, probs := load(t, string(config.Example), nil, flag("data_dir", dir))
	if probs = append(probs, config.Errors(c.Check())...); len(probs) > 0 {
		t.Fatalf("the example with an enrolled data dir has problems:\n%s", strings.Join(lines(probs), "\n"))
	}
	// Without enrollment it says what is missing, and how to get it.
	c, _ = load(t, string(config.Example), nil, flag("data_dir", t.TempDir()))
	if errs := config.Errors(c.Check()); len(errs) != 3 || !strings.Contains(errs[0].String(), "tillsync-agent enroll") {
		t.Errorf("the example without enrollment: %q", lines(errs))
	}
	uncommented := regexp.MustCompile(`(?m)^#([a-z_]+: )`).ReplaceAllString(string(config.Example), "$1")
	c, probs = load(t, uncommented, nil)
	probs = append(probs, config.Errors(c.Check())...)
	if len(probs) > 0 {
		t.Fatalf("the example has problems:\n%s", strings.Join(lines(probs), "\n"))
	}
	for _, k := range config.Keys() {
		if s := c.Source(k); s.Kind != config.FromFile {
			t.Errorf("the example does not set %s", k)
		}
	}
	if c.Store != "gc-berlin-01" || c.Scanner.Port != "/dev/ttyACM0" || c.Offline.MaxBalanceAge != 24*time.Hour || c.Log.File == nil || !*c.Log.File {
		t.Errorf("example read as %+v", c.File)
	}
}

func TestKeysAndEnvNames(t *testing.T) {
	keys := config.Keys()
	want := []string{
		"data_dir", "hub", "hub_ca", "hub_plain", "store", "terminal", "partner", "earn_rate", "burn_timeout", "pos.listen", "pos.secret_file",
		"scanner.port", "scanner.usb", "scanner.baud", "scanner.check_digit",
		"offline.member_allowance", "offline.store_cap", "offline.store_tills", "offline.max_balance_age", "offline.alert_after",
		"log.level", "log.format", "log.file", "log.max_size_mb", "log.max_files",
	}
	if !reflect.DeepEqual(keys, want) {
		t.Errorf("Keys() = %q\nwant     %q", keys, want)
	}
	for key, env := range map[string]string{
		"hub": "TILLSYNC_AGENT_HUB", "scanner.port": "TILLSYNC_AGENT_SCANNER_PORT",
		"offline.store_cap": "TILLSYNC_AGENT_OFFLINE_STORE_CAP", "data_dir": "TILLSYNC_AGENT_DATA_DIR",
	} {
		if got := config.EnvName(key); got != env {
			t.Errorf("EnvName(%s) = %s, want %s", key, got, env)
		}
	}
}

func TestDefaults(t *testing.T) {
	c, probs := load(t, "", nil)
	if len(probs) > 0 {
		t.Fatalf("problems: %q", lines(probs))
	}
	if !reflect.DeepEqual(c.File, config.Default()) {
		t.Errorf("nothing set gives %+v, want the defaults %+v", c.File, config.Default())
	}
	// The defaults lack only what no default can give: who this till is.
	if got := lines(c.Check()); !reflect.DeepEqual(got, []string{
		"--store: missing; give this store's id (e.g. gc-berlin-01); or enroll the till (tillsync-agent enroll), which names it",
		"--terminal: missing; give this till's id within the store (e.g. till-1); or enroll the till (tillsync-agent enroll), which names it",
		"--partner: missing; give the brand this store trades as (e.g. greencross); or enroll the till (tillsync-agent enroll), which names it",
	}) {
		t.Errorf("Check() of the defaults = %q", got)
	}
}

// Flags win over variables, variables over the file, the file over the
// defaults; each value knows where it came from.
func TestPrecedence(t *testing.T) {
	file := `hub: tcp://file:1883
store: s-file
terminal: t-file
scanner:
  port: COM1
  baud: 19200
offline:
  member_allowance: 100
  store_cap: 1000
  max_balance_age: 12h
`
	env := []string{
		"PATH=/bin",
		"TILLSYNC_AGENT_HUB=tcp://env:1883",
		"TILLSYNC_AGENT_SCANNER_PORT=COM2",
		"TILLSYNC_AGENT_OFFLINE_STORE_CAP=5000",
		"TILLSYNC_AGENT_OFFLINE_ALERT_AFTER=90m",
		"TILLSYNC_AGENT_TERMINAL=t-env",
		"TILLSYNC_AGENT_CONFIG=/somewhere/else.yaml", // the file's name, not a key
	}
	c, probs := load(t, file, env, flag("hub", "tcp://flag:1883"), flag("terminal", "t-flag"), flag("burn_timeout", "5s"))
	if len(probs) > 0 {
		t.Fatalf("problems: %q", lines(probs))
	}
	for _, tc := range []struct {
		key  string
		got  any
		want any
		src  string
	}{
		{"hub", c.Hub, "tcp://flag:1883", "--hub"},
		{"terminal", c.Terminal, "t-flag", "--terminal"},
		{"burn_timeout", c.BurnTimeout, 5 * time.Second, "--burn-timeout"},
		{"scanner.port", c.Scanner.Port, "COM2", "TILLSYNC_AGENT_SCANNER_PORT"},
		{"offline.store_cap", c.Offline.StoreCap, int64(5000), "TILLSYNC_AGENT_OFFLINE_STORE_CAP"},
		{"offline.alert_after", c.Offline.AlertAfter, 90 * time.Minute, "TILLSYNC_AGENT_OFFLINE_ALERT_AFTER"},
		{"store", c.Store, "s-file", "line 2"},
		{"scanner.baud", c.Scanner.Baud, 19200, "line 6"},
		{"offline.member_allowance", c.Offline.MemberAllowance, int64(100), "line 8"},
		{"offline.max_balance_age", c.Offline.MaxBalanceAge, 12 * time.Hour, "line 10"},
		{"pos.listen", c.POS.Listen, "127.0.0.1:8081", "default"},
		{"earn_rate", c.EarnRate, int64(1), "default"},
	} {
		if !reflect.DeepEqual(tc.got, tc.want) {
			t.Errorf("%s = %v, want %v", tc.key, tc.got, tc.want)
		}
		if s := c.Source(tc.key).String(); s != tc.src {
			t.Errorf("%s comes from %s, want %s", tc.key, s, tc.src)
		}
	}
	if got := c.FixWith("store"); got != "store: in "+c.Path+" (line 2)" {
		t.Errorf("FixWith(store) = %q", got)
	}
	if got := c.FixWith("hub"); got != "--hub" {
		t.Errorf("FixWith(hub) = %q", got)
	}
}

// Text is taken as written; numbers may be quoted; "key:" with nothing is
// explicitly nothing.
func TestValues(t *testing.T) {
	c, probs := load(t, `store: 0042
terminal: "007"
partner: 1e3
earn_rate: "2"
scanner:
  baud: '115200'
  usb: 0C2E:0B61:SN 1
  check_digit: LUHN
log:
  file: false
hub:
`, []string{"TILLSYNC_AGENT_LOG_LEVEL=debug", "TILLSYNC_AGENT_OFFLINE_STORE_TILLS=3", "TILLSYNC_AGENT_SCANNER_PORT="})
	if len(probs) > 0 {
		t.Fatalf("problems: %q", lines(probs))
	}
	if c.Store != "0042" || c.Terminal != "007" || c.Partner != "1e3" || c.EarnRate != 2 || c.Scanner.Baud != 115200 ||
		c.Log.File == nil || *c.Log.File || c.Log.Level != "debug" || c.Offline.StoreTills != 3 || c.Hub != "" || c.Scanner.Port != "" {
		t.Errorf("read as %+v", c.File)
	}
	if got := lines(c.Check()); !reflect.DeepEqual(got, []string{"line 11: hub: missing; set hub: to the hub's MQTT address, e.g. tls://hub.example.com:8883"}) {
		t.Errorf("Check() = %q", got)
	}
	c.Hub, c.HubPlain = "mqtt://hub:1883", true
	o, err := c.AgentOptions()
	if err != nil {
		t.Fatal(err)
	}
	if o.Broker != "tcp://hub:1883" || o.ScannerUSB != (scanner.USBMatch{VID: "0c2e", PID: "0b61", Serial: "SN 1"}) ||
		o.MemberCheck != scanner.CheckLuhn || o.ScannerBaud != 115200 || o.Offline != (agent.OfflinePolicy{StoreTills: 3}) || o.Store != "0042" {
		t.Errorf("AgentOptions() = %+v", o)
	}
}

// Every problem, in the words a person sees.
func TestProblems(t *testing.T) {
	const ok = "store: s1\nterminal: t1\npartner: p1\n"
	for _, tc := range []struct {
		name  string
		file  string // "" for no file
		env   []string
		flags []config.Flag
		want  []string // Load's and Check's problems, in order
	}{
		{name: "valid", file: ok},
		{name: "empty file", file: "# nothing yet\n", want: []string{
			"store: missing; set store: to this store's id (e.g. gc-berlin-01); or enroll the till (tillsync-agent enroll), which names it",
			"terminal: missing; set terminal: to this till's id within the store (e.g. till-1); or enroll the till (tillsync-agent enroll), which names it",
			"partner: missing; set partner: to the brand this store trades as (e.g. greencross); or enroll the till (tillsync-agent enroll), which names it",
		}},
		{name: "flags only", flags: []config.Flag{flag("store", "s1")}, want: []string{
			"--terminal: missing; give this till's id within the store (e.g. till-1); or enroll the till (tillsync-agent enroll), which names it",
			"--partner: missing; give the brand this store trades as (e.g. greencross); or enroll the till (tillsync-agent enroll), which names it",
		}},
		{name: "empty in file", file: ok + "pos:\n  listen: \n", want: []string{
			"line 5: pos.listen: missing; set listen: under pos: to the POS API's address, e.g. 127.0.0.1:8081",
		}},
		{name: "empty variable", file: ok, env: []string{"TILLSYNC_AGENT_STORE="}, want: []string{
			"TILLSYNC_AGENT_STORE: empty; set it to this store's id (e.g. gc-berlin-01)",
		}},
		{name: "empty flag", file: ok, flags: []config.Flag{flag("partner", "")}, want: []string{
			"--partner: empty; give the brand this store trades as (e.g. greencross)",
		}},
		{name: "unknown key", file: ok + "hubb: tcp://x:1883\n", want: []string{
			"line 4: hubb: unknown key; did you mean hub? (the top level takes data_dir, hub, hub_ca, hub_plain, store, terminal, partner, earn_rate, burn_timeout, pos, scanner, offline, log)",
		}},
		{name: "unknown key in a section", file: ok + "scanner:\n  prot: COM3\n", want: []string{
			"line 5: scanner.prot: unknown key; did you mean scanner.port? (scanner takes port, usb, baud, check_digit)",
		}},
		{name: "key in the wrong place", file: ok + "baud: 9600\npos_listen: 127.0.0.1:1\nsecret: x\n", want: []string{
			"line 4: baud: unknown key; did you mean scanner.baud? (the top level takes data_dir, hub, hub_ca, hub_plain, store, terminal, partner, earn_rate, burn_timeout, pos, scanner, offline, log)",
			"line 5: pos_listen: unknown key; did you mean pos.listen? (the top level takes data_dir, hub, hub_ca, hub_plain, store, terminal, partner, earn_rate, burn_timeout, pos, scanner, offline, log)",
			"line 6: secret: unknown key (the top level takes data_dir, hub, hub_ca, hub_plain, store, terminal, partner, earn_rate, burn_timeout, pos, scanner, offline, log)",
		}},
		{name: "twice", file: ok + "store: s2\n", want: []string{"line 4: store: set twice (also on line 1); keep one"}},
		{name: "section as a value", file: ok + "scanner: COM3\n", want: []string{
			"line 4: scanner: want a section: its keys (port, usb, baud, check_digit) indented below it",
		}},
		{name: "list as a value", file: ok + "hub: [a, b]\n", want: []string{"line 4: hub: want one value here, not a list or a section"}},
		{name: "not a number", file: ok + "scanner:\n  baud: fast\n", want: []string{`line 5: scanner.baud "fast": want a whole number`}},
		{name: "not a duration", file: ok + "burn_timeout: 3\n", want: []string{`line 4: burn_timeout "3": want a duration such as "30s", "15m" or "24h"`}},
		{name: "not a bool", file: ok + "log:\n  file: sometimes\n", want: []string{`line 5: log.file "sometimes": want true or false`}},
		{name: "variable not a number", file: ok, env: []string{"TILLSYNC_AGENT_OFFLINE_STORE_CAP=lots"}, want: []string{
			`TILLSYNC_AGENT_OFFLINE_STORE_CAP "lots": want a whole number`,
		}},
		{name: "flag not a duration", file: ok, flags: []config.Flag{flag("burn_timeout", "soon")}, want: []string{
			`--burn-timeout "soon": want a duration such as "30s", "15m" or "24h"`,
		}},
		{name: "bad YAML", file: ok + "hub: [\n", want: []string{"line 4: did not find expected node content"}},
		{name: "tab indent", file: ok + "scanner:\n\tport: COM3\n", want: []string{"line 5: found character that cannot start any token"}},
		{name: "two documents", file: ok + "---\nstore: s2\n", want: []string{"line 4: a second document (after ---); the config is one document"}},
		{name: "not a mapping", file: "- store\n", want: []string{"line 1: want keys with values (key: value), e.g. store: gc-berlin-01"}},
		{name: "unknown variable", file: ok, env: []string{"TILLSYNC_AGENT_SCANER_PORT=COM3", "TILLSYNC_AGENT_VERBOSE=1"}, want: []string{
			"warning: TILLSYNC_AGENT_SCANER_PORT: not a setting of tillsync-agent; ignored (did you mean TILLSYNC_AGENT_SCANNER_PORT?)",
			"warning: TILLSYNC_AGENT_VERBOSE: not a setting of tillsync-agent; ignored",
		}},
		{name: "relative data dir", file: ok + "data_dir: ./data\n", want: []string{
			`warning: line 4: data_dir "./data": a relative path depends on the directory the agent starts in (a service starts in / or C:\Windows\System32); use an absolute path`,
		}},
		{name: "hub", file: ok + "hub: http://x\n", want: []string{`line 4: hub "http://x": want tls://host:port (MQTT over TLS) or tcp://host:port, e.g. tls://hub.example.com:8883`}},
		{name: "hub without port", file: ok, env: []string{"TILLSYNC_AGENT_HUB=tcp://hub.example.com"}, want: []string{
			`TILLSYNC_AGENT_HUB "tcp://hub.example.com": want tls://host:port (MQTT over TLS) or tcp://host:port, e.g. tls://hub.example.com:8883`,
		}},
		{name: "hub flag", file: ok, flags: []config.Flag{flag("hub", "http://x")}, want: []string{`--hub "http://x": want tls://host:port (MQTT over TLS) or tcp://host:port, e.g. tls://hub.example.com:8883`}},
		{name: "ids", file: "store: s/1\nterminal: t+1\npartner: " + strings.Repeat("p", 65) + "\n", want: []string{
			`line 1: store "s/1": use 1-64 characters of A-Z a-z 0-9 . _ - for this store's id (e.g. gc-berlin-01)`,
			`line 2: terminal "t+1": use 1-64 characters of A-Z a-z 0-9 . _ - for this till's id within the store (e.g. till-1)`,
			`line 3: partner "` + strings.Repeat("p", 65) + `": use 1-64 characters of A-Z a-z 0-9 . _ - for the brand this store trades as (e.g. greencross)`,
		}},
		{name: "id flag", flags: []config.Flag{flag("store", "s/1"), flag("terminal", "t1"), flag("partner", "p1")}, want: []string{
			`--store "s/1": use 1-64 characters of A-Z a-z 0-9 . _ - for this store's id (e.g. gc-berlin-01)`,
		}},
		{name: "earn rate", file: ok + "earn_rate: 0\n", flags: []config.Flag{flag("earn_rate", "10001")}, want: []string{
			"--earn-rate 10001: want 1 to 10000 points per 100 minor units",
		}},
		{name: "burn timeout", file: ok + "burn_timeout: -1s\n", want: []string{
			"line 4: burn_timeout -1s: must not be negative; how long the POS waits for a burn's answer, e.g. 3s (0 means 3s)",
		}},
		{name: "burn timeout long", file: ok + "burn_timeout: 2m\n", want: []string{
			"warning: line 4: burn_timeout 2m0s: over 1m0s: the POS and the customer wait this long when the hub does not answer; 3s is usual",
		}},
		{name: "zero means the default", file: ok + "burn_timeout: 0s\nscanner:\n  baud: 0\n"},
		{name: "pos listen", file: ok + "pos:\n  listen: nonsense\n", want: []string{`line 5: pos.listen "nonsense": want host:port, e.g. 127.0.0.1:8081`}},
		{name: "pos secret file missing", file: ok + "pos:\n  secret_file: /nonexistent/pos.secret\n", want: []string{`line 5: pos.secret_file "/nonexistent/pos.secret": cannot read /nonexistent/pos.secret: no such file or directory`}},
		{name: "pos listen port", file: ok + "pos:\n  listen: 127.0.0.1:99999\n", want: []string{`line 5: pos.listen "127.0.0.1:99999": want host:port, e.g. 127.0.0.1:8081`}},
		{name: "pos listen not loopback", file: ok + "pos:\n  listen: 0.0.0.0:8081\n", want: []string{
			`warning: line 5: pos.listen "0.0.0.0:8081": not a loopback address and no pos.secret_file: whoever reaches the POS API can earn and burn points; keep it on 127.0.0.1, or set a shared secret and keep the network trusted`,
		}},
		{name: "pos listen all interfaces", file: ok, flags: []config.Flag{flag("pos.listen", ":8081")}, want: []string{
			`warning: --pos-listen ":8081": not a loopback address and no pos.secret_file: whoever reaches the POS API can earn and burn points; keep it on 127.0.0.1, or set a shared secret and keep the network trusted`,
		}},
		{name: "pos listen localhost", file: ok + "pos:\n  listen: localhost:8081\n"},
		{name: "scanner both", file: ok + "scanner:\n  port: COM3\n", env: []string{"TILLSYNC_AGENT_SCANNER_USB=0c2e:0b61"}, want: []string{
			"scanner: both port (line 5) and usb (TILLSYNC_AGENT_SCANNER_USB) set; choose one",
		}},
		{name: "scanner usb", file: ok + "scanner:\n  usb: 0c2e\n", want: []string{`line 5: scanner.usb "0c2e": want VID:PID or VID:PID:SERIAL, e.g. 0c2e:0b61`}},
		{name: "scanner usb vid", file: ok + "scanner:\n  usb: zz:0b61\n", want: []string{`line 5: scanner.usb "zz:0b61": vid "zz": want four hex digits, e.g. 0c2e`}},
		{name: "scanner baud", file: ok + "scanner:\n  baud: 5000000\n", want: []string{"line 5: scanner.baud 5000000: want the scanner's baud rate, e.g. 9600 or 115200 (0 means 9600)"}},
		{name: "check digit", file: ok + "scanner:\n  check_digit: crc\n", want: []string{`line 5: scanner.check_digit "crc": want none, luhn or mod11`}},
		{name: "offline without cap", file: ok + "offline:\n  member_allowance: 500\n", want: []string{
			"line 5: offline member_allowance 500 with store_cap 0: set a store cap too, or member_allowance 0 to turn offline burns off",
		}},
		{name: "offline negative", file: ok, env: []string{"TILLSYNC_AGENT_OFFLINE_MAX_BALANCE_AGE=-1h"}, want: []string{
			"TILLSYNC_AGENT_OFFLINE_MAX_BALANCE_AGE: offline max_balance_age -1h0m0s: must not be negative",
		}},
		{name: "offline tills", file: ok + "offline:\n  store_tills: 1001\n", want: []string{"line 5: offline store_tills 1001: want 1 to 1000 (0 means 1)"}},
		{name: "log", file: ok + "log:\n  level: loud\n  format: xml\n  max_size_mb: 0\n  max_files: 101\n", want: []string{
			`line 5: log.level "loud": want debug, info, warn or error`,
			`line 6: log.format "xml": want text or json`,
			"line 7: log.max_size_mb 0: want 1 to 1024 (megabytes before the log file is rotated)",
			"line 8: log.max_files 101: want 1 to 100 (rotated log files kept)",
		}},
		{name: "log level flag", file: ok, flags: []config.Flag{flag("log.level", "loud")}, want: []string{`--log-level "loud": want debug, info, warn or error`}},
		{name: "several", file: "hub: http://x\nstore: s1\nscanner:\n  baud: -1\n", want: []string{
			`line 1: hub "http://x": want tls://host:port (MQTT over TLS) or tcp://host:port, e.g. tls://hub.example.com:8883`,
			"terminal: missing; set terminal: to this till's id within the store (e.g. till-1); or enroll the till (tillsync-agent enroll), which names it",
			"partner: missing; set partner: to the brand this store trades as (e.g. greencross); or enroll the till (tillsync-agent enroll), which names it",
			"line 4: scanner.baud -1: want the scanner's baud rate, e.g. 9600 or 115200 (0 means 9600)",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, probs := load(t, tc.file, tc.env, tc.flags...)
			got := lines(append(probs, c.Check()...))
			if !reflect.DeepEqual(got, tc.want) && (len(got) > 0 || len(tc.want) > 0) {
				t.Errorf("problems:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "))
			}
		})
	}
}

func TestMissingFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "agent.yaml")
	_, _, err := config.Load(config.Options{Path: p})
	if err == nil || !strings.Contains(err.Error(), p+": no such file") || !strings.Contains(err.Error(), "config example") {
		t.Errorf("Load of a missing file: %v", err)
	}
	big := writeFile(t, strings.Repeat("#\n", config.MaxBytes))
	if _, _, err := config.Load(config.Options{Path: big}); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("Load of a huge file: %v", err)
	}
}

func TestCheckHost(t *testing.T) {
	tmp := t.TempDir()
	file := filepath.Join(tmp, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		dir  string
		want string // "" for no problem
	}{
		{tmp, ""},
		{filepath.Join(tmp, "new", "agent"), ""},
		{file, `--data-dir "` + file + `": not a directory; check as the user the agent runs as (a service: root or administrator), or choose a writable directory with --data-dir`},
		{filepath.Join(file, "agent"), `--data-dir "` + filepath.Join(file, "agent") + `": cannot be created: ` + file + ` is not a directory; check as the user the agent runs as (a service: root or administrator), or choose a writable directory with --data-dir`},
	} {
		c, _ := load(t, "", nil, flag("data_dir", tc.dir), flag("hub", "tcp://127.0.0.1:1883"))
		got := strings.Join(lines(c.CheckHost()), "\n")
		if got != tc.want {
			t.Errorf("CheckHost(%s):\n  %s\nwant\n  %s", tc.dir, got, tc.want)
		}
	}
	if _, err := os.Stat(filepath.Join(tmp, "new")); err == nil {
		t.Error("CheckHost created the data dir")
	}
}

func TestCheckHostReadOnly(t *testing.T) {
	if os.Geteuid() == 0 || runtime.GOOS == "windows" {
		t.Skip("root may write anywhere")
	}
	ro := filepath.Join(t.TempDir(), "ro")
	if err := os.Mkdir(ro, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(ro, 0o700) })
	c, _ := load(t, "data_dir: "+filepath.Join(ro, "agent")+"\n", nil)
	got := strings.Join(lines(c.CheckHost()), "\n")
	want := "cannot be created in " + ro + " (permission denied); check as the user the agent runs as"
	if !strings.HasPrefix(got, "line 1: data_dir ") || !strings.Contains(got, want) || !strings.Contains(got, "data_dir: in "+c.Path+" (line 1)") {
		t.Errorf("CheckHost = %s", got)
	}
}

// Marshal writes a file that reads back as the same configuration, each
// value commented with where it came from.
func TestMarshal(t *testing.T) {
	c, probs := load(t, "store: s1\nscanner:\n  usb: 0c2e:0b61\n", []string{"TILLSYNC_AGENT_OFFLINE_STORE_CAP=900"}, flag("hub", "tcp://h:1"))
	if len(probs) > 0 {
		t.Fatal(lines(probs))
	}
	out, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{
		"store: s1 # line 1", "usb: 0c2e:0b61 # line 3", "store_cap: 900 # TILLSYNC_AGENT_OFFLINE_STORE_CAP", "hub: tcp://h:1 # --hub",
		"listen: 127.0.0.1:8081\n", "burn_timeout: 3s\n",
	} {
		if !bytes.Contains(out, []byte(w)) {
			t.Errorf("Marshal() lacks %q:\n%s", w, out)
		}
	}
	back, probs := load(t, string(out), nil)
	if len(probs) > 0 {
		t.Fatalf("Marshal's output has problems: %q\n%s", lines(probs), out)
	}
	if !reflect.DeepEqual(back.File, c.File) {
		t.Errorf("read back as\n%+v\nwant\n%+v", back.File, c.File)
	}
}

func TestLogSettings(t *testing.T) {
	c, _ := load(t, "data_dir: /d\n", nil)
	if c.LogToFile(false) || !c.LogToFile(true) {
		t.Error("unset log.file: want the file for a service only")
	}
	if c.LogPath() != filepath.Join("/d", "logs", "agent.log") {
		t.Errorf("LogPath() = %s", c.LogPath())
	}
	c, _ = load(t, "log:\n  file: true\n  level: warn\n", nil)
	if !c.LogToFile(false) || c.LogLevel().String() != "WARN" {
		t.Errorf("log.file true, level warn: file %v level %v", c.LogToFile(false), c.LogLevel())
	}
}

// TestReadSecret: the POS API's shared secret comes from the first line of
// an owner-only file; a file others can read, or a short secret, is refused
// without the error quoting the file's content.
func TestReadSecret(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good", "s3cret-s3cret-s3cret\nsecond line ignored\n", 0o600)
	if s, err := config.ReadSecret(good); err != nil || s != "s3cret-s3cret-s3cret" {
		t.Fatalf("config.ReadSecret(good) = %q, %v", s, err)
	}
	for name, p := range map[string]string{
		"short":  write("short", "tooshort\n", 0o600),
		"spaces": write("spaces", "a secret with spaces in it\n", 0o600),
	} {
		if _, err := config.ReadSecret(p); err == nil || strings.Contains(err.Error(), "short") && name == "short" && strings.Contains(err.Error(), "tooshort") {
			t.Errorf("config.ReadSecret(%s) = %v; want refused, without the content", name, err)
		}
	}
	if runtime.GOOS != "windows" {
		open := write("open", "s3cret-s3cret-s3cret\n", 0o644)
		if _, err := config.ReadSecret(open); err == nil || !strings.Contains(err.Error(), "chmod 600") || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("config.ReadSecret(a world-readable file) = %v", err)
		}
	}
}

// TestEnrolledDataDir: an enrolled data dir names the store, terminal,
// partner and the hub's broker, each shown as coming from the enrollment;
// what the file, the environment or a flag says still wins.
func TestEnrolledDataDir(t *testing.T) {
	dir := t.TempDir()
	e := agent.Enrollment{Store: "s-enr", Terminal: "t-enr", Partner: "p-enr", Username: "u", Password: "secret-password", MQTT: "tls://hub.example.com:8883"}
	_, key, _ := ed25519.GenerateKey(nil)
	if err := agent.SaveEnrollment(dir, e, key, nil); err != nil {
		t.Fatal(err)
	}
	c, probs := load(t, "data_dir: "+dir+"\nterminal: t-enr\n", []string{"TILLSYNC_AGENT_PARTNER=p-enr"})
	if errs := config.Errors(append(probs, c.Check()...)); len(errs) > 0 {
		t.Fatalf("problems: %q", lines(errs))
	}
	for _, tc := range []struct{ key, got, want, src string }{
		{"store", c.Store, "s-enr", "enrollment"},
		{"hub", c.Hub, "tls://hub.example.com:8883", "enrollment"},
		{"terminal", c.Terminal, "t-enr", "line 2"},
		{"partner", c.Partner, "p-enr", "TILLSYNC_AGENT_PARTNER"},
	} {
		if tc.got != tc.want || c.Source(tc.key).String() != tc.src {
			t.Errorf("%s = %q from %s, want %q from %s", tc.key, tc.got, c.Source(tc.key), tc.want, tc.src)
		}
	}
	c, _ = load(t, "", nil, flag("data_dir", dir), flag("hub", "tls://other:8883"))
	if c.Hub != "tls://other:8883" || c.Store != "s-enr" {
		t.Errorf("with --hub: hub %q, store %q", c.Hub, c.Store)
	}
	// A data dir that has not enrolled leaves the defaults alone.
	c, _ = load(t, "", nil, flag("data_dir", t.TempDir()))
	if c.Hub != config.Default().Hub || c.Store != "" || c.Source("hub").String() != "default" {
		t.Errorf("not enrolled: hub %q from %s, store %q", c.Hub, c.Source("hub"), c.Store)
	}
}

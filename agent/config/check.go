package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tillsync/tillsync/agent"
	"github.com/tillsync/tillsync/agent/posapi"
	"github.com/tillsync/tillsync/agent/scanner"
	"github.com/tillsync/tillsync/protocol"
)

// Bounds of the values Check accepts.
const (
	MaxBurnTimeout = time.Minute // longer is allowed, with a warning
	MaxBaud        = 4_000_000
	MaxLogSizeMB   = 1024
	MaxLogFiles    = 100
)

// ParseHub checks a hub address and returns it as tcp://host:port
// (mqtt://host:port is taken as the same).
func ParseHub(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.Port() == "" {
		return "", errors.New("want tls://host:port (MQTT over TLS) or tcp://host:port, e.g. tls://hub.example.com:8883")
	}
	switch u.Scheme {
	case "tcp", "mqtt":
		return "tcp://" + u.Host, nil
	case "tls", "ssl", "mqtts", "tcps":
		return "tls://" + u.Host, nil
	}
	return "", errors.New("want tls://host:port (MQTT over TLS) or tcp://host:port, e.g. tls://hub.example.com:8883")
}

// HubOnLoopback reports whether a hub address (as ParseHub returns it)
// names this machine: localhost or a loopback IP.
func HubOnLoopback(hub string) bool {
	u, err := url.Parse(hub)
	return err == nil && loopback(u.Hostname())
}

// HubCAPath is the hub CA file the agent uses: hub_ca when set, else
// DefaultHubCAFile in the data dir when it exists; "" for none (the
// system's roots). isDefault tells the second case.
func (c *Config) HubCAPath() (path string, isDefault bool) {
	if c.HubCA != "" {
		return c.HubCA, false
	}
	if c.DataDir == "" {
		return "", false
	}
	p := filepath.Join(c.DataDir, DefaultHubCAFile)
	if _, err := os.Stat(p); err == nil {
		return p, true
	}
	return "", false
}

// ReadHubCA reads the PEM certificate of the hub's CA at path.
func ReadHubCA(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", path, errors.Unwrap(err))
	}
	if !bytes.Contains(data, []byte("-----BEGIN CERTIFICATE-----")) {
		return nil, fmt.Errorf("%s holds no PEM certificate; get it with: tillsync-hub tls ca", path)
	}
	return data, nil
}

// Check looks at the values alone (it touches nothing on the machine) and
// returns every problem, errors and warnings, in the file's order of keys.
// It returns nothing for a file that is not YAML: Load reported that, and
// the rest would be guesses.
func (c *Config) Check() []Problem {
	if c.unreadable {
		return nil // what the file meant is unknown: fix its YAML first
	}
	var probs []Problem
	add := func(key, msg string) {
		probs = append(probs, Problem{Key: key, Src: c.src[key], Value: c.show(key), Msg: msg})
	}
	warn := func(key, msg string) {
		probs = append(probs, Problem{Key: key, Src: c.src[key], Value: c.show(key), Msg: msg, Warning: true})
	}

	if c.DataDir == "" {
		probs = append(probs, c.missing("data_dir", "a directory for the outbox and the logs, e.g. "+Default().DataDir))
	} else if !filepath.IsAbs(c.DataDir) && c.Path != "" {
		warn("data_dir", "a relative path depends on the directory the agent starts in (a service starts in / or C:\\Windows\\System32); use an absolute path")
	}

	if c.Hub == "" {
		probs = append(probs, c.missing("hub", "the hub's MQTT address, e.g. tls://hub.example.com:8883"))
	} else if hub, err := ParseHub(c.Hub); err != nil {
		add("hub", err.Error())
	} else if !agent.IsTLSBroker(hub) && !HubOnLoopback(hub) && !c.HubPlain {
		add("hub", "plain MQTT to a hub on another machine: anyone on the network can read and forge the till's transactions; use tls://HOST:PORT (and hub_ca), or set hub_plain: true on a network you trust")
	} else if agent.IsTLSBroker(hub) && c.HubPlain {
		warn("hub_plain", "has no effect: hub is tls://")
	}

	for _, id := range [...]struct{ key, what string }{
		{"store", "this store's id (e.g. gc-berlin-01)"},
		{"terminal", "this till's id within the store (e.g. till-1)"},
		{"partner", "the brand this store trades as (e.g. greencross)"},
	} {
		v := c.value(byKey[id.key]).String()
		switch {
		case v == "":
			p := c.missing(id.key, id.what)
			if c.src[id.key].Kind == FromDefault {
				p.Msg += "; or enroll the till (tillsync-agent enroll), which names it"
			}
			probs = append(probs, p)
		case !protocol.ValidID(v):
			add(id.key, fmt.Sprintf("use 1-%d characters of A-Z a-z 0-9 . _ - for %s", protocol.MaxIDLen, id.what))
		}
	}

	if c.EarnRate < 1 || c.EarnRate > agent.MaxEarnRate {
		add("earn_rate", fmt.Sprintf("want 1 to %d points per 100 minor units", agent.MaxEarnRate))
	}
	switch {
	case c.BurnTimeout < 0:
		add("burn_timeout", "must not be negative; how long the POS waits for a burn's answer, e.g. 3s (0 means 3s)")
	case c.BurnTimeout > MaxBurnTimeout:
		warn("burn_timeout", fmt.Sprintf("over %s: the POS and the customer wait this long when the hub does not answer; 3s is usual", MaxBurnTimeout))
	}

	if c.POS.Listen == "" {
		probs = append(probs, c.missing("pos.listen", "the POS API's address, e.g. 127.0.0.1:8081"))
	} else if host, port, err := net.SplitHostPort(c.POS.Listen); err != nil || !validPort(port) {
		add("pos.listen", "want host:port, e.g. 127.0.0.1:8081")
	} else if !loopback(host) && c.POS.SecretFile == "" {
		warn("pos.listen", "not a loopback address and no pos.secret_file: whoever reaches the POS API can earn and burn points; keep it on 127.0.0.1, or set a shared secret and keep the network trusted")
	}
	if c.POS.SecretFile != "" {
		if _, err := ReadSecret(c.POS.SecretFile); err != nil {
			add("pos.secret_file", err.Error())
		}
	}
	if c.HubCA != "" {
		if _, err := ReadHubCA(c.HubCA); err != nil {
			add("hub_ca", err.Error())
		} else if u, err := ParseHub(c.Hub); err == nil && !agent.IsTLSBroker(u) {
			add("hub_ca", "set, but hub is plain MQTT; use hub: tls://HOST:PORT")
		}
	}

	if c.Scanner.Port != "" && c.Scanner.USB != "" {
		probs = append(probs, Problem{Key: "scanner", Msg: fmt.Sprintf("both port (%s) and usb (%s) set; choose one", c.src["scanner.port"], c.src["scanner.usb"])})
	}
	if c.Scanner.USB != "" {
		if _, err := scanner.ParseUSBMatch(c.Scanner.USB); err != nil {
			add("scanner.usb", strings.TrimPrefix(strings.TrimPrefix(err.Error(), "usb "), strconv.Quote(c.Scanner.USB)+": "))
		}
	}
	if c.Scanner.Baud < 0 || c.Scanner.Baud > MaxBaud {
		add("scanner.baud", "want the scanner's baud rate, e.g. 9600 or 115200 (0 means 9600)")
	}
	if _, err := scanner.ParseCheckDigit(c.Scanner.CheckDigit); err != nil {
		add("scanner.check_digit", "want none, luhn or mod11")
	}

	if err := c.Offline.Validate(); err != nil {
		// Validate names the key as "offline store_tills 0: …"; the
		// problem adds where that value came from.
		key := "offline"
		if f := strings.Fields(err.Error()); len(f) > 1 && byKey["offline."+f[1]] != nil {
			key = "offline." + f[1]
		}
		probs = append(probs, Problem{Src: c.src[key], Msg: err.Error()})
	}

	var lv slog.Level
	if err := lv.UnmarshalText([]byte(c.Log.Level)); err != nil {
		add("log.level", "want debug, info, warn or error")
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		add("log.format", "want text or json")
	}
	if c.Log.MaxSizeMB < 1 || c.Log.MaxSizeMB > MaxLogSizeMB {
		add("log.max_size_mb", fmt.Sprintf("want 1 to %d (megabytes before the log file is rotated)", MaxLogSizeMB))
	}
	if c.Log.MaxFiles < 1 || c.Log.MaxFiles > MaxLogFiles {
		add("log.max_files", fmt.Sprintf("want 1 to %d (rotated log files kept)", MaxLogFiles))
	}
	return probs
}

// CheckHost looks at the machine: that the data dir (and so the log dir in
// it) exists and is writable, or can be created, and whether a tls:// hub
// has a CA to be verified against. It creates nothing.
func (c *Config) CheckHost() []Problem {
	if c.DataDir == "" {
		return nil
	}
	if err := checkDir(c.DataDir); err != nil {
		return []Problem{{Key: "data_dir", Src: c.src["data_dir"], Value: c.show("data_dir"),
			Msg: fmt.Sprintf("%v; check as the user the agent runs as (a service: root or administrator), or choose a writable directory with %s", err, c.FixWith("data_dir"))}}
	}
	if hub, err := ParseHub(c.Hub); err == nil && agent.IsTLSBroker(hub) {
		if path, isDefault := c.HubCAPath(); path == "" {
			return []Problem{{Key: "hub_ca", Src: c.src["hub_ca"], Warning: true,
				Msg: fmt.Sprintf("not set, and no %s in the data dir: the hub's certificate must then chain to the system's root CAs, which a hub with its own CA does not; set hub_ca (or %s) to the hub's CA from tillsync-hub tls ca", DefaultHubCAFile, c.FixWith("hub_ca"))}}
		} else if isDefault {
			if _, err := ReadHubCA(path); err != nil {
				return []Problem{{Key: "hub_ca", Msg: err.Error()}}
			}
		}
	}
	return nil
}

func checkDir(dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case err == nil && !fi.IsDir():
		return errors.New("not a directory")
	case err == nil:
		return writable(dir, "not writable")
	case !notExist(err):
		return fmt.Errorf("cannot be read (%v)", rootCause(err))
	}
	// It will be created: the nearest directory that exists must allow it.
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err == nil {
			if !fi.IsDir() {
				return fmt.Errorf("cannot be created: %s is not a directory", p)
			}
			return writable(p, "cannot be created in "+p)
		}
		if !notExist(err) || filepath.Dir(p) == p {
			return fmt.Errorf("cannot be created (%v)", rootCause(err))
		}
	}
}

// notExist: nothing there, or a file where a directory on the way should be.
func notExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

func writable(dir, what string) error {
	f, err := os.CreateTemp(dir, ".write-check-*")
	if err != nil {
		return fmt.Errorf("%s (%v)", what, rootCause(err))
	}
	f.Close()
	os.Remove(f.Name())
	return nil
}

// missing is the problem of a required key without a value, said so that
// it fixes where the configuration comes from: the file, the variable or
// the flag.
func (c *Config) missing(key, what string) Problem {
	src := c.src[key]
	p := Problem{Key: key, Src: src}
	switch {
	case src.Kind == FromEnv:
		p.Msg = "empty; set it to " + what
	case src.Kind == FromFlag:
		p.Msg = "empty; give " + what
	case src.Kind == FromFile || c.Path != "" || c.flagNames[key] == "":
		p.Msg = fmt.Sprintf("missing; set %s: to %s", key[strings.LastIndex(key, ".")+1:], what)
		if strings.Contains(key, ".") {
			p.Msg = fmt.Sprintf("missing; set %s: under %s: to %s", key[strings.LastIndex(key, ".")+1:], key[:strings.LastIndex(key, ".")], what)
		}
	default:
		// No file: flags are how this agent is configured.
		p.Src = Source{Kind: FromFlag, Name: c.flagNames[key]}
		p.Msg = "missing; give " + what
	}
	return p
}

// show is key's value as a problem quotes it.
func (c *Config) show(key string) string {
	f := byKey[key]
	if f == nil {
		return ""
	}
	switch v := c.value(f).Interface().(type) {
	case string:
		return strconv.Quote(v)
	case time.Duration:
		return v.String()
	case *bool:
		if v == nil {
			return ""
		}
		return strconv.FormatBool(*v)
	default:
		return fmt.Sprint(v)
	}
}

func validPort(p string) bool {
	n, err := strconv.Atoi(p)
	return err == nil && n >= 0 && n <= 65535
}

func loopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Errors returns the problems that are not warnings.
func Errors(probs []Problem) []Problem {
	var out []Problem
	for _, p := range probs {
		if !p.Warning {
			out = append(out, p)
		}
	}
	return out
}

// AgentOptions maps the configuration onto agent.Options (all but the POS
// listener, logger, clock and version, which the command supplies). Call
// it after Check found no errors; the error is for a value Check refused.
func (c *Config) AgentOptions() (agent.Options, error) {
	broker, err := ParseHub(c.Hub)
	if err != nil {
		return agent.Options{}, fmt.Errorf("hub %q: %w", c.Hub, err)
	}
	o := agent.Options{
		DataDir: c.DataDir, Broker: broker,
		Store: c.Store, Terminal: c.Terminal, Partner: c.Partner,
		EarnRate: c.EarnRate, BurnTimeout: c.BurnTimeout,
		ScannerPort: c.Scanner.Port, ScannerBaud: c.Scanner.Baud,
		Offline: c.Offline,
	}
	if c.Scanner.USB != "" {
		if o.ScannerUSB, err = scanner.ParseUSBMatch(c.Scanner.USB); err != nil {
			return agent.Options{}, fmt.Errorf("scanner.%w", err)
		}
	}
	if o.MemberCheck, err = scanner.ParseCheckDigit(c.Scanner.CheckDigit); err != nil {
		return agent.Options{}, fmt.Errorf("scanner.%w", err)
	}
	if path, isDefault := c.HubCAPath(); path != "" && (!isDefault || agent.IsTLSBroker(broker)) {
		if o.HubCA, err = ReadHubCA(path); err != nil {
			return agent.Options{}, fmt.Errorf("hub_ca: %w", err)
		}
	}
	if c.POS.SecretFile != "" {
		if o.POSSecret, err = ReadSecret(c.POS.SecretFile); err != nil {
			return agent.Options{}, fmt.Errorf("pos.secret_file: %w", err)
		}
	}
	return o, nil
}

// ReadSecret reads the POS API's shared secret from the first line of the
// file at path. The file must not be readable by others (on Unix: no group
// or other permission bits), and the secret must be at least
// posapi.MinSecretLen characters of printable ASCII. Errors never quote the
// file's content.
func ReadSecret(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("cannot read %s: %w", path, errors.Unwrap(err))
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("%s is readable by others (mode %04o); chmod 600 it", path, fi.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("cannot read %s: %w", path, errors.Unwrap(err))
	}
	secret, _, _ := strings.Cut(string(data), "\n")
	secret = strings.TrimSpace(secret)
	if len(secret) < posapi.MinSecretLen || strings.ContainsFunc(secret, func(r rune) bool { return r < 0x21 || r > 0x7e }) {
		return "", fmt.Errorf("%s: the secret on its first line must be at least %d printable characters without spaces", path, posapi.MinSecretLen)
	}
	return secret, nil
}

// LogLevel is log.level as a slog.Level (info if Check would refuse it).
func (c *Config) LogLevel() slog.Level {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(c.Log.Level)); err != nil {
		return slog.LevelInfo
	}
	return lv
}

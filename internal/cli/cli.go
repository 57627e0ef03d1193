// Package cli holds what the tillsync commands share: logging setup, opening
// listeners with errors a person can act on, and turning any error into the
// one line a command prints before exiting non-zero.
package cli

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Version is stamped at build time with -ldflags "-X github.com/tillsync/tillsync/internal/cli.Version=…".
var Version = "dev"

// UsageError marks a mistake in the command line (exit status 2).
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// Usagef returns a *UsageError.
func Usagef(format string, args ...any) error { return &UsageError{fmt.Errorf(format, args...)} }

// Main runs root and exits: 0 on success, 2 for a usage mistake, 1 for
// anything else, printing "name: problem" as one line on stderr.
func Main(root *cobra.Command) {
	root.SilenceErrors = true
	root.SilenceUsage = true
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		if e := unknownSubcommand(c); e != nil {
			return e
		}
		if msg, ok := invalidValue(err); ok {
			return &UsageError{fmt.Errorf("%s (see %s --help)", msg, c.CommandPath())}
		}
		return &UsageError{fmt.Errorf("%w (see %s --help)", err, c.CommandPath())}
	})
	c, err := root.ExecuteC()
	if err == nil {
		os.Exit(0)
	}
	// One line: cobra's suggestions come with newlines and tabs.
	msg := strings.Join(strings.Fields(err.Error()), " ")
	var ue *UsageError
	usage := errors.As(err, &ue)
	if !usage && (strings.HasPrefix(msg, "unknown command") || strings.Contains(msg, "arg(s)")) {
		usage = true
		if c == nil {
			c = root
		}
		msg += fmt.Sprintf(" (see %s --help)", c.CommandPath())
	}
	fmt.Fprintf(os.Stderr, "%s: %s\n", root.Name(), msg)
	if usage {
		os.Exit(2)
	}
	os.Exit(1)
}

// unknownSubcommand explains a flag error of a command that only groups
// subcommands, after a word that names none of them ("partner lst --hub
// …"): the word is the mistake, not the flag, which belongs to the
// subcommand meant. Nil when c is no such command or no word came first.
func unknownSubcommand(c *cobra.Command) error {
	args := c.Flags().Args() // the words before the flag that failed
	if !c.HasSubCommands() || len(args) == 0 {
		return nil
	}
	hint := ""
	if c.SuggestionsMinimumDistance <= 0 {
		c.SuggestionsMinimumDistance = 2
	}
	if s := c.SuggestionsFor(args[0]); len(s) > 0 {
		hint = fmt.Sprintf("; did you mean %q?", s[0])
	}
	return Usagef("unknown command %q for %q%s (see %s --help)", args[0], c.CommandPath(), hint, c.CommandPath())
}

// invalidValue explains a flag value its flag's type refuses, in words:
// pflag's own message quotes Go's parser ("strconv.ParseInt: parsing
// …"). ok is false for the types it does not know.
func invalidValue(err error) (msg string, ok bool) {
	var ie *pflag.InvalidValueError
	if !errors.As(err, &ie) {
		return "", false
	}
	name := "--" + ie.GetFlag().Name
	if errors.Is(err, strconv.ErrRange) {
		return fmt.Sprintf("%s %q: out of range", name, ie.GetValue()), true
	}
	var want string
	switch ie.GetFlag().Value.Type() {
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		want = "a whole number"
	case "float32", "float64":
		want = "a number"
	case "duration":
		want = "a duration such as 30s, 15m or 24h"
	case "bool":
		want = "true or false"
	default:
		return "", false
	}
	return fmt.Sprintf("%s %q: want %s", name, ie.GetValue(), want), true
}

// LogFlags are the logging flags every long-running command takes.
type LogFlags struct {
	Level  string
	Format string
}

// Add registers --log-level and --log-format on c.
func (f *LogFlags) Add(c *cobra.Command) {
	c.Flags().StringVar(&f.Level, "log-level", "info", "log level: debug, info, warn or error")
	c.Flags().StringVar(&f.Format, "log-format", "text", "log format: text or json")
}

// Logger builds the logger the flags ask for, writing to w.
func (f *LogFlags) Logger(w io.Writer) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(f.Level)); err != nil {
		return nil, Usagef("--log-level %q: want debug, info, warn or error", f.Level)
	}
	ho := &slog.HandlerOptions{Level: lv}
	switch f.Format {
	case "text":
		return slog.New(slog.NewTextHandler(w, ho)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, ho)), nil
	}
	return nil, Usagef("--log-format %q: want text or json", f.Format)
}

// ListenAddr checks that addr has the form of an address to listen on,
// host:port, explaining in one line that names the flag when it does not.
// Listen checks it first; a command calls it on its own to refuse the
// mistake before it makes anything on disk.
func ListenAddr(what, addr, flag string) error {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return Usagef("%s address %q: want host:port, e.g. 127.0.0.1:8081; set it with %s", what, addr, flag)
	}
	return nil
}

// Listen opens a TCP listener, explaining a busy or unusable address in one
// line that names the flag to change.
func Listen(what, addr, flag string) (net.Listener, error) {
	if err := ListenAddr(what, addr, flag); err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", addr)
	switch {
	case err == nil:
		return l, nil
	case errors.Is(err, syscall.EADDRINUSE):
		return nil, fmt.Errorf("%s address %s is already in use by another program; choose a free one with %s", what, addr, flag)
	case errors.Is(err, syscall.EACCES):
		return nil, fmt.Errorf("%s address %s: permission denied (ports below 1024 need privileges); choose another with %s", what, addr, flag)
	}
	return nil, fmt.Errorf("%s address %s: %v; choose another with %s", what, addr, err, flag)
}

// DataDir makes sure dir exists (owner-only) and is writable, explaining
// the problem and the fix in one line when it is not.
func DataDir(dir, flag string) error {
	if dir == "" {
		return Usagef("no data dir; set one with %s", flag)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("data dir %s cannot be created (%v); choose a writable one with %s", dir, rootCause(err), flag)
	}
	f, err := os.CreateTemp(dir, ".write-check-*")
	if err != nil {
		return fmt.Errorf("data dir %s is not writable (%v); choose a writable one with %s", dir, rootCause(err), flag)
	}
	f.Close()
	os.Remove(f.Name())
	return nil
}

func rootCause(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// LoopbackAddr reports whether a host:port address listens on loopback
// only: localhost or a loopback IP. An empty host (all interfaces) or any
// other name is not.
func LoopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
